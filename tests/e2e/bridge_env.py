"""The whole story on one machine: central system with the bridge, the Smartcar fake and
simulated chargers sharing one World, all over real sockets on 127.0.0.1.

Every test module that uses ``bridge_env`` / ``one_car_linked`` runs twice: against
Smartcar Vehicles API v3 (the default; the fake's v2.0 is retired then, so nothing can
lean on it) and against v2.0. That is decided here, in ``pytest_generate_tests`` and the
``smartcar_api_version`` fixture (imported by ``tests/e2e/conftest.py``); a test reads the
version as ``env.api_version``, and ``@pytest.mark.smartcar_api("3")`` narrows it.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace
from typing import Any

import asyncpg
import httpx
import pytest

from csms.app import CentralSystem
from csms.config import Settings
from csms.db import operator_tokens
from simulators.smartcar_fake.server import RunningFake, run_smartcar_fake
from simulators.smartcar_fake.state import FakeConfig
from simulators.world import Charger, Vehicle, World
from simulators.world_runner import WorldRunner
from smartcar_bridge.bridge import Bridge
from smartcar_bridge.plugin import RunningBridge
from smartcar_bridge.settings import BridgeSettings
from tests.conftest import TIMEOUT

CLIENT_ID = "bridge-test-client"
CLIENT_SECRET = "bridge-test-secret"
SECRET_KEY = "a-test-secret-key-of-32-characters!"
AMT = "application-management-token"
SPEED = 300.0  # simulated seconds per real second
API_VERSIONS = ("3", "2")  # SMARTCAR_API_VERSION values every bridge e2e test runs with
_version = {"current": API_VERSIONS[0]}


def _uses_bridge_env(module: object) -> bool:
    return any(
        getattr(value, "__module__", None) == __name__ and callable(value)
        for value in vars(module).values()
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "smartcar_api(*versions): run this bridge test only with these API versions"
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrise every test of a module that builds a bridge env over both API versions
    (or over those a ``@pytest.mark.smartcar_api("2")`` marker names)."""
    if "smartcar_api_version" in metafunc.fixturenames and _uses_bridge_env(metafunc.module):
        marker = metafunc.definition.get_closest_marker("smartcar_api")
        versions = tuple(marker.args) if marker is not None else API_VERSIONS
        metafunc.parametrize(
            "smartcar_api_version", versions, indirect=True, ids=lambda v: f"smartcar-v{v}"
        )


@pytest.fixture(autouse=True)
def smartcar_api_version(request: pytest.FixtureRequest) -> Iterator[str]:
    """The API version ``bridge_env`` configures for this test (v3 unless parametrised)."""
    version = str(getattr(request, "param", API_VERSIONS[0]))
    previous, _version["current"] = _version["current"], version
    try:
        yield version
    finally:
        _version["current"] = previous


def car(vin: str, soc: float, *, lat: float = 52.0, lon: float = 13.0) -> Vehicle:
    return Vehicle(
        vin=vin,
        smartcar_id=str(uuid.uuid5(uuid.NAMESPACE_URL, vin)),
        make="TESLA",
        model="Model 3",
        year=2022,
        battery_kwh=50.0,
        soc=soc,
        charge_limit=1.0,
        latitude=lat,
        longitude=lon,
    )


def charger(charger_id: str, *, lat: float = 52.0, lon: float = 13.0) -> Charger:
    return Charger(charger_id, lat, lon, 11_000.0, 1)


def _bound_socket(port: int = 0) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    return sock


@dataclass
class BridgeEnv:
    system: CentralSystem
    runner: WorldRunner
    smartcar: RunningFake
    http: httpx.AsyncClient
    db: asyncpg.Connection
    settings: Settings
    api_version: str = API_VERSIONS[0]

    @property
    def bridge(self) -> Bridge:
        """The running bridge (the plug-in the central system started)."""
        running = self.system.plugins["smartcar"]
        assert isinstance(running, RunningBridge)
        return running.bridge

    async def restart(self, down_for: float = 0.5) -> None:
        """Stop the central system and start a new one on the same ports and database."""
        ocpp_port, http_port = self.system.ocpp.port, self.system.http_port
        await self.system.stop()
        await asyncio.sleep(down_for)
        self.system = CentralSystem(self.settings)
        await self.system.start(
            ocpp_sock=_bound_socket(ocpp_port), http_sock=_bound_socket(http_port)
        )

    @property
    def fake(self) -> Any:
        return self.smartcar.fake

    async def create_account(self, payment_status: str = "valid", tariff: str = "0.30") -> int:
        response = await self.http.post(
            "/api/accounts",
            json={"name": "Driver", "payment_status": payment_status, "tariff_per_kwh": tariff},
        )
        assert response.status_code == 201, response.text
        return response.json()["id"]

    async def link(self, account_id: int, *vins: str) -> httpx.Response:
        """The driver goes through Smartcar Connect in a browser: follow every redirect."""
        self.fake.login(*vins)
        response = await self.http.get(
            "/smartcar/connect", params={"account_id": account_id}, follow_redirects=True
        )
        assert response.status_code == 200, response.text
        return response

    async def locate(self, charge_point_id: str, lat: float, lon: float) -> None:
        response = await self.http.put(
            f"/api/charge-points/{charge_point_id}/location",
            json={"latitude": lat, "longitude": lon},
        )
        assert response.status_code == 200

    async def wait_for(self, query: str, *args: object, timeout: float = TIMEOUT * 2) -> Any:
        async with asyncio.timeout(timeout):
            while not (value := await self.db.fetchval(query, *args)):
                await asyncio.sleep(0.05)
        return value

    async def plug_in_until_charging(self, vin: str, charge_point_id: str = "CP-A") -> int:
        """Plug the car in and wait until the bridge's session charges; its transaction id."""
        self.runner.plug_in(vin, charge_point_id, 1)
        return await self.wait_for(
            "SELECT transaction_id FROM charging_sessions WHERE state = 'charging'"
        )

    async def session(self, transaction_id: int) -> dict[str, Any]:
        response = await self.http.get(f"/api/sessions/{transaction_id}")
        assert response.status_code == 200, response.text
        return response.json()


