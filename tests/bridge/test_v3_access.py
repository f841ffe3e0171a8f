"""Vehicle access over Smartcar v3 against the fake over HTTP: application tokens (shared,
renewed, refused), command executions (sync, long-running, failed, timed out, confirmed by
the car's state), v3 errors of each retry class, and a retired v2.0."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
import pytest
import structlog
from structlog.testing import capture_logs

from csms.db.pool import create_pool
from simulators.smartcar_fake import RunningFake, run_smartcar_fake
from simulators.smartcar_fake.testing import authorize_code
from simulators.world import Vehicle, World
from smartcar_bridge.call_ledger import for_plug_in
from smartcar_bridge.client import SmartcarClient
from smartcar_bridge.crypto import TokenCipher
from smartcar_bridge.errors import AppCredentialsRefused, VehicleStateError
from smartcar_bridge.tokens import TokenStore
from smartcar_bridge.v3.app_tokens import (
    AppTokens,
    MemoryAppTokenCache,
    PostgresAppTokenCache,
    cache_key,
)
from smartcar_bridge.v3.client import V3Client
from smartcar_bridge.v3.vehicles import CommandTimeout, UserIds, V3Vehicles
from smartcar_bridge.vehicle_access import V2Vehicles, VehicleAccess
from tests.bridge.test_smartcar_client import connect, make_client

SECRET_KEY = "test-secret-key-0123456789abcdef"
NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


class ShiftedClock:
    """Real time plus an offset the test moves (the fake keeps real time)."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


async def quick_sleep(seconds: float) -> None:
    await asyncio.sleep(min(seconds, 0.05))


@dataclass
class Car:
    link_id: int
    smartcar_vehicle_id: str


@dataclass
class V3Env:
    running: RunningFake
    client: SmartcarClient
    api: V3Vehicles
    access: VehicleAccess
    tokens: AppTokens
    clock: ShiftedClock
    vehicle: Vehicle
    car: Car

    def plug(self) -> None:
        charger = next(iter(self.running.fake.world.chargers))
        self.running.fake.world.plug_in(self.vehicle.vin, charger, 1, NOW)


@pytest.fixture
async def pool(database_url: str, db: asyncpg.Connection) -> AsyncIterator[asyncpg.Pool]:
    connection_pool = await create_pool(database_url, min_size=1, max_size=4)
    yield connection_pool
    await connection_pool.close()


@pytest.fixture
async def env(pool: asyncpg.Pool, db: asyncpg.Connection) -> AsyncIterator[V3Env]:
    world = World.generate(chargers=1, vehicles=2, seed=4)
    clock = ShiftedClock()
    async with (
        run_smartcar_fake(world) as running,
        make_client(running, seed=3, clock=clock, sleep=quick_sleep) as client,
    ):
        vehicle = next(iter(world.vehicles.values()))
        vehicle.soc, vehicle.charge_limit, vehicle.charging_enabled = 0.4, 0.9, False
        async with httpx.AsyncClient() as browser:
            params = await authorize_code(browser, running, vehicle.vin)
        account = await db.fetchval("INSERT INTO accounts (name) VALUES ('Fleet') RETURNING id")
        # Not among the tables tests/conftest.py empties; a reused port would find a token.
        await db.execute("DELETE FROM smartcar_app_tokens")
        store = TokenStore(pool, TokenCipher(SECRET_KEY), client, clock)
        link_id = await store.save_link(
            account, params["user_id"], None, ["control_charge"], sc_user_id=params["user_id"]
        )
        v3 = V3Client(client, running.v3_api_url, running.management_url, running.iam_url)
        cache = PostgresAppTokenCache(pool, TokenCipher(SECRET_KEY))
        tokens = AppTokens(v3.app_token, cache, cache_key(client.client_id, running.iam_url), clock)
        api = V3Vehicles(
            v3,
            tokens,
            UserIds(pool, v3, tokens),
            webhook_id=running.fake.webhooks.webhook_id,
            command_timeout=5.0,
            sleep=quick_sleep,
        )
        access = VehicleAccess(api, sleep=quick_sleep, confirm_delays=(0.01, 0.01, 0.01))
        car = Car(link_id, vehicle.smartcar_id)
        yield V3Env(running, client, api, access, tokens, clock, vehicle, car)


LOG = structlog.get_logger()


async def test_reads_use_one_shared_app_token_with_the_user_id(env: V3Env) -> None:
    readings = await asyncio.gather(
        *(env.access.battery(env.car, LOG) for _ in range(5)),
        env.access.charge_status(env.car, LOG),
        env.access.location(env.car, LOG),
    )
    batteries, status, location = readings[:5], readings[5], readings[6]
    assert all(b is not None and b.soc_percent == pytest.approx(40.0) for b in batteries)
    assert status is not None and (status.is_plugged_in, status.state) == (False, "NOT_CHARGING")
    assert location is not None and location.latitude == pytest.approx(env.vehicle.latitude)
    assert env.running.fake.v3.token_requests == 1


