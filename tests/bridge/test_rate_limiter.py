"""The client-side limiter: Retry-After remembered across calls, the application bucket spent
on what matters most, the monthly cap, and calls counted by purpose (§9)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from structlog.testing import capture_logs

from simulators.smartcar_fake import FakeConfig, RunningFake, run_smartcar_fake
from simulators.smartcar_fake.limits import CostLimits
from simulators.world import World
from smartcar_bridge.client import SmartcarClient
from smartcar_bridge.errors import BillingError, RateLimitError, UpstreamError
from smartcar_bridge.ratelimit import (
    CapReached,
    HeldBack,
    Purpose,
    RateLimiter,
    RateLimitSettings,
    TokenBucket,
    call_purpose,
)
from tests.bridge.test_smartcar_client import connect, first_vehicle


class FakeTime:
    """A monotonic clock that only moves when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def limiter(**settings: float) -> tuple[RateLimiter, FakeTime]:
    clock = FakeTime()
    return (
        RateLimiter(
            RateLimitSettings(**settings),  # type: ignore[arg-type]
            monotonic=clock,
            sleep=clock.sleep,
            wall_clock=lambda: datetime(2026, 12, 31, 12, 0, tzinfo=UTC),
        ),
        clock,
    )


def test_bucket_refills_at_its_rate_and_keeps_reserves() -> None:
    bucket = TokenBucket(size=4, refill_per_s=0.5)
    assert [bucket.take(0.0) for _ in range(4)] == [0.0, 0.0, 0.0, 0.0]
    assert bucket.take(0.0) == pytest.approx(2.0)  # one token every 2 s
    assert bucket.take(2.0) == 0.0
    bucket2 = TokenBucket(size=10, refill_per_s=1.0)
    assert bucket2.take(0.0, reserve=9.0) == 0.0  # 10 -> 9 leaves the reserve intact
    assert bucket2.take(0.0, reserve=9.0) == pytest.approx(1.0)
    assert bucket2.take(0.0, reserve=0.0) == 0.0  # a higher purpose still gets one


async def test_retry_after_is_remembered_however_long() -> None:
    limits, clock = limiter()
    limits.failed("car", RateLimitError("slow down", code="VEHICLE", retry_after=65))
    with pytest.raises(HeldBack) as held:
        await limits.acquire("car")
    assert held.value.kind == "RATE_LIMIT:VEHICLE"
    assert held.value.retry_after == 65
    clock.now += 64.5
    with pytest.raises(HeldBack):
        await limits.acquire("car")
    clock.now += 0.5
    await limits.acquire("car")  # exactly Retry-After later: allowed
    await limits.acquire("other-car")


async def test_upstream_rate_limit_backs_off_that_vehicle_for_long() -> None:
    limits, clock = limiter(upstream_backoff_s=1800.0)
    limits.failed("car", UpstreamError("OEM limit", code="RATE_LIMIT"))
    clock.now += 1799
    with pytest.raises(HeldBack):
        await limits.acquire("car")
    clock.now += 1
    await limits.acquire("car")


async def test_monthly_cap_stops_calls_until_next_month_and_says_so() -> None:
    limits, clock = limiter()
    with capture_logs() as logs:
        limits.failed("car", BillingError("spent", code="VEHICLE_REQUEST_LIMIT"))
    assert [e["event"] for e in logs] == ["bridge.smartcar_vehicle_capped"]
    assert logs[0]["until"] == "2027-01-01T00:00:00+00:00"
    with pytest.raises(CapReached) as capped:
        await limits.acquire("car")
    assert capped.value.kind == "BILLING:VEHICLE_REQUEST_LIMIT"
    clock.now += 12 * 3600 - 1
    with pytest.raises(CapReached):
        await limits.acquire("car")
    clock.now += 1
    await limits.acquire("car")


