"""The bridge's work port over a real NATS and PostgreSQL: two nodes' ``ClusterWork``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import asyncpg
import nats
import pytest

from csms.cluster.nats_server import EmbeddedNats
from csms.domain.events import ConnectorStatusChanged
from smartcar_bridge.leases import PLUG_IN
from smartcar_bridge.ownership import ClusterWork, Wake, Work
from tests.conftest import TIMEOUT

TTL = 0.6


class Node:
    """One node's side of the port, recording what it was told."""

    def __init__(self, pool: asyncpg.Pool, nc: Any, node_id: str) -> None:
        self.work = ClusterWork(pool, nc, node_id, TTL)
        self.events: asyncio.Queue[object] = asyncio.Queue()
        self.wakes: asyncio.Queue[Wake] = asyncio.Queue()
        self.lost: asyncio.Queue[Work] = asyncio.Queue()
        self.adopted: asyncio.Queue[Work] = asyncio.Queue()

    async def start(self) -> None:
        async def on_event(event: object) -> None:
            self.events.put_nowait(event)

        async def on_wake(wake: Wake) -> None:
            self.wakes.put_nowait(wake)

        async def on_orphan(work: Work) -> None:
            self.adopted.put_nowait(work)

        await self.work.start(on_event, on_wake, self.lost.put_nowait, on_orphan)


@pytest.fixture
async def pool(database_url: str, db: asyncpg.Connection) -> AsyncIterator[asyncpg.Pool]:
    await db.execute("TRUNCATE bridge_leases")
    async with asyncpg.create_pool(database_url, min_size=1, max_size=8) as created:
        yield created


@pytest.fixture
async def nodes(pool: asyncpg.Pool, nats_server: EmbeddedNats) -> AsyncIterator[list[Node]]:
    connections = [await nats.connect(nats_server.url) for _ in range(2)]
    created = [Node(pool, nc, name) for nc, name in zip(connections, ("a", "b"), strict=True)]
    for node in created:
        await node.start()
    yield created
    for node in created:
        await node.work.close()
    for nc in connections:
        await nc.close()


async def _plug_in(db: asyncpg.Connection, charge_point_id: str) -> int:
    return int(
        await db.fetchval(
            "INSERT INTO plug_ins (charge_point_id, connector_id, plugged_at) "
            "VALUES ($1, 1, now()) RETURNING id",
            charge_point_id,
        )
    )


async def test_an_event_for_another_nodes_work_is_handed_to_it(
    nodes: list[Node], db: asyncpg.Connection
) -> None:
    a, b = nodes
    work = (PLUG_IN, await _plug_in(db, "CP-1"))
    assert await a.work.take(work)
    route = await b.work.route(work)
    assert (route.local, route.node) == (False, "a")
    event = ConnectorStatusChanged(
        "CP-1", 1, "Available", "Preparing", "NoError", datetime.now(UTC)
    )
    assert await b.work.forward("a", event)
    async with asyncio.timeout(TIMEOUT):
        assert await a.events.get() == event
    # A node nobody answers for (dead): False at once, the caller waits for the lease.
    assert not await b.work.forward("gone", event)


async def test_a_lapsed_lease_is_taken_over_and_its_old_holder_stops(
    nodes: list[Node], db: asyncpg.Connection
) -> None:
    a, b = nodes
    work = (PLUG_IN, await _plug_in(db, "CP-2"))
    assert await a.work.take(work)
    # Node a stalls (its lease loop does not run in time): its lease lapses.
    for task in a.work._tasks:
        task.cancel()
    await db.execute("UPDATE bridge_leases SET expires_at = now() - interval '1 second'")
    async with asyncio.timeout(TIMEOUT):
        assert await b.adopted.get() == work  # b's sweep took it over
    a.work._tasks.append(asyncio.create_task(a.work._keep()))  # a wakes up
    async with asyncio.timeout(TIMEOUT):
        assert await a.lost.get() == work  # its next renewal finds it gone: a stops
    holder = await db.fetchval("SELECT node_id FROM bridge_leases WHERE work_id = $1", work[1])
    assert holder == "b"
    # Decided: the holder releases the lease at its next renewal.
    await db.execute("UPDATE plug_ins SET outcome = 'no_match' WHERE id = $1", work[1])
    async with asyncio.timeout(TIMEOUT):
        while await db.fetchval("SELECT count(*) FROM bridge_leases"):
            await asyncio.sleep(0.05)


async def test_a_webhook_on_one_node_wakes_every_node(nodes: list[Node]) -> None:
    a, b = nodes
    a.work.broadcast(Wake(vehicle_id=7, session_id=3, soc_percent=61.0))
    async with asyncio.timeout(TIMEOUT):
        assert await b.wakes.get() == Wake(7, 3, 61.0)
        assert await a.wakes.get() == Wake(7, 3, 61.0)


async def test_a_node_stopping_cleanly_leaves_its_work_to_the_others(
    nodes: list[Node], db: asyncpg.Connection
) -> None:
    a, b = nodes
    work = (PLUG_IN, await _plug_in(db, "CP-3"))
    assert await a.work.take(work)
    await db.execute("UPDATE plug_ins SET created_at = now() - interval '1 minute'")
    await a.work.close()
    async with asyncio.timeout(TIMEOUT):
        assert await b.adopted.get() == work
