"""The fake Smartcar's Vehicles API v3, app tokens, Management API and v2.0 switch-off
(smartcar-api.md §14), over real sockets."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
import pytest

from simulators.smartcar_fake import ManualClock, RunningFake, run_smartcar_fake
from simulators.smartcar_fake.testing import authorize_code, connect_vehicles
from simulators.world import Vehicle, World

NOW = datetime(2026, 12, 1, 8, 30, tzinfo=UTC)


@dataclass
class V3Car:
    running: RunningFake
    vehicle: Vehicle
    user_id: str
    headers: dict[str, str]

    @property
    def url(self) -> str:
        return f"{self.running.v3_api_url}/vehicles/{self.vehicle.smartcar_id}"


@pytest.fixture
async def running() -> AsyncIterator[RunningFake]:
    world = World.generate(chargers=2, vehicles=30, seed=7)
    async with run_smartcar_fake(world, clock=ManualClock(NOW)) as fake_server:
        yield fake_server


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as http:
        yield http


async def app_token(client: httpx.AsyncClient, running: RunningFake) -> str:
    config = running.fake.config
    response = await client.post(
        f"{running.iam_url}/oauth2/token",
        data={"grant_type": "client_credentials", "client_id": config.client_id,
              "client_secret": config.client_secret},
    )  # fmt: skip
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


async def connected(client: httpx.AsyncClient, running: RunningFake, index: int = 0) -> V3Car:
    vin = sorted(running.fake.world.vehicles)[index]
    params = await authorize_code(client, running, vin)
    token = await app_token(client, running)
    headers = {"Authorization": f"Bearer {token}", "sc-user-id": params["user_id"]}
    return V3Car(running, running.fake.world.vehicle(vin), params["user_id"], headers)


def plug(car: V3Car) -> None:
    charger = next(iter(car.running.fake.world.chargers))
    car.running.fake.world.plug_in(car.vehicle.vin, charger, 1, NOW)


async def test_connect_redirect_carries_the_user_id_next_to_the_code(
    client: httpx.AsyncClient, running: RunningFake
) -> None:
    vin = sorted(running.fake.world.vehicles)[0]
    params = await authorize_code(client, running, vin)
    assert params["code"] and params["user_id"] == running.fake.world.vehicle(vin).owner_id


async def test_app_token_is_issued_for_form_or_json_and_refused_for_a_wrong_secret(
    client: httpx.AsyncClient, running: RunningFake
) -> None:
    config = running.fake.config
    url = f"{running.iam_url}/oauth2/token"
    fields = {"grant_type": "client_credentials", "client_id": config.client_id,
              "client_secret": config.client_secret}  # fmt: skip
    form = await client.post(url, data=fields)
    as_json = await client.post(url, json=fields)
    assert form.status_code == as_json.status_code == 200
    assert form.json()["expires_in"] == 3600 and "refresh_token" not in form.json()
    wrong = await client.post(url, data={**fields, "client_secret": "rotated"})
    assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_client"
    missing = await client.post(url, data={"client_id": config.client_id})
    assert missing.status_code == 400 and missing.json()["error"] == "invalid_request"


async def test_signals_need_an_app_token_and_the_user_id_and_errors_are_json_api(
    client: httpx.AsyncClient, running: RunningFake
) -> None:
    car = await connected(client, running)
    soc = await client.get(f"{car.url}/signals/tractionbattery-stateofcharge", headers=car.headers)
    assert soc.status_code == 200
    assert soc.json()["attributes"]["body"] == {
        "unit": "percent", "value": round(car.vehicle.soc * 100, 2)}  # fmt: skip
    assert soc.json()["meta"]["retrievedAt"] == int(NOW.timestamp() * 1000)  # ms by default
    no_user = await client.get(
        f"{car.url}/signals/charge-ischarging",
        headers={"Authorization": car.headers["Authorization"]},
    )
    error = no_user.json()["errors"][0]
    assert no_user.status_code == 400 and error["status"] == "400"
    assert error["type"] == "VALIDATION" and no_user.headers["sc-request-id"]
    running.fake.v3.expire_app_tokens()
    expired = await client.get(f"{car.url}/signals/charge-ischarging", headers=car.headers)
    assert expired.status_code == 401 and expired.json()["errors"][0]["type"] == "AUTHENTICATION"


async def test_signal_list_pages_through_links_next(
    client: httpx.AsyncClient, running: RunningFake
) -> None:
    car = await connected(client, running)
    running.fake.v3.page_size = 3
    codes: list[str] = []
    url: str | None = f"{car.url}/signals"
    while url is not None:
        page = (await client.get(url, headers=car.headers)).json()
        codes += [s["attributes"]["code"] for s in page["data"]]
        nxt = page["links"]["next"]
        url = f"{running.v3_api_url}{nxt}" if nxt else None
    assert page["meta"]["totalCount"] == len(codes) == len(set(codes)) >= 8
    assert "vehicleidentification-vin" in codes


async def test_forced_v2_faults_hit_the_v3_read_of_the_same_data(
    client: httpx.AsyncClient, running: RunningFake
) -> None:
    car = await connected(client, running)
    running.fake.faults.retry_after_s = 7
    running.fake.faults.force("RATE_LIMIT:VEHICLE", endpoint="GET /battery")
    limited = await client.get(
        f"{car.url}/signals/tractionbattery-stateofcharge", headers=car.headers
    )
    assert limited.status_code == 429 and limited.headers["retry-after"] == "7"
    assert limited.json()["errors"][0]["code"] == "VEHICLE"


async def test_sync_command_answers_200_with_a_successful_execution(
    client: httpx.AsyncClient, running: RunningFake
) -> None:
    car = await connected(client, running)
    plug(car)
    car.vehicle.charging_enabled, car.vehicle.soc = False, 0.4
    answer = await client.post(f"{car.url}/commands/charge/start", headers=car.headers)
    assert answer.status_code == 200
    attributes = answer.json()["data"]["attributes"]
    assert (
        attributes["status"]["value"] == "SUCCESS" and attributes["commandType"] == "charge-start"
    )
    assert car.vehicle.charging_enabled
    limit = await client.post(
        f"{car.url}/commands/charge/set-limit",
        headers=car.headers,
        json={"data": {"attributes": {"percent": 80}}},
    )
    assert limit.status_code == 200 and car.vehicle.charge_limit == pytest.approx(0.8)


async def test_long_running_command_answers_202_pending_and_its_execution_completes(
    client: httpx.AsyncClient, running: RunningFake
) -> None:
    car = await connected(client, running)
    plug(car)
    car.vehicle.charging_enabled, car.vehicle.soc = False, 0.4
    running.fake.v3.command_mode, running.fake.v3.command_duration_s = "pending", 0.2
    answer = await client.post(f"{car.url}/commands/charge/start", headers=car.headers)
    assert answer.status_code == 202
    execution = answer.json()["data"]
    assert execution["attributes"]["status"]["value"] == "PENDING"
    assert not car.vehicle.charging_enabled
    await asyncio.sleep(0.4)
    done = await client.get(f"{car.url}/commands/{execution['id']}", headers=car.headers)
    assert done.json()["data"]["attributes"]["status"]["value"] == "SUCCESS"
    assert car.vehicle.charging_enabled


async def test_streamed_command_execution_reports_failure_in_its_body(
    client: httpx.AsyncClient, running: RunningFake
) -> None:
    car = await connected(client, running)
    running.fake.v3.command_mode, running.fake.v3.command_duration_s = "stream", 0.05
    running.fake.v3.execution_failures.append("VEHICLE_STATE:CHARGE_FAULT")
    answer = await client.post(f"{car.url}/commands/charge/start", headers=car.headers)
    assert answer.status_code == 202
    status = answer.json()["data"]["attributes"]["status"]
    assert status["value"] == "FAILURE"
    assert (status["error"]["type"], status["error"]["code"]) == ("VEHICLE_STATE", "CHARGE_FAULT")


async def test_connections_filter_by_user_and_delete_ends_access(
    client: httpx.AsyncClient, running: RunningFake
) -> None:
    first = await connected(client, running, 0)
    await connected(client, running, 1)
    url = f"{running.v3_api_url}/connections"
    everyone = await client.get(url, headers={"Authorization": first.headers["Authorization"]})
    assert everyone.json()["meta"]["totalCount"] == 2
    mine = await client.get(url, params={"filter[userId]": first.user_id}, headers=first.headers)
    assert [c["attributes"]["vehicleId"] for c in mine.json()["data"]] == [
        first.vehicle.smartcar_id
    ]
    gone = await client.delete(f"{url}/{first.vehicle.smartcar_id}", headers=first.headers)
    assert gone.status_code == 204
    denied = await client.get(f"{first.url}/signals/charge-ischarging", headers=first.headers)
    assert denied.status_code == 403 and denied.json()["errors"][0]["type"] == "PERMISSION"


async def test_management_subscriptions_on_both_paths_and_a_second_one_conflicts(
    client: httpx.AsyncClient, running: RunningFake
) -> None:
    car = await connected(client, running)
    webhook_id = running.fake.webhooks.webhook_id
    body = {"data": {"attributes": {"webhookId": webhook_id, "userId": car.user_id,
                                    "vehicleId": car.vehicle.smartcar_id}}}  # fmt: skip
    created = await client.post(
        f"{running.management_url}/subscriptions", json=body, headers=car.headers
    )
    assert created.status_code == 202
    assert created.json()["meta"]["message"] == "subscription creation in progress"
    assert car.vehicle.smartcar_id in running.fake.webhooks.subscriptions
    again = await client.post(
        f"{running.management_url}/webhooks/{webhook_id}/subscriptions",
        json=body,
        headers=car.headers,
    )
    assert again.status_code == 409 and again.json()["errors"][0]["status"] == "409"
    listed = await client.get(
        f"{running.management_url}/subscriptions",
        params={"filter[vehicleId]": car.vehicle.smartcar_id},
        headers=car.headers,
    )
    (subscription,) = listed.json()["data"]
    assert subscription["relationships"]["user"]["data"]["id"] == car.user_id


async def test_retired_v2_answers_resource_not_found_version_on_every_path(
    client: httpx.AsyncClient, running: RunningFake
) -> None:
    vin = sorted(running.fake.world.vehicles)[0]
    tokens = await connect_vehicles(client, running, vin)
    running.fake.v3.v2_retired = True
    headers = {"Authorization": f"Bearer {tokens['access_token']}"}
    vehicle_id = running.fake.world.vehicle(vin).smartcar_id
    for method, path in (
        ("GET", "/user"),
        ("GET", f"/vehicles/{vehicle_id}/battery"),
        ("POST", f"/vehicles/{vehicle_id}/charge"),
        ("GET", "/no/such/path"),
    ):
        answer = await client.request(method, f"{running.api_url}{path}", headers=headers)
        assert answer.status_code == 404, path
        assert (answer.json()["type"], answer.json()["code"]) == ("RESOURCE_NOT_FOUND", "VERSION")


async def test_v3_knobs_are_reachable_over_http_for_a_fake_in_its_own_process(
    client: httpx.AsyncClient, running: RunningFake
) -> None:
    url = f"{running.base_url}/_fake/v3"
    answer = await client.post(url, json={"v2_retired": True, "command_mode": "pending"})
    assert answer.status_code == 200 and answer.json()["command_mode"] == "pending"
    assert running.fake.v3.v2_retired
    bad = await client.post(url, json={"execution_failures": ["NOT_A_TYPE:X"]})
    assert bad.status_code == 422
    await app_token(client, running)
    expired = await client.post(f"{url}/expire_app_tokens")
    assert expired.json() == {"expired": 1}