async def test_short_bucket_is_spent_on_stopping_not_on_matching() -> None:
    limits, clock = limiter(bucket_size=20, bucket_refill_per_minute=2.0)
    with call_purpose(Purpose.MATCH):
        for _ in range(15):  # MATCH leaves a quarter (5 tokens) for the purposes above it
            await limits.acquire("car-a")
        with pytest.raises(HeldBack) as refused:
            await limits.acquire("car-b")
    assert refused.value.kind == "RATE_LIMIT:SMARTCAR_API"
    assert clock.slept == []  # a match read never waits for tokens
    with call_purpose(Purpose.STOP, session_id=7):
        for _ in range(5):
            await limits.acquire("car-c")
        # The bucket is empty: a stop waits for the next token (30 s at 2 a minute).
        await limits.acquire("car-c")
    assert clock.slept == [pytest.approx(30.0)]
    assert limits.by_purpose == {"match": 15, "stop": 6}


async def test_application_429_empties_the_bucket_and_backs_off_exponentially() -> None:
    limits, clock = limiter(app_backoff_base_s=30.0)
    limits.failed(None, RateLimitError("app limit", code="SMARTCAR_API"))
    with call_purpose(Purpose.MONITOR), pytest.raises(HeldBack):
        await limits.acquire("car")
    with call_purpose(Purpose.STOP):
        await limits.acquire("car")  # waits the back-off, then for a token
    assert sum(clock.slept) >= 30.0
    limits.failed(None, RateLimitError("app limit", code="SMARTCAR_API"))
    before = clock.now
    with call_purpose(Purpose.STOP):
        await limits.acquire("car")
    assert clock.now - before >= 60.0  # the second time, twice as long


async def test_a_session_over_its_budget_is_logged_once() -> None:
    limits, _ = limiter(session_budget=3)
    with capture_logs() as logs, call_purpose(Purpose.MONITOR, session_id=42):
        for _ in range(6):
            await limits.acquire("car")
    warnings = [e for e in logs if e["event"] == "bridge.smartcar_budget_exceeded"]
    assert len(warnings) == 1
    assert warnings[0]["session_id"] == 42
    assert warnings[0]["calls"] == 4
    assert limits.by_session[42] == 6


async def test_concurrent_sessions_share_one_bucket() -> None:
    limits, _ = limiter(bucket_size=10, bucket_refill_per_minute=0.0)

    async def session(number: int) -> int:
        sent = 0
        with call_purpose(Purpose.MONITOR, session_id=number):
            for _ in range(5):
                try:
                    await limits.acquire(f"car-{number}")
                except HeldBack:
                    continue
                sent += 1
        return sent

    sent = await asyncio.gather(*(session(n) for n in range(4)))
    assert sum(sent) == 8  # MONITOR leaves 20 % of 10 tokens for the purposes above it


# --- over HTTP, against the fake's own throttle -------------------------------------------


def limited_client(
    running: RunningFake, *, max_retry_after: float
) -> tuple[SmartcarClient, RateLimiter, FakeTime]:
    """A client against the fake whose limiter and sleeps run on a clock the test moves."""
    clock = FakeTime()
    limits = RateLimiter(monotonic=clock, sleep=clock.sleep)
    config = running.fake.config
    smartcar = SmartcarClient(
        running.api_url,
        running.auth_url,
        running.connect_url,
        config.client_id,
        config.client_secret,
        config.redirect_uris[0],
        sleep=clock.sleep,
        limiter=limits,
        max_retry_after=max_retry_after,
    )
    return smartcar, limits, clock


@pytest.fixture
async def running() -> AsyncIterator[RunningFake]:
    world = World.generate(chargers=2, vehicles=20, seed=8)
    async with run_smartcar_fake(world, config=FakeConfig()) as fake_server:
        yield fake_server


