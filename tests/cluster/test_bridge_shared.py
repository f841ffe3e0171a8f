"""Bridge pieces a cluster shares in PostgreSQL: session leases and the Smartcar rate limit."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import asyncpg
import pytest

from smartcar_bridge import leases
from smartcar_bridge.shared_limit import SharedHolds, SharedRateLimit

S = leases.SESSION


@pytest.fixture
async def pool(database_url: str, db: asyncpg.Connection) -> AsyncIterator[asyncpg.Pool]:
    await db.execute("TRUNCATE bridge_leases, bridge_rate_buckets, bridge_vehicle_holds")
    async with asyncpg.create_pool(database_url, min_size=1, max_size=8) as created:
        yield created


async def test_one_node_at_a_time_holds_a_session_and_another_takes_it_when_it_lapses(
    pool: asyncpg.Pool,
) -> None:
    # Three nodes race for the same five sessions: each session gets exactly one holder.
    results = await asyncio.gather(
        *(leases.take(pool, S, s, node, ttl=0.6) for s in range(5) for node in ("a", "b", "c"))
    )
    for session in range(5):
        assert sum(results[session * 3 : session * 3 + 3]) == 1
    holders = {
        r["work_id"]: r["node_id"]
        for r in await pool.fetch("SELECT work_id, node_id FROM bridge_leases")
    }
    assert await leases.take(pool, S, 0, holders[0], ttl=0.6)  # the holder keeps it
    assert await leases.renew(pool, [(S, 0)], holders[0], ttl=0.6) == {(S, 0)}
    other = next(n for n in "abc" if n != holders[1])
    assert not await leases.take(pool, S, 1, other, ttl=0.6)
    await asyncio.sleep(0.8)  # the holder of session 1 died: no renewal
    assert (S, 1) in await leases.expired(pool)
    assert await leases.renew(pool, [(S, 1)], holders[1], ttl=0.6) == set()  # too late
    assert await leases.take(pool, S, 1, other, ttl=0.6)
    await leases.release(pool, S, 1, other)
    assert await leases.take(pool, S, 1, holders[1], ttl=0.6)


async def test_the_rate_limit_is_shared_by_every_node(pool: asyncpg.Pool) -> None:
    # Two "nodes" with their own limiter objects on the same bucket: 5/s with a burst of 3.
    nodes = [SharedRateLimit(pool, "smartcar", rate=5.0, burst=3.0) for _ in range(2)]
    started = time.monotonic()
    await asyncio.gather(*(nodes[n % 2].acquire() for n in range(8)))
    elapsed = time.monotonic() - started
    # 3 at once, then 5 more at 5/s: at least ~1 s for both together, not 0.4 s each.
    assert elapsed >= 0.9
    assert await nodes[0].try_acquire() > 0  # the bucket is empty for everyone now


async def test_a_plug_in_and_a_session_with_the_same_id_are_two_leases(pool: asyncpg.Pool) -> None:
    assert await leases.take(pool, leases.SESSION, 7, "a", ttl=5)
    assert await leases.take(pool, leases.PLUG_IN, 7, "b", ttl=5)
    assert not await leases.take(pool, leases.PLUG_IN, 7, "a", ttl=5)
    assert await leases.renew(pool, [(leases.SESSION, 7), (leases.PLUG_IN, 7)], "a", 5) == {
        (leases.SESSION, 7)
    }


async def test_a_vehicle_held_on_one_node_is_held_on_every_node(pool: asyncpg.Pool) -> None:
    a, b = SharedHolds(pool), SharedHolds(pool)
    assert await b.held("car") is None
    await a.hold("car", 65.0, "RATE_LIMIT:VEHICLE")
    await a.hold("car", 5.0, "RATE_LIMIT:VEHICLE")  # a shorter hold does not cut it short
    held = await b.held("car")
    assert held is not None and 60 < held[0] <= 65 and held[1] == "RATE_LIMIT:VEHICLE"


async def test_a_reserve_keeps_the_last_tokens_for_what_matters_most(pool: asyncpg.Pool) -> None:
    bucket = SharedRateLimit(pool, "reserve", rate=0.01, burst=4.0)
    assert await bucket.try_acquire(reserve=1.0) == 0.0  # 3 left
    assert await bucket.try_acquire(reserve=1.0) == 0.0  # 2 left
    assert await bucket.try_acquire(reserve=1.0) == 0.0  # 1 left
    assert await bucket.try_acquire(reserve=1.0) > 0  # a monitor read may not take the last
    assert await bucket.try_acquire() == 0.0  # a stop may
    await bucket.drain()
    assert await bucket.try_acquire() > 0


async def test_leases_lapsed_long_ago_are_forgotten(pool: asyncpg.Pool) -> None:
    assert await leases.take(pool, S, 1, "dead", ttl=5)
    assert await leases.take(pool, S, 2, "live", ttl=5)
    await pool.execute(
        "UPDATE bridge_leases SET expires_at = now() - interval '1 hour' WHERE work_id = 1"
    )
    await leases.forget_lapsed(pool, older_than=60)
    assert [r["work_id"] for r in await pool.fetch("SELECT work_id FROM bridge_leases")] == [2]
