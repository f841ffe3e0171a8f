"""Bad input gets the right CALLERROR and the connection stays up; field deviations are kept."""

from __future__ import annotations

import json

import asyncpg
import pytest
import structlog
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from csms.app import CentralSystem
from csms.config import Settings
from csms.ocpp16.server import MAX_FRAME_BYTES
from tests.conftest import TIMEOUT
from tests.ocpp_client import raw_charger

BOOT = {"chargePointVendor": "V", "chargePointModel": "M"}


@pytest.mark.parametrize(
    ("frame", "code", "message_id"),
    [
        ('[2, "a1", "Heartbeat", {', "FormationViolation", "a1"),
        ("not json at all", "FormationViolation", "-1"),
        ('{"hello": "world"}', "ProtocolError", "-1"),
        ('[2, "a2"]', "ProtocolError", "a2"),
        ('[7, "a3", "Heartbeat", {}]', "ProtocolError", "a3"),
        ('[2, "a4", "Heartbeat", []]', "FormationViolation", "a4"),
        ('[2, "a5", "FlyToTheMoon", {}]', "NotImplemented", "a5"),
        ('[2, "a6", "Reset", {"type": "Hard"}]', "NotSupported", "a6"),
        (
            '[2, "a7", "StatusNotification", {"connectorId": 1, "status": "Available"}]',
            "OccurenceConstraintViolation",
            "a7",
        ),
        (
            '[2, "a8", "StatusNotification", '
            '{"connectorId": "one", "errorCode": "NoError", "status": "Available"}]',
            "TypeConstraintViolation",
            "a8",
        ),
        (
            '[2, "a9", "StatusNotification", '
            '{"connectorId": 1, "errorCode": "NoError", "status": "Dancing"}]',
            "PropertyConstraintViolation",
            "a9",
        ),
        (
            '[2, "a10", "StartTransaction", {"connectorId": 1, "idTag": "T", "meterStart": 0, '
            '"timestamp": "yesterday"}]',
            "PropertyConstraintViolation",
            "a10",
        ),
    ],
)
async def test_bad_frame_gets_matching_call_error_and_connection_stays_open(
    system: CentralSystem, frame: str, code: str, message_id: str
) -> None:
    async with raw_charger(system.ocpp.port, "CP-BAD") as charger:
        await charger.call_ok("BootNotification", BOOT)
        answer = await charger.send_raw(frame)
        assert answer[0] == 4
        assert answer[1] == message_id
        assert answer[2] == code
        # Still connected and served.
        assert "currentTime" in await charger.call_ok("Heartbeat", {})


