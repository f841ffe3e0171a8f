"""Pure: which linked cars a plug-in decision may spend Smartcar calls on (issue 16).

Reading every linked car for every plug-in costs calls in proportion to the fleet; Smartcar
bills per call and throttles each car and the application (smartcar-api.md §9). So:

1. **Cars watched by webhooks are never read to be matched.** A car whose deliveries arrive
   (``webhook_seen_at`` within ``webhook_fresh``) reports its own plug-in through
   ``Charge.IsChargingCableConnected`` with ``oemUpdatedAt``; what is stored is what it
   said. Its silence is evidence too: ``webhook_lag`` after the charger's Preparing, a car
   that sent no cable change has not plugged in (its data counts as that recent).
2. **Polling cars are read only where they can be.** A car whose position is known, recent
   (``position_trusted``) and farther than ``max_distance_m`` from every pending plug-in's
   charger (each with a known location) cannot be on any of them and is not read. The
   others are ranked by evidence: known near a pending charger (closest first), then
   position unknown, then positions so old that the car may have moved: closest first by
   whole kilometres (drivers charge near where they were, at home or at work), the oldest
   first among equals.
3. **A decision has a budget.** Each plug-in may cause at most ``budget`` reads over its
   whole life (the matched car's battery read comes on top); a shared read serves every
   pending plug-in at once. Cars left unread are not candidates: a car we cannot afford to
   read is treated like an unlinked one, and two indistinguishable candidates still go to
   active confirmation, so a car is never guessed.
4. **Webhooks first.** Before any read, the plug-ins are decided from the watched cars
   alone. A plug-in that this settles (one watched car reported its cable at the right
   time and place, and it is no other pending plug-in's candidate) is matched without
   reading a polling car: by rule 3 an unread car is not a candidate anyway, and the
   ``settle`` delay still waits for a neighbour's Preparing. While a watched car may still
   report (``webhook_lag``), the plug-in waits, at no cost. Anything else (no watched
   candidate, several, a car shared with another plug-in) spends the reads as above.
5. **A decision weighs only its own group.** Pending plug-ins that can share a car (one
   whose position does not rule out either charger) are one group, transitively; a car
   that may be anywhere joins them all. A plug-in's ranking and reads cover its group
   only: a car known to be at another site cannot be on its connector, so its read (a
   rate-limited cloud retrying for seconds, say) neither costs this plug-in's budget nor
   holds up its decision.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from smartcar_bridge.matching import EARTH_RADIUS_M, PlugIn, haversine_m

# A car parked at a site reports the charger's position to within a few hundred metres.
DEFAULT_MAX_DISTANCE_M = 1_000.0
# A position older than this says little about where the car is now (it may have driven).
DEFAULT_POSITION_TRUSTED = timedelta(minutes=30)


@dataclass(frozen=True, slots=True)
class Known:
    """What the bridge holds about one car, without calling Smartcar."""

    vehicle_id: int
    latitude: float | None
    longitude: float | None
    location_at: datetime | None
    webhook_seen_at: datetime | None


@dataclass(frozen=True, slots=True)
class Selection:
    watched: tuple[int, ...]  # by webhooks: matched from what they reported, never read
    read: tuple[int, ...]  # polling cars to read now, best evidence first
    skipped: tuple[int, ...]  # polling cars that cannot be there, or over the budget


@dataclass(frozen=True, slots=True)
class Ranking:
    """Rules 1 and 2 for a set of pending plug-ins, before any plug-in's budget: the same
    for every plug-in of the set, so one ranking serves all their decisions."""

    watched: tuple[int, ...]
    ranked: tuple[int, ...]  # polling cars that can be there, best evidence first
    skipped: tuple[int, ...]  # polling cars known to be elsewhere


def groups(
    cars: Iterable[Known],
    plug_ins: Sequence[PlugIn],
    now: datetime,
    *,
    webhook_fresh: timedelta,
    position_trusted: timedelta = DEFAULT_POSITION_TRUSTED,
    max_distance_m: float = DEFAULT_MAX_DISTANCE_M,
) -> dict[int, tuple[PlugIn, ...]]:
    """Rule 5: each pending plug-in's group (itself included), by plug-in id; pure.

    A car links the plug-ins within ``max_distance_m`` of a position ``rank`` would rely
    on (a watched car's, or a polling car's trusted one); any other car, or a charger
    without a location, may be anywhere and links every plug-in."""
    everyone = tuple(sorted(plug_ins, key=lambda p: p.id))
    if any(not p.has_location for p in everyone):
        return {p.id: everyone for p in everyone}
    by_latitude = sorted(everyone, key=lambda p: p.latitude or 0.0)
    latitudes = [p.latitude or 0.0 for p in by_latitude]
    band = math.degrees(max_distance_m / EARTH_RADIUS_M)  # never nearer than the latitude gap
    earliest = min((p.at for p in everyone), default=now)
    parent = {p.id: p.id for p in everyone}

    def root(plug_id: int) -> int:
        while parent[plug_id] != plug_id:
            parent[plug_id] = parent[parent[plug_id]]
            plug_id = parent[plug_id]
        return plug_id

    for car in cars:
        placed = watched_by_webhooks(car, now, webhook_fresh) or position_recent(
            car, earliest, position_trusted
        )
        if not placed or car.latitude is None or car.longitude is None:
            return {p.id: everyone for p in everyone}
        near = [
            p.id
            for p in by_latitude[
                bisect_left(latitudes, car.latitude - band) : bisect_right(
                    latitudes, car.latitude + band
                )
            ]
            if haversine_m(car.latitude, car.longitude, p.latitude or 0.0, p.longitude or 0.0)
            <= max_distance_m
        ]
        for other in near[1:]:
            parent[root(other)] = root(near[0])
    members: dict[int, list[PlugIn]] = {}
    for p in everyone:
        members.setdefault(root(p.id), []).append(p)
    return {p.id: tuple(members[root(p.id)]) for p in everyone}


def position_recent(car: Known, earliest: datetime, position_trusted: timedelta) -> bool:
    """Rule 2's trust in a polling car's position: taken within ``position_trusted`` of the
    earliest pending plug-in. ``rank`` and ``groups`` must agree on it: a car one of them
    rules out by place, the other must not count as anywhere."""
    return car.location_at is not None and car.location_at >= earliest - position_trusted


def watched_by_webhooks(car: Known, now: datetime, webhook_fresh: timedelta) -> bool:
    return car.webhook_seen_at is not None and now - car.webhook_seen_at <= webhook_fresh


class Sites:
    """The pending chargers' distinct positions, sorted by latitude.

    A fleet's plug-ins share few sites, and the great-circle distance is never shorter than
    the latitude difference alone (``EARTH_RADIUS_M * |dphi|``): the nearest site is found
    by walking outwards from the car's latitude and stopping once that bound exceeds the
    best distance so far, instead of measuring every car against every plug-in.
    """

    def __init__(self, plug_ins: Sequence[PlugIn]) -> None:
        # A charger without a location: any car may be there, so nearness tells nothing.
        self.unknown = any(not p.has_location for p in plug_ins)
        self._points = sorted(
            {
                (p.latitude, p.longitude)
                for p in plug_ins
                if p.latitude is not None and p.longitude is not None
            }
        )
        self._latitudes = [lat for lat, _ in self._points]

    def nearest_m(self, latitude: float | None, longitude: float | None) -> float | None:
        """Distance to the nearest pending charger, or None when it cannot be told."""
        if latitude is None or longitude is None or self.unknown or not self._points:
            return None
        points, latitudes = self._points, self._latitudes
        below = bisect_left(latitudes, latitude) - 1
        above = below + 1
        best = math.inf
        while below >= 0 or above < len(points):
            gap_below = latitude - latitudes[below] if below >= 0 else math.inf
            gap_above = latitudes[above] - latitude if above < len(points) else math.inf
            index = below if gap_below <= gap_above else above
            if EARTH_RADIUS_M * math.radians(min(gap_below, gap_above)) > best:
                break  # every site left is farther north or south than the best is away
            lat, lon = points[index]
            best = min(best, haversine_m(latitude, longitude, lat, lon))
            if index == below:
                below -= 1
            else:
                above += 1
        return best


def rank(
    cars: Iterable[Known],
    plug_ins: Sequence[PlugIn],
    now: datetime,
    *,
    webhook_fresh: timedelta,
    position_trusted: timedelta = DEFAULT_POSITION_TRUSTED,
    max_distance_m: float = DEFAULT_MAX_DISTANCE_M,
) -> Ranking:
    """Rules 1 and 2 of the module docstring for the pending ``plug_ins``; pure."""
    watched: list[int] = []
    ranked: list[tuple[tuple[int, float, float], int]] = []
    skipped: list[int] = []
    sites = Sites(plug_ins)
    earliest = min((p.at for p in plug_ins), default=now)
    for car in cars:
        nearest = sites.nearest_m(car.latitude, car.longitude)
        if watched_by_webhooks(car, now, webhook_fresh):
            # Its webhooks place it (a plug-in's delivery carries the new position): one far
            # from every pending charger is not weighed at all, which keeps a decision's
            # work in proportion to the cars around its chargers, not to the fleet.
            if nearest is not None and nearest > max_distance_m:
                skipped.append(car.vehicle_id)
            else:
                watched.append(car.vehicle_id)
            continue
        trusted = position_recent(car, earliest, position_trusted)
        if nearest is not None and trusted:
            if nearest > max_distance_m:
                skipped.append(car.vehicle_id)  # known to be elsewhere
                continue
            ranked.append(((0, nearest, 0.0), car.vehicle_id))
        elif nearest is None or car.location_at is None:
            ranked.append(((1, 0.0, 0.0), car.vehicle_id))
        else:
            # Known, but long ago: it may have moved, most likely to a charger near where
            # it was; among equals, the older the likelier.
            age_s = (earliest - car.location_at).total_seconds()
            ranked.append(((2, nearest // 1000.0, -age_s), car.vehicle_id))
    ranked.sort()
    return Ranking(tuple(watched), tuple(v for _, v in ranked), tuple(skipped))


def spend(
    ranking: Ranking, *, budget: int, already_read: frozenset[int] = frozenset()
) -> Selection:
    """Rule 3: the ranked cars one plug-in may read. ``already_read`` are cars it has paid
    for before: reading them again costs nothing more of its budget (the watch reuses or
    refreshes them)."""
    read: list[int] = []
    skipped = list(ranking.skipped)
    spent = 0
    for vehicle_id in ranking.ranked:
        if vehicle_id in already_read:
            read.append(vehicle_id)
        elif spent < budget:
            read.append(vehicle_id)
            spent += 1
        else:
            skipped.append(vehicle_id)
    return Selection(ranking.watched, tuple(read), tuple(skipped))


def select(
    cars: Iterable[Known],
    plug_ins: Sequence[PlugIn],
    now: datetime,
    *,
    budget: int,
    webhook_fresh: timedelta,
    position_trusted: timedelta = DEFAULT_POSITION_TRUSTED,
    max_distance_m: float = DEFAULT_MAX_DISTANCE_M,
    already_read: frozenset[int] = frozenset(),
) -> Selection:
    """Split ``cars`` for the pending ``plug_ins`` (module docstring); pure."""
    ranking = rank(
        cars,
        plug_ins,
        now,
        webhook_fresh=webhook_fresh,
        position_trusted=position_trusted,
        max_distance_m=max_distance_m,
    )
    return spend(ranking, budget=budget, already_read=already_read)


def silence_data_at(
    plug_data_at: datetime | None, now: datetime, webhook_lag: timedelta
) -> datetime | None:
    """A watched car's data time: what it last sent, or ``now - webhook_lag`` of silence."""
    silence = now - webhook_lag
    if plug_data_at is None:
        return silence
    return max(plug_data_at, silence)


def affordable_reads(read_budget: int, call_budget: int, *, spent: int, read_cars: int) -> int:
    """Reads one decision round may make (rule 3). A first round reads up to the read
    budget; a re-read keeps, out of the decision's call budget, one call for each car
    already read: each may yet need its confirmation read. A read budget above the call
    budget (a small fleet read whole) keeps no such reserve."""
    allowed = max(0, read_budget - spent)
    if spent and read_budget < call_budget:
        allowed = min(allowed, max(0, call_budget - spent - read_cars))
    return allowed
