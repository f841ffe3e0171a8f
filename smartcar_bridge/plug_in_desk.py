"""Every plug-in is its own unit of work: recorded, then decided by its own task.

A task reads the cars (shared reads, see ``matcher.CarWatch``), asks the set matcher
(``matching.decide``) about every pending plug-in at once and acts on its own decision:
a direct match opens a session (the car is claimed in the database, so no two plug-ins
can take one car), confirmation runs a staggered start (``confirmation.py``), anything
else retries with back-off until the window has passed. No task waits for another:
a plug-in that cannot be decided delays nobody.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import structlog

from csms.log import mask_vin
from smartcar_bridge import candidates, store
from smartcar_bridge import plug_in_store as plug_ins
from smartcar_bridge import session_store as sessions
from smartcar_bridge.call_ledger import for_plug_in
from smartcar_bridge.confirmation import DECISION_BUDGET, Confirmer
from smartcar_bridge.matcher import CarWatch
from smartcar_bridge.matching import Decision, PlugIn, decide
from smartcar_bridge.ratelimit import Purpose, call_purpose
from smartcar_bridge.session_store import Session
from smartcar_bridge.vehicle_access import VehicleAccess

log = structlog.get_logger()

StartSession = Callable[[Session, plug_ins.PlugInRow], Awaitable[None]]
AdoptSession = Callable[[Session], Awaitable[None]]

_RankingKey = tuple[tuple[PlugIn, ...], datetime]


@dataclass(slots=True)
class _Rankings:
    """One fleet snapshot's groups of pending plug-ins, and each group's ranking once asked."""

    known: list[candidates.Known]
    groups: dict[int, tuple[PlugIn, ...]]
    ranked: dict[tuple[PlugIn, ...], candidates.Ranking] = field(default_factory=dict)


_FIRST_RETRY_S = 1.0
# Every webhook nudges every pending plug-in; at a fleet's rush hour that is dozens a second.
# A plug-in decides again at most this often, so a burst of nudges costs one decision.
_MIN_REDECIDE_S = 0.25
# The linked fleet as the decisions see it, shared by every pending plug-in for this long:
# one read of the whole fleet per interval, not one per decision. Each decision still reads
# the cars it weighs afresh (CarWatch.cars) and the claims, so a car is never judged on it.
_FLEET_TTL_S = 0.5
# How old a known state of charge may be to tell a confirmation's candidate is below its
# target without reading it (_below_target).
SOC_KNOWN_S = 600.0
_MAX_RETRY_S = 15.0


class PlugInDesk:
    def __init__(
        self,
        *,
        pool: asyncpg.Pool,
        access: VehicleAccess,
        watch: CarWatch,
        confirmer: Confirmer,
        start_session: StartSession,
        adopt_session: AdoptSession,
        clock: Callable[[], datetime],
        window_s: float,
        settle_s: float,
        give_up_after_s: float,
        read_budget: int = 4,
        webhook_lag_s: float = 30.0,
        webhook_fresh_s: float = 7 * 86_400.0,
        position_trusted_s: float = candidates.DEFAULT_POSITION_TRUSTED.total_seconds(),
        decision_spent: Callable[[int], bool] = lambda _plug_in_id: False,
        call_budget: int = DECISION_BUDGET,
    ) -> None:
        self._pool = pool
        self._call_budget = call_budget
        self._access = access
        self._watch = watch
        self._confirmer = confirmer
        self._start_session = start_session
        self._adopt_session = adopt_session
        self._clock = clock
        self._window = timedelta(seconds=window_s)
        self._settle = timedelta(seconds=settle_s)
        self._give_up_after = give_up_after_s
        self._nudge: dict[int, asyncio.Event] = {}
        self._read_budget = read_budget
        self._webhook_lag = timedelta(seconds=webhook_lag_s)
        self._webhook_fresh = timedelta(seconds=webhook_fresh_s)
        self._position_trusted = timedelta(seconds=position_trusted_s)
        self._decision_spent = decision_spent
        self._fleet_cache: tuple[float, list[store.Vehicle]] | None = None
        self._fleet_read: asyncio.Task[list[store.Vehicle]] | None = None
        # The fleet ranked for each group of pending plug-ins (_ranking), valid for one
        # fleet snapshot and one set of plug-ins within one second.
        self._ranking_cache: tuple[list[store.Vehicle], _RankingKey, _Rankings] | None = None
        # Polling cars each plug-in has paid a read for (its budget, issue 16).
        self._paid: dict[int, set[int]] = {}
        self._spent: dict[int, int] = {}
        self._unchecked: set[int] = set()  # plug-ins told bridge.target_unchecked once

    def nudge(self) -> None:
        """Something changed (a claim released, a plug cycle ended): decide again now."""
        for event in self._nudge.values():
            event.set()

    async def decide_until_done(self, plug_in_id: int) -> None:
        """The plug-in's task: decide, act, or retry within the bounded time."""
        with for_plug_in(plug_in_id):  # its Smartcar calls are this decision's cost
            await self._decide_until_done(plug_in_id)

    async def _decide_until_done(self, plug_in_id: int) -> None:
        row = await plug_ins.get(self._pool, plug_in_id)
        if row is None:
            return
        bound = log.bind(
            charge_point_id=row.charge_point_id, connector_id=row.connector_id, plug_in_id=row.id
        )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._give_up_after
        delay = _FIRST_RETRY_S
        nudge = self._nudge.setdefault(plug_in_id, asyncio.Event())
        try:
            while True:
                nudge.clear()
                row = await plug_ins.get(self._pool, plug_in_id)
                if row is None or row.outcome not in plug_ins.OPEN_OUTCOMES:
                    return
                if row.ended_at is not None:
                    await self._close(row, plug_ins.DROPPED, "plug_cycle_ended", bound)
                    return
                decision = await self._decide(row, bound)
                if await self._act(row, decision, bound):
                    return
                if decision.outcome in ("matched", "confirm") and self._decision_spent(row.id):
                    # What is left needs a call (a battery, a confirmation read) and every
                    # call would be refused: say so now instead of retrying until give-up.
                    await self._close(row, plug_ins.NO_MATCH, "call_budget_spent", bound, decision)
                    return
                # Waiting on another plug-in's confirmation is bounded by that confirmation
                # (CSMS_BRIDGE_CONFIRM_TIMEOUT): the car is found there or released here.
                held = decision.reason == "waiting_for_confirmation"
                if loop.time() + delay > deadline and not held:
                    await self._close(row, plug_ins.NO_MATCH, decision.reason, bound, decision)
                    return
                await asyncio.sleep(_MIN_REDECIDE_S)
                try:
                    async with asyncio.timeout(delay):
                        await nudge.wait()
                except TimeoutError:
                    delay = min(delay * 1.5, _MAX_RETRY_S)
        finally:
            self._nudge.pop(plug_in_id, None)
            self._paid.pop(plug_in_id, None)
            self._spent.pop(plug_in_id, None)
            self._unchecked.discard(plug_in_id)

    async def _fleet(self) -> list[store.Vehicle]:
        loop = asyncio.get_running_loop()
        cached = self._fleet_cache
        if cached is not None and loop.time() - cached[0] < _FLEET_TTL_S:
            return cached[1]
        if self._fleet_read is None:
            self._fleet_read = loop.create_task(store.match_candidates(self._pool))
        read = self._fleet_read
        try:
            vehicles = await asyncio.shield(read)
        finally:
            if self._fleet_read is read and read.done():
                self._fleet_read = None
        self._fleet_cache = (loop.time(), vehicles)
        return vehicles

    async def _decide(self, row: plug_ins.PlugInRow, bound: Any) -> Decision:
        # Before the set of plug-ins is read: cars are read after it, and one that plugged
        # in since may be on a connector whose Preparing the set does not hold yet.
        known_at = self._clock()
        pending = [r for r in await plug_ins.undecided(self._pool) if r.ended_at is None]
        if row.id not in {r.id for r in pending}:
            pending.append(row)
        everyone = await self._fleet()
        claimed = await plug_ins.claimed_vehicles(self._pool)
        plugs = [
            PlugIn(r.id, r.charge_point_id, r.connector_id, r.plugged_at, r.latitude, r.longitude)
            for r in pending
        ]
        # Plug-ins the central system has but our event queue has not brought yet (under
        # load it runs seconds behind): each contests its cars as its record will, so a car
        # that plugged in there is never the "only candidate" of a neighbour recorded before.
        unseen = await self._unrecorded(plugs)
        weighed = plugs + unseen + await self._ended(plugs)
        # Calls before reads (candidates module): webhook-watched cars are never read, a
        # polling car only where it can be, and this plug-in pays for at most its budget.
        # Every read counts against this plug-in's budget, a re-read too: once it is spent,
        # the cars already read are judged from their last reading, at no cost.
        paid = self._paid.setdefault(row.id, set())
        spent = self._spent.get(row.id, 0)
        selection = candidates.spend(
            self._ranking(everyone, plugs, row.id),
            budget=self._read_budget - spent,
            already_read=frozenset(paid) if spent < self._read_budget else frozenset(),
        )
        watched = frozenset(selection.watched)
        if watched:
            # What the webhooks said may settle it alone (candidates module, rule 4): then no
            # polling car is read for this plug-in at all.
            with call_purpose(Purpose.MATCH):
                reported = await self._watch.cars(
                    [v for v in everyone if v.id in watched], claimed, bound,
                    with_location=False, watched=watched, webhook_lag=self._webhook_lag,
                )  # fmt: skip
            early = decide(weighed, reported, now=self._clock(), window=self._window,
                           settle=self._settle, plugs_known_at=known_at)[row.id]  # fmt: skip
            # "wait": a watched car's silence is not yet long enough, or a neighbour may still
            # report; waiting costs nothing, reading now might be for nothing.
            if early.outcome in ("matched", "wait"):
                return early
        affordable = candidates.affordable_reads(
            self._read_budget, self._call_budget, spent=spent, read_cars=len(paid)
        )
        # A claimed car (a session's, or held by another plug-in's confirmation) is
        # excluded or undetermined here whatever a read says (matching.relate): reading it
        # would spend this plug-in's calls for nothing, calls it needs once a confirmation
        # that fails releases the car (its own confirmation's reads).
        held = set(claimed)
        reads = [v for v in selection.read if v not in held][:affordable]
        self._spent[row.id] = spent + len(reads)
        paid.update(reads)
        cached = frozenset((paid - set(reads)) | (held & set(selection.read)))
        chosen = set(selection.watched) | set(reads) | cached
        vehicles = [v for v in everyone if v.id in chosen]
        with call_purpose(Purpose.MATCH):
            cars = await self._watch.cars(
                vehicles,
                claimed,
                bound,
                with_location=any(r.latitude is not None for r in pending),
                watched=frozenset(selection.watched),
                webhook_lag=self._webhook_lag,
                cached=cached,
            )
        decisions = decide(
            weighed,
            cars,
            now=self._clock(),
            window=self._window,
            settle=self._settle,
            plugs_known_at=known_at,
        )
        return decisions[row.id]

    def _ranking(
        self, everyone: list[store.Vehicle], plugs: list[PlugIn], plug_in_id: int
    ) -> candidates.Ranking:
        """The fleet ranked for the plug-in's group of pending plug-ins (candidates, rule
        5): the same for each decision of the group while the fleet snapshot and the set of
        plug-ins are (only a plug-in's budget differs), so a rush hour's decisions share
        one ranking instead of each measuring the fleet again. The second's bucket bounds
        how long ``now`` may be stale in it."""
        now = self._clock()
        key = (tuple(sorted(plugs, key=lambda p: p.id)), now.replace(microsecond=0))
        cached = self._ranking_cache
        if cached is None or cached[0] is not everyone or cached[1] != key:
            known = [
                candidates.Known(v.id, v.latitude, v.longitude, v.location_at, v.webhook_seen_at)
                for v in everyone
            ]
            grouped = candidates.groups(
                known,
                plugs,
                now,
                webhook_fresh=self._webhook_fresh,
                position_trusted=self._position_trusted,
            )
            cached = (everyone, key, _Rankings(known, grouped))
            self._ranking_cache = cached
        rankings = cached[2]
        group = rankings.groups.get(plug_in_id) or key[0]
        ranking = rankings.ranked.get(group)
        if ranking is None:
            ranking = candidates.rank(
                rankings.known,
                group,
                now,
                webhook_fresh=self._webhook_fresh,
                position_trusted=self._position_trusted,
            )
            rankings.ranked[group] = ranking
        return ranking

    async def _ended(self, plugs: list[PlugIn]) -> list[PlugIn]:
        """Plug cycles that ended within the window of ``plugs``, as rivals nobody acts on:
        a car that plugged in there and left may still look plugged in (its unplug
        delivery late or lost), and would otherwise be a neighbour's only candidate.
        Their end bounds them (``matching.relate``): a car plugged in after it is not
        theirs."""
        since = min(p.at for p in plugs) - 2 * self._window
        pending = {p.id for p in plugs}
        ended = await plug_ins.ended_since(self._pool, since)
        return [
            PlugIn(
                r.id,
                r.charge_point_id,
                r.connector_id,
                r.plugged_at,
                r.latitude,
                r.longitude,
                r.ended_at,
            )
            for r in ended
            if r.id not in pending and r.session_id is None
        ]

    async def _unrecorded(self, plugs: list[PlugIn]) -> list[PlugIn]:
        """Not yet recorded plug-ins that can share a car with ``plugs`` (a car is a
        candidate within the window of a plug-in: two plug-ins more than two windows apart
        share none), as plug-ins with negative ids, which nobody acts on."""
        since = min(p.at for p in plugs) - 2 * self._window
        return [
            PlugIn(-n, u.charge_point_id, u.connector_id, u.at, u.latitude, u.longitude)
            for n, u in enumerate(await plug_ins.unrecorded(self._pool, since), start=1)
        ]

    async def _act(self, row: plug_ins.PlugInRow, decision: Decision, bound: Any) -> bool:
        """Act on the decision; True when the plug-in is done."""
        if decision.outcome == "matched":
            assert decision.vehicle_id is not None
            return await self._matched(row, decision.vehicle_id, bound)
        if decision.outcome == "confirm":
            return await self._confirm(row, decision, bound)
        if decision.outcome == "no_match" and self._clock() > row.plugged_at + self._window:
            # Nothing can become a candidate any more: an unlinked car, most likely.
            await self._close(row, plug_ins.NO_MATCH, decision.reason, bound, decision)
            return True
        return False

    async def _matched(self, row: plug_ins.PlugInRow, vehicle_id: int, bound: Any) -> bool:
        vehicle = await store.get_vehicle(self._pool, vehicle_id)
        if vehicle is None:
            return False
        bound = bound.bind(vin=mask_vin(vehicle.vin), account_id=vehicle.account_id)
        bound.info("bridge.vehicle_matched", reason="only_candidate")
        if vehicle.payment_status != "valid":
            bound.info("bridge.payment_missing", payment_status=vehicle.payment_status)
            await self._close(row, plug_ins.UNPAID, "payment_missing", bound, vehicle_id=vehicle.id)
            return True
        with call_purpose(Purpose.SESSION_READ):
            battery = await self._access.battery(vehicle, bound)
        if battery is None:
            bound.warning("bridge.gave_up", step="battery", reason="battery unreadable")
            return False
        if battery.soc_percent >= vehicle.target_soc_percent:
            bound.info(
                "bridge.already_at_target",
                soc_percent=battery.soc_percent,
                target_soc_percent=vehicle.target_soc_percent,
            )
            await self._close(row, plug_ins.AT_TARGET, "at_target", bound, vehicle_id=vehicle.id)
            return True
        session = await sessions.open_session(
            self._pool,
            plug_in_id=row.id,
            charge_point_id=row.charge_point_id,
            connector_id=row.connector_id,
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
            return False  # taken meanwhile: decide again without it
        await sessions.add_soc_sample(
            self._pool, session.id, self._clock(), battery.soc_percent, None, "smartcar",
            battery.meta.data_age,
        )  # fmt: skip
        session = await sessions.update(
            self._pool,
            session.id,
            start_soc_percent=battery.soc_percent,
            last_soc_percent=battery.soc_percent,
        )
        await plug_ins.decide(
            self._pool,
            row.id,
            plug_ins.MATCHED,
            "only_candidate",
            self._clock(),
            vehicle_id=vehicle.id,
            session_id=session.id,
        )
        await self._start_session(session, row)
        return True

    async def _confirm(self, row: plug_ins.PlugInRow, decision: Decision, bound: Any) -> bool:
        vehicles = await store.match_vehicles(self._pool, list(decision.candidates))
        # Only a car whose account can pay may be started for a confirmation.
        paid = [v for v in vehicles if v.payment_status == "valid"]
        if not paid:
            await self._close(row, plug_ins.UNPAID, "no_paying_candidate", bound, decision)
            return True
        bound.info(
            "bridge.ambiguous_match",
            reason=decision.reason,
            vins=[mask_vin(v.vin) for v in vehicles],
            group=list(decision.group),
        )
        # The confirmation's own reads come first: SoCs are read only with what is left
        # (a full car on the cable simply does not charge, and the start finds that out).
        wanting = await self._below_target(
            row.id, paid, bound, self._confirmer.spare_calls(row, paid)
        )
        if wanting is None:
            return False  # a battery could not be read: decide again later
        if not wanting:
            bound.info("bridge.already_at_target", candidates=len(paid))
            await self._close(row, plug_ins.AT_TARGET, "candidates_at_target", bound, decision)
            return True
        result = await self._confirmer.confirm(row, wanting, bound)
        if result is False:
            return False  # a candidate is in another confirmation: wait for it
        self.nudge()
        if result is None:
            return True
        await self._adopt_session(result)  # type: ignore[arg-type]
        return True

    async def _below_target(
        self, plug_in_id: int, vehicles: list[store.Vehicle], bound: Any, spare_calls: int
    ) -> list[store.Vehicle] | None:
        """The candidates that want charge: a car known at its target is never started. A
        SoC known from the last ``SOC_KNOWN_S`` (the car's webhooks, the match's own signals
        page, an earlier battery read) serves without a call: an idle car gains no charge,
        and a stale value that is too low only lets a full car into the confirmation (it
        does not charge; its session would stop at once). The unknown ones are read only
        when ``spare_calls`` pays for all of them; otherwise they stay candidates unread
        (``bridge.target_unchecked``, once): a confirmation with them is still exact, a
        full car draws nothing. Without calls for the confirmation itself (``spare_calls``
        below 0) nothing is read: that confirmation is not started anyway."""
        since = self._clock() - timedelta(seconds=SOC_KNOWN_S)

        def known(vehicle: store.Vehicle) -> float | None:
            reported = self._watch.reported_soc(vehicle.id, since)
            if reported is not None:
                return reported
            battery = self._access.known_battery(vehicle, SOC_KNOWN_S)
            return battery.soc_percent if battery is not None else None

        async def read(vehicle: store.Vehicle) -> float | None:
            battery = await self._access.battery(vehicle, bound)
            return battery.soc_percent if battery is not None else None

        socs = {v.id: known(v) for v in vehicles}
        unknown = [v for v in vehicles if socs[v.id] is None]
        if unknown and len(unknown) <= spare_calls:
            with call_purpose(Purpose.SESSION_READ):
                read_socs = await asyncio.gather(*(read(v) for v in unknown))
            if any(s is None for s in read_socs):
                return None
            socs.update(zip((v.id for v in unknown), read_socs, strict=True))
        elif unknown and spare_calls >= 0 and plug_in_id not in self._unchecked:
            self._unchecked.add(plug_in_id)
            bound.info("bridge.target_unchecked", candidates=len(unknown), calls_left=spare_calls)
        return [v for v in vehicles if (s := socs[v.id]) is None or s < v.target_soc_percent]

    async def _close(
        self,
        row: plug_ins.PlugInRow,
        outcome: str,
        reason: str,
        bound: Any,
        decision: Decision | None = None,
        vehicle_id: int | None = None,
    ) -> None:
        if not await plug_ins.decide(
            self._pool, row.id, outcome, reason, self._clock(), vehicle_id=vehicle_id
        ):
            return
        if outcome == plug_ins.NO_MATCH:
            bound.info(
                "bridge.no_match",
                reason=reason,
                candidates=len(decision.candidates) if decision else 0,
                undetermined=len(decision.undetermined) if decision else 0,
            )
        elif outcome == plug_ins.DROPPED:
            bound.info("bridge.decision_dropped", reason=reason)
        self.nudge()
