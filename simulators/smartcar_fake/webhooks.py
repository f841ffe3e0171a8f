"""v4.0 webhooks: VERIFY challenge, signed VEHICLE_STATE deliveries with retries (§10).

The dispatcher owns its delivery tasks and an httpx client; ``start()``/``close()`` are
called by the app's lifespan. Payload building and signing are plain functions.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
import structlog

from simulators.world import World

log = structlog.get_logger()

# §10: attempts at 0 s, +25 s, +50 s, +100 s; then the event is dropped.
RETRY_DELAYS_S = (25.0, 50.0, 100.0)
DELIVERY_TIMEOUT_S = 15.0
SOC_SIGNAL = {"code": "tractionbattery-stateofcharge", "name": "StateOfCharge",
              "group": "TractionBattery"}  # fmt: skip
CHARGING_SIGNAL = {"code": "charge-ischarging", "name": "IsCharging", "group": "Charge"}
# §10: the cable signal's code follows the group-name pattern (unconfirmed spelling).
CABLE_SIGNAL = {"code": "charge-ischargingcableconnected", "name": "IsChargingCableConnected",
                "group": "Charge"}  # fmt: skip
LOCATION_SIGNAL = {"code": "location-preciselocation", "name": "PreciseLocation",
                   "group": "Location"}  # fmt: skip


def sign(amt: str, message: bytes | str) -> str:
    """Lower-case hex HMAC-SHA256 keyed with the application management token."""
    raw = message.encode() if isinstance(message, str) else message
    return hmac.new(amt.encode(), raw, hashlib.sha256).hexdigest()


def epoch_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


@dataclass(slots=True)
class Delivery:
    """One attempt to deliver one event, as recorded for tests."""

    event_id: str
    event_type: str
    delivery_id: str
    attempt: int
    status: int | None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


@dataclass(slots=True)
class Subscription:
    vehicle_id: str
    first_delivery: bool = True
    # (SoC in whole percent like the OEM data, charging, cable connected); a charging car
    # changes the first every minute or so.
    last_signals: tuple[int, bool, bool] | None = None
    # When each trigger signal last changed, as the OEM stamps it (oemUpdatedAt).
    changed_at: dict[str, datetime] = field(default_factory=dict)


@dataclass
class WebhookDispatcher:
    """Delivers events for subscribed vehicles.

    Knobs: ``url``, ``amt``, ``retry_scale`` (multiplies the retry delays), ``poll_interval_s``,
    ``duplicate_share`` (a share of events delivered twice, as at-least-once allows),
    ``max_reorder_delay_s`` (each event waits a random time up to this before its first
    attempt, so events overtake each other as §10's unordered, concurrent delivery allows)
    ``silent_makes`` (makes that send no webhooks at all: subscriptions are accepted,
    nothing is delivered, so the client must poll) and ``triggers`` (the signal codes whose
    change sends an event; the others ride along as data. Default: SoC, charging and cable;
    §10's "Detect a charging session" guide triggers on charging and cable only).
    """

    world: World
    clock: Callable[[], datetime]
    url: str | None = None
    amt: str | None = None
    webhook_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    webhook_name: str = "Fake Smartcar Webhook"
    retry_scale: float = 1.0
    timeout_s: float = DELIVERY_TIMEOUT_S
    poll_interval_s: float = 1.0
    verified: bool = False
    duplicate_share: float = 0.0
    max_reorder_delay_s: float = 0.0
    silent_makes: set[str] = field(default_factory=set)
    triggers: frozenset[str] = field(
        default_factory=lambda: frozenset(
            str(s["code"]) for s in (SOC_SIGNAL, CHARGING_SIGNAL, CABLE_SIGNAL)
        )
    )
    rng: random.Random = field(default_factory=lambda: random.Random(0))
    subscriptions: dict[str, Subscription] = field(default_factory=dict)
    deliveries: list[Delivery] = field(default_factory=list)
    _client: httpx.AsyncClient | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _poller: asyncio.Task[None] | None = None

    def configure(self, url: str, amt: str, webhook_id: str | None = None) -> None:
        """Point the webhook at ``url``; Smartcar re-verifies whenever the URL changes."""
        self.url, self.amt, self.verified = url, amt, False
        if webhook_id is not None:
            self.webhook_id = webhook_id

    async def start(self) -> None:
        self._client = httpx.AsyncClient(timeout=self.timeout_s)
        self._poller = asyncio.create_task(self._poll_forever())
        if self.url is not None and self.amt is not None:
            # Configured before start (the CLI): Smartcar verifies a new URL straight away.
            task = asyncio.create_task(self._verify_once())
            self._tasks.add(task)
            task.add_done_callback(self._delivery_done)

    async def _verify_once(self) -> None:
        await self.verify()

    async def close(self) -> None:
        tasks = [*self._tasks, *([self._poller] if self._poller else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()

    async def verify(self) -> bool:
        """Send a VERIFY challenge; verified only on 200 with the right HMAC answer."""
        if self.url is None or self.amt is None:
            raise RuntimeError("webhook not configured")
        challenge = str(uuid.uuid4())
        event = self._envelope("VERIFY", {"challenge": challenge})
        delivery_id = event["meta"]["deliveryId"]
        status, answer = await self._post(event)
        expected = sign(self.amt, challenge)
        try:
            got = json.loads(answer).get("challenge") if answer else None
        except (ValueError, AttributeError):
            got = None
        self.verified = (
            status == 200 and isinstance(got, str) and hmac.compare_digest(got, expected)
        )
        self.deliveries.append(
            Delivery(event["eventId"], "VERIFY", delivery_id, 1, status,
                     None if self.verified else "challenge answer rejected")
        )  # fmt: skip
        log.info("smartcar_fake.webhook_verified", verified=self.verified, status=status)
        return self.verified

    def subscribe(self, vehicle_id: str) -> None:
        self.subscriptions.setdefault(vehicle_id, Subscription(vehicle_id))

    def unsubscribe(self, vehicle_id: str) -> None:
        self.subscriptions.pop(vehicle_id, None)

    def emit_vehicle_state(self, vehicle_id: str) -> str | None:
        """Queue a VEHICLE_STATE event now; returns its eventId (None if nothing is sent).

        Unverified or unconfigured webhooks queue nothing, like the real service.
        """
        sub = self.subscriptions.get(vehicle_id)
        if sub is None or not self.verified or self._client is None:
            return None
        vehicle = self.world.vehicle_by_smartcar_id(vehicle_id)
        if vehicle.make in self.silent_makes:
            return None
        now = self.clock()
        signals = (round(vehicle.soc_percent), vehicle.is_charging, vehicle.plugged_in)
        old = sub.last_signals
        changes = [
            (sig, old is None or old[n] != signals[n])
            for n, sig in enumerate((SOC_SIGNAL, CHARGING_SIGNAL, CABLE_SIGNAL))
        ]
        for sig, changed in changes:
            if changed or sig["code"] not in sub.changed_at:
                # The OEM stamps a change when the car reports it: for us, when the poller
                # (every poll_interval_s) or an explicit emit first sees it, on our clock.
                sub.changed_at[sig["code"]] = now
        if sub.first_delivery:
            triggers: list[dict[str, str]] = [{"code": "FIRST_DELIVERY"}]
        else:
            triggers = [
                dict(sig) for sig, changed in changes if changed and sig["code"] in self.triggers
            ] or [dict(SOC_SIGNAL)]
        sub.first_delivery, sub.last_signals = False, signals

        def meta(code: str) -> dict[str, int]:
            return {"oemUpdatedAt": epoch_ms(sub.changed_at.get(code, now)),
                    "fetchedAt": epoch_ms(now)}  # fmt: skip

        signal_list: list[dict[str, Any]] = [
            {**SOC_SIGNAL, "body": {"unit": "percent", "value": signals[0]},
             "meta": meta(SOC_SIGNAL["code"])},
            {**CHARGING_SIGNAL, "body": {"value": signals[1]},
             "meta": meta(CHARGING_SIGNAL["code"])},
            {**CABLE_SIGNAL, "body": {"value": signals[2]},
             "meta": meta(CABLE_SIGNAL["code"])},
            {**LOCATION_SIGNAL,
             "body": {"latitude": vehicle.latitude, "longitude": vehicle.longitude},
             "meta": meta(LOCATION_SIGNAL["code"])},
        ]  # fmt: skip
        data = {
            "user": {"id": vehicle.owner_id},
            "vehicle": {"id": vehicle_id, "make": vehicle.make, "model": vehicle.model,
                        "year": vehicle.year},
            "triggers": triggers,
            # §10: every subscribed signal is sent, not only the ones that changed.
            "signals": signal_list,
        }  # fmt: skip
        event = self._envelope("VEHICLE_STATE", data, vehicle_id=vehicle_id)
        event["meta"]["signalCount"] = len(signal_list)
        event["meta"]["mode"] = "LIVE"
        self._spawn_delivery(event)
        if self.duplicate_share > 0 and self.rng.random() < self.duplicate_share:
            # At-least-once (§10): the same eventId again, as a separate delivery.
            self._spawn_delivery(json.loads(json.dumps(event)))
        return str(event["eventId"])

    def _spawn_delivery(self, event: dict[str, Any]) -> None:
        delay = self.rng.uniform(0.0, self.max_reorder_delay_s) if self.max_reorder_delay_s else 0
        task = asyncio.create_task(self._deliver_with_retries(event, delay))
        self._tasks.add(task)
        task.add_done_callback(self._delivery_done)

    def _delivery_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("smartcar_fake.webhook_task_failed", exc_info=task.exception())

    def emit_changes(self) -> list[str]:
        """Emit for every subscribed vehicle whose SoC or charging flag changed."""
        emitted = []
        for sub in list(self.subscriptions.values()):
            vehicle = self.world.vehicles_by_smartcar_id.get(sub.vehicle_id)
            if vehicle is None:
                continue
            now = (round(vehicle.soc_percent), vehicle.is_charging, vehicle.plugged_in)
            if sub.first_delivery or self._triggered(sub.last_signals, now):
                event_id = self.emit_vehicle_state(sub.vehicle_id)
                if event_id is not None:
                    emitted.append(event_id)
        return emitted

    def _triggered(self, old: tuple[int, bool, bool] | None, new: tuple[int, bool, bool]) -> bool:
        if old is None:
            return True
        codes = (SOC_SIGNAL["code"], CHARGING_SIGNAL["code"], CABLE_SIGNAL["code"])
        return any(o != n and c in self.triggers for o, n, c in zip(old, new, codes, strict=True))

    async def drain(self, timeout_s: float) -> None:
        """Wait (bounded) until no delivery is in flight."""
        async with asyncio.timeout(timeout_s):
            while self._tasks:
                await asyncio.gather(*self._tasks, return_exceptions=True)

    def _envelope(
        self, event_type: str, data: dict[str, Any], vehicle_id: str | None = None
    ) -> dict[str, Any]:
        event: dict[str, Any] = {"eventId": str(uuid.uuid4()), "eventType": event_type}
        if vehicle_id is not None:
            event["vehicleId"] = vehicle_id
        event["data"] = data
        event["meta"] = {
            "version": "4.0",
            "webhookId": self.webhook_id,
            "webhookName": self.webhook_name,
            "deliveryId": str(uuid.uuid4()),
            "deliveredAt": epoch_ms(self.clock()),
        }
        return event

    async def _deliver_with_retries(self, event: dict[str, Any], first_delay: float = 0) -> None:
        delays = [first_delay, *RETRY_DELAYS_S]
        for attempt, delay in enumerate(delays, start=1):
            await asyncio.sleep(delay * self.retry_scale)
            if attempt > 1:
                # §10: a new deliveryId per attempt, the same eventId throughout.
                event["meta"]["deliveryId"] = str(uuid.uuid4())
                event["meta"]["deliveredAt"] = epoch_ms(self.clock())
            status, _ = await self._post(event)
            record = Delivery(event["eventId"], event["eventType"], event["meta"]["deliveryId"],
                              attempt, status, None if status else "no response")  # fmt: skip
            self.deliveries.append(record)
            if record.ok:
                return
        log.warning("smartcar_fake.webhook_dropped", event_id=event["eventId"])

    async def _post(self, event: dict[str, Any]) -> tuple[int | None, str | None]:
        if self._client is None or self.url is None or self.amt is None:
            return None, None
        body = json.dumps(event, separators=(",", ":")).encode()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "Smartcar/4.0 (fake)",
            "SC-Signature": sign(self.amt, body),
        }
        try:
            response = await self._client.post(self.url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            log.info("smartcar_fake.webhook_failed", url=self.url, error=repr(exc))
            return None, None
        return response.status_code, response.text

    async def _poll_forever(self) -> None:
        while True:
            await asyncio.sleep(self.poll_interval_s)
            try:
                self.emit_changes()
            except Exception:
                log.exception("smartcar_fake.webhook_poll_failed")
