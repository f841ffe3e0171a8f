"""Pure smart-charging math: installed charging profiles → power limit now (OCPP 1.6 section 3.13).

Simplification: a ChargePointMaxProfile caps each connector rather than the sum of all
connectors, which is enough for the simulator's single-car-per-connector use.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

_RECURRENCE = {"Daily": 86_400, "Weekly": 7 * 86_400}
TX_PROFILE = "TxProfile"
TX_DEFAULT = "TxDefaultProfile"
CP_MAX = "ChargePointMaxProfile"


@dataclass(slots=True, frozen=True)
class Period:
    start_s: int
    limit: float
    phases: int | None


@dataclass(slots=True, frozen=True)
class Profile:
    profile_id: int
    connector_id: int
    stack_level: int
    purpose: str
    kind: str
    recurrency: str | None
    valid_from: datetime | None
    valid_to: datetime | None
    transaction_id: int | None
    unit: str
    start_schedule: datetime | None
    duration: int | None
    periods: tuple[Period, ...]


class Electrical(Protocol):
    """What converts amps into watts on one connector (phases=1 and the DC voltage for DC)."""

    @property
    def voltage(self) -> float: ...

    @property
    def phases(self) -> int: ...


def parse_time(value: str) -> datetime:
    """ISO 8601 → aware UTC datetime (no zone means UTC)."""
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed


def parse_profile(connector_id: int, raw: dict) -> Profile:
    """csChargingProfiles of SetChargingProfile → Profile; KeyError/ValueError when malformed."""
    schedule = raw["chargingSchedule"]
    periods = tuple(
        Period(int(p["startPeriod"]), float(p["limit"]), p.get("numberPhases"))
        for p in sorted(schedule["chargingSchedulePeriod"], key=lambda p: p["startPeriod"])
    )
    if not periods or schedule["chargingRateUnit"] not in ("W", "A"):
        raise ValueError("empty schedule or unknown unit")
    optional_time = {k: parse_time(raw[k]) for k in ("validFrom", "validTo") if raw.get(k)}
    start = schedule.get("startSchedule")
    return Profile(
        profile_id=int(raw["chargingProfileId"]),
        connector_id=connector_id,
        stack_level=int(raw["stackLevel"]),
        purpose=raw["chargingProfilePurpose"],
        kind=raw["chargingProfileKind"],
        recurrency=raw.get("recurrencyKind"),
        valid_from=optional_time.get("validFrom"),
        valid_to=optional_time.get("validTo"),
        transaction_id=raw.get("transactionId"),
        unit=schedule["chargingRateUnit"],
        start_schedule=parse_time(start) if start else None,
        duration=schedule.get("duration"),
        periods=periods,
    )


def schedule_start(profile: Profile, now: datetime, tx_start: datetime | None) -> datetime | None:
    """When the profile's schedule (its current recurrence) started, or None if not applicable."""
    if profile.kind == "Relative":
        return tx_start
    if profile.kind == "Recurring":
        first = profile.start_schedule or tx_start
        length = _RECURRENCE.get(profile.recurrency or "Daily", 86_400)
        if first is None or now < first:
            return first
        cycles = int((now - first).total_seconds() // length)
        return first + timedelta(seconds=cycles * length)
    # Absolute; some central systems omit startSchedule, firmware then starts it at the tx.
    return profile.start_schedule or tx_start


def limit_at(
    profile: Profile, now: datetime, tx_start: datetime | None
) -> tuple[float, int | None] | None:
    """(limit in the profile's unit, numberPhases) active at ``now``, or None."""
    if profile.valid_from and now < profile.valid_from:
        return None
    if profile.valid_to and now >= profile.valid_to:
        return None
    start = schedule_start(profile, now, tx_start)
    if start is None:
        return None
    elapsed = (now - start).total_seconds()
    if elapsed < 0 or (profile.duration is not None and elapsed >= profile.duration):
        return None
    active = None
    for period in profile.periods:
        if period.start_s <= elapsed:
            active = period
        else:
            break
    return None if active is None else (active.limit, active.phases)


def to_watts(limit: float, unit: str, phases: int | None, electrical: Electrical) -> float:
    if unit == "W":
        return limit
    return limit * electrical.voltage * (phases or electrical.phases)


class ProfileSet:
    """The profiles installed on one charge point."""

    __slots__ = ("_profiles",)

    def __init__(self) -> None:
        self._profiles: list[Profile] = []

    def __len__(self) -> int:
        return len(self._profiles)

    def install(self, profile: Profile) -> None:
        """Spec 3.13.2: a profile replaces one with the same id, or same stack level and purpose."""
        self._profiles = [
            p
            for p in self._profiles
            if p.profile_id != profile.profile_id
            and not (
                p.stack_level == profile.stack_level
                and p.purpose == profile.purpose
                and p.connector_id == profile.connector_id
            )
        ]
        self._profiles.append(profile)

    def clear(
        self,
        profile_id: int | None = None,
        connector_id: int | None = None,
        purpose: str | None = None,
        stack_level: int | None = None,
    ) -> bool:
        """ClearChargingProfile filters; True when anything was removed."""

        def matches(p: Profile) -> bool:
            if profile_id is not None:
                return p.profile_id == profile_id
            return (
                (connector_id is None or p.connector_id == connector_id)
                and (purpose is None or p.purpose == purpose)
                and (stack_level is None or p.stack_level == stack_level)
            )

        before = len(self._profiles)
        self._profiles = [p for p in self._profiles if not matches(p)]
        return len(self._profiles) != before

    def end_transaction(self, connector_id: int) -> None:
        """Spec 3.13.1: a TxProfile is deleted when its transaction ends."""
        self._profiles = [
            p
            for p in self._profiles
            if not (p.purpose == TX_PROFILE and p.connector_id == connector_id)
        ]

    def limit_w(
        self,
        connector_id: int,
        now: datetime,
        tx_start: datetime | None,
        electrical: Electrical,
    ) -> float | None:
        """Combined limit in W for a connector now; None when no profile applies."""
        cp_max = self._top(CP_MAX, (0,), now, tx_start, electrical)
        tx = None
        if tx_start is not None:
            tx = self._top(TX_PROFILE, (connector_id,), now, tx_start, electrical)
        if tx is None:
            tx = self._top(TX_DEFAULT, (connector_id,), now, tx_start, electrical)
        if tx is None:
            tx = self._top(TX_DEFAULT, (0,), now, tx_start, electrical)
        limits = [v for v in (cp_max, tx) if v is not None]
        return min(limits) if limits else None

    def _top(
        self,
        purpose: str,
        connectors: tuple[int, ...],
        now: datetime,
        tx_start: datetime | None,
        electrical: Electrical,
    ) -> float | None:
        # Spec 3.13.2: the highest stack level with an active period wins.
        candidates = sorted(
            (p for p in self._profiles if p.purpose == purpose and p.connector_id in connectors),
            key=lambda p: -p.stack_level,
        )
        for profile in candidates:
            found = limit_at(profile, now, tx_start)
            if found is not None:
                return to_watts(found[0], profile.unit, found[1], electrical)
        return None

    def composite(
        self,
        connector_id: int,
        start: datetime,
        duration_s: int,
        tx_start: datetime | None,
        electrical: Electrical,
        max_w: float,
        unit: str = "W",
    ) -> list[dict[str, float | int]]:
        """GetCompositeSchedule periods over [start, start + duration) in ``unit``."""
        points = {0}
        for profile in self._profiles:
            for base_start in _starts_in_window(profile, start, duration_s, tx_start):
                for period in profile.periods:
                    offset = int((base_start - start).total_seconds()) + period.start_s
                    if 0 < offset < duration_s:
                        points.add(offset)
                if profile.duration is not None:
                    end = int((base_start - start).total_seconds()) + profile.duration
                    if 0 < end < duration_s:
                        points.add(end)
        periods: list[dict[str, float | int]] = []
        for offset in sorted(points):
            at = start + timedelta(seconds=offset)
            watts = self.limit_w(connector_id, at, tx_start, electrical)
            watts = max_w if watts is None else min(watts, max_w)
            limit = watts if unit == "W" else watts / (electrical.voltage * electrical.phases)
            limit = round(limit, 1)
            if periods and periods[-1]["limit"] == limit:
                continue
            periods.append({"startPeriod": offset, "limit": limit})
        return periods


def _starts_in_window(
    profile: Profile, start: datetime, duration_s: int, tx_start: datetime | None
) -> list[datetime]:
    first = schedule_start(profile, start, tx_start)
    if first is None:
        return []
    if profile.kind != "Recurring":
        return [first]
    length = _RECURRENCE.get(profile.recurrency or "Daily", 86_400)
    return [first + timedelta(seconds=k * length) for k in range(duration_s // length + 2)]