async def test_common_deviations_are_accepted_normalised_and_logged_once(
    system: CentralSystem, db: asyncpg.Connection
) -> None:
    with structlog.testing.capture_logs() as logs:
        async with raw_charger(system.ocpp.port, "CP-ODD") as charger:
            await charger.call_ok("BootNotification", {**BOOT, "vendorSpecific": {"x": 1}})
            await charger.call_ok(
                "StatusNotification",
                {
                    "connectorId": "1",
                    "errorCode": "noError",
                    "status": "charging",
                    "timestamp": "2026-11-25T10:00:00",
                },
            )
            started = await charger.call_ok(
                "StartTransaction",
                {
                    "connectorId": 1,
                    "idTag": "a-very-long-id-tag-of-28-chars",
                    "meterStart": "1234.4",
                    "timestamp": "2026-11-25T11:00:00+01:00",
                },
            )
            tx = started["transactionId"]
            await charger.call_ok(
                "MeterValues",
                {
                    "connectorId": 1,
                    "meterValue": [
                        {
                            "timestamp": "2026-11-25T10:05:00.1234567Z",
                            "sampledValue": [
                                {"value": 2.5, "unit": "kWh"},
                                {
                                    "value": "11",
                                    "measurand": "Power.Active.Import",
                                    "unit": "kW",
                                    "vendorQuality": "good",
                                },
                            ],
                        }
                    ],
                },
            )
            await charger.call_ok(
                "StatusNotification",
                {"connectorId": 2, "errorCode": "NoError", "status": "Occupied"},
            )
    status = await db.fetchrow(
        "SELECT status, error_code, reported_at FROM connectors "
        "WHERE charge_point_id = 'CP-ODD' AND connector_id = 1"
    )
    assert (status["status"], status["error_code"]) == ("Charging", "NoError")
    assert status["reported_at"].isoformat() == "2026-11-25T10:00:00+00:00"
    occupied = await db.fetchval(
        "SELECT status FROM connectors WHERE charge_point_id = 'CP-ODD' AND connector_id = 2"
    )
    assert occupied == "Preparing"
    transaction = await db.fetchrow("SELECT * FROM transactions WHERE id = $1", tx)
    assert transaction["meter_start_wh"] == 1234
    assert transaction["start_timestamp"].isoformat() == "2026-11-25T10:00:00+00:00"
    assert transaction["id_tag"] == "a-very-long-id-tag-of-28-chars"
    rows = await db.fetch(
        "SELECT measurand, value, unit, raw_value, raw_unit, transaction_id, extra "
        "FROM meter_values WHERE charge_point_id = 'CP-ODD' ORDER BY measurand"
    )
    energy, power = rows
    # MeterValues without transactionId during a transaction belong to it.
    assert energy["transaction_id"] == tx == power["transaction_id"]
    assert (energy["value"], energy["unit"], energy["raw_value"], energy["raw_unit"]) == (
        2500.0,
        "Wh",
        "2.5",
        "kWh",
    )
    assert (power["value"], power["unit"]) == (11000.0, "W")
    assert json.loads(power["extra"]) == {"vendorQuality": "good"}
    boot = await db.fetchval("SELECT boot_payload FROM charge_points WHERE id = 'CP-ODD'")
    assert json.loads(boot)["vendorSpecific"] == {"x": 1}
    kinds = [e["kind"] for e in logs if e["event"] == "ocpp.nonconforming"]
    assert len(kinds) == len(set(kinds)), "each deviation is logged once per charger"
    for expected in (
        "enum_case",
        "number_as_string",
        "timestamp_no_zone",
        "enum_alias",
        "string_as_number",
        "unit_kWh",
        "meter_values_without_transaction_id",
    ):
        assert expected in kinds


async def test_overlapping_calls_are_answered_in_order(system: CentralSystem) -> None:
    async with raw_charger(system.ocpp.port, "CP-EAGER") as charger:
        await charger.call_ok("BootNotification", BOOT)
        # Firmware that does not wait for our answer before its next CALL.
        for i in range(5):
            await charger.ws.send(json.dumps([2, f"hb{i}", "Heartbeat", {}]))
        answers = [await charger.receive() for _ in range(5)]
    assert [a[1] for a in answers] == [f"hb{i}" for i in range(5)]
    assert all(a[0] == 3 for a in answers)


async def test_meter_register_going_backwards_flags_the_transaction(
    system: CentralSystem, db: asyncpg.Connection
) -> None:
    async with raw_charger(system.ocpp.port, "CP-BACK") as charger:
        await charger.call_ok("BootNotification", BOOT)
        tx = await charger.start_transaction(5000, "2026-11-25T10:00:00Z")
        for value in ("6000", "100"):
            await charger.call_ok(
                "MeterValues",
                {
                    "connectorId": 1,
                    "transactionId": tx,
                    "meterValue": [
                        {"timestamp": "2026-11-25T10:01:00Z", "sampledValue": [{"value": value}]}
                    ],
                },
            )
        await charger.call_ok(
            "StopTransaction",
            {"transactionId": tx, "meterStop": 200, "timestamp": "2026-11-25T10:30:00Z"},
        )
    row = await db.fetchrow(
        "SELECT meter_start_wh, meter_stop_wh, meter_anomaly FROM transactions WHERE id = $1", tx
    )
    assert (row["meter_start_wh"], row["meter_stop_wh"], row["meter_anomaly"]) == (5000, 200, True)


async def test_charger_without_a_clock_keeps_its_timestamp_flagged(
    system: CentralSystem, db: asyncpg.Connection
) -> None:
    async with raw_charger(system.ocpp.port, "CP-1970") as charger:
        await charger.call_ok("BootNotification", BOOT)
        await charger.call_ok(
            "StatusNotification",
            {
                "connectorId": 1,
                "errorCode": "NoError",
                "status": "Available",
                "timestamp": "1970-01-01T00:00:05Z",
            },
        )
    row = await db.fetchrow(
        "SELECT reported_at, received_at, clock_suspect FROM status_history "
        "WHERE charge_point_id = 'CP-1970'"
    )
    assert row["reported_at"].year == 1970
    assert row["clock_suspect"] is True
    assert row["received_at"].year >= 2026


