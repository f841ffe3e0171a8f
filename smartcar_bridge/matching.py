"""Pure: which linked car is on which freshly plugged connector, decided for all at once.

No I/O and no clock: the caller passes ``now`` and what it knows of every plug-in and car.

A **plug-in** is one plug cycle of a connector: it began when the connector reported
Preparing (``at``) and ends at the next Available, Finishing or Preparing (``ended_at``).
A **car** is a linked car with what its Smartcar data says: plugged in or not, and when
(``data_at`` is ``SC-Data-Age``, the time the car recorded it, else when we read it). From
successive readings the caller keeps the interval in which the car's own plug-in happened:
``unplugged_at`` (the latest data showing it unplugged, before it showed plugged) and
``plugged_at`` (the earliest data showing it plugged since); a
``Charge.IsChargingCableConnected`` webhook sets both to its ``oemUpdatedAt``.

How a car relates to one plug-in (:func:`relate`), with ``W`` the match window:

1. *Excluded* when it is claimed by a session, known to be farther than
   ``max_distance_m`` from a charger whose location is known, shown unplugged after
   ``at + W`` or after the plug-in ended (it plugged in later, elsewhere), already
   charging, or shown plugged in before ``at - W`` (plugged in long before).
2. *Undetermined* when another plug-in's confirmation start holds it (it may be released;
   only a car that place and time leave possible is held for), when its state could not be
   read, or its data shows it unplugged but is
   older than the plug-in (data older than the event says nothing about it): a slow car
   cloud. It may still turn out to be the car.
3. Otherwise, plugged in consistently with the plug-in: a *candidate*. Data fresher than
   ``at`` showing it unplugged excludes it (step 1 via ``unplugged_at``).

Deciding a set of pending plug-ins (:func:`decide`):

0. A plug-in younger than ``settle`` waits (its neighbours' Preparing may be on the way);
   its candidates stay contested for the others. So does a plug-in with a candidate that
   plugged in less than ``settle`` before ``plugs_known_at`` (when the caller read the set
   of plug-ins): the Preparing of the connector that car is on may not be in the set yet,
   and the car read later than the set would look like this plug-in's only candidate.
1. A plug-in whose only candidate is a car that is no other plug-in's candidate, and which
   has no undetermined car, is *matched* to it. Its car leaves every other plug-in's
   relations and the rule is applied again until nothing changes.
2. A plug-in with neither candidates nor undetermined cars has *no match* (yet: the caller
   retries until the window has passed, then gives up).
3. A plug-in with a car held by another plug-in's confirmation waits for it to resolve.
   A plug-in with undetermined cars *waits* for fresher data, until ``now > at + W``; after
   that, if it has candidates it goes to confirmation (never to a guess), else it waits on.
4. Every other plug-in has candidates that cannot be told apart: it goes to *confirmation*
   together with every plug-in that shares a candidate with it (its group). A charger with
   no known location has every plugged-in car of the fleet as candidate, so it is matched
   directly only when time leaves exactly one car anywhere.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

# Mean Earth radius (IUGG), metres: the haversine error against WGS-84 is < 0.5 %.
EARTH_RADIUS_M = 6_371_008.8

Relation = Literal["candidate", "undetermined", "excluded"]
Outcome = Literal["matched", "no_match", "wait", "confirm"]


def _require_aware(name: str, value: datetime | None) -> None:
    if value is not None and (value.tzinfo is None or value.utcoffset() is None):
        raise ValueError(f"{name} must be a timezone-aware datetime, got {value!r}")


@dataclass(slots=True, frozen=True)
class PlugIn:
    """One plug cycle of a connector, identified by ``id`` (the plug-in's record)."""

    id: int
    charge_point_id: str
    connector_id: int
    at: datetime
    latitude: float | None = None
    longitude: float | None = None
    ended_at: datetime | None = None

    def __post_init__(self) -> None:
        _require_aware("at", self.at)
        _require_aware("ended_at", self.ended_at)

    @property
    def has_location(self) -> bool:
        return self.latitude is not None and self.longitude is not None


@dataclass(slots=True, frozen=True)
class Car:
    """A linked car as its Smartcar data describes it (see the module docstring)."""

    vehicle_id: int
    plugged_in: bool | None  # None: could not be read
    data_at: datetime | None = None
    unplugged_at: datetime | None = None
    plugged_at: datetime | None = None
    latitude: float | None = None
    longitude: float | None = None
    charging: bool = False
    claimed: bool = False  # in a session
    in_confirmation: bool = False  # claimed by another plug-in's confirmation start

    def __post_init__(self) -> None:
        for name in ("data_at", "unplugged_at", "plugged_at"):
            _require_aware(name, getattr(self, name))

    @property
    def has_location(self) -> bool:
        return self.latitude is not None and self.longitude is not None


@dataclass(slots=True, frozen=True)
class Decision:
    """What to do for one plug-in now, and why (``reason`` is a snake_case log field)."""

    outcome: Outcome
    reason: str
    vehicle_id: int | None = None
    candidates: tuple[int, ...] = ()
    undetermined: tuple[int, ...] = ()
    group: tuple[int, ...] = ()  # confirm: the plug-ins resolved together, earliest first


def haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in metres between two points given in degrees."""
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    dphi = phi2 - phi1
    dlambda = math.radians(lon2 - lon1)
    a = math.sin(dphi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(dlambda / 2) ** 2
    # min() guards asin against a rounding overshoot past 1 for antipodal points.
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


def _far(plug: PlugIn, car: Car, limit_m: float) -> bool:
    if plug.latitude is None or plug.longitude is None:
        return False
    if car.latitude is None or car.longitude is None:
        return False  # an unknown position cannot exclude a car
    return haversine_m(plug.latitude, plug.longitude, car.latitude, car.longitude) > limit_m


def relate(
    plug: PlugIn, car: Car, *, window: timedelta, max_distance_m: float = 175.0
) -> tuple[Relation, str]:
    """How ``car`` relates to ``plug`` (module docstring, steps 1-3), and why."""
    if car.claimed:
        return "excluded", "claimed"
    # Place and time first: a car that cannot be on this connector is not, whatever a
    # confirmation elsewhere finds. Held before those, every car in a confirmation would
    # hold every plug-in of the fleet that weighs it, and at rush hour some car always is.
    if _far(plug, car, max_distance_m):
        return "excluded", "elsewhere"
    latest = plug.at + window if plug.ended_at is None else min(plug.at + window, plug.ended_at)
    if car.unplugged_at is not None and car.unplugged_at > latest:
        return "excluded", "plugged_in_later"
    if car.plugged_in and car.plugged_at is not None and car.plugged_at < plug.at - window:
        return "excluded", "plugged_in_long_before"
    if car.in_confirmation:
        # It may be found on another connector, or released: this plug-in waits for it.
        return "undetermined", "in_confirmation"
    if car.charging:
        return "excluded", "already_charging"
    if car.plugged_in is None:
        return "undetermined", "unreadable"
    if not car.plugged_in:
        if car.data_at is None or car.data_at < plug.at:
            return "undetermined", "data_older_than_plug_in"
        return "excluded", "not_plugged_in"
    if car.plugged_at is not None and car.plugged_at < plug.at - window:
        return "excluded", "plugged_in_long_before"
    return "candidate", "timed" if car.unplugged_at is not None else "plugged_in"


def decide(
    plugs: Sequence[PlugIn],
    cars: Iterable[Car],
    *,
    now: datetime,
    window: timedelta,
    settle: timedelta = timedelta(0),
    max_distance_m: float = 175.0,
    plugs_known_at: datetime | None = None,
) -> dict[int, Decision]:
    """Decide every pending plug-in together (module docstring); keyed by plug-in id.

    A plug-in younger than ``settle`` waits: its neighbours' Preparing may still be on the
    way, and a car is matched only against every plug-in it could belong to. For the same
    reason a car that plugged in within ``settle`` of ``plugs_known_at`` (when ``plugs``
    was read; None: ``now``) is matched to nothing yet.
    """
    _require_aware("now", now)
    if len({p.id for p in plugs}) != len(plugs):
        raise ValueError("plug-ins must not repeat")
    car_list = list(cars)
    candidates: dict[int, set[int]] = {p.id: set() for p in plugs}
    undetermined: dict[int, set[int]] = {p.id: set() for p in plugs}
    held: set[int] = set()  # plug-ins with a car held by another's confirmation start
    nearby = _Nearby(car_list, max_distance_m)
    for plug in plugs:
        for car in nearby.around(plug):
            relation, reason = relate(plug, car, window=window, max_distance_m=max_distance_m)
            if relation == "candidate":
                candidates[plug.id].add(car.vehicle_id)
            elif relation == "undetermined":
                undetermined[plug.id].add(car.vehicle_id)
                if reason == "in_confirmation":
                    held.add(plug.id)

    decided: dict[int, Decision] = {}
    known_at = plugs_known_at if plugs_known_at is not None else now
    just_plugged = {
        c.vehicle_id
        for c in car_list
        if c.plugged_in and c.plugged_at is not None and known_at < c.plugged_at + settle
    }
    settling = {p.id: "settling" for p in plugs if now < p.at + settle}
    for plug in plugs:
        if plug.id not in settling and candidates[plug.id] & just_plugged:
            settling[plug.id] = "car_just_plugged_in"
    _match_unique(plugs, candidates, undetermined, decided, set(settling))
    for plug_id, why in settling.items():
        decided[plug_id] = Decision(
            "wait", why, None, _sorted(candidates[plug_id]), _sorted(undetermined[plug_id])
        )
    by_id = {p.id: p for p in plugs}
    rest = [p for p in plugs if p.id not in decided]
    confirming: list[int] = []
    for plug in rest:
        cands, unknown = candidates[plug.id], undetermined[plug.id]
        if not cands and not unknown:
            decided[plug.id] = Decision("no_match", "no_candidate")
        elif plug.id in held:
            # A confirmation elsewhere will find that car or release it: soon, and surely.
            decided[plug.id] = Decision(
                "wait", "waiting_for_confirmation", None, _sorted(cands), _sorted(unknown)
            )
        elif unknown and (not cands or now <= plug.at + window):
            decided[plug.id] = Decision(
                "wait", "waiting_for_car_data", None, _sorted(cands), _sorted(unknown)
            )
        else:
            confirming.append(plug.id)
    for group in _groups(confirming, candidates):
        ordered = tuple(sorted(group, key=lambda i: (by_id[i].at, i)))
        for plug_id in ordered:
            reason = "indistinguishable" if len(candidates[plug_id]) > 1 else "contested"
            if undetermined[plug_id]:
                reason = "car_data_missing"
            decided[plug_id] = Decision(
                "confirm",
                reason,
                None,
                _sorted(candidates[plug_id]),
                _sorted(undetermined[plug_id]),
                ordered,
            )
    return {p.id: decided[p.id] for p in plugs}


class _Nearby:
    """The cars :func:`relate` must weigh for a plug-in: all but those it would exclude as
    elsewhere (or claimed) anyway, found by latitude, so a fleet-wide decision costs the
    cars around each charger, not a great-circle distance per car and plug-in.

    The great-circle distance is never shorter than the latitude difference alone, so a car
    outside the latitude band of ``max_distance_m`` is farther than that from the charger.
    """

    def __init__(self, cars: Sequence[Car], max_distance_m: float) -> None:
        self._cars = cars
        # Weighed at every charger: a car without a position.
        self._everywhere = [c for c in cars if not c.claimed and not c.has_location]
        located = sorted(
            (c.latitude, i)
            for i, c in enumerate(cars)
            if c.latitude is not None and c.longitude is not None and not c.claimed
        )
        self._latitudes = [lat for lat, _ in located]
        self._order = [i for _, i in located]
        # A hair wider than the distance: a car on the band's edge is left to relate.
        self._band = math.degrees(max_distance_m / EARTH_RADIUS_M) * 1.000_001 + 1e-9

    def around(self, plug: PlugIn) -> Sequence[Car]:
        if plug.latitude is None or plug.longitude is None:
            return self._cars
        low = bisect_left(self._latitudes, plug.latitude - self._band)
        high = bisect_right(self._latitudes, plug.latitude + self._band)
        return self._everywhere + [self._cars[i] for i in self._order[low:high]]


def _match_unique(
    plugs: Sequence[PlugIn],
    candidates: dict[int, set[int]],
    undetermined: dict[int, set[int]],
    decided: dict[int, Decision],
    settling: set[int],
) -> None:
    """Step 1: a car and a plug-in that only have each other are matched, repeatedly.

    A settling plug-in is never matched here but still contests its candidates."""
    progress = True
    while progress:
        progress = False
        for plug in plugs:
            if plug.id in decided or plug.id in settling:
                continue
            if len(candidates[plug.id]) != 1 or undetermined[plug.id]:
                continue
            (vehicle_id,) = candidates[plug.id]
            rivals = [
                other
                for other in plugs
                if other.id != plug.id
                and other.id not in decided
                and (vehicle_id in candidates[other.id] or vehicle_id in undetermined[other.id])
            ]
            if rivals:
                continue
            reason = "only_candidate"
            decided[plug.id] = Decision("matched", reason, vehicle_id, (vehicle_id,))
            for other in plugs:
                candidates[other.id].discard(vehicle_id)
                undetermined[other.id].discard(vehicle_id)
            progress = True


def _groups(plug_ids: list[int], candidates: dict[int, set[int]]) -> list[set[int]]:
    """Connected components: plug-ins linked by a shared candidate car."""
    groups: list[tuple[set[int], set[int]]] = []
    for plug_id in plug_ids:
        cars = set(candidates[plug_id])
        members = {plug_id}
        for group in [g for g in groups if g[1] & cars]:
            groups.remove(group)
            members |= group[0]
            cars |= group[1]
        groups.append((members, cars))
    return [members for members, _ in groups]


def _sorted(ids: Iterable[int]) -> tuple[int, ...]:
    return tuple(sorted(ids))


@dataclass(slots=True, frozen=True)
class ChargingReading:
    """A candidate's charge state during a confirmation start."""

    vehicle_id: int
    charging: bool | None  # None: could not be read


def confirmed_car(readings: Sequence[ChargingReading]) -> tuple[int | None, str]:
    """Which candidate a confirmation start reached: exactly one turned to charging.

    ``(vehicle_id, "confirmed")`` for one; ``(None, "several_charging")`` when more than one
    charges (we cannot attribute it); ``(None, "none_charging")`` otherwise (keep watching).
    """
    charging = [r.vehicle_id for r in readings if r.charging]
    if len(charging) == 1:
        return charging[0], "confirmed"
    if charging:
        return None, "several_charging"
    return None, "none_charging"
