"""What the linked cars' Smartcar data says about their own plug-ins, for the set matcher.

Many plug-ins are decided at once and each reads the cars: reads of one car are shared
(one request in flight per car, a fresh reading reused for ``reuse_for`` seconds), so ten
simultaneous plug-ins cost one read per car, not ten. Every reading updates the car's
plug interval in the database (:func:`observe`), which is what ``matching.relate`` uses.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from smartcar_bridge import store
from smartcar_bridge.candidates import silence_data_at
from smartcar_bridge.matching import Car
from smartcar_bridge.vehicle_access import VehicleAccess

_CONCURRENT_READS = 8


@dataclass(slots=True, frozen=True)
class PlugInterval:
    """When the car's own plug-in happened: after ``unplugged_at``, by ``plugged_at``."""

    unplugged_at: datetime | None
    plugged_at: datetime | None
    data_at: datetime | None


def observe(previous: PlugInterval, plugged_in: bool, data_at: datetime) -> PlugInterval:
    """Pure: the interval after one more reading (data older than what we have is ignored)."""
    if previous.data_at is not None and data_at < previous.data_at:
        return previous
    if not plugged_in:
        unplugged = data_at
        if previous.unplugged_at is not None and previous.unplugged_at > data_at:
            unplugged = previous.unplugged_at
        return PlugInterval(unplugged, None, data_at)
    plugged = previous.plugged_at if previous.plugged_at is not None else data_at
    return PlugInterval(previous.unplugged_at, plugged, data_at)


def cable_event(plugged_in: bool, at: datetime) -> PlugInterval:
    """Pure: a ``Charge.IsChargingCableConnected`` change reported at ``oemUpdatedAt``."""
    return PlugInterval(at, at if plugged_in else None, at)


@dataclass(slots=True)
class _Reading:
    plugged_in: bool | None
    charging: bool
    data_at: datetime | None
    latitude: float | None
    longitude: float | None
    read_at: float  # loop time


def _reported(vehicle: store.Vehicle, now: datetime, lag: timedelta) -> _Reading:
    """A webhook-watched car as it last reported itself, its silence counting as news."""
    return _Reading(
        vehicle.plugged_seen_at is not None,
        False,
        silence_data_at(vehicle.plug_data_at, now, lag),
        vehicle.latitude,
        vehicle.longitude,
        0.0,
    )


def _stored(vehicle: store.Vehicle) -> _Reading:
    """A polling car as its last stored reading left it."""
    return _Reading(
        vehicle.plugged_seen_at is not None if vehicle.plug_data_at is not None else None,
        False,
        vehicle.plug_data_at,
        vehicle.latitude,
        vehicle.longitude,
        0.0,
    )


