"""The fake's cost limits (§9): per-vehicle throttle, application bucket, monthly cap."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from simulators.smartcar_fake import ManualClock, RunningFake, run_smartcar_fake
from simulators.smartcar_fake.errors import ApiError
from simulators.smartcar_fake.limits import CostLimits, CostMeter
from simulators.smartcar_fake.testing import connect_vehicles
from simulators.world import World
from tests.simulators.test_smartcar_fake_v3 import connected

NOW = datetime(2025, 6, 30, 23, 59, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return NOW + timedelta(seconds=seconds)


def refusal(meter: CostMeter, vehicle_id: str, when: datetime, cost: int = 1) -> ApiError:
    with pytest.raises(ApiError) as caught:
        meter.charge(vehicle_id, when, cost)
    return caught.value


def test_limits_off_by_default_accept_everything() -> None:
    meter = CostMeter()
    for second in range(1000):
        meter.charge("car", at(second * 0.01))
    assert meter.accepted["car"] == 1000
    assert not meter.refused


def test_vehicle_throttle_answers_retry_after_until_the_window_frees() -> None:
    meter = CostMeter(CostLimits(vehicle_calls=2, vehicle_window_s=60.0))
    meter.charge("car", at(0))
    meter.charge("car", at(10))
    error = refusal(meter, "car", at(20))
    assert error.kind == "RATE_LIMIT:VEHICLE"
    assert error.status == 429
    assert error.headers["Retry-After"] == "40"
    # Early retries are refused again and cost nothing; the same second as promised works.
    assert refusal(meter, "car", at(59)).headers["Retry-After"] == "1"
    meter.charge("car", at(60))
    assert meter.accepted["car"] == 3
    assert meter.refused["RATE_LIMIT:VEHICLE"] == 2


def test_vehicle_throttle_is_per_vehicle() -> None:
    meter = CostMeter(CostLimits(vehicle_calls=1))
    meter.charge("a", at(0))
    meter.charge("b", at(0))
    assert refusal(meter, "a", at(1)).kind == "RATE_LIMIT:VEHICLE"


def test_application_bucket_empties_and_refills_at_its_rate() -> None:
    meter = CostMeter(CostLimits(bucket_size=3, bucket_refill_per_minute=2.0))
    for n in range(3):
        meter.charge(f"car-{n}", at(0))
    error = refusal(meter, "car-9", at(1))
    assert error.kind == "RATE_LIMIT:SMARTCAR_API"
    assert "Retry-After" not in error.headers  # §9 documents none for the application limit
    # Two a minute: one token after 30 s, not before.
    assert refusal(meter, "car-9", at(29)).kind == "RATE_LIMIT:SMARTCAR_API"
    meter.charge("car-9", at(31))
    assert refusal(meter, "car-9", at(32)).kind == "RATE_LIMIT:SMARTCAR_API"


def test_smartcar_defaults_allow_120_calls_then_two_a_minute() -> None:
    meter = CostMeter(CostLimits.smartcar_defaults())
    for n in range(120):
        meter.charge(f"car-{n}", at(0))
    assert refusal(meter, "car-x", at(0)).kind == "RATE_LIMIT:SMARTCAR_API"
    meter.charge("car-x", at(30))


def test_monthly_cap_answers_430_and_resets_with_the_month() -> None:
    meter = CostMeter(CostLimits(monthly_cap=3))
    meter.charge("car", at(0), cost=2)
    meter.charge("car", at(1))
    error = refusal(meter, "car", at(2))
    assert (error.kind, error.status) == ("BILLING:VEHICLE_REQUEST_LIMIT", 430)
    # A batch of two paths does not fit either, even after the vehicle's other limits clear.
    assert meter.monthly_count("car", at(2)) == 3
    meter.charge("car", at(120))  # NOW is 23:59 on 30 June: two minutes later is July
    assert meter.monthly_count("car", at(120)) == 1


def test_cap_is_reported_before_the_rate_limits() -> None:
    meter = CostMeter(CostLimits(monthly_cap=1, vehicle_calls=1, bucket_size=1))
    meter.charge("car", at(0))
    assert refusal(meter, "car", at(1)).kind == "BILLING:VEHICLE_REQUEST_LIMIT"


@pytest.fixture
async def running() -> AsyncIterator[RunningFake]:
    world = World.generate(chargers=2, vehicles=10, seed=3)
    async with run_smartcar_fake(world, clock=ManualClock(NOW)) as fake_server:
        yield fake_server


async def test_throttle_over_http_carries_retry_after_and_v2_error_body(
    running: RunningFake,
) -> None:
    async with httpx.AsyncClient(timeout=5.0) as http:
        vehicle = next(iter(running.fake.world.vehicles.values()))
        tokens = await connect_vehicles(http, running, vehicle.vin)
        configured = await http.post(
            f"{running.base_url}/_fake/limits", json={"vehicle_calls": 2, "vehicle_window_s": 30}
        )
        assert configured.status_code == 200
        url = f"{running.api_url}/vehicles/{vehicle.smartcar_id}/battery"
        headers = {"Authorization": f"Bearer {tokens['access_token']}"}
        # Several at once, as a busy bridge would send them: exactly two get through.
        answers = await asyncio.gather(*(http.get(url, headers=headers) for _ in range(5)))
        statuses = sorted(a.status_code for a in answers)
        assert statuses == [200, 200, 429, 429, 429]
        refused = next(a for a in answers if a.status_code == 429)
        assert refused.headers["retry-after"] == "30"
        body = refused.json()
        assert (body["type"], body["code"], body["statusCode"]) == ("RATE_LIMIT", "VEHICLE", 429)
        state = (await http.get(f"{running.base_url}/_fake/limits")).json()
        assert state["accepted_by_vehicle"] == {vehicle.smartcar_id: 2}
        assert state["refused_by_kind"] == {"RATE_LIMIT:VEHICLE": 3}


async def test_batch_costs_one_call_per_path(running: RunningFake) -> None:
    async with httpx.AsyncClient(timeout=5.0) as http:
        vehicle = next(iter(running.fake.world.vehicles.values()))
        tokens = await connect_vehicles(http, running, vehicle.vin)
        await http.post(f"{running.base_url}/_fake/limits", json={"monthly_cap": 3})
        url = f"{running.api_url}/vehicles/{vehicle.smartcar_id}/batch"
        headers = {"Authorization": f"Bearer {tokens['access_token']}"}
        two = {"requests": [{"path": "/battery"}, {"path": "/charge"}]}
        assert (await http.post(url, json=two, headers=headers)).status_code == 200
        refused = await http.post(url, json=two, headers=headers)
        assert refused.status_code == 430
        assert refused.json()["code"] == "VEHICLE_REQUEST_LIMIT"


async def test_preset_smartcar_sets_the_published_defaults(running: RunningFake) -> None:
    async with httpx.AsyncClient(timeout=5.0) as http:
        answer = await http.post(f"{running.base_url}/_fake/limits", json={"preset": "smartcar"})
        limits = answer.json()["limits"]
        assert limits["bucket_size"] == 120
        assert limits["bucket_refill_per_minute"] == 2.0
        assert limits["monthly_cap"] == 500
        assert answer.json()["bucket_level"] == 120.0
        bad = await http.post(f"{running.base_url}/_fake/limits", json={"preset": "bogus"})
        assert bad.status_code == 400


async def test_v3_signals_pay_the_same_limits_and_answer_in_the_v3_shape(
    running: RunningFake,
) -> None:
    async with httpx.AsyncClient(timeout=5.0) as http:
        car = await connected(http, running)
        running.fake.costs.configure(CostLimits(vehicle_calls=1, vehicle_window_s=20))
        url = f"{car.url}/signals/tractionbattery-stateofcharge"
        first = await http.get(url, headers=car.headers)
        second = await http.get(url, headers=car.headers)
    assert first.status_code == 200
    assert second.status_code == 429
    assert second.headers["retry-after"] == "20"
    [error] = second.json()["errors"]
    assert (error["status"], error["type"], error["code"]) == ("429", "RATE_LIMIT", "VEHICLE")
