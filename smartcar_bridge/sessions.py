"""The plug-and-charge engine, driven by the central system's domain events.

The consumer does only quick bookkeeping per event (record a plug-in, link a transaction,
move a session's state) and hands every wait on Smartcar or a charger to a task of its
own: a plug-in's decision (``plug_in_desk``), a session's remote start, its monitor
(``session_monitor``), its reconciliation. So no plug-in or session waits for another.
Session states follow ``session_machine``; every transition is a compare-and-set in the
database, and ``start`` resumes every unfinished session and plug-in after a restart.

In a cluster (``ownership.ClusterWork``) each session and each plug-in being decided is
worked on by the one node holding its lease: an event for another node's work is handed
to that node, and work whose node died (its lease lapsed) is taken over and resumed here
exactly as a restart resumes it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from datetime import datetime
from typing import Any

import asyncpg
import structlog

from csms.db import transactions
from csms.domain.events import (
    ConnectorStatusChanged,
    Event,
    EventPort,
    MeterSampled,
    TransactionStarted,
    TransactionStopped,
)
from csms.ocpp16.errors import CommandError
from smartcar_bridge import plug_in_store as plug_ins
from smartcar_bridge import session_store as sessions
from smartcar_bridge import store
from smartcar_bridge import webhook_signals as signals
from smartcar_bridge.confirmation import ConfirmationSettings, Confirmer, decision_plan
from smartcar_bridge.leases import PLUG_IN, SESSION
from smartcar_bridge.matcher import CarWatch, PlugInterval, cable_event, observe
from smartcar_bridge.ownership import LocalWork, Wake, Work, WorkPort
from smartcar_bridge.plug_in_desk import PlugInDesk
from smartcar_bridge.session_monitor import SessionRunner, bound_log
from smartcar_bridge.session_store import Session
from smartcar_bridge.settings import BridgeSettings
from smartcar_bridge.vehicle_access import VehicleAccess

log = structlog.get_logger()

SendCommand = Callable[..., Awaitable[dict[str, Any]]]
RegisterIdTag = Callable[[str, str], Awaitable[None]]
Clock = Callable[[], datetime]

_PLUGGED_STATES = frozenset(plug_ins.PLUGGED_STATES)
# OCPP 1.6 §4.9: Available (cable out) and Finishing (session over) end a plug cycle.
_CYCLE_ENDS = frozenset({"Available", "Finishing", "Unavailable", "Faulted"})
# An event for work whose node stopped answering waits for that node's lease to lapse:
# attempts a quarter of the TTL apart, so a dead holder is replaced within them.
_ROUTE_ATTEMPTS = 16


async def _no_registry(_id_tag: str, _status: str) -> None:
    return None


class PlugAndCharge:
    """Owns the bridge's tasks: the event consumer, one task per plug-in, per session
    start, monitor and reconciliation. ``start`` resumes; ``close`` cancels everything."""

    def __init__(
        self,
        *,
        pool: asyncpg.Pool,
        access: VehicleAccess,
        send_command: SendCommand,
        events: EventPort,
        settings: BridgeSettings,
        clock: Clock,
        register_id_tag: RegisterIdTag = _no_registry,
        work: WorkPort | None = None,
        decision_spent: Callable[[int], bool] = lambda _plug_in_id: False,
        decision_calls_made: Callable[[int], int] = lambda _plug_in_id: 0,
    ) -> None:
        self._pool = pool
        self._work: WorkPort = work if work is not None else LocalWork(pool)
        self._work_tasks: dict[Work, set[asyncio.Task[Any]]] = {}
        self._access = access
        self._send = send_command
        self._events = events
        self._settings = settings
        self._clock = clock
        self._queue: asyncio.Queue[Event] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._started: dict[int, asyncio.Future[None]] = {}
        self.watch = CarWatch(pool, access, clock, reuse_for=min(2.0, settings.confirm_poll))
        plan = decision_plan(settings.decision_reads, settings.decision_calls)
        self.confirmer = Confirmer(
            pool,
            self.watch,
            self._command,
            register_id_tag,
            ConfirmationSettings(
                settings.confirm_timeout, settings.confirm_poll, settings.start_timeout
            ),
            clock,
            calls_left=lambda plug_in_id: plan - decision_calls_made(plug_in_id),
        )
        self.runner = SessionRunner(
            pool=pool,
            access=access,
            command=self._command,
            spawn=self._spawn,
            settings=settings,
            clock=clock,
        )
        self.desk = PlugInDesk(
            pool=pool,
            access=access,
            watch=self.watch,
            confirmer=self.confirmer,
            start_session=self._start_session,
            adopt_session=self._adopt,
            clock=clock,
            window_s=settings.match_window,
            settle_s=settings.match_settle,
            give_up_after_s=settings.match_give_up_after,
            read_budget=settings.decision_reads,
            webhook_lag_s=settings.webhook_lag,
            position_trusted_s=settings.position_trusted,
            decision_spent=decision_spent,
            call_budget=plan,
        )

    async def start(self) -> None:
        # Its own durable consumer (named, not numbered): each event reaches one node.
        self._queue = self._events.subscribe("bridge")
        self._spawn(self._consume(), "bridge-events")
        await self._work.start(self._dispatch, self._woken, self._lost, self._take_over)
        if not self._work.clustered:
            # One process: every claim without an open session is a confirmation cut short.
            await plug_ins.release_stale(self._pool)
        # Sessions first: a plug-in's retry should see the cars they hold.
        for work in sorted(await self._work.orphans(), key=lambda w: w[0] != SESSION):
            if await self._work.take(work):
                await self._take_over(work)

    async def close(self) -> None:
        if self._queue is not None:
            self._events.unsubscribe(self._queue)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._work.close()

    def wake(self, vehicle_id: int) -> None:
        """New data about a car (a webhook): re-check its session and pending plug-ins now."""
        self.runner.wake(vehicle_id)
        self.desk.nudge()

    async def _woken(self, wake: Wake) -> None:
        """Another node received a webhook about a car: act on it if its work is here."""
        if wake.session_id is not None and wake.soc_percent is not None:
            if self.runner.monitoring(wake.session_id):
                self.runner.reported_soc(wake.session_id, wake.soc_percent)
        self.wake(wake.vehicle_id)

    async def on_webhook(self, event: dict[str, Any]) -> None:
        """A verified Smartcar webhook: record SoC and cable changes, re-check at once."""
        event_id = str(event.get("eventId") or "")
        vehicle_ref = event.get("vehicleId") or (event.get("data") or {}).get("vehicle", {}).get(
            "id"
        )
        if not event_id or not await sessions.first_delivery(
            self._pool, event_id, str(event.get("eventType")), vehicle_ref
        ):
            return
        # Which node got it, in a cluster: the one working on the car is told below.
        log.info("bridge.webhook_received", event_id=event_id, event_type=event.get("eventType"))
        vehicle = await store.vehicle_by_smartcar_id(self._pool, str(vehicle_ref))
        if vehicle is None:
            return
        # From now on this car is watched by its webhooks, not by reads (candidates module).
        await store.note_webhook(self._pool, vehicle.id, self._clock())
        place = signals.location(event)
        if place is not None:
            await store.set_location(self._pool, vehicle.id, *place)
        cable = signals.cable_connected(event)
        if cable is not None:
            plugged, at = cable
            if signals.triggered_by(event, signals.CABLE_CONNECTED):
                interval = cable_event(plugged, at)  # the change happened at oemUpdatedAt
            else:
                previous = PlugInterval(
                    vehicle.unplugged_seen_at, vehicle.plugged_seen_at, vehicle.plug_data_at
                )
                interval = observe(previous, plugged, at)
            await self.watch.record(vehicle.id, interval)
        charging = signals.is_charging(event)
        if charging is not None:
            self.watch.report_charging(vehicle.id, *charging)  # confirmation reads this
        reported = signals.soc_reported(event)
        if reported is not None:
            self.watch.report_soc(vehicle.id, *reported)  # below-target checks read this
        soc = signals.soc_percent(event)
        session = await sessions.open_for_vehicle(self._pool, vehicle.id)
        if session is not None and soc is not None:
            await sessions.add_soc_sample(
                self._pool, session.id, self._clock(), soc, None, "webhook", None
            )
            await sessions.update(self._pool, session.id, last_soc_percent=soc)
            self.runner.reported_soc(session.id, soc)
        self.wake(vehicle.id)
        # Webhooks arrive at any node: the one working on this car's session or plug-in
        # must hear of it now, not at its next poll.
        self._work.broadcast(
            Wake(
                vehicle.id,
                session.id if session is not None else None,
                soc if session is not None else None,
            )
        )

    # --- tasks and events --------------------------------------------------------------

    def _spawn(
        self, coroutine: Coroutine[Any, Any, Any], name: str, work: Work | None = None
    ) -> asyncio.Task[Any]:
        task = asyncio.create_task(coroutine, name=name)
        self._tasks.add(task)
        if work is not None:
            self._work_tasks.setdefault(work, set()).add(task)
            task.add_done_callback(lambda t: self._forget_task(work, t))
        task.add_done_callback(self._done)
        return task

    def _forget_task(self, work: Work, task: asyncio.Task[Any]) -> None:
        tasks = self._work_tasks.get(work)
        if tasks is not None:
            tasks.discard(task)
            if not tasks:
                del self._work_tasks[work]

    def _working_on(self, work: Work) -> bool:
        return bool(self._work_tasks.get(work))

    def _lost(self, work: Work) -> None:
        """Another node holds this work now (our lease lapsed): stop working on it here."""
        for task in self._work_tasks.pop(work, set()):
            task.cancel()

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            # The session or plug-in stays in its persisted state: a restart resumes it.
            log.error("bridge.task_failed", task=task.get_name(), exc_info=task.exception())

    async def _consume(self) -> None:
        assert self._queue is not None
        while True:
            event = await self._queue.get()
            try:
                await self._route(event)
            except Exception:  # the consumer must never die: log, keep going
                log.exception("bridge.event_failed", event_type=type(event).__name__)

    async def _route(self, event: Event) -> None:
        """Handle the event here, or hand it to the node working on its session/plug-in."""
        if not self._work.clustered:
            await self._dispatch(event)
            return
        # Bounded: a holder that stopped answering loses its lease within its TTL.
        for _ in range(_ROUTE_ATTEMPTS):
            work = await self._work_of(event)
            if work is None:
                await self._dispatch(event)
                return
            route = await self._work.route(work)
            if route.local:
                if route.taken_over:
                    log.info("bridge.work_taken_over", kind=work[0], work_id=work[1])
                    await self._take_over(work)
                await self._dispatch(event)
                return
            if route.node is not None and await self._work.forward(route.node, event):
                return
            await asyncio.sleep(max(self._work.ttl / 4, 0.05))
        log.warning("bridge.event_unrouted", event_type=type(event).__name__)
        await self._dispatch(event)  # every step is a compare-and-set: safe here too

    async def _work_of(self, event: Event) -> Work | None:
        """The session or plug-in an event is about (None: nobody's work yet)."""
        if isinstance(event, MeterSampled | TransactionStopped):
            if event.transaction_id is None:
                return None
            session = await sessions.by_transaction(self._pool, event.transaction_id)
            return (SESSION, session.id) if session and session.ended_at is None else None
        if not isinstance(event, ConnectorStatusChanged | TransactionStarted):
            return None
        if event.connector_id == 0:
            return None
        key = (event.charge_point_id, event.connector_id)
        session = await sessions.open_on_connector(self._pool, *key)
        if session is not None:
            return (SESSION, session.id)
        plug = await plug_ins.open_on_connector(self._pool, *key)
        if plug is not None and plug.outcome in plug_ins.OPEN_OUTCOMES:
            return (PLUG_IN, plug.id)
        return None

    async def _take_over(self, work: Work) -> None:
        """Resume work whose node stopped (or this process's, after a restart)."""
        if self._working_on(work):
            return
        kind, work_id = work
        if kind == SESSION:
            session = await sessions.by_id(self._pool, work_id)
            if session is not None and session.ended_at is None:
                await self._resume(session)
            return
        row = await plug_ins.get(self._pool, work_id)
        if row is None:
            return
        if row.outcome == plug_ins.PENDING:
            # decide_until_done drops it at once if its plug cycle ended meanwhile.
            self._spawn(self.desk.decide_until_done(row.id), f"bridge-plug-in-{row.id}", work)
        elif row.outcome == plug_ins.CONFIRMING:
            if self._work.clustered:
                await plug_ins.release_stale(self._pool, plug_in_id=row.id)
            self._spawn(self._abandon_confirmation(row), f"bridge-confirm-{row.id}", work)

    async def _dispatch(self, event: Event) -> None:
        if isinstance(event, ConnectorStatusChanged):
            await self._on_status(event)
        elif isinstance(event, TransactionStarted):
            await self._on_transaction_started(event)
        elif isinstance(event, MeterSampled):
            await self.runner.on_meter(event)
        elif isinstance(event, TransactionStopped):
            await self.runner.on_transaction_stopped(event)

    # --- plug-ins --------------------------------------------------------------------------

    async def _on_status(self, event: ConnectorStatusChanged) -> None:
        key = (event.charge_point_id, event.connector_id)
        if event.connector_id == 0:
            return
        if event.status in _CYCLE_ENDS:
            await plug_ins.end(self._pool, *key, event.at)
            self.desk.nudge()
            if event.status == "Available":
                await self._on_unplugged(event)
            return
        # Preparing is the plug-in signal; some firmware goes straight to Charging, and a
        # repeated Preparing (failed start) is the same plug cycle.
        plugged_now = event.status in _PLUGGED_STATES and event.previous_status not in (
            _PLUGGED_STATES | {"Finishing"}
        )
        if not plugged_now:
            return
        if await sessions.open_on_connector(self._pool, *key) is not None:
            return
        plug_in_id = await plug_ins.begin(self._pool, *key, event.at)
        if not await self._work.take((PLUG_IN, plug_in_id)):
            return  # another node's sweep adopted it in this instant: it decides it
        log.info(
            "bridge.plug_in_recorded",
            charge_point_id=event.charge_point_id,
            connector_id=event.connector_id,
            plug_in_id=plug_in_id,
        )
        self._spawn(
            self.desk.decide_until_done(plug_in_id),
            f"bridge-plug-in-{plug_in_id}",
            (PLUG_IN, plug_in_id),
        )

    async def _on_unplugged(self, event: ConnectorStatusChanged) -> None:
        session = await sessions.latest_on_connector(
            self._pool, event.charge_point_id, event.connector_id
        )
        if session is None:
            return
        # The car was on this cable until now: its next plug-in starts after this moment.
        await self.watch.record(session.vehicle_id, cable_event(False, event.at))
        if session.ended_at is None and session.transaction_id is None:
            # Unplugged before the charger started a transaction: nothing to bill.
            await self.runner.fail(session, "unplugged", "unplugged before the start")

    async def _start_session(self, session: Session, plug: plug_ins.PlugInRow) -> None:
        """Re-validate, then RemoteStartTransaction; own task (the plug-in's)."""
        bound = bound_log(session)
        await self._work.take((SESSION, session.id))  # opened here a moment ago
        current = await plug_ins.open_on_connector(
            self._pool, plug.charge_point_id, plug.connector_id
        )
        if current is None or current.id != plug.id:
            # The connector left this plug cycle (Available, Finishing, a new Preparing).
            await self.runner.fail(session, "abandoned", "plug cycle ended before the start")
            await plug_ins.decide(
                self._pool,
                plug.id,
                plug_ins.DROPPED,
                "plug_cycle_ended",
                self._clock(),
                expected=(plug_ins.MATCHED,),
            )
            bound.info("bridge.decision_dropped", reason="plug_cycle_ended")
            return
        starting = await sessions.transition(self._pool, session.id, "remote_start_sent")
        if starting is None:
            bound.info("bridge.decision_dropped", reason="session_moved")
            return
        started = asyncio.get_running_loop().create_future()
        self._started[session.id] = started
        try:
            answer = await self._command(
                session.charge_point_id,
                "RemoteStartTransaction",
                {"connectorId": session.connector_id, "idTag": session.id_tag},
                bound,
            )
            await plug_ins.remote_start_sent(self._pool, plug.id, self._clock())
            if answer is None or answer.get("status") != "Accepted":
                await self.runner.fail(starting, "start_failed", "remote start refused")
                return
            bound.info("bridge.remote_start_accepted")
            try:
                async with asyncio.timeout(self._settings.start_timeout):
                    await started
            except TimeoutError:
                await self.runner.fail(
                    starting, "start_failed", "no StartTransaction from the charger"
                )
        finally:
            self._started.pop(session.id, None)

    async def _adopt(self, session: Session) -> None:
        """A session opened by a confirmation start: its transaction already runs."""
        await self._work.take((SESSION, session.id))
        await self.runner.adopt(session)

    async def _abandon_confirmation(self, row: plug_ins.PlugInRow) -> None:
        """After a restart: a confirmation cut short is stopped; nothing is billed for it."""
        bound = log.bind(charge_point_id=row.charge_point_id, connector_id=row.connector_id)
        if row.confirm_id_tag:
            running = await transactions.started_with(
                self._pool, row.charge_point_id, row.connector_id, row.confirm_id_tag,
                row.plugged_at,
            )  # fmt: skip
            if running is not None and running["stop_received_at"] is None:
                await self._command(
                    row.charge_point_id,
                    "RemoteStopTransaction",
                    {"transactionId": running["id"]},
                    bound,
                )
        await plug_ins.decide(self._pool, row.id, plug_ins.UNCONFIRMED, "restarted", self._clock())
        bound.warning("bridge.confirmation_failed", plug_in_id=row.id, reason="restarted")

    # --- transactions ------------------------------------------------------------------

    async def _on_transaction_started(self, event: TransactionStarted) -> None:
        if self.confirmer.transaction_started(event):
            return
        session = await sessions.open_on_connector(
            self._pool, event.charge_point_id, event.connector_id
        )
        if session is None:
            await self._started_without_us(event)
            return
        if session.transaction_id is not None:
            # A session whose transaction the charger gave up on was already ended by the
            # central system's TransactionStopped (closed_by_central_system), published
            # before this start: see SessionRunner.on_transaction_stopped.
            return
        if session.id_tag.upper() != event.id_tag.upper():
            return  # someone tapped a card: not our session's transaction
        await self._link(session, event.transaction_id, event.meter_start_wh)

    async def _started_without_us(self, event: TransactionStarted) -> None:
        """A card tapped (or a free-charging connector) started the plug cycle's transaction:
        there is nothing left for the bridge to decide on that connector."""
        plug = await plug_ins.open_on_connector(
            self._pool, event.charge_point_id, event.connector_id
        )
        if plug is not None and await plug_ins.decide(
            self._pool, plug.id, plug_ins.DROPPED, "started_by_charger", self._clock(),
            expected=(plug_ins.PENDING,),
        ):  # fmt: skip
            log.info(
                "bridge.decision_dropped",
                charge_point_id=event.charge_point_id,
                connector_id=event.connector_id,
                plug_in_id=plug.id,
                reason="started_by_charger",
            )
            self.desk.nudge()

    async def _link(self, session: Session, transaction_id: int, meter_start_wh: int) -> None:
        charging = await sessions.transition(
            self._pool,
            session.id,
            "transaction_started",
            transaction_id=transaction_id,
            meter_start_wh=meter_start_wh,
        )
        if charging is None:
            return  # a late or duplicate StartTransaction
        bound_log(charging).info("bridge.session_started", meter_start_wh=meter_start_wh)
        waiter = self._started.get(session.id)
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        self.runner.started(charging)

    # --- restart -------------------------------------------------------------------------

    async def _resume(self, session: Session) -> None:
        bound = bound_log(session)
        if session.state == sessions.STARTING:
            found = await transactions.started_with(
                self._pool,
                session.charge_point_id,
                session.connector_id,
                session.id_tag,
                session.created_at,
            )
            if found is not None:
                # The StartTransaction came while we were down.
                await self._link(session, found["id"], found["meter_start_wh"])
                session = await sessions.by_id(self._pool, session.id) or session
        if session.state in (sessions.MATCHED, sessions.STARTING):
            age = self._clock() - session.created_at
            trigger = "abandoned" if session.state == sessions.MATCHED else "start_failed"
            left = self._settings.start_timeout - age.total_seconds()
            if left <= 0:
                await self.runner.fail(session, trigger, "restarted before the start")
            else:
                # Its StartTransaction may still come (linked by the event); if not, the
                # start failed, as the task that sent it would have decided.
                self._spawn(
                    self._fail_unless_started(session, trigger, left),
                    f"bridge-start-wait-{session.id}",
                    (SESSION, session.id),
                )
            return
        bound.info("bridge.session_resumed", state=session.state)
        await self.runner.resume(session)

    async def _fail_unless_started(self, session: Session, trigger: str, wait: float) -> None:
        await asyncio.sleep(wait)
        await self.runner.fail(session, trigger, "restarted before the start")

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
