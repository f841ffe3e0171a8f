"""Active confirmation: start one connector and see which candidate car starts charging.

When the set matcher cannot tell a plug-in's candidates apart (the same minute, the same
site), the plug-in claims every candidate car (all or none, in the database), the charger
gets a RemoteStartTransaction with an idTag issued for this start only, and the
candidates' Smartcar charge state is read every ``confirm_poll`` seconds: the one car that
turns to CHARGING is the car on this connector, and the session is opened for it on the
running transaction. Nobody charging within ``confirm_timeout``, or more than one car
charging, and the start is stopped: nothing is billed to anyone for it.

A candidate watched by webhooks is not read: its ``Charge.IsCharging`` deliveries (at or
after the start) say whether it charges, checked every ``confirm_poll``. A polling
candidate costs calls (issue 16: a plug-in decision's budget), so it is read in
``READ_ROUNDS`` rounds only: a third into the timeout (a car that was started charges by
then) and at its end; a webhook-watched candidate that sent nothing is read in the last
round (a lost or late delivery). When what the decision has left of its ``DECISION_BUDGET``
does not pay for both rounds, the early one is skipped; when it does not pay for reading
every candidate that needs it once (before the start, where nothing recent is known, and in
the last round), nothing is started: telling the cars apart with fewer reads would be a
guess. The plug-in waits instead (a rival's confirmation may settle it) until the matcher
gives up; a start whose last round cannot be paid for is stopped (``over_budget``). A
candidate's state before the start comes from the match's own reading when that is
recent, not from another call.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from csms.domain.events import TransactionStarted
from csms.log import mask_vin
from smartcar_bridge import plug_in_store as plug_ins
from smartcar_bridge import session_store as sessions
from smartcar_bridge import store
from smartcar_bridge.matcher import CarWatch
from smartcar_bridge.matching import ChargingReading, confirmed_car
from smartcar_bridge.ratelimit import Purpose, call_purpose
from smartcar_bridge.session_store import Session

Command = Callable[[str, str, dict[str, Any], Any], Awaitable[dict[str, Any] | None]]
RegisterIdTag = Callable[[str, str], Awaitable[None]]

# A car whose webhooks arrived this recently is watched by them (as in plug_in_desk).
WEBHOOK_FRESH = timedelta(days=7)
# When polling candidates are read, as shares of the confirmation timeout.
READ_ROUNDS = (1 / 3, 1.0)
# The calls one plug-in decision plans for (issue 16), match reads included: a confirmation
# that cannot afford both rounds reads its candidates once, at the end.
DECISION_BUDGET = 5
# The match reads that budget is planned around (CSMS_BRIDGE_DECISION_READS' default).
DEFAULT_DECISION_READS = 4
# A match reading this many confirm_polls old still tells the charge state before the start.
_BEFORE_FRESH_POLLS = 3.0


def confirmation_id_tag() -> str:
    """An idTag for one confirmation start (CiString20): ``CF`` and 18 random hex digits."""
    return "CF" + secrets.token_hex(9).upper()


def decision_plan(decision_reads: int, decision_calls: int) -> int:
    """The calls one plug-in decision plans for: the hard cap when one is set; else
    ``DECISION_BUDGET``, raised by the match reads allowed beyond the default. An operator
    who lets a decision read a small fleet whole has chosen those calls; planning the
    confirmation on 5 regardless would leave nothing for it after the reads, so the
    plug-ins of a busy minute would wait until give-up instead of being confirmed."""
    if decision_calls:
        return decision_calls
    return DECISION_BUDGET + max(0, decision_reads - DEFAULT_DECISION_READS)


def read_rounds(calls_left: int, *, polling: int, watched: int) -> tuple[float, ...]:
    """The read rounds a confirmation can afford: both ``READ_ROUNDS`` when the decision's
    budget pays for every polling candidate twice and a last-round read of each watched
    one; else the last round only (it alone can tell "did not start")."""
    if calls_left >= len(READ_ROUNDS) * polling + watched:
        return READ_ROUNDS
    return READ_ROUNDS[-1:]


def reads_to_tell_apart(before: Sequence[bool | None], polling: Sequence[bool]) -> int:
    """The fewest calls a confirmation of these candidates makes: a read of each whose
    charge state before the start is unknown (``None``), and a last-round read of each
    polling one not already charging (one charging before the start is left out of the
    watch; a watched car reports itself, its fallback read paid only if it is silent)."""
    return sum(
        (state is None) + (reads and state is not True)
        for state, reads in zip(before, polling, strict=True)
    )


@dataclass(slots=True, frozen=True)
class ConfirmationSettings:
    timeout_s: float
    poll_s: float
    start_timeout_s: float


class Confirmer:
    """Runs confirmation starts; each is one plug-in's task, concurrent with all others."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        watch: CarWatch,
        command: Command,
        register_id_tag: RegisterIdTag,
        settings: ConfirmationSettings,
        clock: Callable[[], datetime],
        calls_left: Callable[[int], int] = lambda _plug_in_id: DECISION_BUDGET,
    ) -> None:
        self._pool = pool
        self._calls_left = calls_left
        self._watch = watch
        self._command = command
        self._register = register_id_tag
        self._settings = settings
        self._clock = clock
        self._started: dict[str, asyncio.Future[TransactionStarted]] = {}
        self._unaffordable: set[int] = set()  # plug-ins told so once (the log stays quiet)

    def transaction_started(self, event: TransactionStarted) -> bool:
        """The charger's StartTransaction for a confirmation idTag: True if it was ours."""
        waiter = self._started.get(event.id_tag.upper())
        if waiter is None:
            return False
        if not waiter.done():
            waiter.set_result(event)
        return True

    async def confirm(
        self, plug: plug_ins.PlugInRow, candidates: list[store.Vehicle], log: Any
    ) -> Session | bool | None:
        """Confirm which candidate is on ``plug``'s connector.

        The session opened for the confirmed car; None when the start was tried and nobody
        confirmed it (the plug-in is closed as unconfirmed); False when a candidate is
        claimed by another confirmation (try again later).
        """
        if not self._affordable(plug, candidates, log):
            return False
        ids = [v.id for v in candidates]
        if not await plug_ins.try_claim(self._pool, plug.id, ids, "confirmation"):
            return False
        try:
            return await self._run(plug, candidates, log)
        finally:
            await plug_ins.release(self._pool, plug.id, keep=await self._kept(plug.id))

    async def _kept(self, plug_in_id: int) -> int | None:
        row = await plug_ins.get(self._pool, plug_in_id)
        return row.vehicle_id if row is not None and row.outcome == plug_ins.CONFIRMED else None

    async def _run(
        self, plug: plug_ins.PlugInRow, candidates: list[store.Vehicle], log: Any
    ) -> Session | None:
        known = {v.id: self._known_before(v) for v in candidates}
        unknown = [v for v in candidates if known[v.id] is None]
        with call_purpose(Purpose.CONFIRM):
            read = await asyncio.gather(*(self._watch.charging(v, log) for v in unknown))
        known.update(zip((v.id for v in unknown), read, strict=True))
        before = [known[v.id] for v in candidates]
        # A candidate already charging cannot tell us anything: it charges elsewhere.
        watched = [v for v, charging in zip(candidates, before, strict=True) if not charging]
        if not watched:
            await self._give_up(plug, None, "candidates_already_charging", log)
            return None
        id_tag = confirmation_id_tag()
        await self._register(id_tag, "Accepted")
        await plug_ins.set_confirm_tag(self._pool, plug.id, id_tag)
        waiter: asyncio.Future[TransactionStarted] = asyncio.get_running_loop().create_future()
        self._started[id_tag] = waiter
        try:
            return await self._start_and_watch(plug, watched, id_tag, waiter, log)
        finally:
            self._started.pop(id_tag, None)
            await self._register(id_tag, "Blocked")

    async def _start_and_watch(
        self,
        plug: plug_ins.PlugInRow,
        watched: list[store.Vehicle],
        id_tag: str,
        waiter: asyncio.Future[TransactionStarted],
        log: Any,
    ) -> Session | None:
        if not await self._still_plugged(plug):
            await self._give_up(plug, None, "plug_cycle_ended", log)
            return None
        log.info(
            "bridge.confirmation_started",
            plug_in_id=plug.id,
            candidates=[mask_vin(v.vin) for v in watched],
            timeout_s=self._settings.timeout_s,
        )
        sent_at = self._clock()  # a car charging since then may be ours
        answer = await self._command(
            plug.charge_point_id,
            "RemoteStartTransaction",
            {"connectorId": plug.connector_id, "idTag": id_tag},
            log,
        )
        await plug_ins.remote_start_sent(self._pool, plug.id, self._clock())
        if answer is None or answer.get("status") != "Accepted":
            await self._give_up(plug, None, "remote_start_refused", log)
            return None
        try:
            async with asyncio.timeout(self._settings.start_timeout_s):
                started = await waiter
        except TimeoutError:
            await self._give_up(plug, None, "no_start_transaction", log)
            return None
        log = log.bind(transaction_id=started.transaction_id)
        vehicle, reason = await self._watch_cars(plug, watched, log, sent_at)
        if vehicle is None:
            await self._give_up(plug, started.transaction_id, reason, log)
            return None
        session = await self._open(plug, vehicle, started, id_tag)
        if session is None:
            await self._give_up(plug, started.transaction_id, "claim_conflict", log)
            return None
        await plug_ins.decide(
            self._pool,
            plug.id,
            plug_ins.CONFIRMED,
            "confirmed",
            self._clock(),
            vehicle_id=vehicle.id,
            session_id=session.id,
        )
        log.info(
            "bridge.confirmation_succeeded",
            plug_in_id=plug.id,
            session_id=session.id,
            vin=mask_vin(vehicle.vin),
            account_id=vehicle.account_id,
        )
        return session

    def _webhooks_watch(self, vehicle: store.Vehicle) -> bool:
        seen = vehicle.webhook_seen_at
        return seen is not None and self._clock() - seen <= WEBHOOK_FRESH

    def spare_calls(self, plug: plug_ins.PlugInRow, candidates: list[store.Vehicle]) -> int:
        """The calls the decision has beyond what confirming these candidates needs (may
        be negative): what a check before the start may spend without making it a guess."""
        return self._calls_left(plug.id) - self._needed(candidates)

    def _needed(self, candidates: list[store.Vehicle]) -> int:
        return reads_to_tell_apart(
            [self._known_before(v) for v in candidates],
            [not self._webhooks_watch(v) for v in candidates],
        )

    def _affordable(
        self, plug: plug_ins.PlugInRow, candidates: list[store.Vehicle], log: Any
    ) -> bool:
        """Whether the decision has the calls to tell its candidates apart: a read of each
        one whose state before the start is not known, and a last-round read of each
        polling one. Without them nothing is started (that would be a guess, or a decision
        over its budget): the plug-in waits, for a rival's confirmation to settle it or a
        car's webhook, until the matcher gives up on it."""
        needed = self._needed(candidates)
        left = self._calls_left(plug.id)
        if needed <= left:
            return True
        if plug.id not in self._unaffordable:
            self._unaffordable.add(plug.id)
            log.info(
                "bridge.confirmation_unaffordable",
                plug_in_id=plug.id,
                calls_needed=needed,
                calls_left=max(left, 0),
            )
        return False

    def _known_before(self, vehicle: store.Vehicle) -> bool | None:
        """The car's charge state before the start, from its webhooks or a recent reading."""
        if self._webhooks_watch(vehicle):
            reported = self._watch.reported_charging(vehicle.id, datetime.min.replace(tzinfo=UTC))
            if reported is not None:
                return reported
        return self._watch.recent_charging(vehicle.id, _BEFORE_FRESH_POLLS * self._settings.poll_s)

    async def _charging_since(
        self, vehicle: store.Vehicle, since: datetime, read: bool, last: bool, log: Any
    ) -> bool | None:
        """Charging since the start: from the car's webhooks, free, at every poll; a polling
        car read only in a ``read`` round, a watched one only in the ``last`` (fallback)."""
        if self._webhooks_watch(vehicle):
            reported = self._watch.reported_charging(vehicle.id, since)
            if reported is not None or not last:
                return bool(reported)
        elif not read:
            return None
        return await self._watch.charging(vehicle, log)

    def _last_round_reads(self, watched: list[store.Vehicle], since: datetime) -> int:
        """Reads the last round makes: every polling car, every silent watched one."""
        return sum(
            not self._webhooks_watch(v) or self._watch.reported_charging(v.id, since) is None
            for v in watched
        )

    async def _watch_cars(
        self, plug: plug_ins.PlugInRow, watched: list[store.Vehicle], log: Any, since: datetime
    ) -> tuple[store.Vehicle | None, str]:
        by_id = {v.id: v for v in watched}
        loop = asyncio.get_running_loop()
        begun = loop.time()
        shares = read_rounds(
            self._calls_left(plug.id),
            polling=sum(not self._webhooks_watch(v) for v in watched),
            watched=sum(self._webhooks_watch(v) for v in watched),
        )
        rounds = [begun + share * self._settings.timeout_s for share in shares]
        while rounds:
            await asyncio.sleep(max(0.0, min(self._settings.poll_s, rounds[0] - loop.time())))
            if not await self._still_plugged(plug):
                return None, "plug_cycle_ended"
            read = loop.time() >= rounds[0]
            if read:
                rounds.pop(0)
            last = read and not rounds
            if last and self._last_round_reads(watched, since) > self._calls_left(plug.id):
                # Watched cars that sent nothing would need a fallback read each: without
                # the calls to read all of them, none is told apart from the others.
                return None, "over_budget"
            with call_purpose(Purpose.CONFIRM):
                states = await asyncio.gather(
                    *(self._charging_since(v, since, read, last, log) for v in watched)
                )
            readings = [ChargingReading(v.id, s) for v, s in zip(watched, states, strict=True)]
            vehicle_id, reason = confirmed_car(readings)
            if vehicle_id is not None:
                return by_id[vehicle_id], reason
            if reason == "several_charging":
                return None, reason
        return None, "no_candidate_charging"

    async def _open(
        self,
        plug: plug_ins.PlugInRow,
        vehicle: store.Vehicle,
        started: TransactionStarted,
        id_tag: str,
    ) -> Session | None:
        return await sessions.open_session(
            self._pool,
            plug_in_id=plug.id,
            charge_point_id=plug.charge_point_id,
            connector_id=plug.connector_id,
            vehicle_id=vehicle.id,
            account_id=vehicle.account_id,
            vin=vehicle.vin,
            id_tag=id_tag,
            target_soc_percent=vehicle.target_soc_percent,
            max_energy_wh=vehicle.max_energy_wh,
            departure_at=vehicle.departure_at,
            battery_capacity_wh=vehicle.battery_capacity_wh,
            tariff_per_kwh=vehicle.tariff_per_kwh,
            currency=vehicle.currency,
            state=sessions.CHARGING,
            transaction_id=started.transaction_id,
            meter_start_wh=started.meter_start_wh,
            claimed=True,
        )

    async def _still_plugged(self, plug: plug_ins.PlugInRow) -> bool:
        row = await plug_ins.get(self._pool, plug.id)
        return row is not None and row.ended_at is None

    async def _give_up(
        self, plug: plug_ins.PlugInRow, transaction_id: int | None, reason: str, log: Any
    ) -> None:
        if transaction_id is not None:
            # Nobody is billed for this energy: there is no session for the transaction.
            await self._command(
                plug.charge_point_id,
                "RemoteStopTransaction",
                {"transactionId": transaction_id},
                log,
            )
        await plug_ins.decide(self._pool, plug.id, plug_ins.UNCONFIRMED, reason, self._clock())
        log.warning("bridge.confirmation_failed", plug_in_id=plug.id, reason=reason)
