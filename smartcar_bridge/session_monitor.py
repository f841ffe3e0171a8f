"""A running session's own tasks: monitor SoC, stop at the target, reconcile and bill.

Each session has its monitor task and its reconciliation task; a slow or rate-limited car
delays only its own session. Transitions go through ``session_store.transition`` (a
compare-and-set), so the bill is written exactly once even when the charger's stop and a
restart's resume race to reconcile the same session.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Coroutine
from datetime import datetime
from typing import Any

import asyncpg
import structlog

from csms.db import transactions
from csms.domain.events import MeterSampled, TransactionStopped
from csms.log import mask_vin
from smartcar_bridge import session_store as sessions
from smartcar_bridge import store
from smartcar_bridge.leases import SESSION
from smartcar_bridge.ownership import Work
from smartcar_bridge.ratelimit import Purpose, call_purpose
from smartcar_bridge.reconcile import reconcile
from smartcar_bridge.session_store import Session
from smartcar_bridge.settings import BridgeSettings
from smartcar_bridge.targets import (
    next_poll_delay,
    predicted_soc_percent,
    prediction_margin,
    seconds_until_confirm,
    should_stop,
)
from smartcar_bridge.vehicle_access import VehicleAccess

log = structlog.get_logger()

Command = Callable[[str, str, dict[str, Any], Any], Awaitable[dict[str, Any] | None]]
Spawn = Callable[[Coroutine[Any, Any, Any], str, Work | None], asyncio.Task[Any]]


def bound_log(session: Session) -> Any:
    return log.bind(
        charge_point_id=session.charge_point_id,
        connector_id=session.connector_id,
        transaction_id=session.transaction_id,
        vin=mask_vin(session.vin),
        account_id=session.account_id,
        session_id=session.id,
    )


def _work(session: Session) -> Work:
    return (SESSION, session.id)


class SessionRunner:
    def __init__(
        self,
        *,
        pool: asyncpg.Pool,
        access: VehicleAccess,
        command: Command,
        spawn: Spawn,
        settings: BridgeSettings,
        clock: Callable[[], datetime],
    ) -> None:
        self._pool = pool
        self._access = access
        self._command = command
        self._spawn = spawn
        self._settings = settings
        self._clock = clock
        self._monitors: dict[int, asyncio.Task[None]] = {}
        self._wake: dict[int, asyncio.Event] = {}
        self._vehicle: dict[int, int] = {}  # session id -> vehicle id, while monitored
        # The charger's power, from its last two energy readings: polls come sooner near
        # the target when we know how fast the battery is filling.
        self._energy_at: dict[int, tuple[datetime, float]] = {}
        self._power_w: dict[int, float] = {}
        self._reported: dict[int, float] = {}  # session id -> SoC from a webhook, unused yet

    def reported_soc(self, session_id: int, soc_percent: float) -> None:
        """A webhook brought the car's SoC: the monitor uses it instead of a read."""
        self._reported[session_id] = soc_percent

    def monitoring(self, session_id: int) -> bool:
        return session_id in self._monitors

    def wake(self, vehicle_id: int) -> None:
        for session_id, event in self._wake.items():
            if self._vehicle.get(session_id) == vehicle_id:
                event.set()

    def started(self, session: Session) -> None:
        """The session's transaction is linked: make sure the car charges, and monitor."""
        self._spawn(
            self._ensure_car_charging(session), f"bridge-car-start-{session.id}", _work(session)
        )
        self._start_monitor(session)

    async def adopt(self, session: Session) -> None:
        """A confirmed session (charging already): record its start SoC and monitor it."""
        self._spawn(
            self._record_start_soc(session), f"bridge-start-soc-{session.id}", _work(session)
        )
        self._start_monitor(session)

    async def resume(self, session: Session) -> None:
        """After a restart, from the persisted state (a stop may have come while down)."""
        samples = await sessions.energy_samples(self._pool, session.id)
        if samples:
            self._energy_at[session.id] = samples[-1]
        if session.state in (sessions.CHARGING, sessions.STOPPING) and session.transaction_id:
            stop = await transactions.stop_of(self._pool, session.transaction_id)
            if stop is not None and stop["closed_by_central_system"]:
                await self.supersede(session, stop["superseded_by"])
                return
            if stop is not None:
                stopped = await sessions.transition(
                    self._pool,
                    session.id,
                    "transaction_stopped",
                    meter_stop_wh=stop["meter_stop_wh"],
                    stop_reason=session.stop_reason or stop["stop_reason"] or "Local",
                )
                if stopped is not None:
                    session = stopped
        if session.state == sessions.RECONCILING:
            self._spawn(self._reconcile(session), f"bridge-reconcile-{session.id}", _work(session))
        elif session.state == sessions.STOPPING:
            self._spawn(
                self._send_stop(session, bound_log(session)),
                f"bridge-stop-{session.id}",
                _work(session),
            )
        elif session.state == sessions.CHARGING:
            self._start_monitor(session)

    async def fail(self, session: Session, trigger: str, reason: str) -> None:
        failed = await sessions.transition(
            self._pool, session.id, trigger, last_error=reason, ended_at=self._clock()
        )
        if failed is not None:
            bound_log(session).warning("bridge.gave_up", step=session.state, reason=reason)

    async def supersede(self, session: Session, transaction_id: int | None) -> None:
        by = f"transaction {transaction_id}" if transaction_id is not None else "a reboot"
        reason = f"superseded by {by}: no StopTransaction received"
        failed = await sessions.transition(
            self._pool,
            session.id,
            "superseded",
            last_error=reason,
            stop_reason="Superseded",
            ended_at=self._clock(),
        )
        if failed is not None:
            self._cancel_monitor(session.id)
            bound_log(session).warning(
                "bridge.session_superseded", new_transaction_id=transaction_id
            )

    # --- events ------------------------------------------------------------------------

    async def on_meter(self, event: MeterSampled) -> None:
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
            await sessions.add_energy_sample(self._pool, session.id, event.at, event.energy_wh)
        if event.soc_percent is not None:
            await sessions.add_soc_sample(
                self._pool, session.id, event.at, event.soc_percent, None, "charger", None
            )
            await sessions.update(self._pool, session.id, last_soc_percent=event.soc_percent)
        wake = self._wake.get(session.id)
        if wake is not None and self._near_stop(session, event):
            wake.set()

    async def on_transaction_stopped(self, event: TransactionStopped) -> None:
        session = await sessions.by_transaction(self._pool, event.transaction_id)
        if session is None:
            return
        if event.closed_by_central_system:
            # The charger gave up on it (a new transaction on the connector, or a reboot):
            # no StopTransaction came, so there is nothing to reconcile against.
            await self.supersede(session, event.superseded_by)
            return
        stopped = await sessions.transition(
            self._pool,
            session.id,
            "transaction_stopped",
            meter_stop_wh=event.meter_stop_wh,
            stop_reason=session.stop_reason or event.reason or "Local",
        )
        if stopped is None:
            return  # a duplicate stop, or the session is already over
        self._cancel_monitor(session.id)
        if session.state != sessions.STOPPING:
            # The driver unplugged, or the charger stopped on its own.
            bound_log(session).info("bridge.stopped_by_charger", reason=event.reason)
        self._spawn(self._reconcile(stopped), f"bridge-reconcile-{session.id}", _work(session))

    # --- tasks -------------------------------------------------------------------------

    async def _ensure_car_charging(self, session: Session) -> None:
        vehicle = await store.get_vehicle(self._pool, session.vehicle_id)
        if vehicle is None:
            return
        bound = bound_log(session)
        with call_purpose(Purpose.START, session.id):
            status = await self._access.charge_status(vehicle, bound)
            if status is not None and status.state == "NOT_CHARGING":
                await self._access.start_charge(vehicle, bound)

    async def _record_start_soc(self, session: Session) -> None:
        vehicle = await store.get_vehicle(self._pool, session.vehicle_id)
        if vehicle is None:
            return
        with call_purpose(Purpose.SESSION_READ, session.id):
            battery = await self._access.battery(vehicle, bound_log(session))
        if battery is None:
            return
        await sessions.add_soc_sample(
            self._pool, session.id, self._clock(), battery.soc_percent, None, "smartcar",
            battery.meta.data_age,
        )  # fmt: skip
        await sessions.update(
            self._pool,
            session.id,
            start_soc_percent=battery.soc_percent,
            last_soc_percent=battery.soc_percent,
        )

    def _start_monitor(self, session: Session) -> None:
        if session.id in self._monitors:
            return
        self._wake[session.id] = asyncio.Event()
        self._vehicle[session.id] = session.vehicle_id
        task = self._spawn(self._monitor(session), f"bridge-monitor-{session.id}", _work(session))
        self._monitors[session.id] = task

        def forget(_task: asyncio.Task[None]) -> None:
            self._monitors.pop(session.id, None)
            self._wake.pop(session.id, None)
            self._vehicle.pop(session.id, None)

        task.add_done_callback(forget)

    def _cancel_monitor(self, session_id: int) -> None:
        monitor = self._monitors.get(session_id)
        if monitor is not None and monitor is not asyncio.current_task():
            monitor.cancel()

    async def _monitor(self, session: Session) -> None:
        bound = bound_log(session)
        vehicle = await store.get_vehicle(self._pool, session.vehicle_id)
        assert vehicle is not None
        delay = self._settings.poll_interval
        while True:
            wake = self._wake[session.id]
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await wake.wait()
            wake.clear()
            session = await sessions.by_id(self._pool, session.id) or session
            if session.state != sessions.CHARGING:
                return
            now = self._clock()
            battery = None
            soc: float | None = session.last_soc_percent
            reported = self._reported.pop(session.id, None)
            predicted = predicted_soc_percent(
                start_soc_percent=session.start_soc_percent,
                energy_wh=self._energy_so_far(session),
                battery_capacity_wh=session.battery_capacity_wh,
            )
            margin = (
                prediction_margin(session.start_soc_percent or 0.0, predicted)
                if predicted is not None
                else 0.0
            )
            if reported is not None:
                soc = reported  # a webhook said so: no call needed
            elif predicted is not None and predicted + margin < session.target_soc_percent:
                # Far from the target by the charger's own meter: no call, and no stop on a
                # guess either (only the energy and departure limits apply meanwhile).
                soc = None
            else:
                with call_purpose(Purpose.MONITOR, session.id):
                    battery = await self._access.battery(vehicle, bound, attempts=1)
                if battery is not None:
                    soc = battery.soc_percent
                    await sessions.add_soc_sample(
                        self._pool, session.id, now, soc, None, "smartcar", battery.meta.data_age
                    )
                    session = await sessions.update(self._pool, session.id, last_soc_percent=soc)
                elif predicted is not None and predicted >= session.target_soc_percent:
                    # No reading (the call budget is spent, or the car did not answer): the
                    # charger's meter says the target is reached, and that decides the stop.
                    soc = predicted
            reason = should_stop(
                soc_percent=soc,
                target_soc_percent=session.target_soc_percent,
                energy_wh=self._energy_so_far(session),
                max_energy_wh=session.max_energy_wh,
                departure_at=session.departure_at,
                now=now,
            )
            if reason is not None:
                stopping = await sessions.transition(
                    self._pool, session.id, "stop_requested", stop_reason=reason
                )
                if stopping is not None:
                    bound.info("bridge.stop_requested", reason=reason, soc_percent=soc)
                    await self._send_stop(stopping, bound)
                return
            if soc is None and predicted is not None and session.battery_capacity_wh:
                until = seconds_until_confirm(
                    predicted_soc_percent=predicted,
                    margin=margin,
                    target_soc_percent=session.target_soc_percent,
                    power_w=self._power_w.get(session.id),
                    battery_capacity_wh=session.battery_capacity_wh,
                )
                # Woken sooner by every meter reading near the stop and by every webhook.
                base = self._settings.poll_interval
                delay = base if until is None else min(max(until, 1.0), 10 * base)
                continue
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
        latest = self._energy_at.get(session.id)
        if latest is None or session.meter_start_wh is None:
            return None
        return max(int(latest[1] - session.meter_start_wh), 0)

    def _near_stop(self, session: Session, event: MeterSampled) -> bool:
        if event.soc_percent is not None and event.soc_percent >= session.target_soc_percent:
            return True
        energy = self._energy_so_far(session)
        return bool(
            session.max_energy_wh and energy is not None and energy >= session.max_energy_wh
        )

    async def _send_stop(self, session: Session, bound: Any) -> None:
        await self._command(
            session.charge_point_id,
            "RemoteStopTransaction",
            {"transactionId": session.transaction_id},
            bound,
        )
        vehicle = await store.get_vehicle(self._pool, session.vehicle_id)
        if vehicle is not None:
            with call_purpose(Purpose.STOP, session.id):
                await self._access.stop_charge(vehicle, bound)

    async def _reconcile(self, session: Session) -> None:
        """Bill a session whose transaction stopped; the compare-and-set bills it once."""
        bound = bound_log(session)
        vehicle = await store.get_vehicle(self._pool, session.vehicle_id)
        with call_purpose(Purpose.FINAL_READ, session.id):
            battery = await self._access.battery(vehicle, bound, attempts=2) if vehicle else None
        end_soc = battery.soc_percent if battery is not None else session.last_soc_percent
        if battery is not None:
            await sessions.add_soc_sample(
                self._pool, session.id, self._clock(), battery.soc_percent, None, "smartcar",
                battery.meta.data_age,
            )  # fmt: skip
        # Every session row is created with its account's tariff (session_store.open_session).
        assert session.tariff_per_kwh is not None
        result = reconcile(
            meter_start_wh=session.meter_start_wh,
            meter_stop_wh=session.meter_stop_wh,
            energy_register_samples=await sessions.energy_samples(self._pool, session.id),
            start_soc_percent=session.start_soc_percent,
            end_soc_percent=end_soc,
            battery_capacity_wh=session.battery_capacity_wh,
            tariff_per_kwh=session.tariff_per_kwh,
            currency=session.currency or "EUR",
            tolerance=self._settings.energy_tolerance,
        )
        completed = await sessions.transition(
            self._pool,
            session.id,
            "reconciled",
            end_soc_percent=end_soc,
            grid_energy_wh=result.grid_energy_wh,
            battery_energy_wh=result.battery_energy_wh,
            efficiency=result.efficiency,
            reconciliation_flags=list(result.flags),
            bill_energy_wh=result.bill_energy_wh,
            bill_basis=result.bill_basis,
            bill_amount=result.bill_amount,
            ended_at=self._clock(),
        )
        for per_session in (self._energy_at, self._power_w):
            per_session.pop(session.id, None)
        if completed is None:
            return  # reconciled already (a resume and the charger's stop raced)
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
