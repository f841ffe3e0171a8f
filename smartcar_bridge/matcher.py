"""Reads what the candidates' Smartcar data says right after a plug-in and asks the pure
matching rules (``matching.py``) which car it was. Retries within a bounded time: a car's
cloud often reports the plug a few seconds after the charger does."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
from typing import Any

import asyncpg

from csms.log import mask_vin
from smartcar_bridge import store
from smartcar_bridge.matching import Candidate, MatchResult, PlugEvent, match_vehicle
from smartcar_bridge.vehicle_access import VehicleAccess

_CONCURRENT_READS = 8
_FIRST_RETRY_S = 3.0


class Matcher:
    def __init__(
        self,
        pool: asyncpg.Pool,
        access: VehicleAccess,
        clock: Callable[[], datetime],
        give_up_after: float,
    ) -> None:
        self._pool = pool
        self._access = access
        self._clock = clock
        self._give_up_after = give_up_after
        self._reads = asyncio.Semaphore(_CONCURRENT_READS)

    async def find(
        self, charge_point_id: str, connector_id: int, at: datetime, log: Any
    ) -> store.Vehicle | None:
        """The vehicle plugged in at this connector, or None (logged with the reason)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._give_up_after
        delay = _FIRST_RETRY_S
        location = await store.charger_location(self._pool, charge_point_id)
        event = PlugEvent(
            charge_point_id,
            connector_id,
            at,
            location[0] if location else None,
            location[1] if location else None,
        )
        while True:
            result, vehicles, unreadable = await self._attempt(event, log)
            if result.outcome == "matched":
                vehicle = vehicles[result.vehicle_id]  # type: ignore[index]
                log.info(
                    "bridge.vehicle_matched",
                    vin=mask_vin(vehicle.vin),
                    account_id=vehicle.account_id,
                    reason=result.reason,
                    candidates=len(result.candidates),
                )
                return vehicle
            if result.outcome == "ambiguous":
                log.warning(
                    "bridge.ambiguous_match",
                    reason=result.reason,
                    vins=[mask_vin(vehicles[v].vin) for v in result.finalists],
                )
                return None
            if loop.time() + delay > deadline:
                log.info(
                    "bridge.no_match",
                    reason=result.reason,
                    candidates=len(result.candidates),
                    unreadable=unreadable,
                )
                return None
            await asyncio.sleep(delay)
            delay *= 2

    async def _attempt(
        self, event: PlugEvent, log: Any
    ) -> tuple[MatchResult, dict[int, store.Vehicle], int]:
        vehicles = {v.id: v for v in await store.match_candidates(self._pool)}
        readings = await asyncio.gather(
            *(self._read(vehicle, event, log) for vehicle in vehicles.values())
        )
        candidates = [c for c in readings if c is not None]
        unreadable = len(readings) - len(candidates)
        return match_vehicle(event, candidates), vehicles, unreadable

    async def _read(self, vehicle: store.Vehicle, event: PlugEvent, log: Any) -> Candidate | None:
        async with self._reads:
            status = await self._access.charge_status(vehicle, log)
            if status is None:
                return None
            location = None
            if status.is_plugged_in and event.has_location:
                location = await self._access.location(vehicle, log)
        now = self._clock()
        await store.record_plug_state(
            self._pool,
            vehicle.id,
            status.is_plugged_in,
            now,
            location.latitude if location else None,
            location.longitude if location else None,
        )
        since = vehicle.plugged_in_changed_at if vehicle.last_plugged_in else None
        if status.is_plugged_in and vehicle.last_plugged_in is False:
            since = now
        return Candidate(
            vehicle_id=vehicle.id,
            vin=vehicle.vin,
            is_plugged_in=status.is_plugged_in,
            charge_state=status.state,
            latitude=location.latitude if location else vehicle.latitude,
            longitude=location.longitude if location else vehicle.longitude,
            plugged_in_since=since,
            previously_plugged_in=vehicle.last_plugged_in,
        )
