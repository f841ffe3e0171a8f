"""SmartcarClient against the fake Smartcar over real HTTP on 127.0.0.1."""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from structlog.testing import capture_logs

from simulators.smartcar_fake import FakeConfig, RunningFake, run_smartcar_fake
from simulators.world import Vehicle, World
from smartcar_bridge.client import SmartcarClient
from smartcar_bridge.errors import (
    AuthenticationError,
    OAuthError,
    RateLimitError,
    RefreshRefused,
    ServerError,
    SmartcarPermissionError,
    SmartcarResponseError,
    SmartcarTransportError,
    UpstreamError,
    VehicleStateError,
)
from smartcar_bridge.responses import Battery, TokenSet
from tests.conftest import TIMEOUT

SCOPE = ["read_vehicle_info", "read_vin", "read_battery", "read_charge", "control_charge"]
FULL_SCOPE = [*SCOPE, "read_location"]


class RecordingSleep:
    """Stands in for asyncio.sleep: remembers the delays, waits for none of them."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


@pytest.fixture
async def running() -> AsyncIterator[RunningFake]:
    world = World.generate(chargers=2, vehicles=60, seed=21)
    async with run_smartcar_fake(world, config=FakeConfig()) as fake_server:
        yield fake_server


def make_client(
    running: RunningFake, client_secret: str | None = None, **options: Any
) -> SmartcarClient:
    config = running.fake.config
    return SmartcarClient(
        running.api_url,
        running.auth_url,
        running.connect_url,
        config.client_id,
        client_secret or config.client_secret,
        config.redirect_uris[0],
        **options,
    )


@pytest.fixture
async def client(running: RunningFake) -> AsyncIterator[SmartcarClient]:
    async with make_client(running, seed=1, sleep=RecordingSleep()) as smartcar:
        yield smartcar


def first_vehicle(running: RunningFake) -> Vehicle:
    vehicle = next(iter(running.fake.world.vehicles.values()))
    vehicle.soc, vehicle.charge_limit = 0.5, 0.9
    return vehicle


async def connect(
    client: SmartcarClient, running: RunningFake, *vins: str, scope: list[str] = SCOPE
) -> TokenSet:
    """Drive Connect like a browser would, then exchange the code."""
    running.fake.login(*vins)
    async with httpx.AsyncClient(timeout=TIMEOUT) as browser:
        redirect = await browser.get(client.authorize_url("st-123", scope), follow_redirects=False)
    assert redirect.status_code == 302
    query = parse_qs(urlsplit(redirect.headers["location"]).query)
    assert query["state"] == ["st-123"]
    return await client.exchange_code(query["code"][0], scope)


def requests_logged(logs: list[dict[str, Any]], path_suffix: str = "") -> list[dict[str, Any]]:
    return [e for e in logs if e["event"] == "smartcar.request" and e["path"].endswith(path_suffix)]


def test_authorize_url_carries_connect_parameters() -> None:
    client = SmartcarClient(
        "https://api.example/v2.0", "https://auth.example", "https://connect.example",
        "cid", "secret", "https://app.example/cb",
    )  # fmt: skip
    url = client.authorize_url(
        "st", ["required:read_battery", "read_vin"], single_select=True, make="TESLA",
        mode="simulated", approval_prompt="force",
    )  # fmt: skip
    parts = urlsplit(url)
    assert (
        f"{parts.scheme}://{parts.netloc}{parts.path}" == "https://connect.example/oauth/authorize"
    )
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert query == {
        "response_type": "code",
        "client_id": "cid",
        "redirect_uri": "https://app.example/cb",
        "scope": "required:read_battery read_vin",
        "state": "st",
        "single_select": "true",
        "make": "TESLA",
        "mode": "simulated",
        "approval_prompt": "force",
    }
    assert "secret" not in url


async def test_connect_then_reads_and_charge_commands(
    running: RunningFake, client: SmartcarClient
) -> None:
    vehicle = first_vehicle(running)
    before = datetime.now(UTC)
    tokens = await connect(client, running, vehicle.vin)
    assert tokens.access_expires_at - before == pytest.approx(
        timedelta(hours=2), abs=timedelta(seconds=5)
    )
    assert tokens.refresh_expires_at - before >= timedelta(days=60) - timedelta(seconds=5)
    assert tokens.scopes == tuple(SCOPE)
    assert tokens.access_token not in repr(tokens)

    token = tokens.access_token
    assert (await client.user(token)).id == vehicle.owner_id
    assert await client.all_vehicle_ids(token) == [vehicle.smartcar_id]
    info = await client.vehicle_info(token, vehicle.smartcar_id)
    assert (info.make, info.model, info.year) == (vehicle.make, vehicle.model, vehicle.year)
    assert (await client.vin(token, vehicle.smartcar_id)).vin == vehicle.vin
    battery = await client.battery(token, vehicle.smartcar_id)
    assert battery.percent_remaining == pytest.approx(0.5)
    assert battery.soc_percent == pytest.approx(50.0)
    assert battery.range_km == pytest.approx(vehicle.range_km, abs=0.01)
    capacity = await client.battery_capacity(token, vehicle.smartcar_id)
    assert (capacity.capacity_kwh, capacity.source) == (vehicle.battery_kwh, "SMARTCAR")
    assert (await client.charge_limit(token, vehicle.smartcar_id)).limit == pytest.approx(0.9)

    with pytest.raises(VehicleStateError) as unplugged:
        await client.start_charge(token, vehicle.smartcar_id)
    assert unplugged.value.code == "CHARGING_PLUG_NOT_CONNECTED"

    charger = next(iter(running.fake.world.chargers))
    running.fake.world.plug_in(vehicle.vin, charger, 1, datetime.now(UTC))
    status = await client.charge_status(token, vehicle.smartcar_id)
    assert (status.is_plugged_in, status.state) == (True, "NOT_CHARGING")
    started = await client.start_charge(token, vehicle.smartcar_id)
    assert (started.status, started.message) == ("success", "Successfully sent request to vehicle")
    assert vehicle.charging_enabled is True
    vehicle.absorb(500.0)  # the charger delivers energy: the car now reports CHARGING
    assert (await client.charge_status(token, vehicle.smartcar_id)).state == "CHARGING"
    assert (await client.stop_charge(token, vehicle.smartcar_id)).status == "success"
    assert vehicle.charging_enabled is False
    with pytest.raises(VehicleStateError) as stopped:
        await client.stop_charge(token, vehicle.smartcar_id)
    assert stopped.value.code == "NOT_CHARGING"
    assert stopped.value.retryable is False


async def test_vehicle_paging_covers_every_vehicle(
    running: RunningFake, client: SmartcarClient
) -> None:
    vins = list(running.fake.world.vehicles)
    tokens = await connect(client, running, *vins)
    page = await client.vehicles(tokens.access_token, limit=2, offset=1)
    assert (len(page.ids), page.count, page.offset) == (2, 60, 1)
    ids = await client.all_vehicle_ids(tokens.access_token)
    assert len(ids) == 60  # more than one page of 50
    assert set(ids) == {v.smartcar_id for v in running.fake.world.vehicles.values()}


async def test_refresh_rotates_the_pair_and_a_revoked_token_is_refused(
    running: RunningFake, client: SmartcarClient
) -> None:
    vehicle = first_vehicle(running)
    tokens = await connect(client, running, vehicle.vin)
    fresh = await client.refresh(tokens.refresh_token)
    assert fresh.access_token != tokens.access_token
    assert fresh.refresh_token != tokens.refresh_token
    assert (await client.user(fresh.access_token)).id == vehicle.owner_id

    running.fake.tokens.revoke_refresh_token(fresh.refresh_token)
    with pytest.raises(RefreshRefused) as refused:
        await client.refresh(fresh.refresh_token)
    assert refused.value.requires_reauth is True
    assert fresh.refresh_token not in str(refused.value)


async def test_bad_code_is_an_oauth_error_and_is_not_echoed(client: SmartcarClient) -> None:
    code = str(uuid.uuid4())
    with pytest.raises(OAuthError) as bad:
        await client.exchange_code(code)
    assert type(bad.value) is OAuthError
    assert (bad.value.status, bad.value.error) == (400, "invalid_request")
    assert code not in str(bad.value)


async def test_wrong_client_secret_is_an_oauth_error(running: RunningFake) -> None:
    async with make_client(running, client_secret="wrong") as smartcar:
        with pytest.raises(OAuthError) as bad:
            await smartcar.refresh("whatever")
    assert (bad.value.status, bad.value.error) == (401, "invalid_client")
    assert not isinstance(bad.value, RefreshRefused)


async def test_request_id_and_data_age_are_captured(
    running: RunningFake, client: SmartcarClient
) -> None:
    vehicle = first_vehicle(running)
    tokens = await connect(client, running, vehicle.vin)
    running.fake.data_age_s = 120.0
    with capture_logs() as logs:
        battery = await client.battery(tokens.access_token, vehicle.smartcar_id)
    assert uuid.UUID(battery.meta.request_id or "")
    assert battery.meta.data_age is not None
    age = battery.meta.received_at - battery.meta.data_age
    assert timedelta(seconds=119) <= age <= timedelta(seconds=125)
    [logged] = requests_logged(logs, "/battery")
    assert logged["request_id"] == battery.meta.request_id
    assert (logged["method"], logged["status"], logged["attempt"]) == ("GET", 200, 1)
    assert logged["duration_ms"] >= 0

    running.fake.faults.force("VEHICLE_STATE:CHARGE_FAULT", 1, endpoint="POST /charge")
    with pytest.raises(VehicleStateError) as failed:
        await client.start_charge(tokens.access_token, vehicle.smartcar_id)
    assert uuid.UUID(failed.value.request_id or "")


async def test_rate_limited_vehicle_waits_exactly_retry_after(running: RunningFake) -> None:
    vehicle = first_vehicle(running)
    running.fake.faults.retry_after_s = 1
    async with make_client(running) as smartcar:  # the real asyncio.sleep
        tokens = await connect(smartcar, running, vehicle.vin)
        running.fake.faults.force("RATE_LIMIT:VEHICLE", 1, endpoint="GET /battery")
        with capture_logs() as logs:
            started = time.monotonic()
            async with asyncio.timeout(TIMEOUT):
                battery = await smartcar.battery(tokens.access_token, vehicle.smartcar_id)
            waited = time.monotonic() - started
    assert isinstance(battery, Battery)
    assert 1.0 <= waited < 1.0 + TIMEOUT / 2
    [failed] = [e for e in logs if e["event"] == "smartcar.request_failed"]
    assert (failed["error"], failed["status"], failed["retry_in_s"]) == (
        "RATE_LIMIT:VEHICLE",
        429,
        1.0,
    )
    assert [e["attempt"] for e in requests_logged(logs, "/battery")] == [1, 2]


async def test_retry_after_beyond_the_limit_raises_without_sleeping(running: RunningFake) -> None:
    vehicle = first_vehicle(running)
    running.fake.faults.retry_after_s = 30
    sleep = RecordingSleep()
    async with make_client(running, sleep=sleep, max_retry_after=5.0) as smartcar:
        tokens = await connect(smartcar, running, vehicle.vin)
        running.fake.faults.force("RATE_LIMIT:VEHICLE", 1, endpoint="GET /battery")
        with pytest.raises(RateLimitError) as limited:
            await smartcar.battery(tokens.access_token, vehicle.smartcar_id)
    assert limited.value.retry_after == 30.0
    assert sleep.delays == []


async def test_server_error_burst_is_retried_with_bounded_jittered_backoff(
    running: RunningFake,
) -> None:
    vehicle = first_vehicle(running)
    sleep = RecordingSleep()
    async with make_client(running, sleep=sleep, base_delay=0.5, max_delay=0.8, seed=3) as smartcar:
        tokens = await connect(smartcar, running, vehicle.vin)
        running.fake.faults.force("SERVER:INTERNAL", 2, endpoint="GET /battery")
        running.fake.faults.force("UPSTREAM:NO_RESPONSE", 1, endpoint="GET /battery")
        with capture_logs() as logs:
            battery = await smartcar.battery(tokens.access_token, vehicle.smartcar_id)
    assert battery.percent_remaining == pytest.approx(0.5)
    assert [e["status"] for e in requests_logged(logs, "/battery")] == [500, 500, 502, 200]
    assert len(sleep.delays) == 3
    # Full jitter: each delay within [0, min(max_delay, base * 2**n)].
    for attempt, delay in enumerate(sleep.delays):
        assert 0.0 <= delay <= min(0.8, 0.5 * 2**attempt)
    assert len(set(sleep.delays)) == 3


async def test_gives_up_after_max_attempts_with_the_last_error(running: RunningFake) -> None:
    vehicle = first_vehicle(running)
    sleep = RecordingSleep()
    async with make_client(running, sleep=sleep, max_attempts=3) as smartcar:
        tokens = await connect(smartcar, running, vehicle.vin)
        running.fake.faults.force("SERVER:INTERNAL", 2, endpoint="GET /battery")
        running.fake.faults.force("UPSTREAM:KNOWN_ISSUE", 5, endpoint="GET /battery")
        with capture_logs() as logs, pytest.raises(UpstreamError) as gave_up:
            await smartcar.battery(tokens.access_token, vehicle.smartcar_id)
    assert gave_up.value.code == "KNOWN_ISSUE"
    assert gave_up.value.retryable is True
    assert len(requests_logged(logs, "/battery")) == 3
    assert len(sleep.delays) == 2
    last = [e for e in logs if e["event"] == "smartcar.request_failed"][-1]
    assert (last["attempt"], last["retry_in_s"]) == (3, None)


async def test_non_retryable_vehicle_state_raises_after_one_attempt(
    running: RunningFake, client: SmartcarClient
) -> None:
    vehicle = first_vehicle(running)
    tokens = await connect(client, running, vehicle.vin)
    running.fake.faults.force("VEHICLE_STATE:CHARGE_FAULT", 3, endpoint="POST /charge")
    with capture_logs() as logs, pytest.raises(VehicleStateError) as fault:
        await client.start_charge(tokens.access_token, vehicle.smartcar_id)
    assert (fault.value.code, fault.value.retryable) == ("CHARGE_FAULT", False)
    assert len(requests_logged(logs, "/charge")) == 1


async def test_asleep_is_retryable_later_but_not_retried_within_the_call(
    running: RunningFake, client: SmartcarClient
) -> None:
    vehicle = first_vehicle(running)
    tokens = await connect(client, running, vehicle.vin)
    running.fake.faults.force("VEHICLE_STATE:ASLEEP", 1, endpoint="GET /battery")
    with capture_logs() as logs, pytest.raises(VehicleStateError) as asleep:
        await client.battery(tokens.access_token, vehicle.smartcar_id)
    assert asleep.value.retryable is True  # for the caller's scheduler, minutes later (§7)
    assert len(requests_logged(logs, "/battery")) == 1


async def test_closed_port_raises_transport_error_after_retries() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    sleep = RecordingSleep()
    async with SmartcarClient(
        f"{base}/v2.0", base, base, "cid", "secret", "http://127.0.0.1/cb",
        max_attempts=3, sleep=sleep, connect_timeout=2.0,
    ) as smartcar:  # fmt: skip
        with capture_logs() as logs, pytest.raises(SmartcarTransportError) as down:
            await smartcar.user("some-token")
    assert down.value.retryable is True
    assert isinstance(down.value.__cause__, httpx.ConnectError)
    assert len(sleep.delays) == 2
    assert [e["attempt"] for e in logs if e["event"] == "smartcar.request_failed"] == [1, 2, 3]


async def test_command_whose_answer_timed_out_is_not_resent(running: RunningFake) -> None:
    vehicle = first_vehicle(running)
    charger = next(iter(running.fake.world.chargers))
    running.fake.world.plug_in(vehicle.vin, charger, 1, datetime.now(UTC))
    sleep = RecordingSleep()
    async with make_client(running, sleep=sleep, command_timeout=0.2) as smartcar:
        tokens = await connect(smartcar, running, vehicle.vin)
        running.fake.faults.latency_s = 0.6
        with capture_logs() as logs, pytest.raises(SmartcarTransportError) as timed_out:
            await smartcar.start_charge(tokens.access_token, vehicle.smartcar_id)
        running.fake.faults.latency_s = 0.0
    assert isinstance(timed_out.value.__cause__, httpx.ReadTimeout)
    assert sleep.delays == []
    assert len([e for e in logs if e["event"] == "smartcar.request_failed"]) == 1


async def test_capacity_falls_back_to_the_legacy_endpoint(
    running: RunningFake, client: SmartcarClient
) -> None:
    vehicle = first_vehicle(running)
    tokens = await connect(client, running, vehicle.vin)
    running.fake.faults.force(
        "COMPATIBILITY:SMARTCAR_NOT_CAPABLE", 1, endpoint="GET /battery/nominal_capacity"
    )
    capacity = await client.battery_capacity(tokens.access_token, vehicle.smartcar_id)
    assert (capacity.capacity_kwh, capacity.source) == (vehicle.battery_kwh, "capacity")


async def test_batch_items_succeed_or_fail_on_their_own(
    running: RunningFake, client: SmartcarClient
) -> None:
    vehicle = first_vehicle(running)
    tokens = await connect(client, running, vehicle.vin)  # no read_location
    result = await client.batch(
        tokens.access_token, vehicle.smartcar_id, ["/battery", "/vin", "/location"]
    )
    assert result.result("/battery").percent_remaining == pytest.approx(0.5)
    assert result.result("/vin").vin == vehicle.vin
    assert result.item("/battery").meta.data_age is not None
    assert result.item("/location").code == 403
    with pytest.raises(SmartcarPermissionError) as denied:
        result.raise_for_item("/location")
    assert denied.value.requires_reauth is True
    assert uuid.UUID(result.meta.request_id or "")


async def test_permissions_and_disconnect(running: RunningFake, client: SmartcarClient) -> None:
    vehicle = first_vehicle(running)
    tokens = await connect(client, running, vehicle.vin, scope=FULL_SCOPE)
    granted = await client.permissions(tokens.access_token, vehicle.smartcar_id)
    assert set(granted.permissions) == set(FULL_SCOPE)
    assert (await client.disconnect(tokens.access_token, vehicle.smartcar_id)).status == "success"
    with pytest.raises(AuthenticationError):
        await client.battery(tokens.access_token, vehicle.smartcar_id)


async def test_unreadable_success_body_is_a_response_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"percentRemaining": 37}, headers={"sc-request-id": "r1"})

    transport = httpx.MockTransport(handler)
    async with httpx.AsyncClient(transport=transport) as http:
        smartcar = SmartcarClient(
            "http://127.0.0.1/v2.0", "http://127.0.0.1", "http://127.0.0.1", "c", "s", "r",
            http=http,
        )  # fmt: skip
        with pytest.raises(SmartcarResponseError) as bad:
            await smartcar.battery("token", "vehicle")  # 37 is a percentage, not a fraction
        await smartcar.aclose()
        assert not http.is_closed  # a client passed in stays open for its owner
    assert (bad.value.status, bad.value.request_id) == (200, "r1")


async def test_non_json_gateway_error_is_retried_as_server_error() -> None:
    statuses = iter([503, 503, 503, 503])

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(next(statuses), text="<html>Service Unavailable</html>")

    sleep = RecordingSleep()
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        smartcar = SmartcarClient(
            "http://127.0.0.1/v2.0", "http://127.0.0.1", "http://127.0.0.1", "c", "s", "r",
            http=http, sleep=sleep,
        )  # fmt: skip
        with pytest.raises(ServerError) as unavailable:
            await smartcar.user("token")
    assert (unavailable.value.status, unavailable.value.retryable) == (503, True)
    assert len(sleep.delays) == 3


async def test_no_token_or_secret_reaches_the_logs(
    running: RunningFake, client: SmartcarClient
) -> None:
    vehicle = first_vehicle(running)
    with capture_logs() as logs:
        tokens = await connect(client, running, vehicle.vin)
        fresh = await client.refresh(tokens.refresh_token)
        await client.battery(fresh.access_token, vehicle.smartcar_id)
        running.fake.tokens.revoke_refresh_token(fresh.refresh_token)
        with pytest.raises(RefreshRefused):
            await client.refresh(fresh.refresh_token)
        running.fake.tokens.expire_access_tokens()
        with pytest.raises(AuthenticationError):
            await client.battery(fresh.access_token, vehicle.smartcar_id)
    text = repr(logs)
    assert len(requests_logged(logs)) >= 5
    for secret in (
        tokens.access_token, tokens.refresh_token, fresh.access_token, fresh.refresh_token,
        running.fake.config.client_secret,
    ):  # fmt: skip
        assert secret not in text
