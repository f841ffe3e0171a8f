"""Password rotation, profile upgrade, SignCertificate -> CertificateSigned, security events."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import structlog
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID
from websockets.exceptions import ConnectionClosed, InvalidStatus

from csms.app import CentralSystem
from simulators.cp_security import SECURITY_KEYS, ChargerSecurity
from tests.conftest import TIMEOUT
from tests.security.conftest import Pki, open_charger, provision
from tests.security.pki import make_csr

BOOT = {"chargePointVendor": "V", "chargePointModel": "M"}


class SecureCharger:
    """A raw-frame charger that applies security ChangeConfiguration and reconnects as told."""

    def __init__(self, system: CentralSystem, security: ChargerSecurity) -> None:
        self.system = system
        self.security = security
        self.sessions: list[tuple[int, str | None]] = []  # (profile, key) per connection
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.results: asyncio.Queue[Any] = asyncio.Queue()
        self.ws: Any = None
        self.connected = asyncio.Event()

    async def run(self) -> None:
        while True:
            async with open_charger(self.system, self.security) as ws:
                self.ws = ws
                self.sessions.append((self.security.profile, self.security.authorization_key))
                await ws.send(json.dumps([2, "boot", "BootNotification", BOOT]))
                json.loads(await ws.recv())  # the boot answer: we are registered
                self.connected.set()
                with contextlib.suppress(ConnectionClosed):
                    await self._serve(ws)
            self.connected.clear()

    async def _serve(self, ws: Any) -> None:
        async for raw in ws:
            frame = json.loads(raw)
            if frame[0] != 2:
                await self.results.put(frame)
                continue
            _, message_id, action, payload = frame
            self.calls.append((action, payload))
            status = "Accepted"
            if action == "ChangeConfiguration" and payload["key"] in SECURITY_KEYS:
                previous = self.security.profile
                status = self.security.apply(payload["key"], payload["value"])
            await ws.send(json.dumps([3, message_id, {"status": status}]))
            # A charger reconnects to use a new profile, or a new key it authenticates with.
            if status == "Accepted" and action == "ChangeConfiguration":
                if payload["key"] == "SecurityProfile" or (
                    payload["key"] == "AuthorizationKey" and previous in (1, 2)
                ):
                    await ws.close()
                    return

    async def call(self, action: str, payload: dict[str, Any]) -> Any:
        await self.connected.wait()
        await self.ws.send(json.dumps([2, f"m-{action}", action, payload]))
        async with asyncio.timeout(TIMEOUT):
            while True:
                frame = await self.results.get()
                if frame[1] == f"m-{action}":
                    return frame


@contextlib.asynccontextmanager
async def running(charger: SecureCharger) -> AsyncIterator[SecureCharger]:
    task = asyncio.create_task(charger.run())
    try:
        async with asyncio.timeout(TIMEOUT):
            await charger.connected.wait()
        yield charger
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _eventually(predicate: Any) -> None:
    async with asyncio.timeout(TIMEOUT):
        while not await predicate():
            await asyncio.sleep(0.05)


async def test_password_rotation_gives_the_charger_a_new_key_and_retires_the_old_one(
    secure_system: CentralSystem, api: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    old = await provision(api, "CP-ROT", profile=1)
    charger = SecureCharger(secure_system, ChargerSecurity("CP-ROT", 1, old))
    with structlog.testing.capture_logs() as logs:
        async with running(charger):
            answer = await api.post("/api/charge-points/CP-ROT/security/password", json={})
            assert answer.status_code == 200, answer.text
            new = answer.json()["password"]
            assert 16 <= len(new) <= 40 and new != old

            async def reconnected() -> bool:
                return charger.sessions[-1] == (1, new) and charger.connected.is_set()

            await _eventually(reconnected)
    assert charger.sessions == [(1, old), (1, new)]
    with pytest_raises_status() as refused:
        async with open_charger(secure_system, ChargerSecurity("CP-ROT", 1, old)):
            pass
    assert refused.value.response.status_code == 401
    async with open_charger(secure_system, ChargerSecurity("CP-ROT", 1, new)):
        pass
    # Neither password is in a log line or in the commands table.
    assert old not in repr(logs) and new not in repr(logs)
    payloads = await db.fetch("SELECT payload::text AS p FROM commands")
    assert payloads and all(new not in r["p"] and old not in r["p"] for r in payloads)
    stored = await db.fetchrow("SELECT password_hash FROM charge_points WHERE id = 'CP-ROT'")
    assert stored["password_hash"].startswith("scrypt$") and new not in stored["password_hash"]


async def test_upgrade_from_profile_0_to_1_sets_a_key_then_the_profile_and_refuses_downgrade(
    secure_system: CentralSystem, api: httpx.AsyncClient
) -> None:
    charger = SecureCharger(secure_system, ChargerSecurity("CP-UP"))
    async with running(charger):
        answer = await api.put("/api/charge-points/CP-UP/security/profile", json={"profile": 1})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["pending_security_profile"] == 1
        password = body["password"]

        async def upgraded() -> bool:
            status = (await api.get("/api/charge-points/CP-UP/security")).json()
            return status["security_profile"] == 1 and status["pending_security_profile"] is None

        await _eventually(upgraded)
        assert charger.sessions[-1] == (1, password)
        assert [p["key"] for a, p in charger.calls if a == "ChangeConfiguration"] == [
            "AuthorizationKey",
            "SecurityProfile",
        ]
        down = await api.put("/api/charge-points/CP-UP/security/profile", json={"profile": 0})
        assert down.status_code == 409
    with pytest_raises_status() as refused:
        async with open_charger(secure_system, ChargerSecurity("CP-UP")):
            pass
    assert refused.value.response.status_code == 401


async def test_sign_certificate_is_answered_then_certificate_signed_works_for_profile_3(
    secure_system: CentralSystem, db: asyncpg.Connection, pki: Pki
) -> None:
    charger = SecureCharger(secure_system, ChargerSecurity("CP-CSR"))
    csr, key = make_csr("CP-CSR")
    async with running(charger):
        answer = await charger.call("SignCertificate", {"csr": csr})
        assert answer[2] == {"status": "Accepted"}
        foreign, _ = make_csr("CP-SOMEONE-ELSE")
        assert (await charger.call("SignCertificate", {"csr": foreign}))[2]["status"] == "Rejected"

        async def delivered() -> bool:
            return any(a == "CertificateSigned" for a, _ in charger.calls)

        await _eventually(delivered)

        async def recorded() -> bool:
            status = await db.fetchval("SELECT status FROM charger_certificates")
            return status == "accepted"

        await _eventually(recorded)
    chain = next(p for a, p in charger.calls if a == "CertificateSigned")["certificateChain"]
    certificate = x509.load_pem_x509_certificate(chain.encode())
    assert certificate.issuer == pki.charger_ca.cert.subject
    cn = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    assert cn == "CP-CSR"
    # The signed certificate logs the charger in with profile 3.
    cert_path, key_path = pki.folder / "csr-cp.pem", pki.folder / "csr-cp.key"
    cert_path.write_text(chain)
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    mtls = ChargerSecurity(
        "CP-CSR", 3, server_ca=pki.server_ca.cert_path, client_cert=cert_path, client_key=key_path
    )
    async with open_charger(secure_system, mtls):
        assert secure_system.ocpp.guard.connected_profiles["CP-CSR"] == 3


async def test_security_events_and_status_notifications_are_stored(
    secure_system: CentralSystem, api: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    charger = SecureCharger(secure_system, ChargerSecurity("CP-EV"))
    async with running(charger):
        event = {
            "type": "InvalidCentralSystemCertificate",
            "timestamp": "2026-01-01T10:00:00Z",
            "techInfo": "chain too short",
        }
        assert (await charger.call("SecurityEventNotification", event))[2] == {}
        status = {"status": "Installed", "requestId": 7}
        assert (await charger.call("SignedFirmwareStatusNotification", status))[2] == {}
        assert (await charger.call("LogStatusNotification", {"status": "Uploaded"}))[2] == {}
    events = (await api.get("/api/charge-points/CP-EV/security-events")).json()["events"]
    assert [(e["type"], e["tech_info"]) for e in events] == [
        ("InvalidCentralSystemCertificate", "chain too short")
    ]
    rows = await db.fetch("SELECT kind, status, request_id FROM security_notifications ORDER BY id")
    assert [tuple(r) for r in rows] == [
        ("signed_firmware", "Installed", 7),
        ("log", "Uploaded", None),
    ]
    assert await db.fetchval("SELECT firmware_status FROM charge_points") == "Installed"


async def test_a_resent_security_event_is_stored_once(
    secure_system: CentralSystem, api: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    # Chargers queue security events while offline and resend one whose answer was lost:
    # several chargers at once, each resending after a reconnect, store each event once.
    event = {"type": "TamperDetectionActivated", "timestamp": "2026-01-01T10:00:00Z"}
    later = {**event, "timestamp": "2026-01-01T10:00:05Z", "techInfo": "lid opened"}

    async def charger_day(name: str) -> None:
        for _ in range(2):  # the second connection resends both, as after a lost answer
            async with running(SecureCharger(secure_system, ChargerSecurity(name))) as charger:
                # One at a time: this test charger keys its answers by action.
                assert (await charger.call("SecurityEventNotification", event))[2] == {}
                assert (await charger.call("SecurityEventNotification", later))[2] == {}

    names = [f"CP-RESEND-{n}" for n in range(4)]
    await asyncio.gather(*(charger_day(name) for name in names))
    for name in names:
        events = (await api.get(f"/api/charge-points/{name}/security-events")).json()["events"]
        assert sorted((e["type"], e["tech_info"] or "") for e in events) == [
            ("TamperDetectionActivated", ""),
            ("TamperDetectionActivated", "lid opened"),
        ]
    assert await db.fetchval("SELECT count(*) FROM security_events") == 8


def pytest_raises_status() -> Any:
    import pytest

    return pytest.raises(InvalidStatus)