async def test_app_token_is_renewed_before_its_hour_ends_and_shared_through_the_cache(
    env: V3Env, pool: asyncpg.Pool
) -> None:
    first = await env.tokens.token()
    env.clock.offset = timedelta(minutes=54)  # six minutes left: not yet
    assert await env.tokens.token() == first
    env.clock.offset = timedelta(minutes=56)
    with capture_logs() as logs:
        renewed = await env.tokens.token()
    assert renewed != first and env.running.fake.v3.token_requests == 2
    assert [e for e in logs if e["event"] == "bridge.app_token_renewed"]
    # A second process finds the renewed token in PostgreSQL and asks iam for nothing.
    other = AppTokens(
        env.api.client.app_token,
        PostgresAppTokenCache(pool, TokenCipher(SECRET_KEY)),
        cache_key(env.client.client_id, env.running.iam_url),
        env.clock,
    )
    assert await other.token() == renewed and env.running.fake.v3.token_requests == 2


async def test_app_token_expiring_mid_session_is_renewed_once_and_the_call_succeeds(
    env: V3Env,
) -> None:
    assert await env.access.battery(env.car, LOG) is not None
    env.running.fake.v3.expire_app_tokens()
    with capture_logs() as logs:
        battery = await env.access.battery(env.car, LOG)
    assert battery is not None and env.running.fake.v3.token_requests == 2
    events = [e["event"] for e in logs]
    assert "bridge.app_token_rejected" in events and "bridge.app_token_renewed" in events


async def test_refused_secret_is_logged_with_a_hint_and_reads_answer_none(env: V3Env) -> None:
    env.running.fake.v3.client_secret = "rotated-in-the-dashboard"
    with capture_logs() as logs:
        assert await env.access.battery(env.car, LOG) is None
        with pytest.raises(AppCredentialsRefused):
            await env.tokens.token()
    refused = [e for e in logs if e["event"] == "bridge.app_token_refused"]
    assert len(refused) == 1 and "API Credentials" in refused[0]["hint"]
    assert all("rotated" not in str(e) for e in logs)  # the secret never reaches a log
    # Not asked again on every call: the refusal holds for a minute.
    assert env.running.fake.v3.token_requests == 1
    env.running.fake.v3.client_secret = env.running.fake.config.client_secret  # fixed
    env.clock.offset = timedelta(seconds=61)
    assert await env.access.battery(env.car, LOG) is not None
    assert env.running.fake.v3.token_requests == 2


async def test_start_is_sent_and_confirmed_by_the_cars_charging_signal(env: V3Env) -> None:
    env.plug()
    calls = 0

    async def car_starts_on_the_second_look(seconds: float) -> None:
        nonlocal calls
        calls += 1
        env.vehicle.is_charging = env.vehicle.charging_enabled and calls >= 2

    access = VehicleAccess(
        env.api, sleep=car_starts_on_the_second_look, confirm_delays=(0.0, 0.0, 0.0)
    )
    with capture_logs() as logs:
        assert await access.start_charge(env.car, LOG) is True
    assert env.vehicle.charging_enabled
    assert [e for e in logs if e["event"] == "bridge.car_charge_confirmed"]


async def test_start_not_seen_in_the_cars_state_is_reported_unconfirmed(env: V3Env) -> None:
    env.plug()  # the car accepts START, but no charger ever delivers: is_charging stays off
    with capture_logs() as logs:
        assert await env.access.start_charge(env.car, LOG) is False
    assert [e for e in logs if e["event"] == "bridge.car_charge_unconfirmed"]


@pytest.mark.parametrize("mode", ["pending", "stream"])
async def test_long_running_command_is_followed_to_its_outcome(env: V3Env, mode: str) -> None:
    env.plug()
    env.running.fake.v3.command_mode, env.running.fake.v3.command_duration_s = mode, 0.2
    execution = await env.api.set_charge_limit(env.car, 80)
    assert execution.state == "succeeded" and execution.id is not None
    assert env.vehicle.charge_limit == pytest.approx(0.8)


async def test_long_running_command_beyond_the_bound_raises_command_timeout(env: V3Env) -> None:
    env.plug()
    env.running.fake.v3.command_mode, env.running.fake.v3.command_duration_s = "pending", 60
    env.api._command_timeout = 0.3
    with pytest.raises(CommandTimeout):
        await env.api.start_charge(env.car)


