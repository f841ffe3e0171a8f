"""Smartcar's limits across nodes: two nodes' clients (each its own limiter, as two
``csms serve`` processes have) against the fake over HTTP, sharing one PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest

from simulators.smartcar_fake import FakeConfig, RunningFake, run_smartcar_fake
from simulators.smartcar_fake.limits import CostLimits
from simulators.world import World
from smartcar_bridge.client import SmartcarClient
from smartcar_bridge.errors import RateLimitError
from smartcar_bridge.ratelimit import (
    HeldBack,
    Purpose,
    RateLimiter,
    RateLimitSettings,
    call_purpose,
)
from smartcar_bridge.shared_limit import SharedHolds, SharedRateLimit
from tests.bridge.test_smartcar_client import connect, first_vehicle

BUCKET = 10


@pytest.fixture
async def pool(database_url: str, db: asyncpg.Connection) -> AsyncIterator[asyncpg.Pool]:
    await db.execute("TRUNCATE bridge_leases, bridge_rate_buckets, bridge_vehicle_holds")
    async with asyncpg.create_pool(database_url, min_size=1, max_size=8) as created:
        yield created


@pytest.fixture
async def running() -> AsyncIterator[RunningFake]:
    world = World.generate(chargers=2, vehicles=4, seed=8)
    async with run_smartcar_fake(world, config=FakeConfig()) as fake_server:
        yield fake_server


def node_client(running: RunningFake, pool: asyncpg.Pool | None) -> SmartcarClient:
    """What one node builds (smartcar_bridge.bridge): shared limits when ``pool`` is given."""
    settings = RateLimitSettings(bucket_size=BUCKET, bucket_refill_per_minute=0.01)
    if pool is None:
        limiter = RateLimiter(settings)
    else:
        limiter = RateLimiter(
            settings,
            shared_bucket=SharedRateLimit(pool, "smartcar:test", rate=0.01 / 60, burst=BUCKET),
            shared_holds=SharedHolds(pool),
        )
    config = running.fake.config
    return SmartcarClient(
        running.api_url,
        running.auth_url,
        running.connect_url,
        config.client_id,
        config.client_secret,
        config.redirect_uris[0],
        limiter=limiter,
        max_retry_after=0.0,  # never sleep inside a call: the caller schedules
    )


async def _read_many(nodes: list[SmartcarClient], running: RunningFake) -> list[str]:
    vehicle = first_vehicle(running)
    tokens = await connect(nodes[0], running, vehicle.vin)
    running.fake.costs.configure(CostLimits(bucket_size=BUCKET, bucket_refill_per_minute=0.01))

    async def read(node: SmartcarClient) -> str:
        try:
            with call_purpose(Purpose.MONITOR):
                await node.battery(tokens.access_token, vehicle.smartcar_id)
        except HeldBack:
            return "held"
        except RateLimitError:
            return "429"
        return "ok"

    return await asyncio.gather(*(read(nodes[n % 2]) for n in range(40)))


async def test_two_nodes_together_never_exceed_the_application_bucket(
    running: RunningFake, pool: asyncpg.Pool
) -> None:
    nodes = [node_client(running, pool), node_client(running, pool)]
    async with nodes[0], nodes[1]:
        outcomes = await _read_many(nodes, running)
    # A monitor read leaves 20 % of the bucket to stops and final reads: 8 of 10, for both.
    assert outcomes.count("ok") == BUCKET - 2
    assert outcomes.count("429") == 0
    assert running.fake.costs.refused["RATE_LIMIT:SMARTCAR_API"] == 0


async def test_with_a_bucket_each_two_nodes_overspend_it(running: RunningFake) -> None:
    """The same calls with in-process buckets (one process's limiter, twice): the service
    refuses what the two spent beyond its bucket. What the shared bucket prevents."""
    nodes = [node_client(running, None), node_client(running, None)]
    async with nodes[0], nodes[1]:
        outcomes = await _read_many(nodes, running)
    assert running.fake.costs.refused["RATE_LIMIT:SMARTCAR_API"] > 0
    assert outcomes.count("ok") == BUCKET  # the service's whole bucket, and then refusals


async def test_a_429_on_one_node_holds_the_vehicle_on_the_other(
    running: RunningFake, pool: asyncpg.Pool
) -> None:
    a, b = node_client(running, pool), node_client(running, pool)
    async with a, b:
        vehicle = first_vehicle(running)
        tokens = await connect(a, running, vehicle.vin)
        running.fake.faults.retry_after_s = 65
        running.fake.faults.force("RATE_LIMIT:VEHICLE", 1, endpoint="GET /battery")
        with call_purpose(Purpose.MONITOR), pytest.raises(RateLimitError) as first:
            await a.battery(tokens.access_token, vehicle.smartcar_id)
        assert first.value.retry_after == 65
        sent = running.fake.request_count
        with call_purpose(Purpose.MONITOR), pytest.raises(HeldBack) as held:
            await b.battery(tokens.access_token, vehicle.smartcar_id)
        assert held.value.retry_after is not None and 60 <= held.value.retry_after <= 65
        assert running.fake.request_count == sent  # node B sent nothing
