"""The v3 implementation of the bridge's vehicle access: application token + ``sc-user-id``,
signals for reads, command executions followed to their outcome (smartcar-api.md §14).

Each method raises ``SmartcarError`` subclasses; ``VehicleAccess`` decides what they mean.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

import asyncpg
import structlog

from smartcar_bridge.errors import (
    ReauthRequired,
    SmartcarError,
    SmartcarResponseError,
    error_from_response,
)
from smartcar_bridge.responses import Battery, Capacity, ChargeStatus, Location, Meta
from smartcar_bridge.v3 import choices, parse
from smartcar_bridge.v3.app_tokens import AppTokens
from smartcar_bridge.v3.client import SET_LIMIT, START, STOP, V3Client
from smartcar_bridge.v3.parse import CommandExecution, Signal

log = structlog.get_logger()

T = TypeVar("T")
Sleep = Callable[[float], Awaitable[None]]
Clock = Callable[[], float]

# How long one ``GET /signals`` page answers the position and battery questions that follow
# it (the matcher asks for the position right after the charge state).
SNAPSHOT_REUSE_S = 5.0
# How long a page is kept for ``known_battery`` (callers ask for less).
SNAPSHOT_KEEP_S = 600.0


class LinkedVehicle(Protocol):
    # Read-only members, so frozen dataclasses (store.Vehicle and the like) satisfy it.
    @property
    def link_id(self) -> int: ...
    @property
    def smartcar_vehicle_id(self) -> str: ...


class CommandTimeout(SmartcarError):
    """A long-running command was still running when our bound ran out. Not retried: the
    car may yet carry it out, and a resend could undo a later one."""

    default_type = "COMMAND_TIMEOUT"

    def __init__(self, description: str, *, request_id: str | None = None) -> None:
        super().__init__(description, request_id=request_id, retryable=False)


class UserIds:
    """``sc-user-id`` per link: stored with the link at Connect; for links made under v2.0,
    looked up once through ``GET /connections`` and stored (the §14.6 backfill)."""

    def __init__(self, pool: asyncpg.Pool, client: V3Client, tokens: AppTokens) -> None:
        self._pool = pool
        self._client = client
        self._tokens = tokens
        self._known: dict[int, str] = {}

    async def for_vehicle(self, vehicle: LinkedVehicle) -> str:
        known = self._known.get(vehicle.link_id)
        if known is not None:
            return known
        user_id = await self._pool.fetchval(
            "SELECT sc_user_id FROM smartcar_links WHERE id = $1", vehicle.link_id
        )
        if user_id is None:
            user_id = await self._backfill(vehicle)
        self._known[vehicle.link_id] = user_id
        return str(user_id)

    async def _backfill(self, vehicle: LinkedVehicle) -> str:
        found = await self._tokens.with_token(
            lambda token: self._client.connections(token, vehicle_id=vehicle.smartcar_vehicle_id)
        )
        user_id = next((c.user_id for c in found if c.user_id), None)
        if user_id is None:
            raise ReauthRequired(vehicle.link_id, "no v3 connection for this vehicle")
        await self._pool.execute(
            "UPDATE smartcar_links SET sc_user_id = $2 WHERE id = $1", vehicle.link_id, user_id
        )
        log.info("bridge.sc_user_id_backfilled", link_id=vehicle.link_id)
        return user_id


class V3Vehicles:
    """Vehicle access over v3. Raises: ``SmartcarError`` subclasses (``CommandTimeout``
    when a long-running command outlives ``command_timeout``)."""

    version = "3"
    confirms_commands = True  # §14.2: the reply holds no vehicle state

    def __init__(
        self,
        client: V3Client,
        tokens: AppTokens,
        users: UserIds,
        *,
        webhook_id: str | None = None,
        command_timeout: float = 310.0,
        sleep: Sleep = asyncio.sleep,
        monotonic: Clock | None = None,
    ) -> None:
        self.client = client
        self.tokens = tokens
        self.users = users
        self._webhook_id = webhook_id
        self._command_timeout = command_timeout
        self._sleep = sleep
        self._monotonic = monotonic or (lambda: asyncio.get_running_loop().time())
        self._snapshots: dict[str, tuple[float, dict[str, Signal]]] = {}

    async def _with(
        self, vehicle: LinkedVehicle, call: Callable[[str, str, str], Awaitable[T]]
    ) -> T:
        user_id = await self.users.for_vehicle(vehicle)
        vehicle_id = vehicle.smartcar_vehicle_id
        return await self.tokens.with_token(lambda token: call(token, user_id, vehicle_id))

    # Reads (§14.3). A charge read wants the charging flag, the cable and (for matching)
    # the position: three signal calls, or one ``GET /signals`` page of ``FULL_PAGE`` that
    # holds every signal the car reports. The page is kept ``SNAPSHOT_REUSE_S`` so the
    # position and battery asked for right after it cost nothing more; a lone battery or
    # position read stays one single-signal call (the smaller answer).

    async def _signal(self, vehicle: LinkedVehicle, code: str) -> dict[str, Signal]:
        found = await self._with(vehicle, lambda t, u, v: self.client.signal(t, u, v, code))
        _raise_failed(found)
        return {code: found}

    async def _snapshot(self, vehicle: LinkedVehicle) -> dict[str, Signal]:
        signals = await self._with(
            vehicle, lambda t, u, v: self.client.signals(t, u, v, page_size=choices.FULL_PAGE)
        )
        charging = signals.get(choices.IS_CHARGING)
        if charging is not None:
            _raise_failed(charging)
        self._snapshots[vehicle.smartcar_vehicle_id] = (self._monotonic(), signals)
        return signals

    def _recent(
        self, vehicle: LinkedVehicle, code: str, within: float = SNAPSHOT_REUSE_S
    ) -> dict[str, Signal] | None:
        taken = self._snapshots.get(vehicle.smartcar_vehicle_id)
        if taken is None:
            return None
        at, signals = taken
        age = self._monotonic() - at
        if age > SNAPSHOT_KEEP_S:
            del self._snapshots[vehicle.smartcar_vehicle_id]
        if age > within:
            return None
        found = signals.get(code)
        return {code: found} if found is not None and found.ok else None

    def known_battery(self, vehicle: LinkedVehicle, max_age_s: float) -> Battery | None:
        """The SoC on the car's last ``GET /signals`` page if taken within ``max_age_s``;
        None otherwise. No call: for filters, never for a session's start or end."""
        signals = self._recent(vehicle, choices.SOC, min(max_age_s, SNAPSHOT_KEEP_S))
        if signals is None:
            return None
        try:
            return _parsed(parse.battery, signals)
        except SmartcarResponseError:
            return None

    async def battery(self, vehicle: LinkedVehicle) -> Battery:
        # Always its own read: the SoC a session starts or ends on must be the car's now.
        return _parsed(parse.battery, await self._signal(vehicle, choices.SOC))

    async def charge_status(self, vehicle: LinkedVehicle) -> ChargeStatus:
        # A car that cannot report its cable (§14.3: support varies a lot by make) sends it
        # as an ERROR signal or not at all: parse.charge_status infers it from charging.
        return _parsed(parse.charge_status, await self._snapshot(vehicle))

    async def location(self, vehicle: LinkedVehicle) -> Location:
        signals = self._recent(vehicle, choices.LOCATION) or await self._signal(
            vehicle, choices.LOCATION
        )
        return _parsed(parse.location, signals)

    async def is_charging(self, vehicle: LinkedVehicle) -> bool:
        signals = await self._signal(vehicle, choices.IS_CHARGING)
        value = signals[choices.IS_CHARGING].value
        if not isinstance(value, bool):
            raise SmartcarResponseError(f"{choices.IS_CHARGING} is not a boolean", status=200)
        return value

    async def describe(
        self, user_id: str, vehicle_id: str
    ) -> tuple[parse.VehicleAttributes, dict[str, Signal]]:
        """Attributes and every signal, read once when the car is linked."""
        attributes = await self.tokens.with_token(
            lambda token: self.client.vehicle(token, user_id, vehicle_id)
        )
        signals = await self.tokens.with_token(
            lambda token: self.client.signals(
                token, user_id, vehicle_id, page_size=choices.FULL_PAGE
            )
        )
        return attributes, signals

    def capacity(self, signals: dict[str, Signal]) -> Capacity:
        return parse.capacity(signals, _now_meta())

    async def start_charge(self, vehicle: LinkedVehicle) -> CommandExecution:
        return await self._command(vehicle, START)

    async def stop_charge(self, vehicle: LinkedVehicle) -> CommandExecution:
        return await self._command(vehicle, STOP)

    async def set_charge_limit(self, vehicle: LinkedVehicle, percent: int) -> CommandExecution:
        # §14.2: a whole percent (v2.0 took a fraction 0.5..1).
        return await self._command(vehicle, SET_LIMIT, {"percent": int(percent)})

    async def disconnect(self, vehicle: LinkedVehicle) -> None:
        await self.tokens.with_token(
            lambda token: self.client.disconnect(token, vehicle.smartcar_vehicle_id)
        )

    async def subscribe(self, vehicle: LinkedVehicle) -> bool:
        """Subscribe to the configured webhook; False when none is configured."""
        if not self._webhook_id:
            return False
        webhook_id = self._webhook_id
        await self._with(vehicle, lambda t, u, v: self.client.subscribe(t, webhook_id, u, v))
        return True

    async def unsubscribe(self, vehicle: LinkedVehicle) -> bool:
        """Remove the car's subscription to the configured webhook; False when none is."""
        if not self._webhook_id:
            return False
        webhook_id, vehicle_id = self._webhook_id, vehicle.smartcar_vehicle_id
        await self.tokens.with_token(
            lambda token: self.client.unsubscribe(token, webhook_id, vehicle_id)
        )
        return True

    async def _command(
        self, vehicle: LinkedVehicle, name: str, attributes: dict[str, Any] | None = None
    ) -> CommandExecution:
        """Send, then follow a running execution to its outcome within ``command_timeout``;
        a failed execution raises its error from the same tree as HTTP errors."""
        deadline = self._monotonic() + self._command_timeout
        result = await self._with(
            vehicle, lambda t, u, v: self.client.command(t, u, v, name, attributes)
        )
        intervals = iter(choices.POLL_INTERVALS)
        while result.state == "running":
            remaining = deadline - self._monotonic()
            if result.id is None or remaining <= 0:
                raise CommandTimeout(
                    f"{name} still {result.status} after {self._command_timeout:.0f} s",
                    request_id=result.meta.request_id,
                )
            await self._sleep(min(next(intervals, choices.POLL_INTERVALS[-1]), remaining))
            result = await self._with(vehicle, self._poll(result.id))
        if result.error is not None:
            raise result.error
        return result

    def _poll(self, execution_id: str) -> Callable[[str, str, str], Awaitable[CommandExecution]]:
        return lambda t, u, v: self.client.execution(t, u, v, execution_id)


def _raise_failed(found: Signal) -> None:
    if not found.ok and isinstance(found.error, dict) and found.error.get("type"):
        # A failed signal carries its error (§10): raise it from the same tree.
        status = int(found.error.get("status") or 409)
        raise error_from_response(status, {"errors": [found.error]})


def _now_meta() -> Meta:
    return Meta(None, datetime.now(UTC))


def _parsed(parser: Callable[[dict[str, Signal], Meta], T], signals: dict[str, Signal]) -> T:
    try:
        return parser(signals, _now_meta())
    except (KeyError, TypeError, ValueError) as exc:
        # A signal the car does not report (status ERROR, or missing) reads as no answer.
        raise SmartcarResponseError(
            f"signal missing or unreadable: {type(exc).__name__} {exc}", status=200
        ) from exc