async def test_handshake_without_ocpp16_subprotocol_is_refused_and_logged(
    system: CentralSystem,
) -> None:
    with structlog.testing.capture_logs() as logs:
        with pytest.raises(InvalidStatus) as refused:
            async with connect(
                f"ws://127.0.0.1:{system.ocpp.port}/ocpp/CP-X",
                subprotocols=["ocpp2.0.1"],  # type: ignore[list-item]
                open_timeout=TIMEOUT,
            ):
                pass
    assert refused.value.response.status_code == 400
    refusals = [e for e in logs if e["event"] == "ocpp.handshake_refused"]
    assert refusals and refusals[0]["reason"] == "no_ocpp16_subprotocol"


@pytest.mark.parametrize(
    ("path", "identity"),
    [
        ("/ocpp/CP%20007", "CP 007"),
        ("/CP-008", "CP-008"),
        ("/ocpp/CP-009/", "CP-009"),
        ("/some/deep/base/CP-010?token=x", "CP-010"),
    ],
)
async def test_identity_is_the_last_path_segment_percent_decoded(
    system: CentralSystem, db: asyncpg.Connection, path: str, identity: str
) -> None:
    url = f"ws://127.0.0.1:{system.ocpp.port}{path}"
    # Old firmware spells the subprotocol in upper case and offers 1.5 as well.
    offered = ["OCPP1.6", "ocpp1.5"]
    async with connect(url, subprotocols=offered, open_timeout=TIMEOUT) as ws:  # type: ignore[arg-type]
        assert ws.subprotocol == "OCPP1.6"
        await ws.send(json.dumps([2, "b", "BootNotification", BOOT]))
        answer = json.loads(await ws.recv())
    assert answer[2]["status"] == "Accepted"
    assert await db.fetchval("SELECT count(*) FROM charge_points WHERE id = $1", identity) == 1


async def test_url_without_identity_is_refused(system: CentralSystem) -> None:
    with pytest.raises(InvalidStatus) as refused:
        async with connect(
            f"ws://127.0.0.1:{system.ocpp.port}/",
            subprotocols=["ocpp1.6"],  # type: ignore[list-item]
            open_timeout=TIMEOUT,
        ):
            pass
    assert refused.value.response.status_code == 404


async def test_retransmitted_stop_transaction_is_answered_and_changes_nothing(
    system: CentralSystem, db: asyncpg.Connection
) -> None:
    events = system.events.subscribe()
    stop = {
        "transactionId": 0,
        "meterStop": 900,
        "timestamp": "2026-11-25T10:30:00Z",
        "transactionData": [
            {"timestamp": "2026-11-25T10:30:00Z", "sampledValue": [{"value": "900"}]}
        ],
    }
    async with raw_charger(system.ocpp.port, "CP-RESTOP") as charger:
        await charger.call_ok("BootNotification", BOOT)
        tx = await charger.start_transaction(100, "2026-11-25T10:00:00Z")
        stop["transactionId"] = tx
        await charger.call_ok("StopTransaction", stop)
        first = await db.fetchval("SELECT stop_received_at FROM transactions WHERE id = $1", tx)
    # The answer was lost; the charger reconnects and resends the same stop.
    async with raw_charger(system.ocpp.port, "CP-RESTOP") as charger:
        await charger.call_ok("StopTransaction", {**stop, "meterStop": 900})
    system.events.unsubscribe(events)
    stopped = [
        e
        for e in [events.get_nowait() for _ in range(events.qsize())]
        if type(e).__name__ == "TransactionStopped"
    ]
    assert len(stopped) == 1, "a resent stop must not be billed twice"
    assert await db.fetchval("SELECT stop_received_at FROM transactions WHERE id = $1", tx) == first
    assert await db.fetchval("SELECT count(*) FROM meter_values WHERE transaction_id = $1", tx) == 1


START = {"connectorId": 1, "idTag": "T", "meterStart": 0, "timestamp": "2026-11-25T10:00:00Z"}


