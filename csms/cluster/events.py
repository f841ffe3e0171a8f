"""The event port over NATS: a JetStream stream, one durable consumer per service.

``publish`` never blocks: events go to an outbox that one task publishes with the
``Nats-Msg-Id`` header (``codec.message_id``), so a retry after a lost acknowledgement is
stored once; nothing is dropped while NATS is away, it waits in the outbox.

``subscribe(consumer)`` pulls from the durable consumer named ``consumer``, shared by all
nodes: each event goes to one of them. A node acknowledges an event when its service takes
the next one (or calls ``task_done``), and keeps the rest of what it pulled "in progress";
if the node dies, JetStream gives its unacknowledged events to another after ``ack_wait``.

``observe()`` is every event on every node: this node's directly, the others' from the
stream's subjects over core NATS (the same message JetStream stores).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from typing import Any

import nats.errors
import structlog
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy, StorageType, StreamConfig
from nats.js.errors import BadRequestError

from csms.cluster import codec
from csms.cluster.settle import subscriptions_settled
from csms.cluster.subjects import EVENT_STREAM, EVENTS, event_subject

log = structlog.get_logger()

NODE_HEADER = "Csms-Node"
ACK_WAIT = 30.0  # seconds a pulled event may stay unacknowledged before it goes elsewhere
QUEUE_SIZE = 256  # events pulled ahead per service per node
PUBLISH_BATCH = 256
NatsErrors = (nats.errors.Error, OSError, asyncio.TimeoutError)


class AckQueue(asyncio.Queue[Any]):
    """A subscriber's queue: taking the next event acknowledges the one taken before."""

    def __init__(self) -> None:
        super().__init__(QUEUE_SIZE)
        self.messages: deque[Msg] = deque()  # delivered, not yet taken; in put order
        self.current: Msg | None = None  # taken by the service, not yet acknowledged

    def deliver(self, event: object, message: Msg) -> None:
        self.messages.append(message)
        self.put_nowait(event)

    async def get(self) -> Any:
        await self._ack_current()
        event = await super().get()
        self.current = self.messages.popleft() if self.messages else None
        return event

    def task_done(self) -> None:
        super().task_done()
        message, self.current = self.current, None
        if message is not None:
            asyncio.get_running_loop().create_task(_ack(message))

    async def _ack_current(self) -> None:
        message, self.current = self.current, None
        if message is not None:
            await _ack(message)


async def _ack(message: Msg) -> None:
    try:
        await message.ack()
    except NatsErrors as exc:
        # JetStream will deliver it again after ack_wait; consumers are idempotent.
        log.warning("cluster.event_ack_failed", error=str(exc) or type(exc).__name__)


