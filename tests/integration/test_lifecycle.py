"""Connections, registration, restarts, database hiccups, health and start-up errors."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
from dataclasses import replace

import asyncpg
import httpx
import pytest
import structlog
from websockets.exceptions import ConnectionClosed

from csms.app import CentralSystem, migrate_database
from csms.config import Settings
from tests.conftest import TIMEOUT
from tests.ocpp_client import ocpp_charger, raw_charger

BOOT = {"chargePointVendor": "V", "chargePointModel": "M"}


async def test_second_connection_with_same_identity_replaces_the_first(
    system: CentralSystem,
) -> None:
    with structlog.testing.capture_logs() as logs:
        async with raw_charger(system.ocpp.port, "CP-TWICE") as old:
            await old.call_ok("BootNotification", BOOT)
            async with raw_charger(system.ocpp.port, "CP-TWICE") as new:
                # The old socket is closed by the server...
                with pytest.raises(ConnectionClosed):
                    async with asyncio.timeout(TIMEOUT):
                        await old.ws.recv()
                # ...and the new one is the charger now: commands go to it.
                command = asyncio.create_task(system.commands.send("CP-TWICE", "ClearCache", {}))
                call = await new.receive()
                await new.ws.send(json.dumps([3, call[1], {"status": "Accepted"}]))
                assert await command == {"status": "Accepted"}
                assert "currentTime" in await new.call_ok("Heartbeat", {})
    assert [e["charge_point_id"] for e in logs if e["event"] == "ocpp.connection_replaced"] == [
        "CP-TWICE"
    ]
    assert old.ws.close_code == 4000


async def test_pending_registration_until_operator_accepts(
    settings: Settings, db: asyncpg.Connection, api_token: str
) -> None:
    system = CentralSystem(replace(settings, unknown_chargers="pending"))
    await system.start()
    try:
        async with ocpp_charger(system.ocpp.port, "CP-NEW") as cp:
            first = await cp.boot()
            assert first.status == "Pending"
            assert first.interval == 300
            # Until accepted, anything but a boot is refused.
            async with raw_charger(system.ocpp.port, "CP-NEW") as raw:
                refused = await raw.call("Heartbeat", {})
                assert (refused[0], refused[2]) == (4, "SecurityError")
            assert (
                await db.fetchval(
                    "SELECT registration_status FROM charge_points WHERE id = 'CP-NEW'"
                )
                == "Pending"
            )
        async with ocpp_charger(system.ocpp.port, "CP-NEW") as cp:
            async with httpx.AsyncClient() as client:
                response = await client.put(
                    f"http://127.0.0.1:{system.http_port}/api/charge-points/CP-NEW/registration",
                    json={"status": "Accepted"},
                    headers={"Authorization": f"Bearer {api_token}"},
                )
            assert response.status_code == 200
            # The server asks the charger to boot again right away.
            async with asyncio.timeout(TIMEOUT):
                while not cp.received:
                    await asyncio.sleep(0.02)
            assert cp.received == [("TriggerMessage", {"requested_message": "BootNotification"})]
            assert (await cp.boot()).status == "Accepted"
    finally:
        await system.stop()


async def test_reject_policy_rejects_unknown_chargers_but_not_known_ones(
    settings: Settings, db: asyncpg.Connection
) -> None:
    await db.execute("INSERT INTO charge_points (id) VALUES ('CP-KNOWN')")
    system = CentralSystem(replace(settings, unknown_chargers="reject"))
    await system.start()
    try:
        async with ocpp_charger(system.ocpp.port, "CP-STRANGER") as cp:
            assert (await cp.boot()).status == "Rejected"
        async with ocpp_charger(system.ocpp.port, "CP-KNOWN") as cp:
            assert (await cp.boot()).status == "Accepted"
    finally:
        await system.stop()


async def test_restart_preserves_chargers_and_open_transactions(
    settings: Settings, db: asyncpg.Connection
) -> None:
    first = CentralSystem(settings)
    await first.start()
    async with raw_charger(first.ocpp.port, "CP-RESTART") as charger:
        await charger.call_ok("BootNotification", BOOT)
        tx = await charger.start_transaction(100, "2026-11-25T10:00:00Z")
    await first.stop()

    second = CentralSystem(replace(settings, unknown_chargers="reject"))
    await second.start()
    try:
        # The charger reconnects without booting; it is known and accepted.
        async with raw_charger(second.ocpp.port, "CP-RESTART") as charger:
            assert "currentTime" in await charger.call_ok("Heartbeat", {})
            await charger.call_ok(
                "MeterValues",
                {
                    "connectorId": 1,
                    "meterValue": [
                        {"timestamp": "2026-11-25T10:10:00Z", "sampledValue": [{"value": "900"}]}
                    ],
                },
            )
            await charger.call_ok(
                "StopTransaction",
                {"transactionId": tx, "meterStop": 1100, "timestamp": "2026-11-25T10:20:00Z"},
            )
            # A new transaction gets a new id from the same sequence.
            tx2 = await charger.start_transaction(1100, "2026-11-25T11:00:00Z")
    finally:
        await second.stop()
    row = await db.fetchrow("SELECT meter_stop_wh, stop_reason FROM transactions WHERE id = $1", tx)
    assert row["meter_stop_wh"] == 1100
    assert await db.fetchval("SELECT count(*) FROM orphan_stops") == 0
    assert (
        await db.fetchval(
            "SELECT transaction_id FROM meter_values WHERE charge_point_id = 'CP-RESTART'"
        )
        == tx
    )
    assert tx2 > tx


async def test_database_hiccup_loses_no_meter_value(
    system: CentralSystem, db: asyncpg.Connection
) -> None:
    def meter_values(round_: int) -> dict[str, object]:
        values = [
            {"value": str(round_ * 100 + i), "measurand": "Voltage", "phase": f"L{i % 3 + 1}"}
            for i in range(50)
        ]
        return {
            "connectorId": 1,
            "meterValue": [{"timestamp": "2026-11-25T10:00:00Z", "sampledValue": values}],
        }

    async with raw_charger(system.ocpp.port, "CP-HICCUP") as charger:
        await charger.call_ok("BootNotification", BOOT)
        await charger.call_ok("MeterValues", meter_values(0))
        async with db.transaction():
            # Hold the table so the next batch is mid-write, then kill the writing backend.
            await db.execute("LOCK TABLE meter_values IN ACCESS EXCLUSIVE MODE")
            pending = asyncio.create_task(charger.call_ok("MeterValues", meter_values(1)))
            async with asyncio.timeout(TIMEOUT):
                while system.meter_values.failures == 0:
                    await db.execute(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = current_database() AND wait_event_type = 'Lock'"
                    )
                    await asyncio.sleep(0.05)
            assert not pending.done(), "the charger is answered only once the rows are stored"
        await pending
        await charger.call_ok("MeterValues", meter_values(2))
    stored = await db.fetchval(
        "SELECT count(*) FROM meter_values WHERE charge_point_id = 'CP-HICCUP'"
    )
    assert stored == 150


async def test_healthz_reports_database_and_listener(system: CentralSystem) -> None:
    async with httpx.AsyncClient() as client:
        response = await client.get(f"http://127.0.0.1:{system.http_port}/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": True, "ocpp_listener": True}


async def test_migrations_are_idempotent_and_safe_concurrently(database_url: str) -> None:
    results = await asyncio.gather(*(migrate_database(database_url) for _ in range(3)))
    assert results == [[], [], []]


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("CSMS_OCPP_PORT", "70000"),
        ("CSMS_DATABASE_URL", "mysql://x"),
        ("CSMS_UNKNOWN_CHARGERS", "maybe"),
        ("CSMS_LOG_FORMAT", "xml"),
    ],
)
async def test_bad_configuration_stops_start_up_with_one_line_and_status_2(
    variable: str, value: str
) -> None:
    returncode, lines = await _serve_until_it_exits({variable: value})
    assert returncode == 2
    assert len(lines) == 1 and variable in lines[0]


async def test_port_in_use_stops_start_up_with_one_line_and_status_1(database_url: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        returncode, lines = await _serve_until_it_exits(
            {
                "CSMS_DATABASE_URL": database_url,
                "CSMS_OCPP_HOST": "127.0.0.1",
                "CSMS_OCPP_PORT": str(taken.getsockname()[1]),
                "CSMS_HTTP_HOST": "127.0.0.1",
                "CSMS_HTTP_PORT": "0",
            }
        )
    assert returncode == 1
    assert lines[-1].startswith("csms: cannot start:") and "address" in lines[-1].lower()


async def _serve_until_it_exits(variables: dict[str, str]) -> tuple[int | None, list[str]]:
    """Run ``csms serve`` with these variables; its exit status and stderr lines."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "csms",
        "serve",
        env={**os.environ, **variables},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(TIMEOUT * 3):
        _, err = await process.communicate()
    return process.returncode, err.decode().strip().splitlines()