@pytest.mark.parametrize(
    ("action", "frame_payload", "field"),
    [
        ("StartTransaction", json.dumps({**START, "idTag": "T\u0000"}), "idTag"),
        ("StartTransaction", json.dumps({**START, "vendor": "\udc00"}), "vendor"),
        ("StartTransaction", json.dumps(START)[:-1] + ', "vendorCount": 1e400}', "vendorCount"),
        (
            "StopTransaction",
            '{"transactionId": 77, "meterStop": 5, "timestamp": "2026-11-25T10:00:00Z", '
            '"vendorRatio": -1e400}',
            "vendorRatio",
        ),
        (
            "StopTransaction",
            json.dumps(
                {"transactionId": 78, "meterStop": 5, "timestamp": "2026-11-25T10:00:00Z"}
                | {"idTag": "A\u0000B"}
            ),
            "idTag",
        ),
        (
            "MeterValues",
            json.dumps(
                {
                    "connectorId": 1,
                    "meterValue": [
                        {"timestamp": "2026-11-25T10:00:00Z", "sampledValue": [{"value": "1\0"}]}
                    ],
                }
            ),
            "meterValue.0.sampledValue.0.value",
        ),
        (
            "StatusNotification",
            json.dumps({"connectorId": 1, "errorCode": "NoError", "status": "Available"})[:-1]
            + ', "info": "\\ud800"}',
            "info",
        ),
    ],
)
async def test_value_postgresql_cannot_hold_is_refused_before_answering(
    system: CentralSystem, db: asyncpg.Connection, action: str, frame_payload: str, field: str
) -> None:
    async with raw_charger(system.ocpp.port, "CP-NUL") as charger:
        await charger.call_ok("BootNotification", BOOT)
        answer = await charger.send_raw(f'[2, "x1", "{action}", {frame_payload}]')
        assert answer[:3] == [4, "x1", "PropertyConstraintViolation"]
        assert answer[4] == {"field": field}
        assert "currentTime" in await charger.call_ok("Heartbeat", {})
    for table in ("transactions", "orphan_stops", "meter_values", "status_history"):
        assert await db.fetchval(f"SELECT count(*) FROM {table}") == 0, table


@pytest.mark.parametrize("levels", [40, 990, 10_000])
async def test_deeply_nested_frame_is_a_formation_violation_and_the_connection_stays(
    system: CentralSystem, levels: int
) -> None:
    deep = "[" * levels + "]" * levels
    with structlog.testing.capture_logs() as logs:
        async with raw_charger(system.ocpp.port, "CP-DEEP") as charger:
            await charger.call_ok("BootNotification", BOOT)
            answer = await charger.send_raw(f'[2, "d1", "DataTransfer", {{"vendorId": {deep}}}]')
            assert answer[:3] == [4, "d1", "FormationViolation"]
            assert "currentTime" in await charger.call_ok("Heartbeat", {})
    assert not [e for e in logs if e["log_level"] == "error"]


async def test_frame_over_the_size_limit_closes_with_1009_and_the_charger_reconnects(
    system: CentralSystem,
) -> None:
    async with raw_charger(system.ocpp.port, "CP-HUGE") as charger:
        await charger.call_ok("BootNotification", BOOT)
        blob = "x" * (MAX_FRAME_BYTES + 1)
        with pytest.raises(ConnectionClosed) as closed:
            await charger.send_raw(f'[2, "h1", "DataTransfer", {{"vendorId": "{blob}"}}]')
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
    async with raw_charger(system.ocpp.port, "CP-HUGE") as charger:
        assert "currentTime" in await charger.call_ok("Heartbeat", {})


async def test_invalid_utf8_closes_with_1007(system: CentralSystem) -> None:
    async with raw_charger(system.ocpp.port, "CP-UTF8") as charger:
        await charger.call_ok("BootNotification", BOOT)
        await charger.ws.send(b'[2, "u1", "Heartbeat", {"x": "\xff"}]', text=True)
        with pytest.raises(ConnectionClosed) as closed:
            await charger.receive()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1007