class CarWatch:
    """Reads cars' charge status (shared, bounded) and keeps their plug intervals."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        access: VehicleAccess,
        clock: Callable[[], datetime],
        reuse_for: float,
    ) -> None:
        self._pool = pool
        self._access = access
        self._clock = clock
        self._reuse_for = reuse_for
        self._reads = asyncio.Semaphore(_CONCURRENT_READS)
        self._inflight: dict[int, asyncio.Future[_Reading]] = {}
        self._latest: dict[int, _Reading] = {}
        # Charge.IsCharging as the car's webhooks last reported it, ordered by oemUpdatedAt.
        self._reported_charging: dict[int, tuple[bool, datetime]] = {}
        # The state of charge as the car's webhooks last reported it, ordered the same way.
        self._reported_soc: dict[int, tuple[float, datetime]] = {}

    async def cars(
        self,
        vehicles: Sequence[store.Vehicle],
        claimed: dict[int, str],
        log: Any,
        *,
        with_location: bool,
        watched: frozenset[int] = frozenset(),
        webhook_lag: timedelta = timedelta(seconds=30),
        cached: frozenset[int] = frozenset(),
    ) -> list[Car]:
        """Every vehicle as a ``matching.Car``: read now (or very recently), except the
        ``watched`` ones, which webhooks keep up to date, and the ``cached`` ones, taken
        from their last reading (no call: the decision's budget is spent)."""
        to_read = [v for v in vehicles if v.id not in watched and v.id not in cached]
        readings = dict(
            zip(
                [v.id for v in to_read],
                await asyncio.gather(*(self._read(v, log, with_location) for v in to_read)),
                strict=True,
            )
        )
        fresh = {v.id: v for v in await store.match_vehicles(self._pool, [v.id for v in vehicles])}
        now = self._clock()
        cars = []
        for vehicle in vehicles:
            known = fresh.get(vehicle.id, vehicle)
            reading = readings.get(vehicle.id)
            if reading is None and vehicle.id in cached:
                reading = self._latest.get(vehicle.id) or _stored(known)
            if reading is None:
                reading = _reported(known, now, webhook_lag)
            cars.append(
                Car(
                    vehicle_id=vehicle.id,
                    plugged_in=reading.plugged_in,
                    data_at=reading.data_at,
                    unplugged_at=known.unplugged_seen_at,
                    plugged_at=known.plugged_seen_at,
                    latitude=reading.latitude if reading.latitude is not None else known.latitude,
                    longitude=(
                        reading.longitude if reading.longitude is not None else known.longitude
                    ),
                    charging=reading.charging,
                    claimed=claimed.get(vehicle.id) == "session",
                    in_confirmation=claimed.get(vehicle.id) == "confirmation",
                )
            )
        return cars

    async def record(self, vehicle_id: int, interval: PlugInterval) -> None:
        """A fact learnt elsewhere (a webhook, the car's connector going Available).

        Ordered like every reading: a fact older than what is stored never overwrites it.
        Deliveries are unordered and retried (§10); a late "plugged in" from the car's
        last plug-in, written over its newer "unplugged", would make it a candidate for a
        neighbour's plug-in it never made."""
        self._latest.pop(vehicle_id, None)
        await store.set_plug_interval(self._pool, vehicle_id, interval)

    async def _read(self, vehicle: store.Vehicle, log: Any, with_location: bool) -> _Reading:
        loop = asyncio.get_running_loop()
        latest = self._latest.get(vehicle.id)
        if latest is not None and loop.time() - latest.read_at <= self._reuse_for:
            if not with_location or latest.plugged_in is not True or latest.latitude is not None:
                return latest
        pending = self._inflight.get(vehicle.id)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[_Reading] = loop.create_future()
        self._inflight[vehicle.id] = future
        try:
            reading = await self._fetch(vehicle, log, with_location)
            future.set_result(reading)
            self._latest[vehicle.id] = reading
            return reading
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters see it, the loop does not log it
            raise
        finally:
            self._inflight.pop(vehicle.id, None)

    async def _fetch(self, vehicle: store.Vehicle, log: Any, with_location: bool) -> _Reading:
        loop = asyncio.get_running_loop()
        async with self._reads:
            status = await self._access.charge_status(vehicle, log)
            location = None
            # A plugged car's position places it; an unknown position is read once, so a
            # car whose cloud is slow later is still known to be elsewhere.
            unknown = vehicle.latitude is None
            if status is not None and with_location and (status.is_plugged_in or unknown):
                location = await self._access.location(vehicle, log)
        if status is None:
            return _Reading(None, False, None, None, None, loop.time())
        # SC-Data-Age is when the car recorded it; without it, when we received it.
        data_at = status.meta.data_age or status.meta.received_at or self._clock()
        previous = PlugInterval(
            vehicle.unplugged_seen_at, vehicle.plugged_seen_at, vehicle.plug_data_at
        )
        interval = observe(previous, status.is_plugged_in, data_at)
        await store.set_plug_interval(self._pool, vehicle.id, interval)
        if location is not None:
            await store.set_location(
                self._pool,
                vehicle.id,
                location.latitude,
                location.longitude,
                location.meta.data_age or location.meta.received_at,
            )
        return _Reading(
            status.is_plugged_in,
            status.state == "CHARGING",
            data_at,
            location.latitude if location else None,
            location.longitude if location else None,
            loop.time(),
        )

    def report_charging(self, vehicle_id: int, charging: bool, at: datetime) -> None:
        """A webhook's ``Charge.IsCharging`` (deliveries are unordered: the newest wins)."""
        known = self._reported_charging.get(vehicle_id)
        if known is None or known[1] <= at:
            self._reported_charging[vehicle_id] = (charging, at)

    def report_soc(self, vehicle_id: int, soc_percent: float, at: datetime) -> None:
        """A webhook's state of charge (the newest by ``oemUpdatedAt`` wins)."""
        known = self._reported_soc.get(vehicle_id)
        if known is None or known[1] <= at:
            self._reported_soc[vehicle_id] = (soc_percent, at)

    def reported_soc(self, vehicle_id: int, since: datetime) -> float | None:
        """The SoC the webhooks reported at or after ``since``; None if nothing."""
        known = self._reported_soc.get(vehicle_id)
        return known[0] if known is not None and known[1] >= since else None

    def reported_charging(self, vehicle_id: int, since: datetime) -> bool | None:
        """What the webhooks said about charging at or after ``since``; None if nothing."""
        known = self._reported_charging.get(vehicle_id)
        if known is None or known[1] < since:
            return None
        return known[0]

    def recent_charging(self, vehicle_id: int, max_age_s: float) -> bool | None:
        """The charge state of the car's last reading, if it is at most ``max_age_s`` old."""
        latest = self._latest.get(vehicle_id)
        if latest is None or latest.plugged_in is None:
            return None
        if asyncio.get_running_loop().time() - latest.read_at > max_age_s:
            return None
        return latest.charging

    async def charging(self, vehicle: store.Vehicle, log: Any) -> bool | None:
        """The car's charge state now (for a confirmation start): never a cached reading."""
        async with self._reads:
            status = await self._access.charge_status(vehicle, log)
        self._latest.pop(vehicle.id, None)
        return None if status is None else status.state == "CHARGING"
