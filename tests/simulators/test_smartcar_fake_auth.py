"""The fake Smartcar's Connect and token endpoint, over real sockets on 127.0.0.1."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from simulators.smartcar_fake import FakeConfig, ManualClock, RunningFake, run_smartcar_fake
from simulators.smartcar_fake.testing import authorize_code, connect_vehicles
from simulators.world import World

AUTH_DESCRIPTION = (
    "The authorization header is missing or malformed, or it contains invalid or expired "
    "authentication credentials. Please check for missing parameters, spelling and casing "
    "mistakes, and other syntax issues."
)
REDIRECT = "http://127.0.0.1/callback"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def running(clock: ManualClock) -> AsyncIterator[RunningFake]:
    world = World.generate(chargers=2, vehicles=4, seed=11)
    async with run_smartcar_fake(world, clock=clock) as fake_server:
        yield fake_server


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=5.0) as http:
        yield http


def vins(running: RunningFake) -> list[str]:
    return list(running.fake.world.vehicles)


def bearer(token: str | int) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def exchange(
    client: httpx.AsyncClient, running: RunningFake, data: dict[str, str], auth: tuple[str, str]
) -> httpx.Response:
    return await client.post(f"{running.auth_url}/oauth/token", data=data, auth=auth)


def app_auth(running: RunningFake) -> tuple[str, str]:
    return running.fake.config.client_id, running.fake.config.client_secret


async def test_connect_code_exchange_then_vehicle_calls(
    running: RunningFake, client: httpx.AsyncClient
) -> None:
    vin = vins(running)[0]
    vehicle = running.fake.world.vehicle(vin)
    params = await authorize_code(client, running, vin, state="csrf-123")
    assert params["state"] == "csrf-123"
    uuid.UUID(params["code"])
    response = await exchange(
        client,
        running,
        {"grant_type": "authorization_code", "code": params["code"], "redirect_uri": REDIRECT},
        app_auth(running),
    )
    assert response.status_code == 200
    tokens = response.json()
    assert set(tokens) == {"access_token", "token_type", "expires_in", "refresh_token"}
    assert tokens["token_type"] == "Bearer" and tokens["expires_in"] == 7200
    headers = bearer(tokens["access_token"])
    user = await client.get(f"{running.api_url}/user", headers=headers)
    assert user.json() == {"id": vehicle.owner_id}
    listed = await client.get(f"{running.api_url}/vehicles", headers=headers)
    assert listed.json() == {"paging": {"count": 1, "offset": 0}, "vehicles": [vehicle.smartcar_id]}
    vin_response = await client.get(
        f"{running.api_url}/vehicles/{vehicle.smartcar_id}/vin", headers=headers
    )
    assert vin_response.json() == {"vin": vin}
    uuid.UUID(vin_response.headers["SC-Request-Id"])


async def test_code_is_single_use_and_expires_after_ten_minutes(
    running: RunningFake, client: httpx.AsyncClient, clock: ManualClock
) -> None:
    vin = vins(running)[0]
    first = (await authorize_code(client, running, vin))["code"]
    form = {"grant_type": "authorization_code", "code": first, "redirect_uri": REDIRECT}
    assert (await exchange(client, running, form, app_auth(running))).status_code == 200
    reused = await exchange(client, running, form, app_auth(running))
    assert reused.status_code == 400
    assert reused.json() == {
        "error": "invalid_request",
        "error_description": f"Invalid code: {first}.",
    }
    late = (await authorize_code(client, running, vin))["code"]
    clock.advance(seconds=601)
    expired = await exchange(client, running, {**form, "code": late}, app_auth(running))
    assert expired.status_code == 400


async def test_code_exchange_needs_the_same_redirect_uri(
    running: RunningFake, client: httpx.AsyncClient
) -> None:
    code = (await authorize_code(client, running, vins(running)[0]))["code"]
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": "http://evil/cb"}
    response = await exchange(client, running, form, app_auth(running))
    assert response.status_code == 400 and response.json()["error"] == "invalid_request"


async def test_wrong_client_credentials_are_401_invalid_client(
    running: RunningFake, client: httpx.AsyncClient
) -> None:
    code = (await authorize_code(client, running, vins(running)[0]))["code"]
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT}
    response = await exchange(client, running, form, ("fake-client-id", "wrong"))
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    # The code was not burnt by the failed attempt.
    assert (await exchange(client, running, form, app_auth(running))).status_code == 200


async def test_driver_declining_redirects_with_access_denied(
    running: RunningFake, client: httpx.AsyncClient
) -> None:
    running.fake.connect.decline = True
    params = await authorize_code(client, running, vins(running)[0], state="s1")
    assert params == {
        "error": "access_denied",
        "error_description": "User denied access to application.",
        "state": "s1",
    }


async def test_connect_refuses_unknown_client_or_redirect_without_redirecting(
    running: RunningFake, client: httpx.AsyncClient
) -> None:
    base = {"response_type": "code", "client_id": "fake-client-id", "redirect_uri": REDIRECT}
    url = f"{running.connect_url}/oauth/authorize"
    bad_client = await client.get(url, params={**base, "client_id": "nope"})
    bad_redirect = await client.get(url, params={**base, "redirect_uri": "http://evil/cb"})
    assert bad_client.status_code == 400 and "location" not in bad_client.headers
    assert bad_redirect.status_code == 400 and "location" not in bad_redirect.headers


async def test_single_select_vin_authorises_only_that_vehicle(
    running: RunningFake, client: httpx.AsyncClient
) -> None:
    first, second = vins(running)[:2]
    running.fake.login(first, second)
    response = await client.get(
        f"{running.connect_url}/oauth/authorize",
        params={"response_type": "code", "client_id": "fake-client-id",
                "redirect_uri": REDIRECT, "single_select_vin": second},
    )  # fmt: skip
    code = parse_qs(urlsplit(response.headers["location"]).query)["code"][0]
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT}
    tokens = (await exchange(client, running, form, app_auth(running))).json()
    listed = await client.get(f"{running.api_url}/vehicles", headers=bearer(tokens["access_token"]))
    assert listed.json()["vehicles"] == [running.fake.world.vehicle(second).smartcar_id]


async def test_expired_access_token_gets_401_then_refresh_works(
    running: RunningFake, client: httpx.AsyncClient, clock: ManualClock
) -> None:
    running.fake.tokens.access_token_ttl_s = 5
    vehicle = running.fake.world.vehicle(vins(running)[0])
    tokens = await connect_vehicles(client, running, vehicle.vin)
    assert tokens["expires_in"] == 5
    url = f"{running.api_url}/vehicles/{vehicle.smartcar_id}/battery"
    assert (await client.get(url, headers=bearer(tokens["access_token"]))).status_code == 200
    clock.advance(seconds=6)
    expired = await client.get(url, headers=bearer(tokens["access_token"]))
    assert expired.status_code == 401
    body = expired.json()
    assert body["type"] == "AUTHENTICATION" and body["code"] is None
    assert body["description"] == AUTH_DESCRIPTION and body["statusCode"] == 401
    assert body["requestId"] == expired.headers["SC-Request-Id"]
    form = {"grant_type": "refresh_token", "refresh_token": str(tokens["refresh_token"])}
    refreshed = (await exchange(client, running, form, app_auth(running))).json()
    assert refreshed["refresh_token"] != tokens["refresh_token"]
    assert (await client.get(url, headers=bearer(refreshed["access_token"]))).status_code == 200


async def test_admin_route_expires_every_access_token(
    running: RunningFake, client: httpx.AsyncClient
) -> None:
    tokens = await connect_vehicles(client, running, vins(running)[0])
    user_url = f"{running.api_url}/user"
    assert (await client.get(user_url, headers=bearer(tokens["access_token"]))).status_code == 200
    expired = await client.post(f"{running.base_url}/_fake/tokens/expire_access")
    assert expired.json()["expired"] >= 1
    assert (await client.get(user_url, headers=bearer(tokens["access_token"]))).status_code == 401


async def test_old_refresh_token_works_during_grace_then_is_refused(
    running: RunningFake, client: httpx.AsyncClient, clock: ManualClock
) -> None:
    tokens = await connect_vehicles(client, running, vins(running)[0])
    old = str(tokens["refresh_token"])
    form = {"grant_type": "refresh_token", "refresh_token": old}
    rotated = await exchange(client, running, form, app_auth(running))
    assert rotated.status_code == 200
    clock.advance(seconds=30)
    within_grace = await exchange(client, running, form, app_auth(running))
    assert within_grace.status_code == 200
    clock.advance(seconds=31)
    refused = await exchange(client, running, form, app_auth(running))
    assert refused.status_code == 400
    assert refused.json() == {
        "error": "invalid_request",
        "error_description": f"Invalid refresh_token: {old}.",
    }
    newest = {"grant_type": "refresh_token", "refresh_token": rotated.json()["refresh_token"]}
    assert (await exchange(client, running, newest, app_auth(running))).status_code == 200


async def test_revoked_and_unknown_refresh_tokens_are_refused(
    running: RunningFake, client: httpx.AsyncClient
) -> None:
    tokens = await connect_vehicles(client, running, vins(running)[0])
    revoked = await client.post(
        f"{running.base_url}/_fake/tokens/revoke_refresh/{tokens['refresh_token']}"
    )
    assert revoked.json() == {"revoked": True}
    for token in (str(tokens["refresh_token"]), "not-a-token"):
        form = {"grant_type": "refresh_token", "refresh_token": token}
        response = await exchange(client, running, form, app_auth(running))
        assert response.status_code == 400
        assert response.json()["error_description"] == f"Invalid refresh_token: {token}."


async def test_refresh_token_dies_after_sixty_days(
    running: RunningFake, client: httpx.AsyncClient, clock: ManualClock
) -> None:
    tokens = await connect_vehicles(client, running, vins(running)[0])
    clock.advance(seconds=60 * 24 * 3600 + 1)
    form = {"grant_type": "refresh_token", "refresh_token": str(tokens["refresh_token"])}
    assert (await exchange(client, running, form, app_auth(running))).status_code == 400


async def test_missing_scope_is_403_permission_with_reauthenticate(
    running: RunningFake, client: httpx.AsyncClient
) -> None:
    vehicle = running.fake.world.vehicle(vins(running)[0])
    running.fake.connect.declined_scopes = {"read_location", "read_battery"}
    tokens = await connect_vehicles(
        client, running, vehicle.vin, scope="required:read_battery read_location"
    )
    base = f"{running.api_url}/vehicles/{vehicle.smartcar_id}"
    headers = bearer(tokens["access_token"])
    # required: scopes cannot be unticked; the optional one was.
    assert (await client.get(f"{base}/battery", headers=headers)).status_code == 200
    denied = await client.get(f"{base}/location", headers=headers)
    assert denied.status_code == 403
    body = denied.json()
    assert (body["type"], body["code"], body["statusCode"]) == ("PERMISSION", None, 403)
    assert body["resolution"] == {"type": "REAUTHENTICATE"}
    permissions = await client.get(f"{base}/permissions", headers=headers)
    assert permissions.json()["permissions"] == ["read_battery"]


async def test_disconnecting_a_vehicle_revokes_its_tokens(
    running: RunningFake, client: httpx.AsyncClient
) -> None:
    vehicle = running.fake.world.vehicle(vins(running)[0])
    tokens = await connect_vehicles(client, running, vehicle.vin)
    headers = bearer(tokens["access_token"])
    base = f"{running.api_url}/vehicles/{vehicle.smartcar_id}"
    deleted = await client.delete(f"{base}/application", headers=headers)
    assert deleted.json() == {"status": "success"}
    assert (await client.get(f"{base}/battery", headers=headers)).status_code == 401
    form = {"grant_type": "refresh_token", "refresh_token": str(tokens["refresh_token"])}
    assert (await exchange(client, running, form, app_auth(running))).status_code == 400


async def test_custom_client_configuration_is_enforced(client: httpx.AsyncClient) -> None:
    config = FakeConfig(client_id="cid", client_secret="sec", redirect_uris=("http://x/cb",))
    async with run_smartcar_fake(config=config) as running:
        vin = next(iter(running.fake.world.vehicles))
        tokens = await connect_vehicles(client, running, vin)
        assert (
            await client.get(f"{running.api_url}/user", headers=bearer(tokens["access_token"]))
        ).status_code == 200