@pytest.mark.parametrize(
    ("action", "payload"),
    [
        ("StartTransaction", {**START, "connectorId": 0}),
        ("StartTransaction", {**START, "connectorId": -2}),
        (
            "MeterValues",
            {
                "connectorId": -1,
                "meterValue": [
                    {"timestamp": "2026-11-25T10:00:00Z", "sampledValue": [{"value": "1"}]}
                ],
            },
        ),
        ("StatusNotification", {"connectorId": -1, "errorCode": "NoError", "status": "Available"}),
    ],
)
async def test_connector_id_1_6_does_not_allow_is_refused_and_nothing_stored(
    system: CentralSystem, db: asyncpg.Connection, action: str, payload: dict[str, object]
) -> None:
    async with raw_charger(system.ocpp.port, "CP-CONN") as charger:
        await charger.call_ok("BootNotification", BOOT)
        answer = await charger.call(action, payload)
    assert answer[0] == 4 and answer[2] == "PropertyConstraintViolation"
    assert answer[4] == {"field": "connectorId"}
    for table in ("transactions", "meter_values", "status_history"):
        assert await db.fetchval(f"SELECT count(*) FROM {table}") == 0, table


async def test_connector_id_no_charger_has_is_kept_in_history_but_creates_no_connector(
    system: CentralSystem, db: asyncpg.Connection
) -> None:
    status = {"errorCode": "NoError", "status": "Available", "timestamp": "2026-11-25T10:00:00Z"}
    with structlog.testing.capture_logs() as logs:
        async with raw_charger(system.ocpp.port, "CP-MANY") as charger:
            await charger.call_ok("BootNotification", BOOT)
            await charger.call_ok("StatusNotification", {**status, "connectorId": 1})
            await charger.call_ok("StatusNotification", {**status, "connectorId": 2_000_000})
            # A connector it never reported: stored as sent, logged.
            await charger.start_transaction(10, "2026-11-25T10:01:00Z", connector_id=3)
    connectors = await db.fetch(
        "SELECT connector_id FROM connectors WHERE charge_point_id = $1", "CP-MANY"
    )
    assert [r["connector_id"] for r in connectors] == [1]
    history = await db.fetch("SELECT connector_id FROM status_history ORDER BY connector_id")
    assert [r["connector_id"] for r in history] == [1, 2_000_000]
    assert await db.fetchval("SELECT connector_id FROM transactions") == 3
    kinds = {e["kind"] for e in logs if e["event"] == "ocpp.nonconforming"}
    assert {"connector_out_of_range", "connector_not_reported"} <= kinds


async def test_boot_with_40_character_serial_number_is_accepted_and_kept_in_full(
    system: CentralSystem, db: asyncpg.Connection
) -> None:
    serial = "SN-" + "0123456789" * 3 + "ABCDEFG"
    assert len(serial) == 40
    with structlog.testing.capture_logs() as logs:
        async with raw_charger(system.ocpp.port, "CP-LONGSN") as charger:
            answer = await charger.call_ok(
                "BootNotification", {**BOOT, "chargeBoxSerialNumber": serial}
            )
    assert answer["status"] == "Accepted"
    stored = await db.fetchval(
        "SELECT charge_box_serial_number FROM charge_points WHERE id = 'CP-LONGSN'"
    )
    assert stored == serial
    kinds = [e["kind"] for e in logs if e["event"] == "ocpp.nonconforming"]
    assert kinds.count("string_too_long") == 1


async def test_resends_after_a_restart_are_stored_once(
    settings: Settings, db: asyncpg.Connection
) -> None:
    meter_values = {
        "connectorId": 1,
        "meterValue": [
            {"timestamp": "2026-11-25T10:00:00Z", "sampledValue": [{"value": "5"}, {"value": "6"}]}
        ],
    }
    status = {
        "connectorId": 1,
        "errorCode": "NoError",
        "status": "Available",
        "timestamp": "2026-11-25T10:00:00Z",
    }
    orphan = {"transactionId": 4242, "meterStop": 9, "timestamp": "2026-11-25T10:30:00Z"}
    for _ in range(2):  # a new process each time: nothing remembered in memory
        central = CentralSystem(settings)
        await central.start()
        try:
            async with raw_charger(central.ocpp.port, "CP-RESEND") as charger:
                await charger.call_ok("MeterValues", meter_values)
                await charger.call_ok("StatusNotification", status)
                await charger.call_ok("StopTransaction", orphan)
        finally:
            await central.stop()
    assert await db.fetchval("SELECT count(*) FROM meter_values") == 2
    assert await db.fetchval("SELECT count(*) FROM status_history") == 1
    assert await db.fetchval("SELECT count(*) FROM orphan_stops") == 1