async def test_after_a_429_the_next_call_waits_exactly_retry_after(running: RunningFake) -> None:
    """The issue's case: Retry-After 65 s (above the client's 60 s cap) must hold the car."""
    smartcar, limits, clock = limited_client(running, max_retry_after=60.0)
    async with smartcar:
        vehicle = first_vehicle(running)
        tokens = await connect(smartcar, running, vehicle.vin)
        running.fake.faults.retry_after_s = 65
        running.fake.faults.force("RATE_LIMIT:VEHICLE", 1, endpoint="GET /battery")
        with call_purpose(Purpose.MONITOR), pytest.raises(RateLimitError) as first:
            await smartcar.battery(tokens.access_token, vehicle.smartcar_id)
        assert first.value.retry_after == 65
        sent_before = running.fake.request_count
        # Polled again 3 s later, as the old bridge did: refused here, nothing sent.
        clock.now += 3
        with call_purpose(Purpose.MONITOR), pytest.raises(HeldBack) as held:
            await smartcar.battery(tokens.access_token, vehicle.smartcar_id)
        assert held.value.retry_after == 62
        assert running.fake.request_count == sent_before
        clock.now += 62
        with call_purpose(Purpose.MONITOR):
            battery = await smartcar.battery(tokens.access_token, vehicle.smartcar_id)
        assert battery.percent_remaining == pytest.approx(0.5)
        assert limits.by_purpose["monitor"] == 2  # the first 429 and the success


async def test_client_never_trips_the_fakes_vehicle_throttle(running: RunningFake) -> None:
    """Against a throttle of 2 calls a minute, the limiter learns from the first 429 and
    sends nothing more until the slot is free: one refusal, however many callers."""
    # Never sleep inside a call: let the caller schedule.
    smartcar, _, _ = limited_client(running, max_retry_after=0.0)
    async with smartcar:
        vehicle = first_vehicle(running)
        tokens = await connect(smartcar, running, vehicle.vin)
        running.fake.costs.configure(CostLimits(vehicle_calls=2, vehicle_window_s=60))

        async def read() -> str:
            try:
                with call_purpose(Purpose.MONITOR):
                    await smartcar.battery(tokens.access_token, vehicle.smartcar_id)
            except HeldBack:
                return "held"
            except RateLimitError:
                return "429"
            return "ok"

        outcomes = [await read() for _ in range(6)]
        outcomes += await asyncio.gather(*(read() for _ in range(6)))
    assert outcomes.count("ok") == 2
    assert outcomes.count("429") == 1
    assert outcomes.count("held") == 9
    assert running.fake.costs.refused["RATE_LIMIT:VEHICLE"] == 1


async def test_a_plug_in_decision_never_makes_more_than_its_budget(running: RunningFake) -> None:
    """Issue 16's 5 calls per decision as a hard cap: three decisions at once, each trying
    eight reads, send five each; the rest are refused here (nothing reaches the fake) and
    said once per decision. A session's calls are not capped by it."""
    from smartcar_bridge.call_ledger import DecisionBudgetSpent, for_plug_in

    smartcar, _, _ = limited_client(running, max_retry_after=0.0)
    smartcar.ledger.decision_budget = 5
    async with smartcar:
        vehicle = first_vehicle(running)
        tokens = await connect(smartcar, running, vehicle.vin)
        sent_before = running.fake.request_count

        async def decide(plug_in_id: int) -> list[str]:
            outcomes = []
            with for_plug_in(plug_in_id), call_purpose(Purpose.MATCH):
                for _ in range(8):
                    try:
                        await smartcar.battery(tokens.access_token, vehicle.smartcar_id)
                        outcomes.append("sent")
                    except DecisionBudgetSpent:
                        outcomes.append("refused")
            return outcomes

        with capture_logs() as logs:
            results = await asyncio.gather(*(decide(n) for n in (11, 12, 13)))
        assert [r.count("sent") for r in results] == [5, 5, 5]
        assert running.fake.request_count - sent_before == 15
        assert dict(smartcar.ledger.by_plug_in) == {11: 5, 12: 5, 13: 5}
        spent = [e for e in logs if e["event"] == "bridge.decision_budget_spent"]
        assert sorted(e["plug_in_id"] for e in spent) == [11, 12, 13]
        # The session opened for plug-in 11 reads on: its calls are the session's budget.
        with for_plug_in(11), call_purpose(Purpose.MONITOR, session_id=7):
            await smartcar.battery(tokens.access_token, vehicle.smartcar_id)
        assert smartcar.ledger.by_session[7] == 1
