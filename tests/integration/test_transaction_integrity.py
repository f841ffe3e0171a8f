"""Transactions an operator bills from: anomalies per transaction, stale ones closed by us."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import structlog

from csms.app import CentralSystem
from csms.domain.events import Event, TransactionStopped
from tests.ocpp_client import RawCharger, raw_charger

BOOT = {"chargePointVendor": "V", "chargePointModel": "M"}


async def _meter(charger: RawCharger, tx: int | None, at: str, wh: int, connector: int = 1) -> None:
    payload: dict[str, Any] = {
        "connectorId": connector,
        "meterValue": [{"timestamp": at, "sampledValue": [{"value": str(wh)}]}],
    }
    if tx is not None:
        payload["transactionId"] = tx
    await charger.call_ok("MeterValues", payload)


async def _stop(charger: RawCharger, tx: int, wh: int, at: str, **extra: Any) -> dict[str, Any]:
    return await charger.call_ok(
        "StopTransaction", {"transactionId": tx, "meterStop": wh, "timestamp": at, **extra}
    )


def _status(connector: int, status: str) -> dict[str, Any]:
    return {"connectorId": connector, "errorCode": "NoError", "status": status}


def _drain(queue: asyncio.Queue[Event]) -> list[Event]:
    return [queue.get_nowait() for _ in range(queue.qsize())]


async def _transaction(db: asyncpg.Connection, tx: int) -> asyncpg.Record:
    return await db.fetchrow("SELECT * FROM transactions WHERE id = $1", tx)


async def test_late_meter_values_of_a_previous_transaction_flag_neither(
    system: CentralSystem, db: asyncpg.Connection
) -> None:
    async with raw_charger(system.ocpp.port, "CP-LATE") as charger:
        await charger.call_ok("BootNotification", BOOT)
        first = await charger.start_transaction(1000, "2026-11-25T10:00:00Z")
        await _meter(charger, first, "2026-11-25T10:10:00Z", 2000)
        await _stop(charger, first, 3000, "2026-11-25T10:30:00Z")
        second = await charger.start_transaction(3000, "2026-11-25T11:00:00Z")
        await _meter(charger, second, "2026-11-25T11:10:00Z", 4000)
        # The charger empties its offline queue: a reading of the first transaction.
        await _meter(charger, first, "2026-11-25T10:20:00Z", 2500)
        # Readings of one transaction arriving out of order are judged by their timestamp.
        await _meter(charger, second, "2026-11-25T11:05:00Z", 3500)
        await _meter(charger, second, "2026-11-25T11:20:00Z", 5000)
        await _stop(charger, second, 5000, "2026-11-25T11:30:00Z")
        third = await charger.start_transaction(5000, "2026-11-25T12:00:00Z")
        await _meter(charger, third, "2026-11-25T12:10:00Z", 6000)
        await _meter(charger, third, "2026-11-25T12:20:00Z", 5900)  # really went backwards
    flags = await db.fetch("SELECT id, meter_anomaly FROM transactions ORDER BY id")
    assert [(r["id"], r["meter_anomaly"]) for r in flags] == [
        (first, False),
        (second, False),
        (third, True),
    ]


async def test_a_zero_to_zero_transaction_is_not_an_anomaly(
    system: CentralSystem, db: asyncpg.Connection
) -> None:
    with structlog.testing.capture_logs() as logs:
        async with raw_charger(system.ocpp.port, "CP-ZERO") as charger:
            await charger.call_ok("BootNotification", BOOT)
            empty = await charger.start_transaction(0, "2026-11-25T10:00:00Z")
            await _stop(charger, empty, 0, "2026-11-25T10:01:00Z")
            below = await charger.start_transaction(500, "2026-11-25T10:05:00Z")
            await _stop(charger, below, 0, "2026-11-25T10:06:00Z")
    assert (await _transaction(db, empty))["meter_anomaly"] is False
    assert (await _transaction(db, below))["meter_anomaly"] is True
    anomalies = [e["transaction_id"] for e in logs if e["event"] == "ocpp.meter_anomaly"]
    assert anomalies == [below]


async def test_stop_without_reason_is_stored_as_local(
    system: CentralSystem, db: asyncpg.Connection
) -> None:
    async with raw_charger(system.ocpp.port, "CP-LOCAL") as charger:
        await charger.call_ok("BootNotification", BOOT)
        plain = await charger.start_transaction(0, "2026-11-25T10:00:00Z")
        await _stop(charger, plain, 10, "2026-11-25T10:01:00Z")
        remote = await charger.start_transaction(10, "2026-11-25T10:05:00Z")
        await _stop(charger, remote, 20, "2026-11-25T10:06:00Z", reason="Remote")
    assert (await _transaction(db, plain))["stop_reason"] == "Local"
    assert (await _transaction(db, remote))["stop_reason"] == "Remote"


async def test_a_forgotten_transaction_is_closed_when_a_new_one_starts_on_its_connector(
    system: CentralSystem, db: asyncpg.Connection
) -> None:
    events = system.events.subscribe()
    with structlog.testing.capture_logs() as logs:
        async with raw_charger(system.ocpp.port, "CP-FORGOT") as charger:
            await charger.call_ok("BootNotification", BOOT)
            old = await charger.start_transaction(1000, "2026-11-25T10:00:00Z")
            await _meter(charger, old, "2026-11-25T10:20:00Z", 1800)
            await _meter(charger, old, "2026-11-25T10:10:00Z", 1400)  # late, not the last
            other = await charger.start_transaction(0, "2026-11-25T10:00:00Z", connector_id=2)
            # It rebooted, forgot the old one, and starts afresh on connector 1.
            new = await charger.start_transaction(1800, "2026-11-25T11:00:00Z")
            # A meter reading without transactionId now belongs to the new one.
            await _meter(charger, None, "2026-11-25T11:10:00Z", 2000)
    system.events.unsubscribe(events)
    closed = await _transaction(db, old)
    assert closed["closed_by_central_system"] is True
    assert closed["stop_reason"] == "Superseded"
    assert closed["superseded_by"] == new
    assert (closed["meter_stop_wh"], closed["meter_anomaly"]) == (1800, False)
    assert closed["stop_timestamp"].isoformat() == "2026-11-25T10:20:00+00:00"
    assert closed["charger_stop_received_at"] is None
    active = await db.fetch(
        "SELECT id FROM transactions WHERE stop_received_at IS NULL ORDER BY id"
    )
    assert [r["id"] for r in active] == [other, new]
    assert (
        await db.fetchval(
            "SELECT transaction_id FROM meter_values WHERE sampled_at = '2026-11-25T11:10:00Z'"
        )
        == new
    )
    superseded = [e for e in logs if e["event"] == "ocpp.transaction_superseded"]
    assert [(e["transaction_id"], e["superseded_by"], e["cause"]) for e in superseded] == [
        (old, new, "new_transaction")
    ]
    assert superseded[0]["connector_id"] == 1 and superseded[0]["energy_wh"] == 800
    stops = [e for e in _drain(events) if isinstance(e, TransactionStopped)]
    assert [(s.transaction_id, s.closed_by_central_system, s.superseded_by) for s in stops] == [
        (old, True, new)
    ]


async def test_a_late_real_stop_of_a_superseded_transaction_is_applied_once(
    system: CentralSystem, db: asyncpg.Connection
) -> None:
    stop = {
        "reason": "PowerLoss",
        "transactionData": [
            {"timestamp": "2026-11-25T10:30:00Z", "sampledValue": [{"value": "1900"}]}
        ],
    }
    with structlog.testing.capture_logs() as logs:
        async with raw_charger(system.ocpp.port, "CP-LATESTOP") as charger:
            await charger.call_ok("BootNotification", BOOT)
            old = await charger.start_transaction(1000, "2026-11-25T10:00:00Z")
            new = await charger.start_transaction(1900, "2026-11-25T11:00:00Z")
            await _stop(charger, old, 1900, "2026-11-25T10:30:00Z", **stop)
            await _stop(charger, old, 1900, "2026-11-25T10:30:00Z", **stop)  # answer lost
    row = await _transaction(db, old)
    assert row["closed_by_central_system"] is True  # the flag is kept
    assert (row["meter_stop_wh"], row["stop_reason"]) == (1900, "PowerLoss")
    assert row["charger_stop_received_at"] is not None
    assert row["stop_received_at"] < row["charger_stop_received_at"]
    # transactionData belongs to the stopped transaction's connector, not connector 0.
    data = await db.fetch(
        "SELECT connector_id FROM meter_values WHERE transaction_id = $1 AND source = $2",
        old,
        "StopTransaction",
    )
    assert [r["connector_id"] for r in data] == [1]
    assert (await _transaction(db, new))["stop_received_at"] is None  # still running
    resent = [e for e in logs if e["event"] == "ocpp.stop_transaction_retransmitted"]
    assert [(e["transaction_id"], e["connector_id"]) for e in resent] == [(old, 1)]
    stopped = [e for e in logs if e["event"] == "ocpp.transaction_stopped"]
    assert [(e["transaction_id"], e["closed_by_central_system"]) for e in stopped] == [(old, True)]


async def test_a_transaction_left_open_across_a_reboot_is_closed_when_the_connector_is_free(
    system: CentralSystem, db: asyncpg.Connection
) -> None:
    with structlog.testing.capture_logs() as logs:
        async with raw_charger(system.ocpp.port, "CP-REBOOT") as charger:
            await charger.call_ok("BootNotification", BOOT)
            tx = await charger.start_transaction(100, "2026-11-25T10:00:00Z")
            await _meter(charger, tx, "2026-11-25T10:05:00Z", 300)
            await charger.call_ok("StatusNotification", _status(1, "Charging"))
            # Available without a reboot: a stop may be on its way, leave it open.
            await charger.call_ok("StatusNotification", _status(1, "Available"))
            assert (await _transaction(db, tx))["stop_received_at"] is None
        async with raw_charger(system.ocpp.port, "CP-REBOOT") as charger:
            await charger.call_ok("BootNotification", BOOT)
            await charger.call_ok("StatusNotification", _status(1, "Available"))
    row = await _transaction(db, tx)
    assert (row["closed_by_central_system"], row["stop_reason"]) == (True, "Superseded")
    assert (row["meter_stop_wh"], row["superseded_by"]) == (300, None)
    causes = [e["cause"] for e in logs if e["event"] == "ocpp.transaction_superseded"]
    assert causes == ["reboot"]


async def test_a_late_offline_start_does_not_end_the_transaction_running_after_it(
    system: CentralSystem, db: asyncpg.Connection
) -> None:
    async with raw_charger(system.ocpp.port, "CP-OFFLINE") as charger:
        await charger.call_ok("BootNotification", BOOT)
        running = await charger.start_transaction(500, "2026-11-25T11:00:00Z")
        # Queued while offline, delivered out of order: it started an hour earlier.
        earlier = await charger.start_transaction(100, "2026-11-25T10:00:00Z")
    assert (await _transaction(db, running))["stop_received_at"] is None
    assert (await _transaction(db, earlier))["stop_received_at"] is None
