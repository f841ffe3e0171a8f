"""One simulated world in one process: ``World`` physics, one ``ChargePoint`` per world charger
talking OCPP to a central system, and the Smartcar fake serving the same cars.

    async with WorldRunner("ws://127.0.0.1:9000/ocpp", chargers=3, vehicles=4, speed=60) as runner:
        await runner.wait_booted(10)
        runner.plug_in(vin, "CP00001", 1, tap=True, dwell_s=600)
        await runner.run_for(900)
        print(runner.summary())

A plug-in anywhere in the world (``runner.plug_in``, ``runner.world.plug_in``, a scenario,
a random arrival) puts the car on the charger's cable; the charger meters what the car
accepts, so the car's SoC (what Smartcar reports) and the charger's meter stay consistent.
"""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Sequence
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import structlog

from simulators.charge_point import ChargePoint
from simulators.cp_runtime import SimClock, Stats
from simulators.smartcar_fake import FakeConfig, RunningFake, run_smartcar_fake
from simulators.smartcar_fake.limits import CostLimits
from simulators.world import PlugError, Vehicle, World, WorldError, apply
from simulators.world_cable import CableSession, build_world, card_for
from simulators.world_traffic import Arrival, ArrivalProcess, ScriptedEvent

__all__ = ["CableSession", "WorldRunner", "build_world", "card_for"]

log = structlog.get_logger()

# Parking the reconnect loop this long (simulated s) holds a charger offline until we restart it.
_PARKED_S = 10 * 365 * 86_400.0


