"""The simulated charge point against the reference central system and scripted servers."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from ocpp.exceptions import NotImplementedError as OcppNotImplemented
from ocpp.v16 import call
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from bench.reference_server import ReferenceServer
from simulators.charge_point import ChargePoint, Faults, SimClock, Stats
from simulators.cp_runtime import backoff_delay

TIMEOUT = 5.0
SPEED = 100.0  # simulated seconds per real second


class FakeEV:
    """A car that takes ``accept_w`` until its battery is full."""

    def __init__(self, accept_w: float = 7_000.0, capacity_wh: float = 50_000.0, soc=20.0):
        self.accept_w = accept_w
        self.capacity_wh = capacity_wh
        self.soc = soc
        self.absorbed_wh = 0.0

    def acceptance_w(self) -> float:
        return 0.0 if self.soc >= 100.0 else self.accept_w

    def absorb(self, grid_wh: float) -> float:
        self.absorbed_wh += grid_wh
        self.soc = min(100.0, self.soc + grid_wh / self.capacity_wh * 100.0)
        return grid_wh

    @property
    def soc_percent(self) -> float:
        return self.soc


def default_answer(action: str, payload: dict[str, Any], nth: int) -> dict[str, Any] | str | None:
    now = datetime.now(UTC).isoformat()
    if action == "BootNotification":
        return {"status": "Accepted", "currentTime": now, "interval": 300}
    if action == "Heartbeat":
        return {"currentTime": now}
    if action == "Authorize":
        return {"idTagInfo": {"status": "Accepted"}}
    if action == "StartTransaction":
        return {"transactionId": 100 + nth, "idTagInfo": {"status": "Accepted"}}
    return {}


Script = Callable[[str, dict[str, Any], int], dict[str, Any] | str | None]


class ScriptedCSMS:
    """A raw central system: records every CALL, answers by ``script`` (None: lose it,
    "close": drop the socket instead of answering)."""

    def __init__(self, script: Script = default_answer, **serve_kwargs: Any) -> None:
        self.script = script
        self.serve_kwargs = serve_kwargs
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.counts: dict[str, int] = {}
        self.connections = 0
        self.port = 0
        self.closed_by_ping = 0
        self._server: Server | None = None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ocpp"

    def actions(self) -> list[str]:
        return [action for action, _ in self.calls]

    async def handle(self, ws: ServerConnection) -> None:
        self.connections += 1
        try:
            async for text in ws:
                msg = json.loads(text)
                if msg[0] != 2:
                    continue
                action, payload = msg[2], msg[3]
                self.calls.append((action, payload))
                nth = self.counts.get(action, 0)
                self.counts[action] = nth + 1
                reply = self.script(action, payload, nth)
                if reply == "close":
                    ws.transport.abort()
                    return
                if reply is not None:
                    await ws.send(json.dumps([3, msg[1], reply]))
        except ConnectionClosed as exc:
            if exc.rcvd is None and exc.sent is not None and exc.sent.code == 1011:
                self.closed_by_ping += 1

    async def start(self) -> None:
        self._server = await serve(
            self.handle, "127.0.0.1", self.port, subprotocols=["ocpp1.6"], **self.serve_kwargs
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()


@pytest.fixture
async def scripted() -> AsyncIterator[ScriptedCSMS]:
    csms = ScriptedCSMS()
    await csms.start()
    yield csms
    await csms.stop()


@pytest.fixture
async def reference() -> AsyncIterator[ReferenceServer]:
    async with ReferenceServer(record=True) as server:
        yield server


def make_cp(url: str, identity: str = "SIM-0001", **kwargs: Any) -> ChargePoint:
    kwargs.setdefault("clock", SimClock(speed=SPEED))
    kwargs.setdefault("stats", Stats())
    return ChargePoint(identity, url, **kwargs)


def received(server: ReferenceServer, action: str) -> list[dict[str, Any]]:
    return [payload for _, name, payload in server.received if name == action]


async def test_boot_is_followed_by_one_status_per_connector_and_connector_zero(
    reference: ReferenceServer,
) -> None:
    async with make_cp(reference.url, connectors=2) as cp:
        await cp.wait_accepted(TIMEOUT)
        await cp.wait_for(lambda: cp.stats.results["StatusNotification"] == 3, TIMEOUT)
    statuses = received(reference, "StatusNotification")
    assert [(s["connector_id"], s["status"]) for s in statuses] == [
        (0, "Available"),
        (1, "Available"),
        (2, "Available"),
    ]
    assert all(s["timestamp"].endswith("Z") for s in statuses)


@pytest.mark.parametrize("first_status", ["Pending", "Rejected"])
async def test_boot_not_accepted_is_retried_after_interval_and_nothing_else_is_sent(
    first_status: str,
) -> None:
    def script(action: str, payload: dict[str, Any], nth: int) -> dict[str, Any] | None:
        if action == "BootNotification" and nth < 2:
            return {"status": first_status, "currentTime": "2024-01-01T00:00:00Z", "interval": 20}
        return default_answer(action, payload, nth)  # type: ignore[return-value]

    csms = ScriptedCSMS(script)
    await csms.start()
    try:
        async with make_cp(csms.url) as cp:
            await cp.wait_for(lambda: cp.registration == first_status, TIMEOUT)
            await cp.wait_accepted(TIMEOUT)
            await cp.wait_for(lambda: cp.stats.results["StatusNotification"] == 2, TIMEOUT)
    finally:
        await csms.stop()
    actions = csms.actions()
    assert actions[:3] == ["BootNotification"] * 3
    assert set(actions[3:]) == {"StatusNotification"}


async def test_plug_tap_charge_unplug_reports_the_status_sequence_and_meter(
    reference: ReferenceServer,
) -> None:
    ev = FakeEV(accept_w=7_000.0)
    async with make_cp(reference.url, config={"MeterValueSampleInterval": "30"}) as cp:
        await cp.wait_accepted(TIMEOUT)
        cp.plug_in(1, ev)
        cp.tap(1, "CARD-1")
        await cp.wait_for(lambda: cp.connector(1).transaction_id is not None, TIMEOUT)
        await cp.wait_for(lambda: cp.stats.results["MeterValues"] >= 2, TIMEOUT)
        assert cp.connector(1).power_w == 7_000.0
        cp.unplug(1)
        await cp.wait_for(lambda: cp.connector(1).reported == "Available", TIMEOUT)
        await cp.wait_for(lambda: cp.stats.results["StatusNotification"] >= 6, TIMEOUT)
    statuses = [s["status"] for s in received(reference, "StatusNotification") if s["connector_id"]]
    assert statuses == ["Available", "Preparing", "Charging", "Finishing", "Available"]
    (start,) = received(reference, "StartTransaction")
    (stop,) = received(reference, "StopTransaction")
    assert start["id_tag"] == "CARD-1"
    assert stop["reason"] == "EVDisconnected"
    assert stop["transaction_id"] == 1
    # The meter counts exactly what flowed into the car.
    assert stop["meter_stop"] - start["meter_start"] == pytest.approx(ev.absorbed_wh, abs=1)
    assert ev.absorbed_wh > 100
    meter = received(reference, "MeterValues")[0]
    measurands = {v["measurand"]: v for v in meter["meter_value"][0]["sampled_value"]}
    assert measurands["Power.Active.Import"]["value"] == "7000"
    phases = [v.get("phase") for v in meter["meter_value"][0]["sampled_value"]]
    assert {"L1", "L2", "L3"} <= set(phases)
    assert "SoC" not in measurands  # an AC charger cannot read the battery


async def test_dc_charger_reports_soc_and_a_full_car_suspends_ev(
    reference: ReferenceServer,
) -> None:
    ev = FakeEV(accept_w=50_000.0, capacity_wh=2_000.0, soc=90.0)
    async with make_cp(reference.url, dc=True, max_power_w=50_000.0) as cp:
        await cp.wait_accepted(TIMEOUT)
        cp.plug_in(1, ev)
        cp.tap(1, "CARD-DC")
        await cp.wait_for(lambda: cp.connector(1).status == "SuspendedEV", TIMEOUT)
        await cp.wait_for(lambda: cp.stats.results["MeterValues"] >= 1, TIMEOUT)
    statuses = [s["status"] for s in received(reference, "StatusNotification")]
    assert statuses[-2:] == ["Charging", "SuspendedEV"]
    samples = received(reference, "MeterValues")[-1]["meter_value"][0]["sampled_value"]
    soc = [v for v in samples if v["measurand"] == "SoC"]
    assert soc and soc[0]["value"] == "100"


async def test_remote_start_and_stop_produce_transactions_with_the_given_tag(
    reference: ReferenceServer,
) -> None:
    ev = FakeEV()
    async with make_cp(reference.url, connectors=2) as cp:
        await cp.wait_accepted(TIMEOUT)
        cp.plug_in(2, ev)
        server_cp = reference.charge_points["SIM-0001"]
        answer = await server_cp.call(call.RemoteStartTransaction(id_tag="REMOTE-1"))
        assert answer.status == "Accepted"
        await cp.wait_for(lambda: cp.connector(2).transaction_id is not None, TIMEOUT)
        await asyncio.sleep(0.3)  # 30 simulated seconds of charging
        transaction_id = cp.connector(2).transaction_id
        answer = await server_cp.call(call.RemoteStopTransaction(transaction_id=transaction_id))
        assert answer.status == "Accepted"
        await cp.wait_for(lambda: cp.stats.results["StopTransaction"] == 1, TIMEOUT)
        rejected = await server_cp.call(call.RemoteStopTransaction(transaction_id=999))
        assert rejected.status == "Rejected"
    (start,) = received(reference, "StartTransaction")
    (stop,) = received(reference, "StopTransaction")
    assert (start["connector_id"], start["id_tag"]) == (2, "REMOTE-1")
    assert stop["reason"] == "Remote"
    assert stop["meter_stop"] > start["meter_start"]
    assert [s["context"] for d in stop["transaction_data"] for s in d["sampled_value"]] == [
        "Transaction.Begin",
        "Transaction.End",
    ]


def _profile(profile_id: int, purpose: str, limit: float, unit: str = "W") -> dict[str, Any]:
    start = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    return {
        "charging_profile_id": profile_id,
        "stack_level": 0,
        "charging_profile_purpose": purpose,
        "charging_profile_kind": "Absolute",
        "charging_schedule": {
            "start_schedule": start,
            "charging_rate_unit": unit,
            "charging_schedule_period": [{"start_period": 0, "limit": limit}],
        },
    }


async def test_charging_profiles_limit_delivered_power(reference: ReferenceServer) -> None:
    async with make_cp(reference.url, max_power_w=22_000.0) as cp:
        await cp.wait_accepted(TIMEOUT)
        server_cp = reference.charge_points["SIM-0001"]
        answer = await server_cp.call(
            call.SetChargingProfile(1, _profile(1, "TxDefaultProfile", 3_000.0))
        )
        assert answer.status == "Accepted"
        cp.plug_in(1, FakeEV(accept_w=11_000.0))
        cp.tap(1, "CARD-1")
        await cp.wait_for(lambda: cp.connector(1).power_w == 3_000.0, TIMEOUT)
        composite = await server_cp.call(call.GetCompositeSchedule(connector_id=1, duration=600))
        assert composite.charging_schedule["charging_schedule_period"][0]["limit"] == 3_000.0

        # 6 A on three phases at 230 V.
        tx_profile = {**_profile(2, "TxProfile", 6.0, "A"), "stack_level": 1}
        tx_profile["transaction_id"] = cp.connector(1).transaction_id
        answer = await server_cp.call(call.SetChargingProfile(1, tx_profile))
        assert answer.status == "Accepted"
        await cp.wait_for(lambda: cp.connector(1).power_w == pytest.approx(4_140.0), TIMEOUT)

        paused = {**_profile(3, "TxProfile", 0.0), "stack_level": 2}
        await server_cp.call(call.SetChargingProfile(1, paused))
        await cp.wait_for(lambda: cp.connector(1).status == "SuspendedEVSE", TIMEOUT)

        cleared = await server_cp.call(call.ClearChargingProfile())
        assert cleared.status == "Accepted"
        await cp.wait_for(lambda: cp.connector(1).power_w == 11_000.0, TIMEOUT)
        await cp.wait_for(lambda: cp.connector(1).reported == "Charging", TIMEOUT)
    statuses = [s["status"] for s in received(reference, "StatusNotification")]
    assert statuses[-2:] == ["SuspendedEVSE", "Charging"]


async def test_configuration_and_core_commands_are_answered_like_firmware(
    reference: ReferenceServer,
) -> None:
    async with make_cp(reference.url) as cp:
        await cp.wait_accepted(TIMEOUT)
        server_cp = reference.charge_points["SIM-0001"]
        config = await server_cp.call(call.GetConfiguration(key=["NumberOfConnectors", "Nope"]))
        assert config.configuration_key == [
            {"key": "NumberOfConnectors", "readonly": True, "value": "1"}
        ]
        assert config.unknown_key == ["Nope"]
        readonly = await server_cp.call(call.ChangeConfiguration("NumberOfConnectors", "4"))
        unknown = await server_cp.call(call.ChangeConfiguration("Nope", "1"))
        accepted = await server_cp.call(call.ChangeConfiguration("HeartbeatInterval", "5"))
        assert (readonly.status, unknown.status, accepted.status) == (
            "Rejected",
            "NotSupported",
            "Accepted",
        )
        # HeartbeatInterval 5 s is 50 ms of real time here.
        await cp.wait_for(lambda: cp.stats.results["Heartbeat"] >= 3, TIMEOUT)
        data = await server_cp.call(call.DataTransfer(vendor_id="acme"))
        assert data.status == "UnknownVendorId"
        version = await server_cp.call(call.GetLocalListVersion())
        assert version.list_version == 0
        with pytest.raises(OcppNotImplemented):
            await server_cp.call(call.GetLog({"remoteLocation": "x"}, "DiagnosticsLog", 1), False)

        cp.plug_in(1, FakeEV())
        cp.tap(1, "CARD-1")
        await cp.wait_for(lambda: cp.connector(1).transaction_id is not None, TIMEOUT)
        change = await server_cp.call(call.ChangeAvailability(1, "Inoperative"))
        assert change.status == "Scheduled"
        unlock = await server_cp.call(call.UnlockConnector(1))
        assert unlock.status == "Unlocked"
        await cp.wait_for(lambda: cp.connector(1).reported == "Unavailable", TIMEOUT)
        (stop,) = [p for _, a, p in reference.received if a == "StopTransaction"]
        assert stop["reason"] == "UnlockCommand"


async def test_hard_reset_stops_the_transaction_reconnects_and_boots_again(
    reference: ReferenceServer,
) -> None:
    async with make_cp(reference.url) as cp:
        await cp.wait_accepted(TIMEOUT)
        cp.plug_in(1, FakeEV())
        cp.tap(1, "CARD-1")
        await cp.wait_for(lambda: cp.connector(1).transaction_id is not None, TIMEOUT)
        server_cp = reference.charge_points["SIM-0001"]
        answer = await server_cp.call(call.Reset("Hard"))
        assert answer.status == "Accepted"
        await cp.wait_for(lambda: cp.stats.boots_accepted == 2, TIMEOUT)
        await cp.wait_for(lambda: cp.stats.results["StopTransaction"] == 1, TIMEOUT)
    (stop,) = received(reference, "StopTransaction")
    assert stop["reason"] == "HardReset"
    assert len(received(reference, "BootNotification")) == 2
    assert cp.stats.connections == 2


async def test_trigger_message_and_firmware_update_send_notifications(
    reference: ReferenceServer,
) -> None:
    async with make_cp(reference.url) as cp:
        await cp.wait_accepted(TIMEOUT)
        server_cp = reference.charge_points["SIM-0001"]
        trigger = await server_cp.call(call.TriggerMessage("Heartbeat"))
        assert trigger.status == "Accepted"
        await cp.wait_for(lambda: cp.stats.sent["Heartbeat"] == 1, TIMEOUT)
        retrieve = datetime.now(UTC).isoformat()
        await server_cp.call(call.UpdateFirmware(location="ftp://x/fw.bin", retrieve_date=retrieve))
        # The reference server has no handler for it: our CALLs get NotImplemented back.
        await cp.wait_for(lambda: cp.stats.call_errors["FirmwareStatusNotification"] == 4, TIMEOUT)
    assert cp.firmware_status == "Installed"


async def test_lost_start_answer_is_retransmitted_and_offline_messages_replay_in_order(
    scripted: ScriptedCSMS,
) -> None:
    original = scripted.script

    def lose_first_start(action: str, payload: dict[str, Any], nth: int) -> Any:
        if action == "StartTransaction" and nth == 0:
            return "close"  # the answer is lost with the connection
        return original(action, payload, nth)

    scripted.script = lose_first_start
    config = {"MeterValueSampleInterval": "30"}
    async with make_cp(scripted.url, config=config) as cp:
        await cp.wait_accepted(TIMEOUT)
        cp.plug_in(1, FakeEV())
        cp.tap(1, "CARD-1")
        await cp.wait_for(lambda: scripted.counts.get("StartTransaction") == 1, TIMEOUT)
        await cp.wait_for(lambda: not cp.connected, TIMEOUT)
        await scripted.stop()
        await asyncio.sleep(1.0)  # 100 simulated seconds offline: meter values queue up
        cp.unplug(1)
        queued = cp.queued_transaction_messages
        offline_until = cp.now()
        await scripted.start()
        await cp.wait_for(lambda: cp.queued_transaction_messages == 0, TIMEOUT)
        await cp.wait_for(lambda: scripted.counts.get("StopTransaction") == 1, TIMEOUT)
    assert cp.stats.connect_failures >= 2  # it kept trying, backing off, while we were down
    assert queued >= 4  # Start, at least two MeterValues, Stop
    tx_calls = [
        (a, p)
        for a, p in scripted.calls
        if a in ("StartTransaction", "MeterValues", "StopTransaction")
    ]
    (first_start, _), (retransmitted, replayed) = tx_calls[0], tx_calls[1]
    assert retransmitted == "StartTransaction"
    # Retransmitted unchanged (same timestamp, meterStart): the CSMS can de-duplicate it.
    assert replayed == tx_calls[0][1] and first_start == "StartTransaction"
    after = [p for _, p in tx_calls[1:]]
    assert [a for a, _ in tx_calls[1:]][-1] == "StopTransaction"
    assert sum(a == "MeterValues" for a, _ in tx_calls) >= 2
    stamps = [
        p["timestamp"] if "timestamp" in p else p["meterValue"][0]["timestamp"] for p in after
    ]
    # Replayed in order, with the timestamps of when they happened, not of the replay.
    assert stamps == sorted(stamps)
    assert datetime.fromisoformat(stamps[-1]) <= offline_until
    assert {p["transactionId"] for p in after[1:]} == {101}  # the id from the second answer


def test_backoff_grows_exponentially_with_jitter_and_is_capped() -> None:
    rng = random.Random(1)
    delays = [backoff_delay(n, 1.0, 60.0, rng) for n in range(10)]
    for n, delay in enumerate(delays):
        ceiling = min(60.0, 2.0**n)
        assert ceiling / 2 <= delay <= ceiling
    assert max(delays) <= 60.0
    assert len({round(d, 6) for d in delays[6:]}) > 1  # jitter: capped delays still differ


async def test_charger_that_never_answers_pings_is_dropped_and_reconnects() -> None:
    csms = ScriptedCSMS(ping_interval=0.1, ping_timeout=0.1)
    await csms.start()
    try:
        deaf = make_cp(csms.url, "SIM-DEAF", faults=Faults(answer_pings=False))
        polite = make_cp(csms.url, "SIM-POLITE")
        async with deaf, polite:
            await deaf.wait_for(lambda: deaf.stats.connections >= 2, TIMEOUT)
            await polite.wait_accepted(TIMEOUT)
            assert polite.stats.connections == 1
    finally:
        await csms.stop()
    assert csms.closed_by_ping >= 1


async def test_drop_after_messages_and_delayed_answers(reference: ReferenceServer) -> None:
    faults = Faults(drop_after_messages=3, answer_delay_s=30.0)
    async with make_cp(reference.url, faults=faults) as cp:
        await cp.wait_for(lambda: cp.stats.reconnects == 1, TIMEOUT)
        await cp.wait_accepted(TIMEOUT)
        await cp.wait_for(lambda: "SIM-0001" in reference.charge_points, TIMEOUT)
        loop = asyncio.get_running_loop()
        began = loop.time()
        await reference.charge_points["SIM-0001"].call(call.ClearCache())
        # 30 simulated seconds at 100x: about 0.3 s before the answer.
        assert loop.time() - began >= 0.25


def _deviates(action: str, payload: dict[str, Any]) -> bool:
    if "vendorExtension" in payload:
        return True
    stamps = [payload.get("timestamp")] + [
        e.get("timestamp") for k in ("meterValue", "transactionData") for e in payload.get(k, [])
    ]
    if any(s is not None and not s.endswith("Z") for s in stamps):
        return True
    samples = [
        s
        for k in ("meterValue", "transactionData")
        for e in payload.get(k, [])
        for s in e["sampledValue"]
    ]
    if any(
        not isinstance(s["value"], str) or s.get("unit", "") not in ("Wh", "W", "A", "Percent")
        for s in samples
    ):
        return True
    if isinstance(payload.get("meterStart", 0), str) or isinstance(
        payload.get("meterStop", 0), str
    ):
        return True
    if payload.get("status", "X")[0].islower() or payload.get("reason", "X")[0].islower():
        return True
    if payload.get("idTag", "CARD-ABC") != "CARD-ABC":
        return True
    return action == "MeterValues" and "transactionId" not in payload


@pytest.mark.parametrize("share", [0.0, 1.0])
async def test_nonconforming_knob_injects_field_deviations(
    scripted: ScriptedCSMS, share: float
) -> None:
    stats = Stats()
    faults = Faults(nonconforming=share)
    config = {"MeterValueSampleInterval": "10"}
    async with make_cp(scripted.url, faults=faults, stats=stats, seed=7, config=config) as cp:
        await cp.wait_accepted(TIMEOUT)
        cp.plug_in(1, FakeEV())
        cp.tap(1, "CARD-ABC")
        await cp.wait_for(lambda: scripted.counts.get("MeterValues", 0) >= 6, TIMEOUT)
        cp.tap(1, "CARD-ABC")
        await cp.wait_for(lambda: scripted.counts.get("StopTransaction", 0) == 1, TIMEOUT)
    frames = [(a, p) for a, p in scripted.calls if a != "BootNotification"]
    deviating = [a for a, p in frames if _deviates(a, p)]
    if share == 0.0:
        assert deviating == []
        assert not stats.deviations
    else:
        assert len(deviating) == len(frames)
        assert len(stats.deviations) >= 5
