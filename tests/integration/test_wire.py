"""The socket's message path: CALLs sent without waiting, fragments, a fleet rebooting at once."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import asyncpg

from csms.app import CentralSystem
from csms.ocpp16.connection import QUEUE_HIGH
from tests.ocpp_client import RawCharger, raw_charger

BOOT = {"chargePointVendor": "V", "chargePointModel": "M"}


def _status(connector: int, status: str) -> dict[str, Any]:
    return {"connectorId": connector, "errorCode": "NoError", "status": status}


async def test_calls_sent_without_waiting_are_all_answered_in_the_order_they_came(
    system: CentralSystem, db: asyncpg.Connection
) -> None:
    # Non-conforming firmware: more CALLs in flight than the connection queues before it
    # stops reading; stored ones, immediate ones and a malformed one interleaved.
    count = 3 * QUEUE_HIGH
    async with raw_charger(system.ocpp.port, "CP-PIPE") as charger:
        await charger.call_ok("BootNotification", BOOT)
        sent: list[tuple[str, int]] = []
        for n in range(count):
            if n % 3 == 0:
                # Each its own report time: identical reports are stored once.
                status = {**_status(1, "Available"), "timestamp": f"2026-11-25T10:00:{n:02d}Z"}
                frame = json.dumps([2, f"p{n}", "StatusNotification", status])
                sent.append((f"p{n}", 3))
            elif n == 7:
                frame = f'[2, "p{n}", "Heartbeat", {{'  # not JSON: a CALLERROR, in its turn
                sent.append((f"p{n}", 4))
            else:
                frame = json.dumps([2, f"p{n}", "Heartbeat", {}])
                sent.append((f"p{n}", 3))
            await charger.ws.send(frame)
        answers = [await charger.receive() for _ in range(count)]
        assert [(a[1], a[0]) for a in answers] == sent
        # Still answering one at a time afterwards (reading resumed).
        assert "currentTime" in await charger.call_ok("Heartbeat", {})
    stored = await db.fetchval(
        "SELECT count(*) FROM status_history WHERE charge_point_id = 'CP-PIPE'"
    )
    assert stored == count // 3


async def test_a_fragmented_message_is_joined_and_answered(system: CentralSystem) -> None:
    async with raw_charger(system.ocpp.port, "CP-FRAG") as charger:
        await charger.call_ok("BootNotification", BOOT)
        # An iterable is sent as one message in several frames (RFC 6455 5.4).
        await charger.ws.send(['[2, "f1", "Heart', 'beat", ', "{}]"])
        answer = await charger.receive()
        assert answer[:2] == [3, "f1"] and "currentTime" in answer[2]


async def _reboot_with_open_transaction(port: int, charge_point_id: str) -> int:
    async with raw_charger(port, charge_point_id) as charger:
        await charger.call_ok("BootNotification", BOOT)
        tx = await charger.start_transaction(100, "2026-11-25T10:00:00Z")
    return tx


async def _back_with_connector_free(charger: RawCharger) -> None:
    await charger.call_ok("BootNotification", BOOT)
    await charger.call_ok("StatusNotification", _status(1, "Available"))


async def test_a_fleet_back_from_a_reboot_at_once_has_each_charger_s_stale_transaction_closed(
    system: CentralSystem, db: asyncpg.Connection
) -> None:
    # Their open transactions are read together (one query per event-loop turn): each
    # charger must get its own, and one without any must get none.
    names = [f"CP-FLEET-{n}" for n in range(8)]
    open_tx = {name: await _reboot_with_open_transaction(system.ocpp.port, name) for name in names}
    async with (
        raw_charger(system.ocpp.port, "CP-FLEET-IDLE") as idle,
        raw_charger(system.ocpp.port, names[0]) as c0,
        raw_charger(system.ocpp.port, names[1]) as c1,
        raw_charger(system.ocpp.port, names[2]) as c2,
        raw_charger(system.ocpp.port, names[3]) as c3,
        raw_charger(system.ocpp.port, names[4]) as c4,
        raw_charger(system.ocpp.port, names[5]) as c5,
        raw_charger(system.ocpp.port, names[6]) as c6,
        raw_charger(system.ocpp.port, names[7]) as c7,
    ):
        chargers = [idle, c0, c1, c2, c3, c4, c5, c6, c7]
        await asyncio.gather(*(_back_with_connector_free(c) for c in chargers))
    rows = await db.fetch(
        "SELECT charge_point_id, id, stop_reason, closed_by_central_system FROM transactions"
    )
    assert {r["charge_point_id"]: r["id"] for r in rows} == open_tx
    assert all(
        (r["stop_reason"], r["closed_by_central_system"]) == ("Superseded", True) for r in rows
    )