async def test_command_whose_execution_reports_failure_maps_onto_the_error_tree(
    env: V3Env,
) -> None:
    env.plug()
    env.running.fake.v3.command_mode, env.running.fake.v3.command_duration_s = "pending", 0.1
    env.running.fake.v3.execution_failures.append("VEHICLE_STATE:CHARGE_FAULT")
    with pytest.raises(VehicleStateError) as caught:
        await env.api.start_charge(env.car)
    assert (caught.value.code, caught.value.retryable) == ("CHARGE_FAULT", False)
    env.running.fake.v3.execution_failures.append("VEHICLE_STATE:CHARGE_FAULT")
    with capture_logs() as logs:
        assert await env.access.start_charge(env.car, LOG) is False
    failed = [e for e in logs if e["event"] == "bridge.smartcar_failed"]
    assert failed[-1]["code"] == "CHARGE_FAULT"


async def test_command_refused_because_already_charging_counts_as_done(env: V3Env) -> None:
    env.plug()
    env.vehicle.charging_enabled = env.vehicle.is_charging = True
    with capture_logs() as logs:
        assert await env.access.start_charge(env.car, LOG) is True
    assert logs[-1]["outcome"] == "CHARGING_IN_PROGRESS"


RETRY_CLASSES: list[tuple[str, str, int, bool]] = [
    # kind, endpoint, requests the one read costs, reading obtained
    ("RATE_LIMIT:VEHICLE", "GET /battery", 2, True),  # waits Retry-After, then succeeds
    ("SERVER:INTERNAL", "GET /battery", 2, True),  # backoff and retry inside the call
    ("UPSTREAM:RATE_LIMIT", "GET /battery", 1, False),  # retryable, but not auto-retried
    ("VEHICLE_STATE:ASLEEP", "GET /battery", 1, False),  # retryable minutes later
    ("BILLING:VEHICLE_REQUEST_LIMIT", "GET /battery", 1, False),  # never retried
    ("PERMISSION", "GET /battery", 1, False),  # re-connect needed
]


@pytest.mark.parametrize(("kind", "endpoint", "requests", "obtained"), RETRY_CLASSES)
async def test_v3_errors_follow_the_v2_retry_rules(
    env: V3Env, kind: str, endpoint: str, requests: int, obtained: bool
) -> None:
    await env.tokens.token()
    env.running.fake.faults.retry_after_s = 0
    env.running.fake.faults.force(kind, times=1, endpoint=endpoint)
    access = VehicleAccess(env.api, sleep=quick_sleep)
    with capture_logs() as logs:
        battery = await access.battery(env.car, LOG, attempts=1)
    assert (battery is not None) == obtained
    sent = [e for e in logs if e["event"] in ("smartcar.request", "smartcar.request_failed")]
    assert len([e for e in sent if e["event"] == "smartcar.request"]) == requests
    if not obtained:
        failure = next(e for e in logs if e["event"] == "bridge.smartcar_failed")
        assert f"{failure['error_type']}:{failure['code']}".startswith(kind.split(":")[0])


async def test_subscribe_uses_the_management_api_and_a_repeat_is_fine(env: V3Env) -> None:
    assert await env.access.subscribe(env.car, LOG) is True
    assert await env.access.subscribe(env.car, LOG) is True  # 409: already subscribed
    (subscription,) = env.running.fake.v3.subscriptions.values()
    assert subscription.vehicle_id == env.vehicle.smartcar_id
    assert env.vehicle.smartcar_id in env.running.fake.webhooks.subscriptions


async def test_link_without_user_id_is_backfilled_from_connections(
    env: V3Env, db: asyncpg.Connection
) -> None:
    await db.execute("UPDATE smartcar_links SET sc_user_id = NULL")
    env.api.users._known.clear()
    with capture_logs() as logs:
        assert await env.access.battery(env.car, LOG) is not None
    assert await db.fetchval("SELECT sc_user_id FROM smartcar_links") == env.vehicle.owner_id
    assert [e for e in logs if e["event"] == "bridge.sc_user_id_backfilled"]


async def _v2_link(
    pool: asyncpg.Pool,
    db: asyncpg.Connection,
    client: SmartcarClient,
    running: RunningFake,
    world: World,
) -> tuple[TokenStore, Car]:
    """The world's one car linked over v2.0 OAuth: its token store and the car to read."""
    (vehicle,) = world.vehicles.values()
    tokens = await connect(client, running, vehicle.vin)
    account = await db.fetchval("INSERT INTO accounts (name) VALUES ('Fleet') RETURNING id")
    store = TokenStore(pool, TokenCipher(SECRET_KEY), client)
    link_id = await store.save_link(account, vehicle.owner_id, tokens)
    return store, Car(link_id, vehicle.smartcar_id)


