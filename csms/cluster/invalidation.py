"""Cache invalidation across nodes: "forget what you cached about this key".

The port has two sides. A cache that a change on this node made stale updates itself, then
calls ``broadcast(topic, key)`` so the other nodes forget theirs; a cache registers what to
forget with ``on(topic, forget)``. ``forget(key)`` gets ``None`` for "forget everything":
after NATS comes back, since what was broadcast while it was away never arrived.

- ``LocalInvalidations`` (one process): there are no others, so ``broadcast`` does nothing.
- ``NatsInvalidations``: core NATS on ``csms.invalidate.<topic>``; another node has it
  within milliseconds (the issue asks for under a second).

Topics: ``registration`` (charger registration status), ``security`` (profile and
password), ``id_tag`` (authorisation decisions). ``channel`` is the one call a cache needs.
"""

from __future__ import annotations

import asyncio
import inspect
import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Protocol

import structlog

from csms.cluster.subjects import INVALIDATIONS, invalidation_subject

if TYPE_CHECKING:  # one process never loads the NATS client (csms/ports.py imports us)
    from nats.aio.client import Client
    from nats.aio.msg import Msg

log = structlog.get_logger()

TOPICS = ("registration", "security", "id_tag")

Forget = Callable[[str | None], Awaitable[None] | None]


class Invalidations(Protocol):
    def broadcast(self, topic: str, key: str) -> None: ...

    def on(self, topic: str, forget: Forget) -> None: ...


def channel(invalidations: Invalidations, topic: str, forget: Forget) -> Callable[[str], None]:
    """Register ``forget`` for ``topic``; return the function to call after a local change."""
    invalidations.on(topic, forget)
    return lambda key: invalidations.broadcast(topic, key)


class LocalInvalidations:
    def __init__(self) -> None:
        self.handlers: dict[str, list[Forget]] = {}

    def broadcast(self, topic: str, key: str) -> None:
        pass  # one process: the cache that changed is the only one

    def on(self, topic: str, forget: Forget) -> None:
        self.handlers.setdefault(topic, []).append(forget)


class NatsInvalidations(LocalInvalidations):
    def __init__(self, node_id: str) -> None:
        super().__init__()
        self._node_id = node_id
        self._nc: Client | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self, nc: Client) -> None:
        self._nc = nc
        await nc.subscribe(f"{INVALIDATIONS}.>", cb=self._received)

    def broadcast(self, topic: str, key: str) -> None:
        if self._nc is None:
            return
        body = json.dumps({"node": self._node_id, "key": key}).encode()
        self._spawn(self._publish(invalidation_subject(topic), body))

    async def _publish(self, subject: str, body: bytes) -> None:
        import nats.errors

        try:
            await self._nc.publish(subject, body)  # type: ignore[union-attr]
        except (nats.errors.Error, OSError) as exc:
            # Reconnection ends in forget-everything on every node, so this is not lost.
            log.warning("cluster.invalidation_failed", subject=subject, error=str(exc))

    async def _received(self, message: Msg) -> None:
        try:
            body = json.loads(message.data)
        except ValueError:
            return
        if body.get("node") == self._node_id:
            return
        self.forget(message.subject.split(".", 2)[2], body.get("key"))

    def forget(self, topic: str, key: str | None) -> None:
        for handler in self.handlers.get(topic, []):
            result = handler(key)
            if inspect.isawaitable(result):
                self._spawn(result)

    def forget_everything(self) -> None:
        for topic in list(self.handlers):
            self.forget(topic, None)

    def _spawn(self, awaitable: Awaitable[None]) -> None:
        task = asyncio.ensure_future(awaitable)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Future[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("cluster.invalidation_handler_failed", exc_info=task.exception())

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
