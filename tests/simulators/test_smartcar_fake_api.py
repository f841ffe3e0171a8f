"""The fake Smartcar's v2.0 vehicle endpoints, faults and batch, over real sockets."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest

from simulators.smartcar_fake import (
    FAULT_KINDS,
    ManualClock,
    RunningFake,
    run_smartcar_fake,
)
from simulators.smartcar_fake.testing import connect_vehicles
from simulators.world import Vehicle, World

FULL_SCOPE = (
    "read_vehicle_info read_vin read_battery read_charge control_charge read_location read_odometer"
)
NOW = datetime(2025, 6, 1, 8, 30, tzinfo=UTC)
# (status, resolution type) per fault, from smartcar-api.md §7.
EXPECTED = {
    "RATE_LIMIT:VEHICLE": (429, "RETRY_LATER"),
    "RATE_LIMIT:SMARTCAR_API": (429, "RETRY_LATER"),
    "VEHICLE_STATE:ASLEEP": (409, None),
    "VEHICLE_STATE:UNREACHABLE": (409, None),
    "VEHICLE_STATE:CHARGE_FAULT": (409, None),
    "SERVER:INTERNAL": (500, "RETRY_LATER"),
    "UPSTREAM:INVALID_DATA": (502, "RETRY_LATER"),
    "UPSTREAM:KNOWN_ISSUE": (502, "RETRY_LATER"),
    "UPSTREAM:NO_RESPONSE": (502, "RETRY_LATER"),
    "UPSTREAM:RATE_LIMIT": (502, "RETRY_LATER"),
    "UPSTREAM:UNKNOWN_ISSUE": (502, "RETRY_LATER"),
}


class Car:
    """A connected vehicle: its world object, URL base and auth header."""

    def __init__(self, running: RunningFake, vehicle: Vehicle, token: str) -> None:
        self.running = running
        self.vehicle = vehicle
        self.url = f"{running.api_url}/vehicles/{vehicle.smartcar_id}"
        self.headers = {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def running() -> AsyncIterator[RunningFake]:
    world = World.generate(chargers=2, vehicles=60, seed=5)
    async with run_smartcar_fake(world, clock=ManualClock(NOW)) as fake_server:
        yield fake_server


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=5.0) as http:
        yield http


@pytest.fixture
async def car(running: RunningFake, client: httpx.AsyncClient) -> Car:
    vehicle = next(iter(running.fake.world.vehicles.values()))
    vehicle.soc, vehicle.charge_limit = 0.5, 0.9
    tokens = await connect_vehicles(client, running, vehicle.vin, scope=FULL_SCOPE)
    return Car(running, vehicle, str(tokens["access_token"]))


def plug(car: Car) -> None:
    charger = next(iter(car.running.fake.world.chargers))
    car.running.fake.world.plug_in(car.vehicle.vin, charger, 1, NOW)


async def test_vehicle_data_matches_the_world_with_data_headers(
    car: Car, client: httpx.AsyncClient
) -> None:
    vehicle = car.vehicle
    battery = await client.get(f"{car.url}/battery", headers=car.headers)
    assert battery.json() == {"percentRemaining": 0.5, "range": round(vehicle.range_km, 2)}
    assert battery.headers["SC-Data-Age"] == "2025-06-01T08:30:00.000Z"
    assert battery.headers["SC-Fetched-At"] == "2025-06-01T08:30:00.000Z"
    assert battery.headers["SC-Unit-System"] == "metric"
    attributes = (await client.get(car.url, headers=car.headers)).json()
    assert attributes == {"id": vehicle.smartcar_id, "make": vehicle.make,
                          "model": vehicle.model, "year": vehicle.year}  # fmt: skip
    capacity = (await client.get(f"{car.url}/battery/nominal_capacity", headers=car.headers)).json()
    assert capacity["capacity"] == {"nominal": vehicle.battery_kwh, "source": "SMARTCAR"}
    charge = (await client.get(f"{car.url}/charge", headers=car.headers)).json()
    assert charge == {"isPluggedIn": False, "state": "NOT_CHARGING"}
    location = (await client.get(f"{car.url}/location", headers=car.headers)).json()
    assert location == {"latitude": vehicle.latitude, "longitude": vehicle.longitude}


async def test_imperial_units_convert_distances(car: Car, client: httpx.AsyncClient) -> None:
    headers = {**car.headers, "sc-unit-system": "imperial"}
    odometer = await client.get(f"{car.url}/odometer", headers=headers)
    assert odometer.headers["SC-Unit-System"] == "imperial"
    assert odometer.json()["distance"] == pytest.approx(car.vehicle.odometer_km / 1.609344, 0.01)


async def test_vehicle_list_pages_with_total_count(
    running: RunningFake, client: httpx.AsyncClient
) -> None:
    all_vins = list(running.fake.world.vehicles)[:55]
    tokens = await connect_vehicles(client, running, *all_vins)
    headers = {"Authorization": f"Bearer {tokens['access_token']}"}
    url = f"{running.api_url}/vehicles"
    page = (await client.get(url, params={"limit": 50, "offset": 50}, headers=headers)).json()
    assert page["paging"] == {"count": 55, "offset": 50} and len(page["vehicles"]) == 5
    too_big = await client.get(url, params={"limit": 51}, headers=headers)
    assert too_big.status_code == 400 and too_big.json()["type"] == "VALIDATION"


async def test_bad_vehicle_id_is_400_and_unknown_path_is_404(
    car: Car, client: httpx.AsyncClient
) -> None:
    bad = await client.get(f"{car.running.api_url}/vehicles/bad_id", headers=car.headers)
    assert bad.status_code == 400 and bad.json()["type"] == "VALIDATION"
    unknown = await client.get(f"{car.url}/batteri", headers=car.headers)
    assert unknown.status_code == 404
    assert (unknown.json()["type"], unknown.json()["code"]) == ("RESOURCE_NOT_FOUND", "PATH")
    other = await client.get(f"{car.running.api_url}/vehicles/{uuid.uuid4()}/battery",
                             headers=car.headers)  # fmt: skip
    assert other.status_code == 401


async def test_start_and_stop_charge_outcomes(car: Car, client: httpx.AsyncClient) -> None:
    async def command(action: str) -> tuple[int, str | None]:
        response = await client.post(f"{car.url}/charge", headers=car.headers,
                                     json={"action": action})  # fmt: skip
        body = response.json()
        return response.status_code, body.get("code") if response.status_code != 200 else None

    assert await command("START") == (409, "CHARGING_PLUG_NOT_CONNECTED")
    assert await command("STOP") == (409, "CHARGING_PLUG_NOT_CONNECTED")
    plug(car)
    assert await command("STOP") == (409, "NOT_CHARGING")
    car.vehicle.absorb(1000.0)  # the charger delivers energy
    assert await command("START") == (409, "CHARGING_IN_PROGRESS")
    assert await command("STOP") == (200, None)
    assert not car.vehicle.charging_enabled and car.vehicle.acceptance_w() == 0.0
    charge = (await client.get(f"{car.url}/charge", headers=car.headers)).json()
    assert charge == {"isPluggedIn": True, "state": "NOT_CHARGING"}
    assert await command("START") == (200, None)
    assert car.vehicle.charging_enabled
    car.vehicle.soc = car.vehicle.charge_limit
    assert await command("START") == (409, "FULLY_CHARGED")
    charge = (await client.get(f"{car.url}/charge", headers=car.headers)).json()
    assert charge == {"isPluggedIn": True, "state": "FULLY_CHARGED"}


async def test_start_success_body_is_the_documented_one(
    car: Car, client: httpx.AsyncClient
) -> None:
    plug(car)
    response = await client.post(f"{car.url}/charge", headers=car.headers, json={"action": "START"})
    assert response.json() == {
        "message": "Successfully sent request to vehicle",
        "status": "success",
    }
    bad = await client.post(f"{car.url}/charge", headers=car.headers, json={"action": "GO"})
    assert bad.status_code == 400 and bad.json()["type"] == "VALIDATION"


async def test_charge_limit_accepts_string_and_rejects_out_of_range(
    car: Car, client: httpx.AsyncClient
) -> None:
    url = f"{car.url}/charge/limit"
    assert (await client.post(url, headers=car.headers, json={"limit": "0.8"})).status_code == 200
    assert (await client.get(url, headers=car.headers)).json() == {"limit": 0.8}
    refused = await client.post(url, headers=car.headers, json={"limit": 0.4})
    assert refused.status_code == 400 and refused.json()["type"] == "VALIDATION"
    assert car.vehicle.charge_limit == 0.8


@pytest.mark.parametrize("kind", FAULT_KINDS)
async def test_forced_fault_returns_documented_error(
    car: Car, client: httpx.AsyncClient, kind: str
) -> None:
    endpoint = "POST /charge" if kind == "VEHICLE_STATE:CHARGE_FAULT" else "GET /battery"
    forced = await client.post(f"{car.running.base_url}/_fake/faults/force",
                               json={"kind": kind, "times": 1, "endpoint": endpoint})  # fmt: skip
    assert forced.status_code == 200
    if endpoint == "POST /charge":
        plug(car)
        response = await client.post(f"{car.url}/charge", headers=car.headers,
                                     json={"action": "START"})  # fmt: skip
    else:
        response = await client.get(f"{car.url}/battery", headers=car.headers)
    status, resolution = EXPECTED[kind]
    body = response.json()
    error_type, code = kind.split(":")
    assert response.status_code == status == body["statusCode"]
    assert (body["type"], body["code"]) == (error_type, code)
    assert body["resolution"] == {"type": resolution}
    assert body["requestId"] == response.headers["SC-Request-Id"]
    assert body["docURL"].startswith("https://smartcar.com/docs/errors/api-errors/")
    assert body["description"]
    if kind == "RATE_LIMIT:VEHICLE":
        assert response.headers["Retry-After"] == "30"
        assert body["description"].startswith("You have reached the throttling rate limit")
    else:
        assert "Retry-After" not in response.headers
    # Only the next call fails.
    again = await client.get(f"{car.url}/battery", headers=car.headers)
    assert again.status_code == 200


async def test_fault_share_of_one_fails_every_data_call_but_not_static_ones(
    car: Car, client: httpx.AsyncClient
) -> None:
    admin = f"{car.running.base_url}/_fake/faults"
    await client.post(admin, json={"shares": {"VEHICLE_STATE:ASLEEP": 1.0}})
    for _ in range(3):
        asleep = await client.get(f"{car.url}/battery", headers=car.headers)
        assert asleep.status_code == 409 and asleep.json()["code"] == "ASLEEP"
    assert (await client.get(f"{car.url}/vin", headers=car.headers)).status_code == 200
    await client.delete(admin)
    assert (await client.get(f"{car.url}/battery", headers=car.headers)).status_code == 200


async def test_fault_share_is_roughly_honoured(car: Car, client: httpx.AsyncClient) -> None:
    car.running.fake.faults.set_share("SERVER:INTERNAL", 0.5)
    statuses = [
        (await client.get(f"{car.url}/battery", headers=car.headers)).status_code for _ in range(60)
    ]
    assert 10 < statuses.count(500) < 50
    assert set(statuses) == {200, 500}


async def test_latency_knob_delays_vehicle_calls(car: Car, client: httpx.AsyncClient) -> None:
    car.running.fake.faults.latency_s = 0.2
    started = time.perf_counter()
    response = await client.get(f"{car.url}/battery", headers=car.headers)
    assert response.status_code == 200
    assert time.perf_counter() - started >= 0.2


async def test_batch_answers_each_path_with_its_own_code(
    car: Car, client: httpx.AsyncClient
) -> None:
    car.running.fake.faults.force("RATE_LIMIT:VEHICLE", endpoint="GET /charge")
    response = await client.post(
        f"{car.url}/batch",
        headers=car.headers,
        json={"requests": [{"path": "/battery"}, {"path": "/charge"}, {"path": "/vin"},
                           {"path": "/"}]},
    )  # fmt: skip
    assert response.status_code == 200
    uuid.UUID(response.headers["SC-Request-Id"])
    items = {item["path"]: item for item in response.json()["responses"]}
    assert items["/battery"]["code"] == 200
    assert items["/battery"]["body"] == {"percentRemaining": 0.5,
                                         "range": round(car.vehicle.range_km, 2)}  # fmt: skip
    assert items["/battery"]["headers"]["sc-unit-system"] == "metric"
    assert items["/charge"]["code"] == 429
    assert items["/charge"]["body"]["code"] == "VEHICLE"
    assert items["/charge"]["headers"] == {"Retry-After": 30}
    assert items["/vin"]["body"] == {"vin": car.vehicle.vin}
    assert items["/"]["body"]["id"] == car.vehicle.smartcar_id


async def test_batch_item_without_scope_is_403_inside_a_200(
    running: RunningFake, client: httpx.AsyncClient
) -> None:
    vehicle = next(iter(running.fake.world.vehicles.values()))
    tokens = await connect_vehicles(client, running, vehicle.vin, scope="read_battery")
    response = await client.post(
        f"{running.api_url}/vehicles/{vehicle.smartcar_id}/batch",
        headers={"Authorization": f"Bearer {tokens['access_token']}"},
        json={"requests": [{"path": "/battery"}, {"path": "/location"}]},
    )
    codes = [item["code"] for item in response.json()["responses"]]
    assert response.status_code == 200 and codes == [200, 403]
    assert response.json()["responses"][1]["body"]["type"] == "PERMISSION"


async def test_batch_with_a_misspelled_path_fails_whole(
    car: Car, client: httpx.AsyncClient
) -> None:
    response = await client.post(
        f"{car.url}/batch",
        headers=car.headers,
        json={"requests": [{"path": "/battery"}, {"path": "/batery"}]},
    )
    assert response.status_code == 400
    assert response.json()["type"] == "VALIDATION"


async def test_admin_routes_plug_in_and_patch_vehicles(car: Car, client: httpx.AsyncClient) -> None:
    admin = f"{car.running.base_url}/_fake/vehicles/{car.vehicle.vin}"
    charger = next(iter(car.running.fake.world.chargers))
    plugged = await client.post(f"{admin}/plug", json={"charger_id": charger, "connector_id": 1})
    assert plugged.json()["plugged_at"] == [charger, 1]
    patched = await client.patch(admin, json={"soc": 0.9, "charge_limit": 0.9})
    assert patched.json()["charge_state"] == "FULLY_CHARGED"
    charge = (await client.get(f"{car.url}/charge", headers=car.headers)).json()
    assert charge == {"isPluggedIn": True, "state": "FULLY_CHARGED"}
    busy = await client.post(f"{admin}/plug", json={"charger_id": charger, "connector_id": 1})
    assert busy.status_code == 409
    assert (await client.post(f"{admin}/unplug")).json()["plugged_at"] is None
    listed = await client.get(f"{car.running.base_url}/_fake/vehicles", params={"limit": 2})
    assert listed.json()["count"] == 60 and len(listed.json()["vehicles"]) == 2


async def test_every_response_carries_a_request_id(car: Car, client: httpx.AsyncClient) -> None:
    responses = [
        await client.get(f"{car.running.api_url}/user"),
        await client.get(f"{car.url}/battery", headers=car.headers),
        await client.post(f"{car.running.auth_url}/oauth/token", data={}),
    ]
    ids = {response.headers["SC-Request-Id"] for response in responses}
    assert len(ids) == 3
    assert responses[0].status_code == 401