@contextlib.asynccontextmanager
async def bridge_env(
    settings: Settings,
    db: asyncpg.Connection,
    world: World,
    *,
    poll_interval: float = 1.0,
    match_give_up_after: float = 4.0,
    access_token_ttl_s: float = 7200.0,
    match_window: float = 3.0,
    match_settle: float = 0.3,
    confirm_timeout: float = TIMEOUT / 2,
    confirm_poll: float = 0.2,
    app_token_ttl_s: float = 3600.0,
    api_version: str | None = None,
    decision_reads: int = 50,
    webhooks: bool = False,
    rate_bucket_size: int = 100_000,
    webhook_lag: float = 30.0,
) -> AsyncIterator[BridgeEnv]:
    """``decision_reads`` defaults high: these small test fleets are read whole, so the
    tests see the matcher's rules, not the call budget (tests/e2e/test_bridge_cost.py does);
    for the same reason the application's Smartcar bucket is large unless a test sets it.
    ``webhooks`` points the fake's webhook at the bridge (VERIFY answered, cars watched)."""
    version = api_version or _version["current"]
    http_sock = _bound_socket()
    base = f"http://127.0.0.1:{http_sock.getsockname()[1]}"
    redirect = f"{base}/smartcar/callback"
    config = FakeConfig(
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        redirect_uris=(redirect,),
        access_token_ttl_s=access_token_ttl_s,
    )
    async with run_smartcar_fake(world, config=config) as smartcar:
        smartcar.fake.v3.app_token_ttl_s = app_token_ttl_s
        # Under v3 the fake's v2.0 is switched off, as Smartcar's is (§14.6).
        smartcar.fake.v3.v2_retired = version == "3"
        bridge = BridgeSettings(
            client_id=CLIENT_ID,
            client_secret=CLIENT_SECRET,
            redirect_uri=redirect,
            secret_key=SECRET_KEY,
            api_url=smartcar.api_url,
            auth_url=smartcar.auth_url,
            connect_url=smartcar.connect_url,
            management_token=AMT,
            poll_interval=poll_interval,
            start_timeout=TIMEOUT,
            match_give_up_after=match_give_up_after,
            match_window=match_window,
            match_settle=match_settle,
            confirm_timeout=confirm_timeout,
            confirm_poll=confirm_poll,
            api_version=version,
            v3_api_url=smartcar.v3_api_url,
            management_api_url=smartcar.management_url,
            iam_url=smartcar.iam_url,
            webhook_id=smartcar.fake.webhooks.webhook_id,
            command_timeout=TIMEOUT,
            decision_reads=decision_reads,
            rate_bucket_size=rate_bucket_size,
            webhook_lag=webhook_lag,
        )
        if webhooks:
            smartcar.fake.webhooks.configure(f"{base}/smartcar/webhooks", AMT)
            smartcar.fake.webhooks.poll_interval_s = 0.2
            smartcar.fake.webhooks.retry_scale = 0.01
        with_bridge = replace(settings, plugins={"smartcar": bridge})
        system = CentralSystem(with_bridge)
        await system.start(http_sock=http_sock)
        runner = WorldRunner(
            f"ws://127.0.0.1:{system.ocpp.port}/ocpp",
            world=world,
            speed=SPEED,
            seed=3,
            smartcar_port=None,
            charger_config={"MeterValueSampleInterval": "60"},
        )
        env: BridgeEnv | None = None
        # The operator API needs a token; Smartcar's redirects (/smartcar/*) ignore it.
        headers = {"Authorization": f"Bearer {await operator_tokens.create(db, 'bridge-e2e')}"}
        try:
            async with (
                runner,
                httpx.AsyncClient(base_url=base, timeout=TIMEOUT, headers=headers) as http,
            ):
                await runner.wait_booted(TIMEOUT)
                if webhooks:
                    assert await smartcar.fake.webhooks.verify(), "the bridge refused VERIFY"
                env = BridgeEnv(system, runner, smartcar, http, db, with_bridge, version)
                yield env
        finally:
            await (env.system if env is not None else system).stop()


@contextlib.asynccontextmanager
async def one_car_linked(
    settings: Settings, db: asyncpg.Connection, vin: str, soc: float, **options: Any
) -> AsyncIterator[BridgeEnv]:
    """One charger (CP-A) and one car, linked to an account with valid payment."""
    world = World(vehicles=[car(vin, soc)], chargers=[charger("CP-A")])
    async with bridge_env(settings, db, world, **options) as env:
        await env.link(await env.create_account(), vin)
        yield env
