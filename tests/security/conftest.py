"""A central system with both listeners (ws and wss with client certificates) and a test PKI."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect

from csms.app import CentralSystem
from csms.config import Settings
from simulators.cp_security import ChargerSecurity
from tests.conftest import TIMEOUT
from tests.security.pki import CA


@dataclass
class Pki:
    folder: Path
    server_ca: CA
    client_ca: CA
    other_ca: CA
    charger_ca: CA
    server_cert: Path
    server_key: Path

    def client_cert(self, identity: str, ca: CA | None = None) -> tuple[Path, Path]:
        return (ca or self.client_ca).issue(self.folder, identity, server=False)


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    folder = tmp_path_factory.mktemp("pki")
    server_ca = CA.create(folder, "server-ca")
    client_ca = CA.create(folder, "client-ca")
    cert, key = server_ca.issue(folder, "127.0.0.1", server=True)
    return Pki(
        folder,
        server_ca,
        client_ca,
        CA.create(folder, "other-ca"),
        client_ca,  # the CA that signs CSRs is the one the wss listener trusts
        cert,
        key,
    )


@pytest.fixture
def secure_settings(settings: Settings, pki: Pki) -> Settings:
    return replace(
        settings,
        tls_port=0,
        tls_cert=pki.server_cert,
        tls_key=pki.server_key,
        tls_client_ca=pki.client_ca.cert_path,
        charger_ca_cert=pki.charger_ca.cert_path,
        charger_ca_key=pki.charger_ca.key_path,
    )


@pytest.fixture
async def secure_system(
    secure_settings: Settings, db: asyncpg.Connection
) -> AsyncIterator[CentralSystem]:
    central = CentralSystem(secure_settings)
    await central.start()
    try:
        yield central
    finally:
        await central.stop()


@pytest.fixture
async def api(secure_system: CentralSystem, api_token: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{secure_system.http_port}",
        headers={"Authorization": f"Bearer {api_token}"},
        timeout=TIMEOUT,
    ) as client:
        yield client


def charger_url(system: CentralSystem, security: ChargerSecurity) -> str:
    port = system.ocpp.tls_port if security.profile >= 2 else system.ocpp.port
    return f"{security.scheme()}://127.0.0.1:{port}/ocpp/{security.identity}"


@contextlib.asynccontextmanager
async def open_charger(
    system: CentralSystem, security: ChargerSecurity, **extra: Any
) -> AsyncIterator[ClientConnection]:
    kwargs = {**security.connect_kwargs(), **extra}
    async with connect(
        charger_url(system, security),
        subprotocols=["ocpp1.6"],  # type: ignore[list-item]
        open_timeout=TIMEOUT,
        **kwargs,
    ) as ws:
        yield ws


async def provision(api: httpx.AsyncClient, identity: str, profile: int | None = None) -> str:
    """Give a charger a password (and a profile) the way an operator does; return it."""
    response = await api.post(
        f"/api/charge-points/{identity}/security/password", json={"provision": True}
    )
    assert response.status_code == 200, response.text
    if profile is not None:
        answer = await api.put(
            f"/api/charge-points/{identity}/security/profile", json={"profile": profile}
        )
        assert answer.status_code == 200, answer.text
    return response.json()["password"]
