"""Bridge pieces a cluster shares in PostgreSQL: session leases and the Smartcar rate limit."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import asyncpg
import pytest

from smartcar_bridge import leases
from smartcar_bridge.shared_limit import SharedRateLimit


@pytest.fixture
async def pool(database_url: str, db: asyncpg.Connection) -> AsyncIterator[asyncpg.Pool]:
    await db.execute("TRUNCATE bridge_session_leases, bridge_rate_buckets")
    async with asyncpg.create_pool(database_url, min_size=1, max_size=8) as created:
        yield created


async def test_one_node_at_a_time_holds_a_session_and_another_takes_it_when_it_lapses(
    pool: asyncpg.Pool,
) -> None:
    # Three nodes race for the same five sessions: each session gets exactly one holder.
    results = await asyncio.gather(
        *(leases.take(pool, s, node, ttl=0.6) for s in range(5) for node in ("a", "b", "c"))
    )
    for session in range(5):
        assert sum(results[session * 3 : session * 3 + 3]) == 1
    holders = {
        r["session_id"]: r["node_id"]
        for r in await pool.fetch("SELECT session_id, node_id FROM bridge_session_leases")
    }
    assert await leases.take(pool, 0, holders[0], ttl=0.6)  # the holder keeps it
    assert await leases.renew(pool, [0], holders[0], ttl=0.6) == {0}
    other = next(n for n in "abc" if n != holders[1])
    assert not await leases.take(pool, 1, other, ttl=0.6)
    await asyncio.sleep(0.8)  # the holder of session 1 died: no renewal
    assert 1 in await leases.expired(pool)
    assert await leases.renew(pool, [1], holders[1], ttl=0.6) == set()  # too late
    assert await leases.take(pool, 1, other, ttl=0.6)
    await leases.release(pool, 1, other)
    assert await leases.take(pool, 1, holders[1], ttl=0.6)


async def test_the_rate_limit_is_shared_by_every_node(pool: asyncpg.Pool) -> None:
    # Two "nodes" with their own limiter objects on the same bucket: 5/s with a burst of 3.
    nodes = [SharedRateLimit(pool, "smartcar", rate=5.0, burst=3.0) for _ in range(2)]
    started = time.monotonic()
    await asyncio.gather(*(nodes[n % 2].acquire() for n in range(8)))
    elapsed = time.monotonic() - started
    # 3 at once, then 5 more at 5/s: at least ~1 s for both together, not 0.4 s each.
    assert elapsed >= 0.9
    assert await nodes[0].try_acquire() > 0  # the bucket is empty for everyone now
