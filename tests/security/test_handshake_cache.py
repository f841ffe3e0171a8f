"""The handshake's security row comes from memory on reconnect, and never outlives a change."""

from __future__ import annotations

import asyncio
import json

import asyncpg
import httpx
import pytest
from websockets.exceptions import InvalidStatus

from csms.app import CentralSystem
from csms.config import Settings
from simulators.cp_security import ChargerSecurity
from tests.conftest import TIMEOUT
from tests.security.conftest import open_charger, provision

BOOT = {"chargePointVendor": "V", "chargePointModel": "M"}


async def _connects(system: CentralSystem, security: ChargerSecurity) -> bool:
    try:
        async with open_charger(system, security) as ws:
            await ws.send(json.dumps([2, "b1", "BootNotification", BOOT]))
            return json.loads(await ws.recv())[2]["status"] == "Accepted"
    except InvalidStatus:
        return False


async def test_a_fleet_connecting_and_reconnecting_is_checked_from_memory(
    secure_system: CentralSystem,
) -> None:
    cache = secure_system.ocpp.guard.cache
    fleet = [ChargerSecurity(f"CP-C{n}") for n in range(5)]
    for _wave in ("first contact", "reconnect"):
        assert all(await asyncio.gather(*(_connects(secure_system, cp) for cp in fleet)))
    # Preloaded at start: chargers without security settings need no read at all.
    assert cache.misses == 0
    assert cache.hits == 2 * len(fleet)


async def test_a_charger_provisioned_before_start_is_preloaded_and_checked(
    api_token: str, db: asyncpg.Connection, secure_settings: Settings
) -> None:
    first = CentralSystem(secure_settings)
    await first.start()
    try:
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{first.http_port}",
            headers={"Authorization": f"Bearer {api_token}"},
            timeout=TIMEOUT,
        ) as api:
            password = await provision(api, "CP-PRE", profile=1)
    finally:
        await first.stop()
    second = CentralSystem(secure_settings)
    await second.start()
    try:
        assert second.ocpp.guard.cache.cached("CP-PRE")
        assert not await _connects(second, ChargerSecurity("CP-PRE"))
        key = ChargerSecurity("CP-PRE", 1, authorization_key=password)
        assert await _connects(second, key)
        # One read: the refusal was re-checked; the accepted login came from memory.
        assert second.ocpp.guard.cache.misses == 1
    finally:
        await second.stop()


async def test_a_new_password_is_required_at_once_after_it_is_provisioned(
    secure_system: CentralSystem, api: httpx.AsyncClient
) -> None:
    first = await provision(api, "CP-NEW", profile=1)
    assert await _connects(secure_system, ChargerSecurity("CP-NEW", 1, authorization_key=first))
    assert secure_system.ocpp.guard.cache.cached("CP-NEW")
    second = await provision(api, "CP-NEW")
    assert not await _connects(secure_system, ChargerSecurity("CP-NEW", 1, authorization_key=first))
    assert await _connects(secure_system, ChargerSecurity("CP-NEW", 1, authorization_key=second))


async def test_a_raised_profile_refuses_the_next_plain_connection(
    secure_system: CentralSystem, api: httpx.AsyncClient
) -> None:
    assert await _connects(secure_system, ChargerSecurity("CP-UP"))  # profile 0, now cached
    await provision(api, "CP-UP", profile=1)
    assert not await _connects(secure_system, ChargerSecurity("CP-UP"))


async def test_a_refusal_from_a_stale_entry_is_rechecked_against_the_database(
    secure_system: CentralSystem, api: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    first = await provision(api, "CP-EXT", profile=1)
    assert await _connects(secure_system, ChargerSecurity("CP-EXT", 1, authorization_key=first))
    # Another node (or an operator with psql) gives it a new password behind our back.
    other = await provision(api, "CP-DONOR")
    await db.execute(
        """UPDATE charge_points SET password_hash =
               (SELECT password_hash FROM charge_points WHERE id = 'CP-DONOR')
           WHERE id = 'CP-EXT'"""
    )
    # The cached row knows only the old password: the refusal is re-judged on a fresh read.
    assert await _connects(secure_system, ChargerSecurity("CP-EXT", 1, authorization_key=other))


@pytest.mark.parametrize("count", [3])
async def test_an_unknown_charger_is_cached_as_unknown_until_an_operator_provisions_it(
    secure_system: CentralSystem, api: httpx.AsyncClient, count: int
) -> None:
    for _ in range(count):
        assert await _connects(secure_system, ChargerSecurity("CP-LATER"))
    password = await provision(api, "CP-LATER", profile=1)
    assert not await _connects(secure_system, ChargerSecurity("CP-LATER"))
    assert await _connects(
        secure_system, ChargerSecurity("CP-LATER", 1, authorization_key=password)
    )
