"""The charge point simulator runs secured: Basic auth, and the whitepaper's upgrade."""

from __future__ import annotations

import asyncio

import asyncpg
import httpx

from csms.app import CentralSystem
from simulators.charge_point import ChargePoint
from simulators.cp_runtime import SimClock
from simulators.cp_security import ChargerSecurity
from tests.conftest import TIMEOUT
from tests.security.conftest import provision


async def test_simulated_charger_with_its_provisioned_key_connects_at_profile_1(
    secure_system: CentralSystem, api: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    password = await provision(api, "SIM-SEC-1", profile=1)
    security = ChargerSecurity(identity="SIM-SEC-1", profile=1, authorization_key=password)
    url = f"ws://127.0.0.1:{secure_system.ocpp.port}/ocpp"
    charger = ChargePoint("SIM-SEC-1", url, clock=SimClock(speed=60), security=security)
    async with charger:
        await charger.wait_accepted(TIMEOUT)
        assert charger.stats.connect_failures == 0
    # Without the key the same charger is refused at the handshake.
    anonymous = ChargePoint("SIM-SEC-1", url, clock=SimClock(speed=60))
    async with anonymous:
        async with asyncio.timeout(TIMEOUT):
            while anonymous.stats.connect_failures == 0:
                await asyncio.sleep(0.05)
        assert anonymous.registration != "Accepted"


async def test_simulated_charger_with_a_wrong_key_cannot_connect(
    secure_system: CentralSystem, api: httpx.AsyncClient
) -> None:
    await provision(api, "SIM-SEC-2", profile=1)
    url = f"ws://127.0.0.1:{secure_system.ocpp.port}/ocpp"
    wrong = ChargerSecurity(identity="SIM-SEC-2", profile=1, authorization_key="x" * 20)
    charger = ChargePoint("SIM-SEC-2", url, clock=SimClock(speed=60), security=wrong)
    async with charger:
        async with asyncio.timeout(TIMEOUT):
            while charger.stats.connect_failures == 0:
                await asyncio.sleep(0.05)
        assert charger.registration != "Accepted"


async def test_simulated_charger_upgrades_from_profile_0_to_1_and_reconnects_with_its_key(
    secure_system: CentralSystem, api: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    security = ChargerSecurity(identity="SIM-SEC-3", profile=0)
    url = f"ws://127.0.0.1:{secure_system.ocpp.port}/ocpp"
    charger = ChargePoint("SIM-SEC-3", url, clock=SimClock(speed=60), security=security)
    async with charger:
        await charger.wait_accepted(TIMEOUT)
        answer = await api.put("/api/charge-points/SIM-SEC-3/security/profile", json={"profile": 1})
        assert answer.status_code == 200, answer.text
        # It took the generated key and the profile, reconnected with Basic auth, and the
        # central system promoted the profile on that connection.
        # The promotion is committed during the handshake, before the charger has counted
        # its new connection, so both are waited for (the count lagged once under load).
        async with asyncio.timeout(TIMEOUT):
            while (
                await db.fetchval(
                    "SELECT security_profile FROM charge_points WHERE id = 'SIM-SEC-3'"
                )
                != 1
                or charger.stats.connections < 2
            ):
                await asyncio.sleep(0.05)
        assert security.profile == 1 and security.authorization_key is not None
