"""Every charger-initiated OCPP 1.6 message is answered per the spec and stored."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import asyncpg
from ocpp.v16 import call
from ocpp.v16.enums import ChargePointErrorCode, ChargePointStatus

from csms.app import CentralSystem
from csms.db import id_tags
from tests.conftest import TIMEOUT
from tests.ocpp_client import ocpp_charger


def _now() -> str:
    return datetime.now(UTC).isoformat()


async def _eventually(db: asyncpg.Connection, query: str, *args: object) -> object:
    """Poll until ``query`` returns a non-null value (writes are batched), bounded."""
    async with asyncio.timeout(TIMEOUT):
        while True:
            value = await db.fetchval(query, *args)
            if value is not None and value is not False:
                return value
            await asyncio.sleep(0.05)


async def test_boot_is_accepted_with_interval_and_stored(
    system: CentralSystem, db: asyncpg.Connection
) -> None:
    async with ocpp_charger(system.ocpp.port, "CP-1") as cp:
        result = await cp.boot(firmware_version="1.2.3", charge_point_serial_number="SN-9")
    assert result.status == "Accepted"
    assert result.interval == 300
    row = await db.fetchrow("SELECT * FROM charge_points WHERE id = 'CP-1'")
    assert row["vendor"] == "TestVendor"
    assert row["model"] == "TestModel"
    assert row["firmware_version"] == "1.2.3"
    assert row["serial_number"] == "SN-9"
    assert row["registration_status"] == "Accepted"
    assert row["last_boot_at"] is not None


async def test_heartbeat_returns_server_time_and_updates_last_seen(
    system: CentralSystem, db: asyncpg.Connection
) -> None:
    async with ocpp_charger(system.ocpp.port, "CP-HB") as cp:
        await cp.boot()
        before = datetime.now(UTC)
        result = await cp.call(call.Heartbeat())
        await system.presence.flush()
    current = datetime.fromisoformat(result.current_time)
    assert abs(current - before) < timedelta(seconds=5)
    last_seen = await db.fetchval("SELECT last_seen_at FROM charge_points WHERE id = 'CP-HB'")
    assert last_seen >= before - timedelta(seconds=1)


async def test_status_notification_keeps_current_status_and_history(
    system: CentralSystem, db: asyncpg.Connection
) -> None:
    async with ocpp_charger(system.ocpp.port, "CP-ST") as cp:
        await cp.boot()
        for connector, status in [(0, "Available"), (1, "Available"), (1, "Preparing")]:
            await cp.call(
                call.StatusNotification(
                    connector_id=connector,
                    error_code=ChargePointErrorCode.no_error,
                    status=ChargePointStatus(status),
                    timestamp=_now(),
                )
            )
    current = await db.fetch(
        "SELECT connector_id, status FROM connectors WHERE charge_point_id = 'CP-ST' "
        "ORDER BY connector_id"
    )
    assert [(r["connector_id"], r["status"]) for r in current] == [
        (0, "Available"),
        (1, "Preparing"),
    ]
    history = await db.fetch(
        "SELECT connector_id, status FROM status_history WHERE charge_point_id = 'CP-ST' "
        "ORDER BY id"
    )
    assert [(r["connector_id"], r["status"]) for r in history] == [
        (0, "Available"),
        (1, "Available"),
        (1, "Preparing"),
    ]


async def test_authorize_answers_from_the_id_tag_list(
    system: CentralSystem, db: asyncpg.Connection
) -> None:
    past = datetime.now(UTC) - timedelta(days=1)
    await id_tags.upsert(system.pool, "GOOD-TAG")
    await id_tags.upsert(system.pool, "BLOCKED-TAG", status="Blocked")
    await id_tags.upsert(system.pool, "OLD-TAG", expiry_date=past)
    await id_tags.upsert(system.pool, "04:A2:B3:C4", parent_id_tag="FLEET-1")
    async with ocpp_charger(system.ocpp.port, "CP-AU") as cp:
        await cp.boot()
        answers = {
            tag: (await cp.call(call.Authorize(id_tag=tag))).id_tag_info
            for tag in ["GOOD-TAG", "BLOCKED-TAG", "OLD-TAG", "UNKNOWN", "04a2b3c4"]
        }
    assert answers["GOOD-TAG"]["status"] == "Accepted"
    assert answers["BLOCKED-TAG"]["status"] == "Blocked"
    assert answers["OLD-TAG"]["status"] == "Expired"
    assert answers["UNKNOWN"]["status"] == "Invalid"
    # A hex UID written without separators and in lower case is the same card.
    assert answers["04a2b3c4"] == {"status": "Accepted", "parent_id_tag": "FLEET-1"}


async def test_transaction_start_meter_values_stop_are_stored(
    system: CentralSystem, db: asyncpg.Connection
) -> None:
    await id_tags.upsert(system.pool, "TAG-1")
    async with ocpp_charger(system.ocpp.port, "CP-TX") as cp:
        await cp.boot()
        started = await cp.call(
            call.StartTransaction(
                connector_id=1, id_tag="TAG-1", meter_start=1000, timestamp=_now()
            )
        )
        tx = started.transaction_id
        assert started.id_tag_info["status"] == "Accepted"
        await cp.call(
            call.MeterValues(
                connector_id=1,
                transaction_id=tx,
                meter_value=[
                    {
                        "timestamp": _now(),
                        "sampledValue": [
                            {"value": "1500"},
                            {"value": "7200", "measurand": "Power.Active.Import", "unit": "W"},
                            {
                                "value": "16",
                                "measurand": "Current.Import",
                                "phase": "L1",
                                "unit": "A",
                            },
                        ],
                    }
                ],
            )
        )
        stopped = await cp.call(
            call.StopTransaction(
                meter_stop=2500,
                timestamp=_now(),
                transaction_id=tx,
                reason="EVDisconnected",
                id_tag="TAG-1",
                transaction_data=[
                    {
                        "timestamp": _now(),
                        "sampledValue": [{"value": "2500", "context": "Transaction.End"}],
                    }
                ],
            )
        )
    assert stopped.id_tag_info["status"] == "Accepted"
    row = await db.fetchrow("SELECT * FROM transactions WHERE id = $1", tx)
    assert row["charge_point_id"] == "CP-TX"
    assert row["meter_start_wh"] == 1000
    assert row["meter_stop_wh"] == 2500
    assert row["stop_reason"] == "EVDisconnected"
    assert row["meter_anomaly"] is False
    values = await db.fetch(
        "SELECT measurand, phase, unit, context, value, source FROM meter_values "
        "WHERE transaction_id = $1 ORDER BY source, measurand",
        tx,
    )
    assert [tuple(v) for v in values] == [
        ("Current.Import", "L1", "A", "Sample.Periodic", 16.0, "MeterValues"),
        ("Energy.Active.Import.Register", None, "Wh", "Sample.Periodic", 1500.0, "MeterValues"),
        ("Power.Active.Import", None, "W", "Sample.Periodic", 7200.0, "MeterValues"),
        ("Energy.Active.Import.Register", None, "Wh", "Transaction.End", 2500.0, "StopTransaction"),
    ]


async def test_retransmitted_start_transaction_returns_same_id(
    system: CentralSystem, db: asyncpg.Connection
) -> None:
    timestamp = _now()
    request = call.StartTransaction(
        connector_id=2, id_tag="ANY", meter_start=42, timestamp=timestamp
    )
    async with ocpp_charger(system.ocpp.port, "CP-DUP") as cp:
        await cp.boot()
        first = await cp.call(request)
    # The answer was "lost": the charger reconnects and sends the same message again.
    async with ocpp_charger(system.ocpp.port, "CP-DUP") as cp:
        second = await cp.call(request)
    assert first.transaction_id == second.transaction_id
    assert await db.fetchval("SELECT count(*) FROM transactions") == 1


async def test_stop_for_unknown_transaction_is_accepted_and_recorded(
    system: CentralSystem, db: asyncpg.Connection
) -> None:
    async with ocpp_charger(system.ocpp.port, "CP-ORPHAN") as cp:
        await cp.boot()
        result = await cp.call(
            call.StopTransaction(meter_stop=900, timestamp=_now(), transaction_id=-1)
        )
    assert result.id_tag_info is None
    orphan = await db.fetchrow("SELECT * FROM orphan_stops")
    assert orphan["charge_point_id"] == "CP-ORPHAN"
    assert orphan["transaction_id"] == -1
    assert orphan["meter_stop_wh"] == 900


async def test_data_transfer_is_stored_and_unknown_vendor_answered(
    system: CentralSystem, db: asyncpg.Connection
) -> None:
    async def echo(_cp: str, message_id: str | None, data: str | None) -> dict[str, str]:
        return {"status": "Accepted", "data": f"echo:{data}"}

    system.services.data_transfer_handlers["com.example"] = echo
    async with ocpp_charger(system.ocpp.port, "CP-DT") as cp:
        await cp.boot()
        unknown = await cp.call(call.DataTransfer(vendor_id="com.other", data="x"))
        known = await cp.call(call.DataTransfer(vendor_id="com.example", message_id="m", data="hi"))
    assert unknown.status == "UnknownVendorId"
    assert (known.status, known.data) == ("Accepted", "echo:hi")
    rows = await db.fetch("SELECT vendor_id, status FROM data_transfers ORDER BY id")
    assert [tuple(r) for r in rows] == [
        ("com.other", "UnknownVendorId"),
        ("com.example", "Accepted"),
    ]


async def test_firmware_and_diagnostics_status_are_stored(
    system: CentralSystem, db: asyncpg.Connection
) -> None:
    async with ocpp_charger(system.ocpp.port, "CP-FW") as cp:
        await cp.boot()
        await cp.call(call.FirmwareStatusNotification(status="Downloading"))
        await cp.call(call.FirmwareStatusNotification(status="Installed"))
        await cp.call(call.DiagnosticsStatusNotification(status="Uploaded"))
    row = await db.fetchrow(
        "SELECT firmware_status, diagnostics_status FROM charge_points WHERE id = 'CP-FW'"
    )
    assert (row["firmware_status"], row["diagnostics_status"]) == ("Installed", "Uploaded")
    history = await db.fetch("SELECT kind, status FROM charge_point_notifications ORDER BY id")
    assert [tuple(r) for r in history] == [
        ("firmware", "Downloading"),
        ("firmware", "Installed"),
        ("diagnostics", "Uploaded"),
    ]
