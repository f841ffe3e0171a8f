"""Who works on a piece of the bridge's work (a session, a plug-in being decided).

One port, two implementations, so ``sessions.py`` has one code path:

- ``LocalWork`` (one process): this process owns everything; nothing to forward.
- ``ClusterWork`` (``CSMS_NATS_URL`` set): a lease per piece of work in PostgreSQL
  (``leases.py``), renewed every third of its TTL; an event for work another node holds
  is handed to that node over NATS request/reply (``bridge.work.<node>``), so the node
  with the work's tasks and memory handles it; new data about a car (a webhook, which
  may arrive at any node) is broadcast on ``bridge.wake`` so the node working on that
  car's session or plug-in acts on it now, not at its next poll. A lease that was not
  renewed lapses (its node died) and the next sweep of another node takes the work over.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import asyncpg
import structlog

from smartcar_bridge import leases

log = structlog.get_logger()

Work = tuple[str, int]  # (leases.SESSION | leases.PLUG_IN, id)
OnEvent = Callable[[Any], Awaitable[None]]
OnWake = Callable[["Wake"], Awaitable[None]]
OnLost = Callable[[Work], None]
OnOrphan = Callable[[Work], Awaitable[None]]

WAKE_SUBJECT = "bridge.wake"
WORK_SUBJECT = "bridge.work"


@dataclass(frozen=True, slots=True)
class Wake:
    """New data about a car: its session (if any) and the SoC a webhook reported."""

    vehicle_id: int
    session_id: int | None = None
    soc_percent: float | None = None


@dataclass(frozen=True, slots=True)
class Route:
    """Where an event for ``work`` goes: here (``local``), or to ``node``."""

    local: bool
    node: str | None = None
    taken_over: bool = False  # it was another node's, whose lease lapsed: resume it first


class WorkPort(Protocol):
    clustered: bool
    node_id: str
    ttl: float

    async def start(
        self, on_event: OnEvent, on_wake: OnWake, on_lost: OnLost, on_orphan: OnOrphan
    ) -> None: ...

    async def close(self) -> None: ...

    async def take(self, work: Work) -> bool: ...

    async def route(self, work: Work) -> Route: ...

    async def forward(self, node: str, event: object) -> bool: ...

    def broadcast(self, wake: Wake) -> None: ...

    async def orphans(self) -> list[Work]: ...


class LocalWork:
    """One process: every piece of work is ours, and there is nobody to tell."""

    clustered = False
    node_id = "local"
    ttl = 0.0

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def start(
        self, on_event: OnEvent, on_wake: OnWake, on_lost: OnLost, on_orphan: OnOrphan
    ) -> None:
        return None

    async def close(self) -> None:
        return None

    async def take(self, work: Work) -> bool:
        return True

    async def route(self, work: Work) -> Route:
        return Route(local=True)

    async def forward(self, node: str, event: object) -> bool:
        raise AssertionError("one process forwards nothing")

    def broadcast(self, wake: Wake) -> None:
        return None

    async def orphans(self) -> list[Work]:
        """At start every unfinished piece of work is ours to resume."""
        return await leases.orphaned(self._pool, grace=-1.0, leased_too=True)


class ClusterWork:
    """Leases in PostgreSQL, hand-over and wake-ups over NATS."""

    clustered = True

    def __init__(self, pool: asyncpg.Pool, nc: Any, node_id: str, ttl: float) -> None:
        self._pool = pool
        self._nc = nc
        self.node_id = node_id
        self.ttl = ttl
        self._held: set[Work] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self._subscriptions: list[Any] = []
        self._background: set[asyncio.Task[None]] = set()

    async def start(
        self, on_event: OnEvent, on_wake: OnWake, on_lost: OnLost, on_orphan: OnOrphan
    ) -> None:
        from csms.cluster import codec
        from csms.cluster.settle import subscriptions_settled

        async def handed(message: Any) -> None:
            try:
                await on_event(codec.decode(message.data))
                answer = b"ok"
            except Exception:  # the sender must hear back either way
                log.exception("bridge.forwarded_event_failed")
                answer = b"failed"
            with contextlib.suppress(Exception):
                await message.respond(answer)

        async def woken(message: Any) -> None:
            body = json.loads(message.data)
            await on_wake(Wake(body["vehicle_id"], body.get("session_id"), body.get("soc")))

        self._subscriptions = [
            await self._nc.subscribe(self._subject(self.node_id), cb=handed),
            await self._nc.subscribe(WAKE_SUBJECT, cb=woken),
        ]
        await subscriptions_settled(self._nc)
        self._on_lost = on_lost
        self._on_orphan = on_orphan
        self._tasks.append(asyncio.create_task(self._keep(), name="bridge-leases"))

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for subscription in self._subscriptions:
            with contextlib.suppress(Exception):
                await subscription.unsubscribe()
        # Stopping cleanly: the others take our work at their next sweep, not after the TTL.
        with contextlib.suppress(asyncpg.PostgresError, OSError):
            await leases.release_all(self._pool, self.node_id)
        self._held.clear()

    async def take(self, work: Work) -> bool:
        if await leases.take(self._pool, *work, self.node_id, self.ttl):
            self._held.add(work)
            return True
        return False

    async def route(self, work: Work) -> Route:
        holder = await leases.holder(self._pool, *work)
        if holder is not None and holder.live and holder.node_id != self.node_id:
            return Route(local=False, node=holder.node_id)
        if not await self.take(work):
            # Another node took it between the two queries: it goes there.
            holder = await leases.holder(self._pool, *work)
            return Route(local=False, node=holder.node_id if holder else None)
        taken_over = holder is not None and holder.node_id != self.node_id
        return Route(local=True, taken_over=taken_over)

    async def forward(self, node: str, event: object) -> bool:
        """Hand ``event`` to ``node``; False when it did not answer (dead or unreachable)."""
        from csms.cluster import codec

        try:
            answer = await self._nc.request(
                self._subject(node), codec.encode(event), timeout=self.ttl
            )
        except Exception as exc:  # no responders, timeout, NATS away: the caller waits
            log.info("bridge.forward_failed", node=node, error=type(exc).__name__)
            return False
        # Answered is handled: a failure there was logged there (bridge.forwarded_event_failed),
        # as one process logs bridge.event_failed and goes on; sending it again would not help.
        return answer is not None

    def broadcast(self, wake: Wake) -> None:
        body = json.dumps(
            {"vehicle_id": wake.vehicle_id, "session_id": wake.session_id, "soc": wake.soc_percent}
        ).encode()

        async def publish() -> None:
            try:
                await self._nc.publish(WAKE_SUBJECT, body)
            except Exception as exc:  # the owner's poll still comes; log and go on
                log.warning("bridge.wake_unsent", error=type(exc).__name__)

        task = asyncio.create_task(publish())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def orphans(self) -> list[Work]:
        return await leases.orphaned(self._pool, grace=self.ttl)

    async def _keep(self) -> None:
        """Renew what we hold, give up what we lost or finished, adopt what lapsed."""
        while True:
            await asyncio.sleep(self.ttl / 3)
            try:
                held = sorted(self._held)
                kept = await leases.renew(self._pool, held, self.node_id, self.ttl)
                for work in held:
                    if work not in kept:
                        self._held.discard(work)
                        log.warning("bridge.lease_lost", kind=work[0], work_id=work[1])
                        self._on_lost(work)
                for work in await leases.finished(self._pool, sorted(self._held)):
                    self._held.discard(work)
                    await leases.release(self._pool, *work, self.node_id)
                await leases.forget_lapsed(self._pool, older_than=10 * self.ttl)
                for work in await self.orphans():
                    if await self.take(work):
                        log.info("bridge.work_taken_over", kind=work[0], work_id=work[1])
                        await self._on_orphan(work)
            except (asyncpg.PostgresError, OSError) as exc:
                # The database is away: our leases lapse as anyone's would; try again.
                log.warning("bridge.lease_renew_failed", error=str(exc) or type(exc).__name__)
            except Exception:
                log.exception("bridge.lease_loop_failed")

    @staticmethod
    def _subject(node: str) -> str:
        from csms.cluster.subjects import charger_token

        return f"{WORK_SUBJECT}.{charger_token(node)}"