async def test_retired_v2_with_the_bridge_on_v2_is_reported_once_and_clearly(
    pool: asyncpg.Pool, db: asyncpg.Connection
) -> None:
    world = World.generate(chargers=1, vehicles=1, seed=6)
    async with run_smartcar_fake(world) as running, make_client(running, seed=1) as client:
        store, car = await _v2_link(pool, db, client, running, world)
        access = VehicleAccess(V2Vehicles(client, store), sleep=quick_sleep)
        assert await access.battery(car, LOG) is not None
        running.fake.v3.v2_retired = True
        with capture_logs() as logs:
            assert await access.battery(car, LOG) is None
            assert await access.start_charge(car, LOG) is False
    retired = [e for e in logs if e["event"] == "bridge.smartcar_version_retired"]
    assert len(retired) == 1
    assert retired[0]["api_version"] == "2" and "SMARTCAR_API_VERSION=3" in retired[0]["action"]
    assert retired[0]["code"] == "VERSION" and retired[0]["log_level"] == "error"


async def test_memory_cache_shares_one_token_among_concurrent_callers(env: V3Env) -> None:
    tokens = AppTokens(env.api.client.app_token, MemoryAppTokenCache(), "k", env.clock)
    before = env.running.fake.v3.token_requests
    got = await asyncio.gather(*(tokens.token() for _ in range(20)))
    assert len(set(got)) == 1 and env.running.fake.v3.token_requests == before + 1


async def test_known_battery_is_the_signals_page_soc_while_young_enough_at_no_call(
    env: V3Env,
) -> None:
    now = [1000.0]
    api = V3Vehicles(
        env.api.client, env.tokens, env.api.users, sleep=quick_sleep, monotonic=lambda: now[0]
    )
    access = VehicleAccess(api, sleep=quick_sleep)
    assert access.known_battery(env.car, 600) is None  # nothing read yet: the caller reads
    with for_plug_in(7):
        assert await access.charge_status(env.car, LOG) is not None
        hint = access.known_battery(env.car, 600)
        now[0] += 599
        still = access.known_battery(env.car, 600)
        too_old_for_this_caller = access.known_battery(env.car, 60)
    assert env.client.ledger.made(7) == 1  # the one signals page, nothing for the hints
    assert hint is not None and hint.soc_percent == pytest.approx(40.0)
    assert still is not None and still.soc_percent == pytest.approx(40.0)
    assert too_old_for_this_caller is None
    now[0] += 2
    assert access.known_battery(env.car, 3600) is None  # past what is kept
    assert V2Vehicles(env.client, env.api.tokens).known_battery(env.car, 600) is None  # type: ignore[arg-type]


async def test_a_battery_read_is_known_afterwards_at_no_call_on_v3_and_v2(
    env: V3Env, pool: asyncpg.Pool, db: asyncpg.Connection
) -> None:
    """A plug-in that lost its confirmation to a rival decides again once that is over: the
    SoC it read before is known then, on either API version, and costs no second call."""
    now = [1000.0]
    v3 = VehicleAccess(
        V3Vehicles(env.api.client, env.tokens, env.api.users, sleep=quick_sleep,
                   monotonic=lambda: now[0]),
        sleep=quick_sleep, monotonic=lambda: now[0],
    )  # fmt: skip
    world = World.generate(chargers=1, vehicles=1, seed=8)
    async with run_smartcar_fake(world) as running, make_client(running, seed=2) as client:
        store, v2_car = await _v2_link(pool, db, client, running, world)
        v2 = VehicleAccess(V2Vehicles(client, store), sleep=quick_sleep, monotonic=lambda: now[0])
        for n, (access, car, ledger) in enumerate(
            [(v3, env.car, env.client.ledger), (v2, v2_car, client.ledger)]
        ):
            assert access.known_battery(car, 600) is None  # nothing read yet
            with for_plug_in(n):  # several plug-ins read at once: each read is remembered
                read = await asyncio.gather(*(access.battery(car, LOG) for _ in range(3)))
            with for_plug_in(100 + n):
                known = access.known_battery(car, 600)
                now[0] += 599
                still = access.known_battery(car, 600)
                too_old_for_this_caller = access.known_battery(car, 60)
            assert ledger.made(100 + n) == 0  # the hints cost nothing
            assert all(r is not None for r in read)
            assert known is not None and still is not None
            assert known.soc_percent == pytest.approx(read[-1].soc_percent)  # type: ignore[union-attr]
            assert too_old_for_this_caller is None
            now[0] += 2
            assert access.known_battery(car, 3600) is None  # past what is kept
            now[0] -= 601
