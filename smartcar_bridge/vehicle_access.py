"""The one interface the bridge's decisions use to reach a car, whichever Smartcar API
version serves it: read SoC, charge/plug state, location; start and stop charging, set the
limit; subscribe to webhooks; disconnect.

``VehicleAccess`` adds bounded retries and one log line per failure on top of a
``VehicleApi`` (``V2Vehicles`` here, ``smartcar_bridge.v3.vehicles.V3Vehicles`` for v3, the
default). Each read returns ``None`` (a command ``False``) instead of raising: the bridge
decides what a missing answer means, and the OCPP side never sees a Smartcar error.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

import structlog

from smartcar_bridge.client import SmartcarClient
from smartcar_bridge.errors import (
    ApiVersionRetired,
    ReauthRequired,
    SmartcarError,
    VehicleStateError,
)
from smartcar_bridge.responses import Battery, ChargeStatus, Location

T = TypeVar("T")
module_log = structlog.get_logger()


class LinkedVehicle(Protocol):
    # Read-only members, so frozen dataclasses (store.Vehicle and the like) satisfy it.
    @property
    def link_id(self) -> int: ...
    @property
    def smartcar_vehicle_id(self) -> str: ...


class TokenSource(Protocol):
    async def with_token(self, link_id: int, fn: Callable[[str], Awaitable[T]]) -> T: ...


class VehicleApi(Protocol):
    """One Smartcar API version. Every method raises ``SmartcarError`` subclasses."""

    version: str
    # v3 commands return no vehicle state (§14.2): confirm them by reading the car.
    confirms_commands: bool

    async def battery(self, vehicle: LinkedVehicle) -> Battery: ...
    def known_battery(self, vehicle: LinkedVehicle, max_age_s: float) -> Battery | None: ...
    async def charge_status(self, vehicle: LinkedVehicle) -> ChargeStatus: ...
    async def location(self, vehicle: LinkedVehicle) -> Location: ...
    async def is_charging(self, vehicle: LinkedVehicle) -> bool: ...
    async def start_charge(self, vehicle: LinkedVehicle) -> Any: ...
    async def stop_charge(self, vehicle: LinkedVehicle) -> Any: ...
    async def set_charge_limit(self, vehicle: LinkedVehicle, percent: int) -> Any: ...
    async def subscribe(self, vehicle: LinkedVehicle) -> bool: ...
    async def unsubscribe(self, vehicle: LinkedVehicle) -> bool: ...
    async def disconnect(self, vehicle: LinkedVehicle) -> Any: ...


class V2Vehicles:
    """Vehicles API v2.0 with per-vehicle OAuth tokens (kept behind SMARTCAR_API_VERSION=2)."""

    version = "2"
    confirms_commands = False  # v2.0 answered "Successfully sent request", as before

    def __init__(
        self,
        client: SmartcarClient,
        tokens: TokenSource,
        *,
        webhook_id: str | None = None,
        management_token: str | None = None,
    ) -> None:
        self.client = client
        self.tokens = tokens
        self._webhook_id = webhook_id
        self._management_token = management_token

    async def _with(self, vehicle: LinkedVehicle, call: Callable[[str, str], Awaitable[T]]) -> T:
        vehicle_id = vehicle.smartcar_vehicle_id
        return await self.tokens.with_token(vehicle.link_id, lambda token: call(token, vehicle_id))

    async def battery(self, vehicle: LinkedVehicle) -> Battery:
        return await self._with(vehicle, self.client.battery)

    def known_battery(self, vehicle: LinkedVehicle, max_age_s: float) -> Battery | None:
        return None  # v2.0 reads the battery on its own endpoint: nothing to reuse

    async def charge_status(self, vehicle: LinkedVehicle) -> ChargeStatus:
        return await self._with(vehicle, self.client.charge_status)

    async def location(self, vehicle: LinkedVehicle) -> Location:
        return await self._with(vehicle, self.client.location)

    async def is_charging(self, vehicle: LinkedVehicle) -> bool:
        return (await self.charge_status(vehicle)).state == "CHARGING"

    async def start_charge(self, vehicle: LinkedVehicle) -> Any:
        return await self._with(vehicle, self.client.start_charge)

    async def stop_charge(self, vehicle: LinkedVehicle) -> Any:
        return await self._with(vehicle, self.client.stop_charge)

    async def set_charge_limit(self, vehicle: LinkedVehicle, percent: int) -> Any:
        # §5: v2.0 takes a fraction 0.5..1.
        return await self._with(
            vehicle, lambda token, vid: self.client.set_charge_limit(token, vid, percent / 100)
        )

    async def subscribe(self, vehicle: LinkedVehicle) -> bool:
        if not self._webhook_id:
            return False
        webhook_id = self._webhook_id
        await self._with(
            vehicle, lambda token, vid: self.client.subscribe_webhook(token, vid, webhook_id)
        )
        return True

    async def unsubscribe(self, vehicle: LinkedVehicle) -> bool:
        # §5: the unsubscribe takes the application management token, not the car's.
        if not self._webhook_id or not self._management_token:
            return False
        await self.client.unsubscribe_webhook(
            self._management_token, vehicle.smartcar_vehicle_id, self._webhook_id
        )
        return True

    async def disconnect(self, vehicle: LinkedVehicle) -> Any:
        return await self._with(vehicle, self.client.disconnect)


class RetiredNotice:
    """Logs ``bridge.smartcar_version_retired`` once per process, saying what to do."""

    def __init__(self, version: str) -> None:
        self.version = version
        self.reported = False

    def report(self, exc: ApiVersionRetired, log: Any = module_log) -> None:
        if self.reported:
            return
        self.reported = True
        if self.version == "2":
            action = (
                "Smartcar has switched off Vehicles API v2.0: set SMARTCAR_API_VERSION=3 and "
                "create API credentials (a client secret) in the Smartcar Dashboard"
            )
        else:
            action = (
                "Smartcar no longer serves the configured API version: check SMARTCAR_V3_API_URL"
            )
        log.error(
            "bridge.smartcar_version_retired",
            api_version=self.version,
            status=exc.status,
            code=exc.code,
            request_id=exc.request_id,
            action=action,
        )


# A START or STOP that finds the car already where we want it is a success.
_ALREADY_CHARGING = frozenset({"CHARGING_IN_PROGRESS"})
_ALREADY_STOPPED = frozenset({"NOT_CHARGING", "CHARGING_PLUG_NOT_CONNECTED", "FULLY_CHARGED"})
# §14.2: reading the state right after a command may show the old value for a while.
CONFIRM_DELAYS = (1.0, 2.0, 4.0, 8.0)
# How long a battery read is kept for known_battery (callers ask for less).
BATTERY_KEEP_S = 600.0


class VehicleAccess:
    def __init__(
        self,
        api: VehicleApi | SmartcarClient,
        tokens: TokenSource | None = None,
        *,
        max_backoff: float = 30.0,
        confirm_delays: tuple[float, ...] = CONFIRM_DELAYS,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        retired: RetiredNotice | None = None,
        monotonic: Callable[[], float] | None = None,
    ) -> None:
        if isinstance(api, SmartcarClient):
            # The pre-v3 signature: (client, tokens) meant v2.0.
            assert tokens is not None, "VehicleAccess(client, tokens) needs a token source"
            api = V2Vehicles(api, tokens)
        self.api: VehicleApi = api
        self._max_backoff = max_backoff
        self._confirm_delays = confirm_delays
        self._sleep = sleep
        self.retired = retired or RetiredNotice(api.version)
        self._monotonic = monotonic or (lambda: asyncio.get_running_loop().time())
        # Each car's last battery read, for known_battery (keyed like the API's own cache).
        self._batteries: dict[str, tuple[float, Battery]] = {}

    @property
    def version(self) -> str:
        return self.api.version

    async def battery(self, vehicle: LinkedVehicle, log: Any, attempts: int = 3) -> Battery | None:
        battery = await self._call(vehicle, self.api.battery, log, "battery", attempts)
        if battery is not None:
            self._batteries[vehicle.smartcar_vehicle_id] = (self._monotonic(), battery)
        return battery

    def known_battery(self, vehicle: LinkedVehicle, max_age_s: float) -> Battery | None:
        """A recent SoC already answered, no call: this car's last battery read, or (v3)
        the match's signals page. A plug-in that lost its confirmation to a rival, and
        decides again once that is over, must not pay for the same SoC twice."""
        page = self.api.known_battery(vehicle, max_age_s)
        if page is not None:
            return page
        key = vehicle.smartcar_vehicle_id
        read = self._batteries.get(key)
        if read is None:
            return None
        at, battery = read
        age = self._monotonic() - at
        if age > BATTERY_KEEP_S:
            del self._batteries[key]
        return battery if age <= min(max_age_s, BATTERY_KEEP_S) else None

    async def charge_status(
        self, vehicle: LinkedVehicle, log: Any, attempts: int = 1
    ) -> ChargeStatus | None:
        return await self._call(vehicle, self.api.charge_status, log, "charge", attempts)

    async def location(self, vehicle: LinkedVehicle, log: Any) -> Location | None:
        return await self._call(vehicle, self.api.location, log, "location", 1)

    async def start_charge(self, vehicle: LinkedVehicle, log: Any) -> bool:
        return await self._command(
            vehicle, self.api.start_charge, log, "START", _ALREADY_CHARGING, charging=True
        )

    async def stop_charge(self, vehicle: LinkedVehicle, log: Any) -> bool:
        return await self._command(
            vehicle, self.api.stop_charge, log, "STOP", _ALREADY_STOPPED, charging=False
        )

    async def set_charge_limit(self, vehicle: LinkedVehicle, log: Any, percent: int) -> bool:
        async def send(v: LinkedVehicle) -> Any:
            return await self.api.set_charge_limit(v, percent)

        return await self._command(vehicle, send, log, "SET_LIMIT", frozenset(), charging=None)

    async def subscribe(self, vehicle: LinkedVehicle, log: Any) -> bool:
        """Subscribe the car to the configured webhook (v3: Management API, §14.4)."""
        done = await self._call(vehicle, self.api.subscribe, log, "subscribe", 2)
        if done:
            log.info("bridge.webhook_subscribed", api_version=self.version)
        return bool(done)

    async def unsubscribe(self, vehicle: LinkedVehicle, log: Any) -> bool:
        """Take the car off the webhook (at unlink: its deliveries would be for nobody)."""
        done = await self._call(vehicle, self.api.unsubscribe, log, "unsubscribe", 2)
        if done:
            log.info("bridge.webhook_unsubscribed", api_version=self.version)
        return bool(done)

    async def disconnect(self, vehicle: LinkedVehicle) -> None:
        """Revoke the application's access to the car. Raises ``SmartcarError``."""
        try:
            await self.api.disconnect(vehicle)
        except ApiVersionRetired as exc:
            self.retired.report(exc)
            raise

    async def _command(
        self,
        vehicle: LinkedVehicle,
        method: Callable[[LinkedVehicle], Awaitable[Any]],
        log: Any,
        action: str,
        fine: frozenset[str],
        *,
        charging: bool | None,
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
        if result is None:
            return False
        log.info("bridge.car_charge_command", action=action, outcome="sent")
        if charging is None or not self.api.confirms_commands:
            return True
        return await self._confirm(vehicle, log, action, charging)

    async def _confirm(self, vehicle: LinkedVehicle, log: Any, action: str, charging: bool) -> bool:
        """Read the car until it shows the command's effect, or give up (bounded)."""
        for delay in self._confirm_delays:
            await self._sleep(delay)
            try:
                if await self.api.is_charging(vehicle) == charging:
                    log.info("bridge.car_charge_confirmed", action=action, charging=charging)
                    return True
            except SmartcarError as exc:
                log.info("bridge.car_charge_unconfirmed", action=action, error_type=exc.type)
        log.warning("bridge.car_charge_unconfirmed", action=action, charging=not charging)
        return False

    async def _call(
        self,
        vehicle: LinkedVehicle,
        method: Callable[[LinkedVehicle], Awaitable[T]],
        log: Any,
        what: str,
        attempts: int,
        *,
        raise_state: bool = False,
    ) -> T | None:
        for attempt in range(1, attempts + 1):
            try:
                return await method(vehicle)
            except ReauthRequired:
                log.warning("bridge.smartcar_failed", call=what, reason="reauth_required")
                return None
            except ApiVersionRetired as exc:
                self.retired.report(exc, log)
                failure: SmartcarError = exc
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
