"""Pure: which linked vehicle was just plugged in at a connector.

When a connector reports StatusNotification ``Preparing`` (cable in), the bridge reads the
Smartcar charge status of every candidate vehicle (linked to an account with valid payment) and
asks :func:`match_vehicle` which one it is. No I/O and no clock: the event carries its time.

Matching one plug-in event (:func:`match_vehicle`):

1. Drop vehicles already charging in another of our sessions, and vehicles that do not report
   plugged in (``isPluggedIn`` is false or could not be read).
2. If the charger's location is known, drop vehicles whose known location is farther than
   ``max_distance_m`` from it (great-circle distance), allowing ``location_accuracy_m`` for
   the error of a car's reported position. Vehicles with an unknown location stay: they
   cannot be excluded.
3. If more than one remains, prefer the vehicles that were just plugged in: we saw them change
   from unplugged to plugged within ``recent_window`` of the event (either side, so a small
   clock skew does no harm), or they read unplugged just before this reading. If that leaves
   one, it is the match.
4. If more than one still remains and the charger's location is known, prefer the vehicles
   whose location is known (and so near, by step 2) over those whose location is unknown.
5. Exactly one vehicle left: matched. None: no match. More than one: ambiguous; we never
   guess, the session is not started for any of them.

Several near-simultaneous events (:func:`assign_matches`) are resolved together so that a car
is never given to two connectors:

1. Match every event on its own (steps 1-5), without the vehicles already assigned.
2. A vehicle matched by exactly one event is assigned to it, and removed from the candidates
   of every other event; those are matched again (back to 1) until nothing changes.
3. A vehicle matched by more than one event is assigned to none of them: they all end
   ambiguous (it is plugged in at one of those connectors at most, and we cannot tell which).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Literal

# Mean Earth radius (IUGG), metres: the haversine error against WGS-84 is < 0.5 %.
EARTH_RADIUS_M = 6_371_008.8

MatchOutcome = Literal["matched", "no_match", "ambiguous"]
EventKey = tuple[str, int]
"""``(charge_point_id, connector_id)``: one connector, one plug-in at a time."""


def _require_aware(name: str, value: datetime | None) -> None:
    if value is not None and (value.tzinfo is None or value.utcoffset() is None):
        raise ValueError(f"{name} must be a timezone-aware datetime, got {value!r}")


@dataclass(slots=True, frozen=True)
class Candidate:
    """A linked vehicle as read just after the plug-in, with what we knew of it before."""

    vehicle_id: int
    vin: str
    is_plugged_in: bool | None  # None: the charge status could not be read
    charge_state: str | None = None  # CHARGING / FULLY_CHARGED / NOT_CHARGING; for logs
    latitude: float | None = None
    longitude: float | None = None
    plugged_in_since: datetime | None = None  # when we saw it go unplugged -> plugged
    previously_plugged_in: bool | None = None  # its state before this reading
    in_session: bool = False  # already charging in another of our sessions

    def __post_init__(self) -> None:
        _require_aware("plugged_in_since", self.plugged_in_since)

    @property
    def has_location(self) -> bool:
        return self.latitude is not None and self.longitude is not None


@dataclass(slots=True, frozen=True)
class PlugEvent:
    """A connector reported Preparing (cable plugged in) at ``at``; location of the charger."""

    charge_point_id: str
    connector_id: int
    at: datetime
    latitude: float | None = None
    longitude: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.at, datetime):
            raise ValueError(f"at must be a datetime, got {self.at!r}")
        _require_aware("at", self.at)

    @property
    def key(self) -> EventKey:
        return (self.charge_point_id, self.connector_id)

    @property
    def has_location(self) -> bool:
        return self.latitude is not None and self.longitude is not None


@dataclass(slots=True, frozen=True)
class MatchResult:
    """The decision for one event and why, for the session and for the log."""

    outcome: MatchOutcome
    vehicle_id: int | None
    candidates: tuple[int, ...]  # every vehicle considered, in the order given
    finalists: tuple[int, ...]  # the vehicles still possible when deciding
    reason: str  # short, snake_case, for a log field


def haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in metres between two points given in degrees."""
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    dphi = phi2 - phi1
    dlambda = math.radians(lon2 - lon1)
    a = math.sin(dphi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(dlambda / 2) ** 2
    # min() guards asin against a rounding overshoot past 1 for antipodal points.
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


def _distance_m(event: PlugEvent, candidate: Candidate) -> float | None:
    """Metres from the charger to the car, or None when either location is unknown."""
    lat1, lon1 = event.latitude, event.longitude
    lat2, lon2 = candidate.latitude, candidate.longitude
    if lat1 is None or lon1 is None or lat2 is None or lon2 is None:
        return None
    return haversine_m(lat1, lon1, lat2, lon2)


def _just_plugged_in(candidate: Candidate, at: datetime, recent_window: timedelta) -> bool:
    if candidate.previously_plugged_in is False:
        return True
    since = candidate.plugged_in_since
    return since is not None and abs(since - at) <= recent_window


def _ids(candidates: Iterable[Candidate]) -> tuple[int, ...]:
    return tuple(c.vehicle_id for c in candidates)


def match_vehicle(
    event: PlugEvent,
    candidates: Sequence[Candidate],
    *,
    max_distance_m: float = 150.0,
    recent_window: timedelta = timedelta(minutes=10),
    location_accuracy_m: float = 25.0,
) -> MatchResult:
    """Which of ``candidates`` was plugged in at ``event``'s connector (module docstring)."""
    if max_distance_m < 0 or location_accuracy_m < 0:
        raise ValueError("max_distance_m and location_accuracy_m must not be negative")
    considered = _ids(candidates)

    def result(outcome: MatchOutcome, finalists: Sequence[Candidate], reason: str) -> MatchResult:
        vehicle_id = finalists[0].vehicle_id if outcome == "matched" else None
        return MatchResult(outcome, vehicle_id, considered, _ids(finalists), reason)

    # Step 1: free and plugged in.
    remaining = [c for c in candidates if not c.in_session and c.is_plugged_in is True]
    if not remaining:
        return result("no_match", (), "none_plugged_in")

    # Step 2: not known to be elsewhere.
    if event.has_location:
        limit = max_distance_m + location_accuracy_m
        remaining = [c for c in remaining if (d := _distance_m(event, c)) is None or d <= limit]
        if not remaining:
            return result("no_match", (), "none_nearby")
    if len(remaining) == 1:
        return result("matched", remaining, "only_plugged_in_nearby")

    # Step 3: prefer a fresh unplugged -> plugged transition.
    recent = [c for c in remaining if _just_plugged_in(c, event.at, recent_window)]
    if len(recent) == 1:
        return result("matched", recent, "recently_plugged_in")
    if recent:
        remaining = recent

    # Step 4: prefer known (and so near) locations over unknown ones.
    if event.has_location:
        located = [c for c in remaining if c.has_location]
        if len(located) == 1:
            return result("matched", located, "only_known_location_nearby")
        if located:
            remaining = located

    # Step 5: never guess.
    return result("ambiguous", remaining, "several_plugged_in_nearby")


def _match_unassigned(
    event: PlugEvent,
    candidates: Sequence[Candidate],
    assigned: Mapping[int, EventKey],
    **options: Any,
) -> MatchResult:
    """match_vehicle() without the vehicles already given to other connectors."""
    free = [c for c in candidates if c.vehicle_id not in assigned]
    found = match_vehicle(event, free, **options)
    if found.outcome == "no_match" and len(free) < len(candidates):
        found = replace(found, reason="assigned_to_other_connector")
    # Report every vehicle considered, including those another connector took.
    return replace(found, candidates=_ids(candidates))


def assign_matches(
    events: Sequence[PlugEvent],
    candidates_by_event: Mapping[EventKey, Sequence[Candidate]],
    *,
    max_distance_m: float = 150.0,
    recent_window: timedelta = timedelta(minutes=10),
    location_accuracy_m: float = 25.0,
) -> dict[EventKey, MatchResult]:
    """Match near-simultaneous events together; a vehicle goes to one connector at most.

    An event missing from ``candidates_by_event`` has no candidates. The rule is in the module
    docstring; the result does not depend on the order of ``events``.
    """
    keys = [event.key for event in events]
    if len(set(keys)) != len(keys):
        raise ValueError("events must not repeat a connector")
    by_key = {event.key: event for event in events}
    assigned: dict[int, EventKey] = {}
    decided: dict[EventKey, MatchResult] = {}
    pending: dict[EventKey, MatchResult] = {}

    while True:
        pending = {
            key: _match_unassigned(
                by_key[key],
                candidates_by_event.get(key, ()),
                assigned,
                max_distance_m=max_distance_m,
                recent_window=recent_window,
                location_accuracy_m=location_accuracy_m,
            )
            for key in keys
            if key not in decided
        }
        claims: dict[int, list[EventKey]] = {}
        for key, found in pending.items():
            if found.vehicle_id is not None:
                claims.setdefault(found.vehicle_id, []).append(key)
        progress = False
        for vehicle_id, claimants in claims.items():
            if len(claimants) == 1:
                assigned[vehicle_id] = claimants[0]
                decided[claimants[0]] = pending.pop(claimants[0])
                progress = True
        if not progress:
            break

    for key, found in pending.items():
        if found.vehicle_id is not None:
            # Contested: the only match of several connectors; it can be at one at most.
            found = replace(
                found, outcome="ambiguous", vehicle_id=None, reason="matched_by_several_events"
            )
        decided[key] = found
    return {key: decided[key] for key in keys}
