"""The command API: every central-system-initiated 1.6 action, offline and silent chargers."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest
import structlog

from csms.app import CentralSystem
from csms.ocpp16.errors import (
    CallErrorReceived,
    ChargerBusy,
    CommandTimeout,
    InvalidCommand,
    NotConnected,
)
from tests.conftest import TIMEOUT
from tests.ocpp_client import RawCharger, ocpp_charger, raw_charger

BOOT = {"chargePointVendor": "V", "chargePointModel": "M"}
PROFILE = {
    "chargingProfileId": 1,
    "stackLevel": 0,
    "chargingProfilePurpose": "TxDefaultProfile",
    "chargingProfileKind": "Absolute",
    "chargingSchedule": {
        "chargingRateUnit": "W",
        "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 7000}],
    },
}
# action: (request, the charger's answer)
ACTIONS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "CancelReservation": ({"reservationId": 1}, {"status": "Accepted"}),
    "ChangeAvailability": ({"connectorId": 1, "type": "Inoperative"}, {"status": "Scheduled"}),
    "ChangeConfiguration": ({"key": "HeartbeatInterval", "value": "60"}, {"status": "Accepted"}),
    "ClearCache": ({}, {"status": "Accepted"}),
    "ClearChargingProfile": ({"id": 1}, {"status": "Accepted"}),
    "DataTransfer": ({"vendorId": "com.example", "data": "x"}, {"status": "Accepted"}),
    "GetCompositeSchedule": ({"connectorId": 1, "duration": 3600}, {"status": "Rejected"}),
    "GetConfiguration": (
        {"key": ["HeartbeatInterval"]},
        {"configurationKey": [{"key": "HeartbeatInterval", "readonly": False, "value": "60"}]},
    ),
    "GetDiagnostics": ({"location": "ftp://diag.example.com/up"}, {"fileName": "d.zip"}),
    "GetLocalListVersion": ({}, {"listVersion": 3}),
    "RemoteStartTransaction": ({"idTag": "T1", "connectorId": 1}, {"status": "Accepted"}),
    "RemoteStopTransaction": ({"transactionId": 1}, {"status": "Accepted"}),
    "ReserveNow": (
        {"connectorId": 1, "expiryDate": "2026-12-01T00:00:00Z", "idTag": "T1", "reservationId": 1},
        {"status": "Accepted"},
    ),
    "Reset": ({"type": "Soft"}, {"status": "Accepted"}),
    "SendLocalList": (
        {
            "listVersion": 4,
            "updateType": "Full",
            "localAuthorizationList": [{"idTag": "T1", "idTagInfo": {"status": "Accepted"}}],
        },
        {"status": "Accepted"},
    ),
    "SetChargingProfile": (
        {"connectorId": 1, "csChargingProfiles": PROFILE},
        {"status": "Accepted"},
    ),
    "TriggerMessage": (
        {"requestedMessage": "StatusNotification", "connectorId": 1},
        {"status": "Accepted"},
    ),
    "UnlockConnector": ({"connectorId": 1}, {"status": "Unlocked"}),
    "UpdateFirmware": (
        {"location": "https://fw.example.com/v2.bin", "retrieveDate": "2026-12-01T00:00:00Z"},
        {},
    ),
}


@contextlib.asynccontextmanager
async def responder(port: int, charge_point_id: str) -> AsyncIterator[list[tuple[str, dict]]]:
    """A raw charger that answers every CALL with the canned answer for its action."""
    received: list[tuple[str, dict[str, Any]]] = []
    async with raw_charger(port, charge_point_id) as charger:
        await charger.call_ok("BootNotification", BOOT)

        async def answer_all(charger: RawCharger) -> None:
            async for text in charger.ws:
                _, message_id, action, payload = json.loads(text)
                received.append((action, payload))
                await charger.ws.send(json.dumps([3, message_id, ACTIONS[action][1]]))

        task = asyncio.create_task(answer_all(charger))
        try:
            yield received
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


async def test_every_central_system_action_reaches_the_charger_and_returns_its_answer(
    system: CentralSystem, db: asyncpg.Connection
) -> None:
    async with responder(system.ocpp.port, "CP-CMD") as received:
        for action, (request, answer) in ACTIONS.items():
            assert await system.commands.send("CP-CMD", action, request) == answer
    assert [a for a, _ in received] == list(ACTIONS)
    assert [p for _, p in received] == [r for r, _ in ACTIONS.values()]
    outcomes = await db.fetch("SELECT action, outcome FROM commands ORDER BY id")
    assert [(r["action"], r["outcome"]) for r in outcomes] == [(a, "answered") for a in ACTIONS]


async def test_command_to_offline_charger_fails_at_once(
    system: CentralSystem, db: asyncpg.Connection
) -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(NotConnected):
        await system.commands.send("CP-NOWHERE", "Reset", {"type": "Soft"})
    assert loop.time() - started < 1.0
    assert await db.fetchval("SELECT outcome FROM commands") == "not_connected"


async def test_command_to_silent_charger_times_out_and_late_answer_is_dropped(
    system: CentralSystem, db: asyncpg.Connection
) -> None:
    with structlog.testing.capture_logs() as logs:
        async with raw_charger(system.ocpp.port, "CP-SILENT") as charger:
            await charger.call_ok("BootNotification", BOOT)
            with pytest.raises(CommandTimeout):
                await system.commands.send("CP-SILENT", "Reset", {"type": "Soft"}, timeout=0.3)
            # The charger finally answers, long after we gave up.
            call = await charger.receive()
            await charger.ws.send(json.dumps([3, call[1], {"status": "Accepted"}]))
            assert "currentTime" in await charger.call_ok("Heartbeat", {})
    assert await db.fetchval("SELECT outcome FROM commands") == "timeout"
    assert any(e["event"] == "ocpp.late_response" for e in logs)


async def test_call_error_from_charger_is_reported_with_its_code(system: CentralSystem) -> None:
    async with raw_charger(system.ocpp.port, "CP-NOPE") as charger:
        await charger.call_ok("BootNotification", BOOT)
        pending = asyncio.create_task(system.commands.send("CP-NOPE", "ClearCache", {}))
        call = await charger.receive()
        await charger.ws.send(json.dumps([4, call[1], "NotSupported", "no cache here", {}]))
        with pytest.raises(CallErrorReceived) as error:
            await pending
    assert error.value.code == "NotSupported"


@pytest.mark.parametrize(
    ("action", "payload"),
    [("Reset", {"type": "Gentle"}), ("Reset", {}), ("BootNotification", {}), ("Nope", {})],
)
async def test_invalid_command_is_refused_before_sending(
    system: CentralSystem, action: str, payload: dict[str, Any]
) -> None:
    with pytest.raises(InvalidCommand):
        await system.commands.send("CP-ANY", action, payload)


async def test_http_command_route_answers_with_the_chargers_reply_or_a_problem(
    system: CentralSystem, api_token: str
) -> None:
    base = f"http://127.0.0.1:{system.http_port}/api/charge-points"
    headers = {"Authorization": f"Bearer {api_token}"}
    async with httpx.AsyncClient(timeout=TIMEOUT, headers=headers) as client:
        offline = await client.post(f"{base}/CP-GONE/commands/Reset", json={"type": "Soft"})
        invalid = await client.post(f"{base}/CP-GONE/commands/Reset", json={"type": "Gentle"})
        async with ocpp_charger(system.ocpp.port, "CP-HTTP") as cp:
            await cp.boot()
            ok = await client.post(f"{base}/CP-HTTP/commands/Reset", json={"type": "Hard"})
            assert cp.received == [("Reset", {"type": "Hard"})]
            cp.answer_delay = 2
            slow = await client.post(
                f"{base}/CP-HTTP/commands/Reset", json={"type": "Soft"}, params={"timeout": 0.2}
            )
    assert (ok.status_code, ok.json()) == (200, {"status": "Accepted"})
    assert offline.status_code == 409
    assert offline.headers["content-type"] == "application/problem+json"
    assert invalid.status_code == 422 and invalid.json()["field"] == "type"
    assert slow.status_code == 504


async def test_cli_command_talks_to_the_running_server(
    system: CentralSystem, api_token: str
) -> None:
    async with ocpp_charger(system.ocpp.port, "CP-CLI") as cp:
        await cp.boot()
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "csms",
            "command",
            "CP-CLI",
            "GetConfiguration",
            '{"key": ["HeartbeatInterval"]}',
            "--url",
            f"http://127.0.0.1:{system.http_port}",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "CSMS_API_TOKEN": api_token},
        )
        async with asyncio.timeout(TIMEOUT * 3):
            out, err = await process.communicate()
    assert process.returncode == 0, err
    answer = json.loads(out)
    assert answer["configurationKey"][0]["key"] == "HeartbeatInterval"
    assert cp.received == [("GetConfiguration", {"key": ["HeartbeatInterval"]})]


# --- the conversation rules: one CALL in flight, answers checked, delivery told apart -------


async def _no_frame_within(charger: RawCharger, seconds: float) -> bool:
    try:
        async with asyncio.timeout(seconds):
            await charger.ws.recv()
    except TimeoutError:
        return True
    return False


async def test_two_commands_at_once_go_out_one_after_the_other(
    system: CentralSystem, db: asyncpg.Connection
) -> None:
    async with raw_charger(system.ocpp.port, "CP-ONE") as charger:
        await charger.call_ok("BootNotification", BOOT)
        first = asyncio.create_task(system.commands.send("CP-ONE", "Reset", {"type": "Soft"}))
        await asyncio.sleep(0)  # submitted in this order
        second = asyncio.create_task(system.commands.send("CP-ONE", "ClearCache", {}))
        call = await charger.receive()
        assert call[2] == "Reset"
        # OCPP-J 1.6 §4.1.1: nothing more until the Reset is answered.
        assert await _no_frame_within(charger, 0.3 * TIMEOUT / 10)
        assert not second.done()
        await charger.ws.send(json.dumps([3, call[1], {"status": "Accepted"}]))
        next_call = await charger.receive()
        assert next_call[2] == "ClearCache"
        await charger.ws.send(json.dumps([3, next_call[1], {"status": "Rejected"}]))
        assert await first == {"status": "Accepted"}
        assert await second == {"status": "Rejected"}
    rows = await db.fetch("SELECT action, outcome FROM commands ORDER BY id")
    assert [(r["action"], r["outcome"]) for r in rows] == [
        ("Reset", "answered"),
        ("ClearCache", "answered"),
    ]


async def test_commands_asked_for_at_once_reach_each_charger_in_the_order_asked(
    system: CentralSystem,
) -> None:
    # Each is recorded before it is queued; the recording must not reorder them.
    keys = [f"Key{n}" for n in range(5)]

    async def charger_side(name: str) -> list[str]:
        async with raw_charger(system.ocpp.port, name) as charger:
            await charger.call_ok("BootNotification", BOOT)
            sends = [
                asyncio.create_task(system.commands.send(name, "GetConfiguration", {"key": [key]}))
                for key in keys
            ]
            seen = []
            for _ in keys:
                call = await charger.receive()
                seen.append(call[3]["key"][0])
                await charger.ws.send(json.dumps([3, call[1], {"configurationKey": []}]))
            await asyncio.gather(*sends)
            return seen

    names = [f"CP-ORDER-{n}" for n in range(3)]
    assert await asyncio.gather(*(charger_side(name) for name in names)) == [keys] * 3


async def test_a_silent_charger_holds_up_its_queue_and_later_callers_fail_unsent(
    system: CentralSystem, db: asyncpg.Connection
) -> None:
    async with raw_charger(system.ocpp.port, "CP-MUTE") as charger:
        await charger.call_ok("BootNotification", BOOT)
        held = asyncio.create_task(
            system.commands.send("CP-MUTE", "Reset", {"type": "Soft"}, timeout=0.8)
        )
        # Each command is recorded before it is queued, so two sent at once may queue in
        # either order: the second is asked for once the first is on the wire.
        call = await charger.receive()  # the Reset, never answered
        waiting = asyncio.create_task(
            system.commands.send("CP-MUTE", "ClearCache", {}, timeout=0.3)
        )
        with pytest.raises(ChargerBusy) as busy:
            await waiting
        assert busy.value.ahead == 1 and "not sent" in str(busy.value)
        with pytest.raises(CommandTimeout):
            await held
        # The queue moves on: the next command goes out and is answered.
        after = asyncio.create_task(system.commands.send("CP-MUTE", "ClearCache", {}))
        next_call = await charger.receive()
        assert next_call[2] == "ClearCache" and next_call[1] != call[1]
        await charger.ws.send(json.dumps([3, next_call[1], {"status": "Accepted"}]))
        assert await after == {"status": "Accepted"}
    rows = await db.fetch("SELECT action, outcome FROM commands ORDER BY id")
    assert [r["outcome"] for r in rows] == ["timeout", "queue_timeout", "answered"]


async def test_each_calls_timeout_counts_from_when_it_was_sent(system: CentralSystem) -> None:
    # Margins of a second or so either way, so a loaded machine cannot flip the outcome.
    loop = asyncio.get_running_loop()
    async with raw_charger(system.ocpp.port, "CP-SLOW") as charger:
        await charger.call_ok("BootNotification", BOOT)
        started = loop.time()
        first = asyncio.create_task(
            system.commands.send("CP-SLOW", "Reset", {"type": "Soft"}, timeout=2.0)
        )
        call = await charger.receive()  # on the wire before the second is asked for
        second = asyncio.create_task(system.commands.send("CP-SLOW", "ClearCache", {}, timeout=3.0))
        await asyncio.sleep(1.0)  # the Reset takes 1.0 s to answer
        await charger.ws.send(json.dumps([3, call[1], {"status": "Accepted"}]))
        next_call = await charger.receive()
        await asyncio.sleep(2.2)  # 3.2 s after the ClearCache was asked for, 2.2 s after sent
        await charger.ws.send(json.dumps([3, next_call[1], {"status": "Accepted"}]))
        assert await first == {"status": "Accepted"}
        assert await second == {"status": "Accepted"}
    assert loop.time() - started > 3.0


async def test_lower_case_answer_is_normalised_and_logged_once(
    system: CentralSystem, api_token: str
) -> None:
    base = f"http://127.0.0.1:{system.http_port}/api/charge-points/CP-LOW/commands"
    with structlog.testing.capture_logs() as logs:
        async with (
            raw_charger(system.ocpp.port, "CP-LOW") as charger,
            httpx.AsyncClient(
                timeout=TIMEOUT, headers={"Authorization": f"Bearer {api_token}"}
            ) as client,
        ):
            await charger.call_ok("BootNotification", BOOT)
            answers = []
            for _ in range(2):
                request = asyncio.create_task(
                    client.post(f"{base}/RemoteStartTransaction", json={"idTag": "T1"})
                )
                call = await charger.receive()
                await charger.ws.send(json.dumps([3, call[1], {"status": "accepted"}]))
                answers.append(await request)
    assert [(a.status_code, a.json()) for a in answers] == [(200, {"status": "Accepted"})] * 2
    kinds = [e["kind"] for e in logs if e["event"] == "ocpp.nonconforming"]
    assert kinds == ["enum_case"]


async def test_answer_missing_a_required_field_is_a_502_naming_it(
    system: CentralSystem, db: asyncpg.Connection, api_token: str
) -> None:
    url = f"http://127.0.0.1:{system.http_port}/api/charge-points/CP-BAD/commands/Reset"
    async with (
        raw_charger(system.ocpp.port, "CP-BAD") as charger,
        httpx.AsyncClient(timeout=TIMEOUT, headers={"Authorization": f"Bearer {api_token}"}) as c,
    ):
        await charger.call_ok("BootNotification", BOOT)
        request = asyncio.create_task(c.post(url, json={"type": "Hard"}))
        call = await charger.receive()
        await charger.ws.send(json.dumps([3, call[1], {"state": "Accepted"}]))
        response = await request
    assert response.status_code == 502
    body = response.json()
    assert body["type"] == "urn:csms:problem:invalid-response"
    assert body["field"] == "status" and "status" in body["detail"]
    assert body["response"] == {"state": "Accepted"}
    row = await db.fetchrow("SELECT outcome, response FROM commands")
    assert row["outcome"] == "invalid_response"
    assert json.loads(row["response"]) == {"state": "Accepted"}


async def test_socket_closed_after_the_command_was_written_is_not_not_connected(
    system: CentralSystem, db: asyncpg.Connection, api_token: str
) -> None:
    base = f"http://127.0.0.1:{system.http_port}/api/charge-points/CP-DROP/commands"
    headers = {"Authorization": f"Bearer {api_token}"}
    with structlog.testing.capture_logs() as logs:
        async with httpx.AsyncClient(timeout=TIMEOUT, headers=headers) as client:
            async with raw_charger(system.ocpp.port, "CP-DROP") as charger:
                await charger.call_ok("BootNotification", BOOT)
                sent = asyncio.create_task(
                    client.post(f"{base}/RemoteStartTransaction", json={"idTag": "T1"})
                )
                call = await charger.receive()
                assert call[2] == "RemoteStartTransaction"
                queued = asyncio.create_task(system.commands.send("CP-DROP", "ClearCache", {}))
                await asyncio.sleep(0.05)
                await charger.ws.close()  # the charger got it, then vanished
            response = await sent
            with pytest.raises(NotConnected):  # queued behind it: never sent
                await queued
            offline = await client.post(f"{base}/RemoteStartTransaction", json={"idTag": "T1"})
    assert response.status_code == 502
    body = response.json()
    assert body["type"] == "urn:csms:problem:connection-lost"
    assert (body["outcome"], body["sent"]) == ("connection_lost", True)
    assert offline.status_code == 409
    assert offline.json()["type"] == "urn:csms:problem:not-connected"
    assert offline.json()["sent"] is False
    rows = await db.fetch("SELECT action, outcome FROM commands ORDER BY id")
    assert [(r["action"], r["outcome"]) for r in rows] == [
        ("RemoteStartTransaction", "connection_lost"),
        ("ClearCache", "not_connected"),
        ("RemoteStartTransaction", "not_connected"),
    ]
    failed = [e["outcome"] for e in logs if e["event"] == "ocpp.command_failed"]
    assert failed == ["connection_lost", "not_connected", "not_connected"]


@pytest.mark.parametrize(
    ("key", "route"),
    [
        ("AuthorizationKey", "POST /api/charge-points/CP-KEY/security/password"),
        ("authorizationkey", "POST /api/charge-points/CP-KEY/security/password"),
        ("SecurityProfile", "PUT /api/charge-points/CP-KEY/security/profile"),
    ],
)
async def test_security_keys_are_refused_on_the_generic_route(
    system: CentralSystem, db: asyncpg.Connection, api_token: str, key: str, route: str
) -> None:
    url = f"http://127.0.0.1:{system.http_port}/api/charge-points/CP-KEY/commands"
    async with (
        ocpp_charger(system.ocpp.port, "CP-KEY") as cp,
        httpx.AsyncClient(timeout=TIMEOUT, headers={"Authorization": f"Bearer {api_token}"}) as c,
    ):
        await cp.boot()
        response = await c.post(
            f"{url}/ChangeConfiguration", json={"key": key, "value": "0123456789abcdef0123"}
        )
        other = await c.post(f"{url}/GetConfiguration", json={"key": [key]})
    assert response.status_code == 422
    body = response.json()
    assert (body["field"], body["route"]) == ("key", route)
    assert route in body["detail"]
    assert other.status_code == 200  # reading the key is fine
    assert [a for a, _ in cp.received] == ["GetConfiguration"]
    assert (
        await db.fetchval("SELECT count(*) FROM commands WHERE action = 'ChangeConfiguration'") == 0
    )