class WorldRunner:
    """Runs a ``World``, its charge points and (unless ``smartcar_port`` is None) the fake.

    The fake answers with Smartcar's published cost limits (``smartcar_limits``, default
    ``"smartcar"``: §9's values on the world's clock; ``None`` turns them off).

    Durations are simulated seconds at ``speed``. The simulated clock starts at ``start``
    (default: an hour ago), so charger timestamps stay behind real time for a while and a
    central system can tell replayed messages (old ``timestamp``) from live ones.
    """

    def __init__(
        self,
        csms_url: str,
        *,
        chargers: int = 3,
        vehicles: int = 4,
        world: World | None = None,
        connectors: int | None = None,
        dc_share: float | None = None,
        speed: float = 1.0,
        seed: int | None = None,
        start: datetime | None = None,
        smartcar_port: int | None = 0,
        smartcar_config: FakeConfig | None = None,
        arrivals_per_hour: float = 0.0,
        mean_dwell_s: float = 1800.0,
        rfid_share: float = 0.5,
        scenario: Sequence[ScriptedEvent] = (),
        charger_config: dict[str, str] | None = None,
        call_timeout_s: float = 10.0,
        traffic_paused: bool = False,
        chargers_per_site: int | None = None,
        smartcar_limits: CostLimits | Literal["smartcar"] | None = "smartcar",
    ) -> None:
        self.world = world or build_world(
            chargers, vehicles, seed, connectors, dc_share, chargers_per_site
        )
        self.clock = SimClock(speed, start or datetime.now(UTC) - timedelta(hours=1))
        self.stats = Stats(seed)
        self.charge_points: dict[str, ChargePoint] = {
            charger.id: ChargePoint(
                charger.id,
                csms_url,
                connectors=charger.connectors,
                max_power_w=charger.max_power_w,
                dc=charger.dc,
                config=charger_config,
                clock=self.clock,
                stats=self.stats,
                seed=seed,
                call_timeout_s=call_timeout_s,
            )
            for charger in self.world.chargers.values()
        }
        self.smartcar: RunningFake | None = None
        self.sessions: list[CableSession] = []
        self.errors: list[str] = []
        self.arrivals = 0
        self.turned_away = 0
        self.taps = 0
        self.outages = 0
        self._smartcar_port = smartcar_port
        self._smartcar_config = smartcar_config
        # Smartcar's published limits (§9) by default, on the world's clock (see
        # CostLimits.compressed): a client that ignores them is refused as it would be.
        self._smartcar_limits = (
            CostLimits.smartcar_defaults().compressed(speed)
            if smartcar_limits == "smartcar"
            else smartcar_limits
        )
        self._rng = random.Random(f"{seed}:traffic")
        self._arrival_process = ArrivalProcess(
            arrivals_per_hour, mean_dwell_s, rfid_share, self._rng
        )
        self._scenario = sorted(scenario, key=lambda e: e.at)
        self._active: dict[str, CableSession] = {}
        self._pending_taps: list[CableSession] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._exit = AsyncExitStack()
        self._sim_start: datetime | None = None
        self._closing = False
        # Arrivals and scripted events wait (the drivers are still linking their cars);
        # their times count from resume_traffic().
        self._traffic_paused = traffic_paused
        self._traffic_offset_s = 0.0

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Serve the Smartcar fake, connect every charger, start the world's own task."""
        if self._smartcar_port is not None:
            self.smartcar = await self._exit.enter_async_context(
                run_smartcar_fake(
                    self.world, config=self._smartcar_config, port=self._smartcar_port
                )
            )
            if self._smartcar_limits is not None:
                self.smartcar.fake.costs.configure(self._smartcar_limits)
        self._exit.callback(self.world.on_plug(self._on_plug))
        self._sim_start = self.clock.now()
        for cp in self.charge_points.values():
            cp.start()
        self._spawn(self._drive(), "world-driver")
        log.info(
            "world.started", chargers=len(self.charge_points), vehicles=len(self.world.vehicles)
        )

    async def stop(self) -> None:
        """End the world's tasks, disconnect every charger, stop the fake."""
        tasks, self._tasks = list(self._tasks), set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.gather(*(cp.stop() for cp in self.charge_points.values()))
        await self._exit.aclose()

    async def __aenter__(self) -> WorldRunner:
        try:
            await self.start()
        except BaseException:
            await self.stop()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def elapsed_s(self) -> float:
        """Simulated seconds since ``start``."""
        if self._sim_start is None:
            return 0.0
        return (self.clock.now() - self._sim_start).total_seconds()

    async def run_for(self, sim_seconds: float) -> None:
        """Let ``sim_seconds`` of simulated time pass."""
        await asyncio.sleep(self.clock.real_delay(sim_seconds))

    async def wait_booted(self, timeout: float, share: float = 1.0) -> int:
        """Wait (real seconds) until ``share`` of the chargers are Accepted; returns how many."""
        wanted = math.ceil(len(self.charge_points) * share)
        async with asyncio.timeout(timeout):
            # A count over all chargers every 20 ms is cheaper than an event per charger.
            while self.booted < wanted:  # noqa: ASYNC110
                await asyncio.sleep(0.02)
        return self.booted

    async def drain(self, timeout: float) -> None:
        """Every driver unplugs; wait (real s) until the chargers delivered their stops.

        Arrivals and scripted events end here: the world is closing.
        """
        self._closing = True
        for vin in list(self._active):
            self._guarded(self._depart, self._active[vin])
        async with asyncio.timeout(timeout):
            while not self._stops_delivered():  # noqa: ASYNC110 - counters, no event to await
                await asyncio.sleep(0.02)

    def _stops_delivered(self) -> bool:
        stats = self.stats
        answered = sum(
            counter["StopTransaction"]
            for counter in (stats.results, stats.call_errors, stats.timeouts)
        )
        queued = sum(cp.queued_transaction_messages for cp in self.charge_points.values())
        return queued == 0 and answered >= stats.sent["StopTransaction"]

    @property
    def booted(self) -> int:
        return sum(cp.registration == "Accepted" for cp in self.charge_points.values())

    def resume_traffic(self) -> None:
        """Start arrivals and scripted events now (``traffic_paused`` held them back)."""
        if self._traffic_paused:
            self._traffic_paused = False
            self._traffic_offset_s = self.elapsed_s

    # -- what drivers and operators do --------------------------------------------------------

    def plug_in(
        self,
        vin: str,
        charger_id: str,
        connector_id: int,
        *,
        tap: bool | str | None = None,
        dwell_s: float | None = None,
    ) -> CableSession:
        """Plug the car in; ``tap`` True taps the driver's card (``card_for``), a str that card.

        With ``dwell_s`` the driver comes back and unplugs after that many simulated seconds.
        """
        self.world.plug_in(vin, charger_id, connector_id, self.clock.now())
        session = self._active[vin]
        if dwell_s is not None:
            session.leaves_at = self.elapsed_s + dwell_s
        if tap:
            self.tap(vin, card_for(vin) if tap is True else tap)
        return session

    def unplug(self, vin: str) -> CableSession:
        """The driver unplugs; a running transaction stops with EVDisconnected."""
        session = self._active.get(vin)
        if session is None:
            raise PlugError(f"{vin} is not plugged in")
        self.world.unplug(vin, self.clock.now())
        return session

    def tap(self, vin: str, id_tag: str | None = None) -> None:
        """The driver of a plugged-in car taps a card (delivered once its charger is online)."""
        session = self._active.get(vin)
        if session is None:
            raise PlugError(f"{vin} is not plugged in")
        session.id_tag = id_tag or card_for(vin)
        self._pending_taps.append(session)
        self._deliver_taps()

    def add_scenario(self, events: Sequence[ScriptedEvent]) -> None:
        """Script more events (``at`` counts from ``start``; past ones run at the next step)."""
        self._scenario = sorted([*self._scenario, *events], key=lambda e: e.at)

    def go_offline(self, charger_id: str, seconds: float) -> None:
        """The charger loses its network for ``seconds`` (simulated), then reconnects.

        It keeps charging and metering meanwhile; transaction messages queue up and are
        replayed after reconnecting.
        """
        cp = self.charge_points[charger_id]
        self.outages += 1
        self._spawn(self._outage(cp, seconds), f"outage-{charger_id}")

    async def _outage(self, cp: ChargePoint, seconds: float) -> None:
        # The simulator has no "offline for N s" knob and its back-off is jittered, so park
        # its reconnect loop, then restart the task (its state survives a stop/start).
        base, cap = cp.backoff_base_s, cp.backoff_cap_s
        cp.backoff_base_s = cp.backoff_cap_s = _PARKED_S
        log.info("world.charger_offline", charger_id=cp.identity, seconds=seconds)
        try:
            cp.drop_connection()
            await asyncio.sleep(self.clock.real_delay(seconds))
        finally:
            cp.backoff_base_s, cp.backoff_cap_s = base, cap
        await cp.stop()
        cp.start()
        log.info("world.charger_back", charger_id=cp.identity)

    # -- the world's task -------------------------------------------------------------------

    def _spawn(self, coro: Any, name: str) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self.errors.append(f"{task.get_name()}: {task.exception()!r}")
            log.error("world.task_failed", task=task.get_name(), exc_info=task.exception())

    async def _drive(self) -> None:
        # One simulated second per step, but never a busy loop nor a sluggish one: the step
        # bounds how late a Smartcar START/STOP reaches the charger.
        step = min(0.1, max(0.01, self.clock.real_delay(1.0)))
        while True:
            await asyncio.sleep(step)
            now_s = self.elapsed_s
            traffic_s = now_s - self._traffic_offset_s
            while (
                self._scenario
                and self._scenario[0].at <= traffic_s
                and not (self._closing or self._traffic_paused)
            ):
                self._guarded(self._run_scripted, self._scenario.pop(0))
            for arrival in () if self._traffic_paused else self._arrival_process.due(traffic_s):
                if not self._closing:
                    self._guarded(self._arrive, arrival)
            for session in [s for s in self._active.values() if _leaving(s, now_s)]:
                self._guarded(self._depart, session)
            self._deliver_taps()
            self._follow_cars()

    def _guarded(self, action: Any, *args: Any) -> None:
        try:
            action(*args)
        except (WorldError, ValueError, KeyError) as exc:
            self.errors.append(f"{getattr(action, '__name__', action)}: {exc}")
            log.warning(
                "world.event_failed", action=getattr(action, "__name__", ""), error=str(exc)
            )

    def _run_scripted(self, event: ScriptedEvent) -> None:
        if event.action == "offline":
            self.go_offline(str(event.charger_id), float(event.seconds or 0.0))
        elif event.action == "tap":
            self.tap(str(event.vin), event.id_tag)
        elif event.action == "plug_in":
            self.plug_in(
                str(event.vin),
                str(event.charger_id),
                int(event.connector_id or 1),
                tap=event.id_tag or event.tap,
                dwell_s=event.dwell_s,
            )
        else:
            apply(self.world, event.world_event(), self.clock.now())
        log.info("world.scripted", action=event.action, at=event.at, vin=event.vin)

    def _arrive(self, arrival: Arrival) -> None:
        idle = [v.vin for v in self.world.vehicles.values() if not v.plugged_in]
        free = [
            (charger.id, n)
            for charger in self.world.chargers.values()
            for n in range(1, charger.connectors + 1)
            if self.world.vehicle_at(charger.id, n) is None
        ]
        if not idle or not free:
            self.turned_away += 1
            log.info("world.turned_away", idle_vehicles=len(idle), free_connectors=len(free))
            return
        vin = self._rng.choice(idle)
        charger_id, connector_id = self._rng.choice(free)
        self.arrivals += 1
        session = self.plug_in(
            vin, charger_id, connector_id, tap=arrival.rfid or None, dwell_s=arrival.dwell_s
        )
        log.info(
            "world.arrival",
            vin=vin,
            charger_id=charger_id,
            connector_id=connector_id,
            id_tag=session.id_tag,
            dwell_s=round(arrival.dwell_s),
            soc_percent=round(session.vehicle.soc_percent, 1),
        )

    def _depart(self, session: CableSession) -> None:
        self.unplug(session.vin)
        log.info(
            "world.departure",
            vin=session.vin,
            charger_id=session.charger_id,
            connector_id=session.connector_id,
            grid_wh=round(session.grid_wh),
            battery_wh=round(session.battery_wh),
            soc_percent=round(session.vehicle.soc_percent, 1),
        )

    def _on_plug(self, vehicle: Vehicle, charger_id: str, connector_id: int, plugged: bool) -> None:
        """World listener: the cable goes into (or out of) the simulated charger."""
        cp = self.charge_points[charger_id]
        if plugged:
            session = CableSession(
                vehicle, charger_id, connector_id, cp.electrics.dc, self.clock.now()
            )
            self._active[vehicle.vin] = session
            self.sessions.append(session)
            cp.plug_in(connector_id, session)
            return
        session = self._active.pop(vehicle.vin)
        self._note_transaction(session)
        session.unplugged_at = self.clock.now()
        cp.unplug(connector_id)

    def _deliver_taps(self) -> None:
        waiting = []
        for session in self._pending_taps:
            if self._active.get(session.vin) is not session or session.id_tag is None:
                continue  # the car left before the charger came online
            cp = self.charge_points[session.charger_id]
            if not (cp.connected and cp.registration == "Accepted"):
                # Offline the card would need the local list; a driver just tries again later.
                waiting.append(session)
                continue
            cp.tap(session.connector_id, session.id_tag)
            session.tapped = True
            self.taps += 1
        self._pending_taps = waiting

    def _follow_cars(self) -> None:
        for session in self._active.values():
            self._note_transaction(session)
            cp = self.charge_points[session.charger_id]
            vehicle = session.vehicle
            if vehicle.charging_enabled != session.charging_enabled:
                # Smartcar START/STOP: the charger re-samples the car now, not at its next tick.
                session.charging_enabled = vehicle.charging_enabled
                cp.advance_physics()
            if vehicle.is_charging and cp.connector(session.connector_id).power_w <= 0:
                # The charger only calls absorb() while current flows; tell the car it stopped,
                # or Smartcar would keep answering CHARGING.
                vehicle.absorb(0.0)

    def _note_transaction(self, session: CableSession) -> None:
        tx_id = (
            self.charge_points[session.charger_id].connector(session.connector_id).transaction_id
        )
        if tx_id is not None and tx_id not in session.transaction_ids:
            session.transaction_ids.append(tx_id)

    # -- reporting ----------------------------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        """What happened so far, as plain JSON-able values."""
        stats = self.stats
        cps = self.charge_points.values()
        metered = sum(c.meter_wh for cp in cps for c in cp.connectors[1:])
        return {
            "sim_seconds": round(self.elapsed_s, 1),
            "chargers": len(self.charge_points),
            "connected": sum(cp.connected for cp in cps),
            "booted": self.booted,
            "vehicles": len(self.world.vehicles),
            "arrivals": self.arrivals,
            "turned_away": self.turned_away,
            "plug_ins": len(self.sessions),
            "plugged_in_now": len(self._active),
            "rfid_taps": self.taps,
            "sessions_started": stats.results["StartTransaction"],
            "sessions_stopped": stats.results["StopTransaction"],
            "energy_metered_wh": round(metered),
            "battery_gained_wh": round(sum(s.battery_wh for s in self.sessions)),
            "messages_sent": sum(stats.sent.values()),
            "messages_by_action": dict(sorted(stats.sent.items())),
            "queued_offline": sum(cp.queued_transaction_messages for cp in cps),
            "call_errors": sum(stats.call_errors.values()),
            "timeouts": sum(stats.timeouts.values()),
            "outages": self.outages,
            # Restarting after an outage is a new connection, not one of the charger's reconnects.
            "connections": stats.connections,
            "reconnects": stats.reconnects,
            "connect_failures": stats.connect_failures,
            "errors": len(self.errors),
            "error_messages": self.errors[:10],
            "smartcar_url": self.smartcar.api_url if self.smartcar else None,
            "smartcar_requests": self.smartcar.fake.request_count if self.smartcar else 0,
        }


def _leaving(session: CableSession, now_s: float) -> bool:
    return session.leaves_at is not None and session.leaves_at <= now_s
