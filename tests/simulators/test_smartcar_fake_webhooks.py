"""Webhook VERIFY and signed VEHICLE_STATE deliveries from the fake, to a receiver in the test."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from simulators.smartcar_fake import RunningFake, run_smartcar_fake
from simulators.smartcar_fake.server import serve_on_localhost
from simulators.smartcar_fake.testing import connect_vehicles
from simulators.world import World

AMT = "amt-secret-0123456789"
WAIT_S = 5.0


class Receiver:
    """A tiny webhook endpoint: answers VERIFY, records deliveries, can fail on purpose."""

    def __init__(self, amt: str) -> None:
        self.amt = amt
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.fail_next = 0
        self.wrong_challenge = False
        self.arrived = asyncio.Event()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        self.received.append((headers, body))
        self.arrived.set()
        event = json.loads(body)
        status, answer = 200, b"{}"
        if self.fail_next > 0:
            self.fail_next -= 1
            status = 500
        elif event["eventType"] == "VERIFY":
            key = "wrong" if self.wrong_challenge else self.amt
            challenge = event["data"]["challenge"]
            digest = hmac.new(key.encode(), challenge.encode(), hashlib.sha256).hexdigest()
            answer = json.dumps({"challenge": digest}).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json")]})  # fmt: skip
        await send({"type": "http.response.body", "body": answer})

    def events(self, event_type: str) -> list[tuple[dict[str, str], dict[str, Any], bytes]]:
        return [
            (headers, json.loads(body), body)
            for headers, body in self.received
            if json.loads(body)["eventType"] == event_type
        ]

    async def wait_for(self, count: int, event_type: str) -> None:
        async with asyncio.timeout(WAIT_S):
            while len(self.events(event_type)) < count:
                self.arrived.clear()
                await self.arrived.wait()


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[Receiver, str]]:
    app = Receiver(AMT)
    async with serve_on_localhost(app, lifespan="off") as base_url:  # type: ignore[arg-type]
        yield app, f"{base_url}/webhook"


@pytest.fixture
async def running() -> AsyncIterator[RunningFake]:
    async with run_smartcar_fake(World.generate(chargers=2, vehicles=3, seed=9)) as fake_server:
        # Retries at 25/50/100 ms instead of seconds; no background polling during the test.
        fake_server.fake.webhooks.retry_scale = 0.001
        fake_server.fake.webhooks.poll_interval_s = 3600
        yield fake_server


async def subscribed_vehicle(running: RunningFake) -> str:
    """Connect the first vehicle and subscribe it through the public v2.0 route."""
    vehicle = next(iter(running.fake.world.vehicles.values()))
    async with httpx.AsyncClient(timeout=5.0) as client:
        tokens = await connect_vehicles(client, running, vehicle.vin)
        webhook_id = running.fake.webhooks.webhook_id
        response = await client.post(
            f"{running.api_url}/vehicles/{vehicle.smartcar_id}/webhooks/{webhook_id}",
            headers={"Authorization": f"Bearer {tokens['access_token']}"},
        )
    assert response.json() == {"vehicleId": vehicle.smartcar_id, "webhookId": webhook_id}
    return vehicle.smartcar_id


async def configure(running: RunningFake, url: str) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=WAIT_S) as client:
        response = await client.post(
            f"{running.base_url}/_fake/webhook", json={"url": url, "amt": AMT}
        )
    result: dict[str, Any] = response.json()
    return result


async def test_verify_challenge_answered_with_hmac_is_accepted(
    running: RunningFake, receiver: tuple[Receiver, str]
) -> None:
    app, url = receiver
    assert (await configure(running, url))["verified"] is True
    [(headers, event, raw)] = app.events("VERIFY")
    assert event["meta"]["version"] == "4.0"
    assert event["meta"]["webhookId"] == running.fake.webhooks.webhook_id
    assert headers["sc-signature"] == hmac.new(AMT.encode(), raw, hashlib.sha256).hexdigest()


async def test_wrong_challenge_answer_leaves_webhook_unverified_and_silent(
    running: RunningFake, receiver: tuple[Receiver, str]
) -> None:
    app, url = receiver
    app.wrong_challenge = True
    assert (await configure(running, url))["verified"] is False
    vehicle_id = await subscribed_vehicle(running)
    assert running.fake.webhooks.emit_vehicle_state(vehicle_id) is None


async def test_vehicle_state_event_is_signed_and_carries_soc_percent(
    running: RunningFake, receiver: tuple[Receiver, str]
) -> None:
    app, url = receiver
    await configure(running, url)
    vehicle_id = await subscribed_vehicle(running)
    vehicle = running.fake.world.vehicle_by_smartcar_id(vehicle_id)
    vehicle.soc = 0.78
    event_id = running.fake.webhooks.emit_vehicle_state(vehicle_id)
    await app.wait_for(1, "VEHICLE_STATE")
    [(headers, event, raw)] = app.events("VEHICLE_STATE")
    expected = hmac.new(AMT.encode(), raw, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers["sc-signature"], expected)
    assert headers["content-type"] == "application/json"
    assert event["eventId"] == event_id and event["vehicleId"] == vehicle_id
    assert event["data"]["user"] == {"id": vehicle.owner_id}
    assert event["data"]["triggers"] == [{"code": "FIRST_DELIVERY"}]
    signals = {signal["code"]: signal for signal in event["data"]["signals"]}
    assert signals["tractionbattery-stateofcharge"]["body"] == {"unit": "percent", "value": 78}
    assert signals["charge-ischarging"]["body"] == {"value": False}
    assert isinstance(signals["charge-ischarging"]["meta"]["oemUpdatedAt"], int)
    assert signals["charge-ischargingcableconnected"]["body"] == {"value": False}
    assert set(signals["location-preciselocation"]["body"]) == {"latitude", "longitude"}
    assert event["meta"]["signalCount"] == 4 and event["meta"]["mode"] == "LIVE"


async def test_changes_trigger_events_naming_the_changed_signal(
    running: RunningFake, receiver: tuple[Receiver, str]
) -> None:
    app, url = receiver
    await configure(running, url)
    vehicle_id = await subscribed_vehicle(running)
    webhooks = running.fake.webhooks
    assert len(webhooks.emit_changes()) == 1  # the first delivery
    assert webhooks.emit_changes() == []  # nothing changed since
    vehicle = running.fake.world.vehicle_by_smartcar_id(vehicle_id)
    vehicle.soc += 0.05
    assert len(webhooks.emit_changes()) == 1
    await app.wait_for(2, "VEHICLE_STATE")
    last = app.events("VEHICLE_STATE")[-1][1]
    assert last["data"]["triggers"] == [
        {"code": "tractionbattery-stateofcharge", "name": "StateOfCharge",
         "group": "TractionBattery"}
    ]  # fmt: skip


async def test_failed_delivery_is_retried_with_the_same_event_id(
    running: RunningFake, receiver: tuple[Receiver, str]
) -> None:
    app, url = receiver
    await configure(running, url)
    vehicle_id = await subscribed_vehicle(running)
    app.fail_next = 2
    event_id = running.fake.webhooks.emit_vehicle_state(vehicle_id)
    await app.wait_for(3, "VEHICLE_STATE")
    events = [event for _, event, _ in app.events("VEHICLE_STATE")]
    assert {event["eventId"] for event in events} == {event_id}
    assert len({event["meta"]["deliveryId"] for event in events}) == 3
    await running.fake.webhooks.drain(WAIT_S)
    attempts = [d for d in running.fake.webhooks.deliveries if d.event_id == event_id]
    assert [(d.attempt, d.status) for d in attempts] == [(1, 500), (2, 500), (3, 200)]


async def test_event_is_dropped_after_four_failed_attempts(
    running: RunningFake, receiver: tuple[Receiver, str]
) -> None:
    app, url = receiver
    await configure(running, url)
    vehicle_id = await subscribed_vehicle(running)
    app.fail_next = 10
    event_id = running.fake.webhooks.emit_vehicle_state(vehicle_id)
    await running.fake.webhooks.drain(WAIT_S)
    attempts = [d for d in running.fake.webhooks.deliveries if d.event_id == event_id]
    assert [d.attempt for d in attempts] == [1, 2, 3, 4]
    assert not any(d.ok for d in attempts)
    assert len(app.events("VEHICLE_STATE")) == 4


async def test_unsubscribe_needs_the_management_token(
    running: RunningFake, receiver: tuple[Receiver, str]
) -> None:
    _, url = receiver
    await configure(running, url)
    vehicle_id = await subscribed_vehicle(running)
    path = f"{running.api_url}/vehicles/{vehicle_id}/webhooks/{running.fake.webhooks.webhook_id}"
    async with httpx.AsyncClient(timeout=5.0) as client:
        refused = await client.delete(path, headers={"Authorization": "Bearer not-the-amt"})
        accepted = await client.delete(path, headers={"Authorization": f"Bearer {AMT}"})
    assert refused.status_code == 401
    assert accepted.json() == {"status": "success"}
    assert running.fake.webhooks.emit_vehicle_state(vehicle_id) is None


async def test_plug_in_triggers_the_cable_signal_stamped_when_seen(
    running: RunningFake, receiver: tuple[Receiver, str]
) -> None:
    app, url = receiver
    await configure(running, url)
    vehicle_id = await subscribed_vehicle(running)
    webhooks = running.fake.webhooks
    webhooks.emit_changes()  # the first delivery
    vehicle = running.fake.world.vehicle_by_smartcar_id(vehicle_id)
    charger = next(iter(running.fake.world.chargers.values()))
    running.fake.world.plug_in(vehicle.vin, charger.id, 1, datetime(2025, 1, 1, tzinfo=UTC))
    before = datetime.now(UTC)
    assert len(webhooks.emit_changes()) == 1
    after = datetime.now(UTC)
    await app.wait_for(2, "VEHICLE_STATE")
    last = app.events("VEHICLE_STATE")[-1][1]
    assert [t["code"] for t in last["data"]["triggers"]] == ["charge-ischargingcableconnected"]
    cable = next(
        s for s in last["data"]["signals"] if s["code"] == "charge-ischargingcableconnected"
    )
    assert cable["body"] == {"value": True}
    stamped = cable["meta"]["oemUpdatedAt"] / 1000
    assert int(before.timestamp()) <= stamped <= after.timestamp()


async def test_duplicates_and_reordering_are_knobs(
    running: RunningFake, receiver: tuple[Receiver, str]
) -> None:
    app, url = receiver
    await configure(running, url)
    webhooks = running.fake.webhooks
    webhooks.duplicate_share = 1.0
    webhooks.max_reorder_delay_s = 0.3
    vehicle_ids = [await subscribed_vehicle(running)]
    vehicle = running.fake.world.vehicle_by_smartcar_id(vehicle_ids[0])
    emitted = []
    for step in range(6):
        vehicle.soc = 0.2 + step * 0.05
        emitted.append(webhooks.emit_vehicle_state(vehicle_ids[0]))
    await app.wait_for(12, "VEHICLE_STATE")
    received = [event["eventId"] for _, event, _ in app.events("VEHICLE_STATE")]
    assert sorted(received) == sorted(emitted * 2)  # every event exactly twice
    firsts = list(dict.fromkeys(received))
    assert firsts != emitted  # seeded: at least one event overtook an earlier one


async def test_a_make_without_webhooks_sends_nothing(
    running: RunningFake, receiver: tuple[Receiver, str]
) -> None:
    _, url = receiver
    await configure(running, url)
    vehicle_id = await subscribed_vehicle(running)
    vehicle = running.fake.world.vehicle_by_smartcar_id(vehicle_id)
    running.fake.webhooks.silent_makes = {vehicle.make}
    assert running.fake.webhooks.emit_vehicle_state(vehicle_id) is None
    assert running.fake.webhooks.emit_changes() == []
