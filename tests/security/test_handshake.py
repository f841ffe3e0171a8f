"""Security profiles at the WebSocket upgrade: real ws, wss and mTLS on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import ssl
import warnings

import httpx
import pytest
import structlog
from websockets.exceptions import InvalidHandshake, InvalidStatus

from csms.app import CentralSystem
from simulators.cp_security import ChargerSecurity
from tests.conftest import TIMEOUT
from tests.security.conftest import Pki, open_charger, provision

BOOT = {"chargePointVendor": "V", "chargePointModel": "M"}


async def _boot(ws) -> dict:  # type: ignore[no-untyped-def]
    await ws.send(json.dumps([2, "b1", "BootNotification", BOOT]))
    return json.loads(await ws.recv())


async def _refused(system: CentralSystem, security: ChargerSecurity) -> int:
    with pytest.raises(InvalidStatus) as refused:
        async with open_charger(system, security):
            pass
    return refused.value.response.status_code


def _auth_failures(logs: list[dict]) -> list[str]:
    return [e["reason"] for e in logs if e["event"] == "ocpp.auth_failed"]


async def test_profile_1_charger_with_its_password_connects_and_boots(
    secure_system: CentralSystem, api: httpx.AsyncClient
) -> None:
    password = await provision(api, "CP-P1", profile=1)
    security = ChargerSecurity("CP-P1", profile=1, authorization_key=password)
    async with open_charger(secure_system, security) as ws:
        assert (await _boot(ws))[2]["status"] == "Accepted"
    assert secure_system.ocpp.guard.connected_profiles["CP-P1"] == 1


@pytest.mark.parametrize(
    ("user", "password", "reason"),
    [
        ("CP-P1", "wrong-password-0123456789", "wrong_password"),
        ("CP-P1", None, "no_credentials"),
        ("CP-OTHER", "RIGHT", "identity_mismatch"),
    ],
)
async def test_profile_1_refuses_wrong_missing_or_foreign_credentials_with_401(
    secure_system: CentralSystem,
    api: httpx.AsyncClient,
    user: str,
    password: str | None,
    reason: str,
) -> None:
    right = await provision(api, "CP-P1", profile=1)
    offered = right if password == "RIGHT" else password
    security = ChargerSecurity(user, profile=1, authorization_key=offered)
    kwargs = security.connect_kwargs()
    with structlog.testing.capture_logs() as logs, pytest.raises(InvalidStatus) as refused:
        async with open_charger(
            secure_system, ChargerSecurity("CP-P1"), **kwargs
        ):  # URL identity CP-P1, Basic user as given
            pass
    assert refused.value.response.status_code == 401
    assert refused.value.response.headers["WWW-Authenticate"].startswith("Basic")
    assert _auth_failures(logs) == [reason]
    assert right not in repr(logs)
    assert offered is None or offered not in repr(logs)


async def test_charger_below_its_profile_is_refused_even_with_the_right_password(
    secure_system: CentralSystem, api: httpx.AsyncClient, pki: Pki
) -> None:
    password = await provision(api, "CP-P2", profile=2)
    plain = ChargerSecurity("CP-P2", profile=1, authorization_key=password)  # ws://, not wss://
    with structlog.testing.capture_logs() as logs:
        assert await _refused(secure_system, plain) == 403
    assert _auth_failures(logs) == ["profile_too_low"]
    secure = ChargerSecurity(
        "CP-P2", profile=2, authorization_key=password, server_ca=pki.server_ca.cert_path
    )
    async with open_charger(secure_system, secure) as ws:
        assert (await _boot(ws))[2]["status"] == "Accepted"


async def test_profile_2_client_verifies_the_server_certificate_over_tls_1_2_or_higher(
    secure_system: CentralSystem, api: httpx.AsyncClient, pki: Pki
) -> None:
    password = await provision(api, "CP-TLS", profile=2)
    security = ChargerSecurity(
        "CP-TLS", profile=2, authorization_key=password, server_ca=pki.server_ca.cert_path
    )
    async with open_charger(secure_system, security) as ws:
        ssl_object = ws.transport.get_extra_info("ssl_object")
        assert ssl_object.version() in ("TLSv1.2", "TLSv1.3")
        assert (await _boot(ws))[2]["status"] == "Accepted"
    # A charger that does not trust our CA refuses us.
    untrusting = ChargerSecurity(
        "CP-TLS", profile=2, authorization_key=password, server_ca=pki.other_ca.cert_path
    )
    with pytest.raises(ssl.SSLCertVerificationError):
        async with open_charger(secure_system, untrusting):
            pass
    # TLS 1.1 and below are refused by the server.
    old = ssl.create_default_context(cafile=pki.server_ca.cert_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        old.minimum_version = ssl.TLSVersion.TLSv1
        old.maximum_version = ssl.TLSVersion.TLSv1_1
    with pytest.raises(ssl.SSLError):
        async with open_charger(secure_system, security, ssl=old):
            pass


async def test_profile_3_needs_a_certificate_from_our_ca_naming_the_charger(
    secure_system: CentralSystem, api: httpx.AsyncClient, pki: Pki
) -> None:
    cert, key = pki.client_cert("CP-P3")

    def charger(cert_key: tuple | None) -> ChargerSecurity:  # type: ignore[type-arg]
        return ChargerSecurity(
            "CP-P3",
            profile=3 if cert_key else 2,
            server_ca=pki.server_ca.cert_path,
            client_cert=cert_key[0] if cert_key else None,
            client_key=cert_key[1] if cert_key else None,
        )

    async with open_charger(secure_system, charger((cert, key))) as ws:
        assert (await _boot(ws))[2]["status"] == "Accepted"
    async with asyncio.timeout(TIMEOUT):  # its row is written in the next batch
        while (await api.get("/api/charge-points/CP-P3/security")).status_code == 404:
            await asyncio.sleep(0.05)
    answer = await api.put("/api/charge-points/CP-P3/security/profile", json={"profile": 3})
    assert answer.json()["security_profile"] == 3
    async with open_charger(secure_system, charger((cert, key))) as ws:
        assert (await _boot(ws))[2]["status"] == "Accepted"
    with structlog.testing.capture_logs() as logs:
        # Another identity's certificate from our CA.
        assert await _refused(secure_system, charger(pki.client_cert("CP-ELSE"))) == 401
        # No certificate at all.
        assert await _refused(secure_system, charger(None)) == 401
    assert _auth_failures(logs) == ["identity_mismatch", "no_credentials"]
    # A certificate from another CA fails the TLS handshake itself (TLS 1.3: the client
    # learns it when the server's alert ends the stream instead of an HTTP response).
    with pytest.raises((ssl.SSLError, OSError, InvalidHandshake)):
        async with open_charger(secure_system, charger(pki.client_cert("CP-P3", pki.other_ca))):
            pass


async def test_repeated_failures_are_throttled_per_identity_and_address(
    secure_system: CentralSystem, api: httpx.AsyncClient
) -> None:
    password = await provision(api, "CP-BF", profile=1)
    wrong = ChargerSecurity("CP-BF", profile=1, authorization_key="x" * 20)
    for _ in range(5):
        assert await _refused(secure_system, wrong) == 401
    with structlog.testing.capture_logs() as logs:
        # Even the right password waits: the check is not run while throttled.
        right = ChargerSecurity("CP-BF", profile=1, authorization_key=password)
        assert await _refused(secure_system, wrong) == 401
        assert await _refused(secure_system, right) == 429
    assert [e["event"] for e in logs if e["event"].startswith("ocpp.auth")] == [
        "ocpp.auth_failed",
        "ocpp.auth_throttled",
    ]


async def test_existing_profile_0_chargers_still_connect_without_credentials(
    secure_system: CentralSystem,
) -> None:
    async with open_charger(secure_system, ChargerSecurity("CP-P0")) as ws:
        assert (await _boot(ws))[2]["status"] == "Accepted"
