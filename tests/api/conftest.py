"""The operator API over real HTTP: the system with the bridge's routes mounted, a token."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace

import asyncpg
import httpx
import pytest

from csms.app import CentralSystem
from csms.config import Settings
from smartcar_bridge.settings import BridgeSettings
from tests.conftest import TIMEOUT

# Modules here that build a bridge_env run once per Smartcar API version, as in tests/e2e.
from tests.e2e.bridge_env import pytest_generate_tests, smartcar_api_version  # noqa: F401

# Nothing listens there: these tests never reach Smartcar, they only need its routes mounted.
UNREACHABLE = "http://127.0.0.1:9"


@pytest.fixture
async def api_system(settings: Settings, db: asyncpg.Connection) -> AsyncIterator[CentralSystem]:
    bridge = BridgeSettings(
        client_id="api-tests",
        client_secret="api-tests-secret",
        redirect_uri=f"{UNREACHABLE}/smartcar/callback",
        secret_key="an-api-test-secret-key-of-32-chars",
        api_url=UNREACHABLE,
        auth_url=UNREACHABLE,
        connect_url=UNREACHABLE,
        v3_api_url=UNREACHABLE,
        management_api_url=UNREACHABLE,
        iam_url=UNREACHABLE,
    )
    central = CentralSystem(replace(settings, plugins={"smartcar": bridge}))
    await central.start()
    try:
        yield central
    finally:
        await central.stop()


@pytest.fixture
def base_url(api_system: CentralSystem) -> str:
    return f"http://127.0.0.1:{api_system.http_port}"


@pytest.fixture
async def api(base_url: str, api_token: str) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"Bearer {api_token}"}
    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=TIMEOUT) as client:
        yield client
