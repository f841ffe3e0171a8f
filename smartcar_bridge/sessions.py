"""The plug-and-charge state machine, driven by the central system's domain events.

Plug-in (Preparing) → match the car by VIN → payment and battery checks →
RemoteStartTransaction → link the charger's transaction → monitor SoC → stop at
the target → reconcile on the charger's StopTransaction. Every step is persisted
in ``charging_sessions`` so a restart resumes monitoring. The OCPP side never
waits on any of this: events are consumed by our own task, and we talk back
only through the command API an operator uses.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Coroutine
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import structlog

from csms.config import BridgeSettings
from csms.domain.events import (
    ConnectorStatusChanged,
    Event,
    EventBus,
    MeterSampled,
    TransactionStarted,
    TransactionStopped,
)
from csms.log import mask_vin
from csms.ocpp16.errors import CommandError
from smartcar_bridge import session_store as sessions
from smartcar_bridge import store
from smartcar_bridge.matcher import Matcher
from smartcar_bridge.reconcile import reconcile
from smartcar_bridge.session_store import Session
from smartcar_bridge.targets import next_poll_delay, should_stop
from smartcar_bridge.vehicle_access import VehicleAccess

log = structlog.get_logger()

SendCommand = Callable[..., Awaitable[dict[str, Any]]]
Clock = Callable[[], datetime]

_PLUGGED_STATES = frozenset({"Preparing", "Charging", "SuspendedEV", "SuspendedEVSE"})


class PlugAndCharge:
    """Owns the bridge's tasks: the event consumer, one matcher per plug-in, one monitor
    per charging session. ``start`` resumes open sessions; ``close`` cancels everything."""

    def __init__(
        self,
        *,
        pool: asyncpg.Pool,
        access: VehicleAccess,
        send_command: SendCommand,
        events: EventBus,
        settings: BridgeSettings,
        clock: Clock,
    ) -> None:
        self._pool = pool
        self._access = access
        self._send = send_command
        self._events = events
        self._settings = settings
        self._clock = clock
        self._matcher = Matcher(pool, access, clock, settings.match_give_up_after)
        self._queue: asyncio.Queue[Event] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._monitors: dict[int, asyncio.Task[None]] = {}
        self._wake: dict[int, asyncio.Event] = {}
        self._started: dict[int, asyncio.Future[None]] = {}
        self._matching: set[tuple[str, int]] = set()
        self._claim_lock = asyncio.Lock()
        self._latest_energy: dict[int, float] = {}
        # The charger's power, from its last two energy readings: polls come sooner near
        # the target when we know how fast the battery is filling.
        self._energy_at: dict[int, tuple[datetime, float]] = {}
        self._power_w: dict[int, float] = {}
        # session id -> vehicle id, for the sessions being monitored
        self._monitored_vehicle: dict[int, int] = {}

    async def start(self) -> None:
        self._queue = self._events.subscribe()
        self._spawn(self._consume(), "bridge-events")
        for session in await sessions.open_sessions(self._pool):
            await self._resume(session)

    async def close(self) -> None:
        if self._queue is not None:
            self._events.unsubscribe(self._queue)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def wake(self, vehicle_id: int) -> None:
        """New data about a car (a webhook): re-check its session now."""
        for session_id, event in self._wake.items():
            if self._monitored_vehicle.get(session_id) == vehicle_id:
                event.set()

    async def on_webhook(self, event: dict[str, Any]) -> None:
        """A verified Smartcar webhook: record the car's SoC and re-check its session now."""
        event_id = str(event.get("eventId") or "")
        vehicle_ref = event.get("vehicleId") or (event.get("data") or {}).get("vehicle", {}).get(
            "id"
        )
        if not event_id or not await sessions.first_delivery(
            self._pool, event_id, str(event.get("eventType")), vehicle_ref
        ):
            return
        vehicle = await store.vehicle_by_smartcar_id(self._pool, str(vehicle_ref))
        if vehicle is None:
            return
        session = await sessions.open_for_vehicle(self._pool, vehicle.id)
        soc = _webhook_soc(event)
        if session is not None and soc is not None:
            await sessions.add_soc_sample(
                self._pool, session.id, self._clock(), soc, None, "webhook", None
            )
            await sessions.update(self._pool, session.id, last_soc_percent=soc)
        self.wake(vehicle.id)

    # --- tasks -------------------------------------------------------------------------

    def _spawn(self, coroutine: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        task = asyncio.create_task(coroutine, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("bridge.task_failed", task=task.get_name(), exc_info=task.exception())

    async def _consume(self) -> None:
        assert self._queue is not None
        while True:
            event = await self._queue.get()
            try:
                await self._dispatch(event)
            except (asyncpg.PostgresError, OSError) as exc:
                log.error("bridge.event_failed", event_type=type(event).__name__, error=str(exc))

    async def _dispatch(self, event: Event) -> None:
        if isinstance(event, ConnectorStatusChanged):
            await self._on_status(event)
        elif isinstance(event, TransactionStarted):
            await self._on_transaction_started(event)
        elif isinstance(event, MeterSampled):
            await self._on_meter(event)
        elif isinstance(event, TransactionStopped):
            await self._on_transaction_stopped(event)

    # --- plug-in and matching -------------------------------------------------------------

    async def _on_status(self, event: ConnectorStatusChanged) -> None:
        key = (event.charge_point_id, event.connector_id)
        if event.connector_id == 0:
            return
        if event.status == "Available":
            await self._on_unplugged(event)
            return
        # Preparing is the plug-in signal; some firmware goes straight to Charging, and
        # a repeated Preparing (failed start) must not start a second matcher.
        plugged_now = event.status in _PLUGGED_STATES and event.previous_status not in (
            _PLUGGED_STATES | {"Finishing"}
        )
        if not plugged_now or key in self._matching:
            return
        if await sessions.open_on_connector(self._pool, *key) is not None:
            return
        self._matching.add(key)
        task = self._spawn(self._match_and_start(*key, event.at), f"bridge-match-{key}")
        task.add_done_callback(lambda _t: self._matching.discard(key))

    async def _match_and_start(self, charge_point_id: str, connector_id: int, at: datetime) -> None:
        bound = log.bind(charge_point_id=charge_point_id, connector_id=connector_id)
        # One decision at a time: two plug-ins at the same moment must not both claim
        # the same car; the second sees the first's car already in a session.
        async with self._claim_lock:
            session = await self._claim(charge_point_id, connector_id, at, bound)
        if session is not None:
            await self._remote_start(session, self._bound(session))

    async def _claim(
        self, charge_point_id: str, connector_id: int, at: datetime, bound: Any
    ) -> Session | None:
        vehicle = await self._matcher.find(charge_point_id, connector_id, at, bound)
        if vehicle is None:
            return None
        bound = bound.bind(vin=mask_vin(vehicle.vin), account_id=vehicle.account_id)
        if vehicle.payment_status != "valid":
            bound.info("bridge.payment_missing", payment_status=vehicle.payment_status)
            return None
        battery = await self._access.battery(vehicle, bound)
        if battery is None:
            bound.warning("bridge.gave_up", step="battery", reason="battery unreadable")
            return None
        if battery.soc_percent >= vehicle.target_soc_percent:
            bound.info(
                "bridge.already_at_target",
                soc_percent=battery.soc_percent,
                target_soc_percent=vehicle.target_soc_percent,
            )
            return None
        session = await sessions.open_session(
            self._pool,
            charge_point_id=charge_point_id,
            connector_id=connector_id,
            vehicle_id=vehicle.id,
            account_id=vehicle.account_id,
            vin=vehicle.vin,
            id_tag=vehicle.id_tag,
            target_soc_percent=vehicle.target_soc_percent,
            max_energy_wh=vehicle.max_energy_wh,
            departure_at=vehicle.departure_at,
            battery_capacity_wh=vehicle.battery_capacity_wh,
            tariff_per_kwh=vehicle.tariff_per_kwh,
            currency=vehicle.currency,
        )
        if session is None:
            bound.warning("bridge.claim_conflict")
            return None
        now = self._clock()
        await sessions.add_soc_sample(
            self._pool,
            session.id,
            now,
            battery.soc_percent,
            None,
            "smartcar",
            battery.meta.data_age,
        )
        return await sessions.update(
            self._pool,
            session.id,
            start_soc_percent=battery.soc_percent,
            last_soc_percent=battery.soc_percent,
            state=sessions.STARTING,
        )

    async def _remote_start(self, session: Session, bound: Any) -> None:
        started = asyncio.get_running_loop().create_future()
        self._started[session.id] = started
        try:
            answer = await self._command(
                session.charge_point_id,
                "RemoteStartTransaction",
                {"connectorId": session.connector_id, "idTag": session.id_tag},
                bound,
            )
            if answer is None or answer.get("status") != "Accepted":
                await self._fail(session, "remote start refused", bound)
                return
            bound.info("bridge.remote_start_accepted")
            try:
                async with asyncio.timeout(self._settings.start_timeout):
                    await started
            except TimeoutError:
                await self._fail(session, "no StartTransaction from the charger", bound)
        finally:
            self._started.pop(session.id, None)

    async def _on_transaction_started(self, event: TransactionStarted) -> None:
        session = await sessions.open_on_connector(
            self._pool, event.charge_point_id, event.connector_id
        )
        if session is None or session.transaction_id is not None:
            # A session whose transaction the charger gave up on was already ended by the
            # central system's TransactionStopped (closed_by_central_system), published
            # before this start: see _on_transaction_stopped.
            return
        if session.id_tag.upper() != event.id_tag.upper():
            return  # someone tapped a card: not our session's transaction
        session = await sessions.update(
            self._pool,
            session.id,
            transaction_id=event.transaction_id,
            meter_start_wh=event.meter_start_wh,
            state=sessions.CHARGING,
        )
        bound = self._bound(session)
        bound.info("bridge.session_started", meter_start_wh=event.meter_start_wh)
        waiter = self._started.get(session.id)
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        self._spawn(self._ensure_car_charging(session, bound), f"bridge-car-start-{session.id}")
        self._start_monitor(session)

    async def _ensure_car_charging(self, session: Session, bound: Any) -> None:
        vehicle = await store.get_vehicle(self._pool, session.vehicle_id)
        if vehicle is None:
            return
        status = await self._access.charge_status(vehicle, bound)
        if status is not None and status.state == "NOT_CHARGING":
            await self._access.start_charge(vehicle, bound)

    async def _on_unplugged(self, event: ConnectorStatusChanged) -> None:
        session = await sessions.open_on_connector(
            self._pool, event.charge_point_id, event.connector_id
        )
        # Unplugged before the charger started a transaction: nothing to bill.
        if session is not None and session.transaction_id is None:
            await self._fail(
                session, "unplugged before the transaction started", self._bound(session)
            )

    # --- monitoring and stopping ------------------------------------------------------

    def _start_monitor(self, session: Session) -> None:
        if session.id in self._monitors:
            return
        self._wake[session.id] = asyncio.Event()
        self._monitored_vehicle[session.id] = session.vehicle_id
        task = self._spawn(self._monitor(session), f"bridge-monitor-{session.id}")
        self._monitors[session.id] = task

        def forget(_task: asyncio.Task[None]) -> None:
            self._monitors.pop(session.id, None)
            self._wake.pop(session.id, None)
            self._monitored_vehicle.pop(session.id, None)

        task.add_done_callback(forget)

    async def _monitor(self, session: Session) -> None:
        bound = self._bound(session)
        vehicle = await store.get_vehicle(self._pool, session.vehicle_id)
        assert vehicle is not None
        delay = self._settings.poll_interval
        while True:
            wake = self._wake[session.id]
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await wake.wait()
            wake.clear()
            session = (
                await sessions.by_transaction(self._pool, session.transaction_id or -1) or session
            )
            if session.ended_at is not None or session.state != sessions.CHARGING:
                return
            battery = await self._access.battery(vehicle, bound, attempts=1)
            now = self._clock()
            soc = session.last_soc_percent
            if battery is not None:
                soc = battery.soc_percent
                await sessions.add_soc_sample(
                    self._pool, session.id, now, soc, None, "smartcar", battery.meta.data_age
                )
                session = await sessions.update(self._pool, session.id, last_soc_percent=soc)
            energy = self._energy_so_far(session)
            reason = should_stop(
                soc_percent=soc,
                target_soc_percent=session.target_soc_percent,
                energy_wh=energy,
                max_energy_wh=session.max_energy_wh,
                departure_at=session.departure_at,
                now=now,
            )
            if reason is not None:
                await self._stop(session, reason, bound)
                return
            delay = next_poll_delay(
                base_interval_s=self._settings.poll_interval,
                soc_percent=soc,
                target_soc_percent=session.target_soc_percent,
                power_w=self._power_w.get(session.id),
                battery_capacity_wh=session.battery_capacity_wh,
                data_age=battery.meta.data_age if battery is not None else None,
                now=now,
                min_interval_s=min(15.0, self._settings.poll_interval),
            )

    def _energy_so_far(self, session: Session) -> int | None:
        latest = self._latest_energy.get(session.id)
        if latest is None or session.meter_start_wh is None:
            return None
        return max(int(latest - session.meter_start_wh), 0)

    async def _stop(self, session: Session, reason: str, bound: Any) -> None:
        session = await sessions.update(
            self._pool, session.id, state=sessions.STOPPING, stop_reason=reason
        )
        bound.info("bridge.stop_requested", reason=reason, soc_percent=session.last_soc_percent)
        await self._command(
            session.charge_point_id,
            "RemoteStopTransaction",
            {"transactionId": session.transaction_id},
            bound,
        )
        vehicle = await store.get_vehicle(self._pool, session.vehicle_id)
        if vehicle is not None:
            await self._access.stop_charge(vehicle, bound)

    async def _on_meter(self, event: MeterSampled) -> None:
        if event.transaction_id is None:
            return
        session = await sessions.by_transaction(self._pool, event.transaction_id)
        if session is None or session.ended_at is not None:
            return
        if event.energy_wh is not None:
            previous = self._energy_at.get(session.id)
            if previous is not None and event.at > previous[0]:
                hours = (event.at - previous[0]).total_seconds() / 3600
                self._power_w[session.id] = max(event.energy_wh - previous[1], 0.0) / hours
            self._energy_at[session.id] = (event.at, event.energy_wh)
            self._latest_energy[session.id] = event.energy_wh
            await sessions.add_energy_sample(self._pool, session.id, event.at, event.energy_wh)
        if event.soc_percent is not None:
            await sessions.add_soc_sample(
                self._pool, session.id, event.at, event.soc_percent, None, "charger", None
            )
            await sessions.update(self._pool, session.id, last_soc_percent=event.soc_percent)
        wake = self._wake.get(session.id)
        if wake is not None and self._near_stop(session, event):
            wake.set()

    def _near_stop(self, session: Session, event: MeterSampled) -> bool:
        if event.soc_percent is not None and event.soc_percent >= session.target_soc_percent:
            return True
        energy = self._energy_so_far(session)
        return bool(
            session.max_energy_wh and energy is not None and energy >= session.max_energy_wh
        )

    # --- the end of a session -----------------------------------------------------------

    async def _on_transaction_stopped(self, event: TransactionStopped) -> None:
        session = await sessions.by_transaction(self._pool, event.transaction_id)
        if session is None or session.ended_at is not None:
            return
        if event.closed_by_central_system:
            # The charger gave up on it (a new transaction on the connector, or a reboot):
            # no StopTransaction came, so there is nothing to reconcile against.
            await self._supersede(session, event.superseded_by)
            return
        monitor = self._monitors.get(session.id)
        if monitor is not None:
            monitor.cancel()
        bound = self._bound(session)
        if session.state != sessions.STOPPING:
            # The driver unplugged, or the charger stopped on its own.
            bound.info("bridge.stopped_by_charger", reason=event.reason)
        vehicle = await store.get_vehicle(self._pool, session.vehicle_id)
        battery = await self._access.battery(vehicle, bound, attempts=2) if vehicle else None
        end_soc = battery.soc_percent if battery is not None else session.last_soc_percent
        if battery is not None:
            await sessions.add_soc_sample(
                self._pool,
                session.id,
                self._clock(),
                end_soc,
                None,
                "smartcar",
                battery.meta.data_age,
            )
        result = reconcile(
            meter_start_wh=session.meter_start_wh,
            meter_stop_wh=event.meter_stop_wh,
            energy_register_samples=await sessions.energy_samples(self._pool, session.id),
            start_soc_percent=session.start_soc_percent,
            end_soc_percent=end_soc,
            battery_capacity_wh=session.battery_capacity_wh,
            tariff_per_kwh=session.tariff_per_kwh,
            currency=session.currency or "EUR",
            tolerance=self._settings.energy_tolerance,
        )
        await sessions.update(
            self._pool,
            session.id,
            state=sessions.COMPLETED,
            meter_stop_wh=event.meter_stop_wh,
            end_soc_percent=end_soc,
            stop_reason=session.stop_reason or event.reason or "Local",
            grid_energy_wh=result.grid_energy_wh,
            battery_energy_wh=result.battery_energy_wh,
            efficiency=result.efficiency,
            reconciliation_flags=list(result.flags),
            bill_energy_wh=result.bill_energy_wh,
            bill_basis=result.bill_basis,
            bill_amount=result.bill_amount,
            ended_at=self._clock(),
        )
        for per_session in (self._latest_energy, self._energy_at, self._power_w):
            per_session.pop(session.id, None)
        bound.info(
            "bridge.session_reconciled",
            grid_energy_wh=result.grid_energy_wh,
            battery_energy_wh=result.battery_energy_wh,
            efficiency=str(result.efficiency) if result.efficiency is not None else None,
            flags=list(result.flags),
            bill_basis=result.bill_basis,
            bill_amount=str(result.bill_amount),
            currency=result.currency,
        )

    async def _supersede(self, session: Session, transaction_id: int | None) -> None:
        monitor = self._monitors.get(session.id)
        if monitor is not None:
            monitor.cancel()
        by = f"transaction {transaction_id}" if transaction_id is not None else "a reboot"
        reason = f"superseded by {by}: no StopTransaction received"
        await sessions.update(
            self._pool,
            session.id,
            state=sessions.FAILED,
            last_error=reason,
            stop_reason="Superseded",
            ended_at=self._clock(),
        )
        self._bound(session).warning("bridge.session_superseded", new_transaction_id=transaction_id)

    async def _fail(self, session: Session, reason: str, bound: Any) -> None:
        await sessions.update(
            self._pool, session.id, state=sessions.FAILED, last_error=reason, ended_at=self._clock()
        )
        bound.warning("bridge.gave_up", step=session.state, reason=reason)

    async def _resume(self, session: Session) -> None:
        bound = self._bound(session)
        if session.state in (sessions.CHARGING, sessions.STOPPING):
            bound.info("bridge.session_resumed", state=session.state)
            samples = await sessions.energy_samples(self._pool, session.id)
            if samples:
                self._latest_energy[session.id] = samples[-1][1]
            if session.state == sessions.STOPPING:
                self._spawn(self._stop(session, session.stop_reason or "resumed", bound), "stop")
            else:
                self._start_monitor(session)
        elif self._clock() - session.created_at > timedelta(seconds=self._settings.start_timeout):
            await self._fail(session, "central system restarted before the start", bound)

    async def _command(
        self, charge_point_id: str, action: str, payload: dict[str, Any], bound: Any
    ) -> dict[str, Any] | None:
        for attempt in range(3):
            try:
                return await self._send(charge_point_id, action, payload)
            except CommandError as exc:
                bound.warning(
                    "bridge.command_failed", action=action, error=str(exc), attempt=attempt
                )
                await asyncio.sleep(2**attempt)
        bound.warning("bridge.gave_up", step=action, reason="charger did not take the command")
        return None

    def _bound(self, session: Session) -> Any:
        return log.bind(
            charge_point_id=session.charge_point_id,
            connector_id=session.connector_id,
            transaction_id=session.transaction_id,
            vin=mask_vin(session.vin),
            account_id=session.account_id,
            session_id=session.id,
        )


def _webhook_soc(event: dict[str, Any]) -> float | None:
    """SoC in percent from a v4 VEHICLE_STATE event (smartcar-api.md §10), if present."""
    for signal in (event.get("data") or {}).get("signals") or []:
        if signal.get("code") == "tractionbattery-stateofcharge":
            value = (signal.get("body") or {}).get("value")
            if isinstance(value, int | float):
                return float(value)
    return None
