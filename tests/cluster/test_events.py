"""Domain events through JetStream: each handled once by one node, none lost with a node."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import nats
from nats.aio.client import Client

from csms.cluster.events import NatsEventBus
from csms.cluster.nats_server import EmbeddedNats
from csms.cluster.subjects import EVENT_STREAM
from csms.domain.events import ConnectorStatusChanged
from tests.conftest import TIMEOUT


def _event(n: int) -> ConnectorStatusChanged:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    return ConnectorStatusChanged(f"CP-{n}", 1, "Preparing", "Available", "NoError", at)


@contextlib.asynccontextmanager
async def _bus(server: EmbeddedNats, node_id: str, ack_wait: float = 30.0) -> AsyncIterator[Any]:
    nc = await nats.connect(server.url)
    bus = NatsEventBus(node_id, ack_wait=ack_wait)
    bus.nc = nc
    try:
        yield bus
    finally:
        await bus.close()
        await nc.close()


async def _take(queue: asyncio.Queue[Any], count: int) -> list[Any]:
    taken = []
    async with asyncio.timeout(TIMEOUT):
        while len(taken) < count:
            taken.append(await queue.get())
    return taken


async def _stream_messages(nc: Client) -> int:
    info = await nc.jetstream().stream_info(EVENT_STREAM)
    return int(info.state.messages)


async def test_each_event_goes_to_one_node_once(nats_server: EmbeddedNats) -> None:
    async with _bus(nats_server, "a") as a, _bus(nats_server, "b") as b:
        queues = [a.subscribe("worker"), b.subscribe("worker")]
        await asyncio.gather(a.start(a.nc), b.start(b.nc))
        events = [_event(n) for n in range(60)]
        for event in events:
            (a if event.charge_point_id < "CP-3" else b).publish(event)
        got: list[Any] = []
        async with asyncio.timeout(TIMEOUT):
            while len(got) < len(events):
                for queue in queues:
                    while not queue.empty():
                        got.append(await queue.get())
                await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)  # anything delivered twice would arrive by now
        assert all(queue.empty() for queue in queues)
        assert sorted(e.charge_point_id for e in got) == sorted(e.charge_point_id for e in events)


async def test_the_same_event_published_twice_is_stored_once(nats_server: EmbeddedNats) -> None:
    async with _bus(nats_server, "a") as a:
        await a.start(a.nc)
        before = await _stream_messages(a.nc)
        a.publish(_event(1))
        a.publish(_event(1))  # a retry, or a retransmitted frame handled twice
        a.publish(_event(2))
        async with asyncio.timeout(TIMEOUT):
            while a.backlog:
                await asyncio.sleep(0.02)
        await asyncio.sleep(0.2)
        assert await _stream_messages(a.nc) == before + 2


async def test_an_event_a_dead_node_had_not_finished_goes_to_another(
    nats_server: EmbeddedNats,
) -> None:
    async with _bus(nats_server, "publisher") as publisher:
        await publisher.start(publisher.nc)
        dying_nc = await nats.connect(nats_server.url)
        dying = NatsEventBus("dying", ack_wait=1.0)
        dying_queue = dying.subscribe("bridge")
        await dying.start(dying_nc)
        await asyncio.sleep(0.3)  # the durable consumer exists before the event
        publisher.publish(_event(7))
        (taken,) = await _take(dying_queue, 1)
        assert taken.charge_point_id == "CP-7"
        # Dies while handling it: never takes the next, never acknowledges.
        await dying_nc.close()
        async with _bus(nats_server, "survivor", ack_wait=1.0) as survivor:
            queue = survivor.subscribe("bridge")
            await survivor.start(survivor.nc)
            (again,) = await _take(queue, 1)
            assert again == taken
        await dying.close()


async def test_observers_on_every_node_see_every_event(nats_server: EmbeddedNats) -> None:
    async with _bus(nats_server, "a") as a, _bus(nats_server, "b") as b:
        seen_a, seen_b = a.observe(), b.observe()
        await asyncio.gather(a.start(a.nc), b.start(b.nc))
        a.publish(_event(1))
        b.publish(_event(2))
        for queue in (seen_a, seen_b):
            got = await _take(queue, 2)
            assert {e.charge_point_id for e in got} == {"CP-1", "CP-2"}
