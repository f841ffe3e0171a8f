"""Smartcar calls for one linked vehicle, with a valid token, bounded retries and one log line
per failure. Each method returns ``None`` (or False) instead of raising: the bridge decides
what a missing answer means, and the OCPP side never sees a Smartcar error."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

from smartcar_bridge.client import SmartcarClient
from smartcar_bridge.errors import ReauthRequired, SmartcarError, VehicleStateError
from smartcar_bridge.responses import Battery, ChargeStatus, Location

T = TypeVar("T")


class LinkedVehicle(Protocol):
    link_id: int
    smartcar_vehicle_id: str


class TokenSource(Protocol):
    async def with_token(self, link_id: int, fn: Callable[[str], Awaitable[T]]) -> T: ...


# A START or STOP that finds the car already where we want it is a success.
_ALREADY_CHARGING = frozenset({"CHARGING_IN_PROGRESS"})
_ALREADY_STOPPED = frozenset({"NOT_CHARGING", "CHARGING_PLUG_NOT_CONNECTED", "FULLY_CHARGED"})


class VehicleAccess:
    def __init__(
        self,
        client: SmartcarClient,
        tokens: TokenSource,
        *,
        max_backoff: float = 30.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.client = client
        self._tokens = tokens
        self._max_backoff = max_backoff
        self._sleep = sleep

    async def battery(self, vehicle: LinkedVehicle, log: Any, attempts: int = 3) -> Battery | None:
        return await self._call(vehicle, self.client.battery, log, "battery", attempts)

    async def charge_status(
        self, vehicle: LinkedVehicle, log: Any, attempts: int = 1
    ) -> ChargeStatus | None:
        return await self._call(vehicle, self.client.charge_status, log, "charge", attempts)

    async def location(self, vehicle: LinkedVehicle, log: Any) -> Location | None:
        return await self._call(vehicle, self.client.location, log, "location", 1)

    async def start_charge(self, vehicle: LinkedVehicle, log: Any) -> bool:
        return await self._command(
            vehicle, self.client.start_charge, log, "START", _ALREADY_CHARGING
        )

    async def stop_charge(self, vehicle: LinkedVehicle, log: Any) -> bool:
        return await self._command(vehicle, self.client.stop_charge, log, "STOP", _ALREADY_STOPPED)

    async def _command(
        self,
        vehicle: LinkedVehicle,
        method: Callable[[str, str], Awaitable[Any]],
        log: Any,
        action: str,
        fine: frozenset[str],
    ) -> bool:
        try:
            result = await self._call(vehicle, method, log, f"charge {action}", 2, raise_state=True)
        except VehicleStateError as exc:
            if exc.code in fine:
                log.info("bridge.car_charge_command", action=action, outcome=exc.code)
                return True
            log.warning(
                "bridge.smartcar_failed",
                call=f"charge {action}",
                error_type=exc.type,
                code=exc.code,
                status=exc.status,
                request_id=exc.request_id,
                retryable=False,
            )
            return False
        if result is not None:
            log.info("bridge.car_charge_command", action=action, outcome="sent")
        return result is not None

    async def _call(
        self,
        vehicle: LinkedVehicle,
        method: Callable[[str, str], Awaitable[T]],
        log: Any,
        what: str,
        attempts: int,
        *,
        raise_state: bool = False,
    ) -> T | None:
        vehicle_id = vehicle.smartcar_vehicle_id
        for attempt in range(1, attempts + 1):
            try:
                return await self._tokens.with_token(
                    vehicle.link_id, lambda token: method(token, vehicle_id)
                )
            except ReauthRequired:
                log.warning("bridge.smartcar_failed", call=what, reason="reauth_required")
                return None
            except VehicleStateError as exc:
                if raise_state and not exc.retryable:
                    raise
                failure = exc
            except SmartcarError as exc:
                failure = exc
            log.warning(
                "bridge.smartcar_failed",
                call=what,
                error_type=failure.type,
                code=failure.code,
                status=failure.status,
                request_id=failure.request_id,
                retryable=failure.retryable,
                attempt=attempt,
            )
            if not failure.retryable or attempt == attempts:
                return None
            await self._sleep(min(failure.retry_after or 2.0**attempt, self._max_backoff))
        return None