class NatsEventBus:
    """``EventPort`` over JetStream; built before NATS is reached, ``start``-ed with it."""

    def __init__(self, node_id: str, ack_wait: float = ACK_WAIT) -> None:
        self._node_id = node_id
        self._ack_wait = ack_wait
        self._outbox: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue()
        self._observers: list[asyncio.Queue[Any]] = []
        self._consumers: dict[AckQueue, str] = {}
        self._pullers: dict[AckQueue, asyncio.Task[None]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self._consumer_count = 0

    # -- EventPort ---------------------------------------------------------------------

    def publish(self, event: Any) -> None:
        for queue in self._observers:
            queue.put_nowait(event)
        if not codec.is_registered(event):
            # Not shareable (no codec): this node's consumers handle it, as in one process.
            for queue in self._consumers:
                queue.put_nowait(event)
            return
        self._outbox.put_nowait((event_subject(codec.event_type(event)), codec.encode(event)))

    def subscribe(self, consumer: str | None = None) -> asyncio.Queue[Any]:
        if consumer is None:
            # Services subscribe in the same order on every node, so this name is shared.
            self._consumer_count += 1
            consumer = f"service-{self._consumer_count}"
        queue = AckQueue()
        self._consumers[queue] = consumer
        if self._js is not None:
            self._start_puller(queue)
        return queue

    def observe(self) -> asyncio.Queue[Any]:
        queue: asyncio.Queue[Any] = asyncio.Queue()
        self._observers.append(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[Any]) -> None:
        if queue in self._observers:
            self._observers.remove(queue)
        if isinstance(queue, AckQueue) and queue in self._consumers:
            del self._consumers[queue]
            puller = self._pullers.pop(queue, None)
            if puller is not None:
                puller.cancel()

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self, nc: Client) -> None:
        self._nc = nc
        js = nc.jetstream(timeout=5)
        await ensure_stream(js)
        self._js = js
        await nc.subscribe(f"{EVENTS}.>", cb=self._observed)
        # The server has our subscription before any node publishes.
        await subscriptions_settled(nc)
        self._tasks.append(asyncio.create_task(self._publish_outbox(), name="cluster-events-out"))
        self._tasks.append(asyncio.create_task(self._keep_in_progress(), name="cluster-events-wip"))
        # Consumers exist before start returns: nothing published after it is missed.
        for queue, name in list(self._consumers.items()):
            subscription = await self._consumer(name)
            self._pullers[queue] = asyncio.create_task(
                self._pull(name, queue, subscription), name=f"events-{name}"
            )

    async def close(self, flush_timeout: float = 5.0) -> None:
        # What was published before shutdown should reach the stream: give it a moment.
        if self._js is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(flush_timeout):
                    await self._outbox.join()
        tasks = [*self._tasks, *self._pullers.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()
        self._pullers.clear()
        if not self._outbox.empty():
            log.warning("cluster.events_unpublished", count=self._outbox.qsize())

    @property
    def backlog(self) -> int:
        return self._outbox.qsize()

    # -- internals ---------------------------------------------------------------------

    def _start_puller(self, queue: AckQueue) -> None:
        name = self._consumers[queue]
        self._pullers[queue] = asyncio.create_task(self._pull(name, queue), name=f"events-{name}")

    async def _observed(self, message: Msg) -> None:
        if (message.headers or {}).get(NODE_HEADER) == self._node_id or not self._observers:
            return
        try:
            event = codec.decode(message.data)
        except (codec.UnknownEvent, ValueError, TypeError, KeyError):
            return
        for queue in self._observers:
            queue.put_nowait(event)

    async def _publish_outbox(self) -> None:
        assert self._js is not None
        while True:
            batch = [await self._outbox.get()]
            while len(batch) < PUBLISH_BATCH and not self._outbox.empty():
                batch.append(self._outbox.get_nowait())
            delay = 0.1
            while batch:
                results = await asyncio.gather(
                    *(self._publish_one(subject, data) for subject, data in batch),
                    return_exceptions=True,
                )
                failed = [item for item, ok in zip(batch, results, strict=True) if ok is not True]
                for _ in range(len(batch) - len(failed)):
                    self._outbox.task_done()
                if failed:
                    log.warning("cluster.event_publish_retry", count=len(failed))
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 2.0)
                batch = failed

    async def _publish_one(self, subject: str, data: bytes) -> bool:
        assert self._js is not None
        headers = {"Nats-Msg-Id": codec.message_id(data), NODE_HEADER: self._node_id}
        await self._js.publish(subject, data, headers=headers, timeout=5)
        return True

    async def _consumer(self, consumer: str) -> Any:
        """Create (or join) the durable consumer; retried until NATS answers."""
        assert self._js is not None
        config = ConsumerConfig(
            durable_name=consumer,
            ack_wait=self._ack_wait,
            max_ack_pending=4 * QUEUE_SIZE,
            # A new service starts with what happens from now on, not the stream's past.
            deliver_policy=DeliverPolicy.NEW,
        )
        while True:
            try:
                return await self._js.pull_subscribe(
                    f"{EVENTS}.>", durable=consumer, stream=EVENT_STREAM, config=config
                )
            except NatsErrors as exc:
                log.warning("cluster.consumer_unavailable", consumer=consumer, error=repr(exc))
                await asyncio.sleep(1.0)

    async def _pull(self, consumer: str, queue: AckQueue, subscription: Any = None) -> None:
        if subscription is None:
            subscription = await self._consumer(consumer)
        while True:
            room = QUEUE_SIZE - queue.qsize()
            if room <= 0:
                await asyncio.sleep(0.02)
                continue
            try:
                messages = await subscription.fetch(batch=min(room, 64), timeout=1.0)
            except nats.errors.TimeoutError:
                continue
            except NatsErrors as exc:
                log.debug("cluster.event_fetch_failed", consumer=consumer, error=repr(exc))
                await asyncio.sleep(0.5)
                continue
            for message in messages:
                try:
                    event = codec.decode(message.data)
                except (codec.UnknownEvent, ValueError, TypeError, KeyError) as exc:
                    log.warning("cluster.event_undecodable", consumer=consumer, error=str(exc))
                    await _ack(message)
                    continue
                queue.deliver(event, message)

    async def _keep_in_progress(self) -> None:
        # Events pulled but not yet handled stay ours: a slow service is not a dead node.
        while True:
            await asyncio.sleep(self._ack_wait / 3)
            for queue in list(self._consumers):
                held = [*queue.messages, *([queue.current] if queue.current else [])]
                for message in held:
                    with contextlib.suppress(*NatsErrors):
                        await message.in_progress()


async def ensure_stream(js: JetStreamContext) -> None:
    """Create the event stream, or bring an existing one to this configuration."""
    config = StreamConfig(
        name=EVENT_STREAM,
        subjects=[f"{EVENTS}.>"],
        storage=StorageType.FILE,
        duplicate_window=120.0,
        max_age=7 * 24 * 3600.0,
        max_bytes=1 << 30,
    )
    try:
        await js.add_stream(config)
    except BadRequestError:
        await js.update_stream(config)
