"""Smartcar's limits obeyed before a call, not discovered by it (§9).

Three things are remembered across calls:

- **Per vehicle**, the earliest moment the next call may go: ``Retry-After`` of a
  ``RATE_LIMIT:VEHICLE`` however long it is, a long back-off after ``UPSTREAM:RATE_LIMIT``,
  and the start of next month after ``BILLING:VEHICLE_REQUEST_LIMIT``.
- **For the application**, a token bucket shaped like Smartcar's (size and refill are
  settings, defaulting to the published 120 and 2 a minute). When it runs short it is spent
  on what matters most: each purpose may only take a token while more than its reserve is
  left, so stopping a session at its target still gets a call when reading a new candidate
  no longer does. A ``RATE_LIMIT:SMARTCAR_API`` answer empties it and backs off
  exponentially.
- **What each call was for** (``call_purpose``), counted per purpose and per session, with
  a warning when a session spends more than its budget.

In a cluster the bucket and the per-vehicle holds live in PostgreSQL
(``shared_limit``), so every node spends one application budget and a vehicle held
after a 429 on one node is held on all of them; one process keeps both in memory.

A call the limiter refuses raises the same errors the service would have sent
(``RateLimitError``, ``BillingError``) with ``retry_after`` set, so callers keep one set of
rules; ``.local`` tells them apart from the service's own answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum

import structlog

from smartcar_bridge.errors import BillingError, RateLimitError, SmartcarError
from smartcar_bridge.shared_limit import SharedHolds, SharedRateLimit

log = structlog.get_logger()

Sleep = Callable[[float], Awaitable[None]]
Monotonic = Callable[[], float]
WallClock = Callable[[], datetime]


class Purpose(StrEnum):
    """Why a call is made; the order of ``PRIORITY`` is who gets the last tokens."""

    STOP = "stop"  # stop charging at the target or at unplug
    FINAL_READ = "final_read"  # the battery reading the bill is reconciled with
    START = "start"  # the start command
    CONFIRM = "confirm"  # did the car start charging (active confirmation)
    SESSION_READ = "session_read"  # VIN and battery before a start
    MONITOR = "monitor"  # SoC while charging
    MATCH = "match"  # which car is on this connector
    LINK = "link"  # linking, subscriptions, capacity
    OTHER = "other"


# Share of the bucket each purpose leaves for the ones above it.
RESERVE_SHARE: dict[Purpose, float] = {
    Purpose.STOP: 0.0,
    Purpose.FINAL_READ: 0.0,
    Purpose.START: 0.05,
    Purpose.CONFIRM: 0.05,
    Purpose.SESSION_READ: 0.10,
    Purpose.MONITOR: 0.20,
    Purpose.MATCH: 0.25,
    Purpose.LINK: 0.30,
    Purpose.OTHER: 0.30,
}
# How long a call of each purpose may wait for a token before it is refused locally.
MAX_BUCKET_WAIT_S: dict[Purpose, float] = {
    Purpose.STOP: 120.0,
    Purpose.FINAL_READ: 120.0,
    Purpose.START: 30.0,
    Purpose.CONFIRM: 30.0,
    Purpose.SESSION_READ: 10.0,
    Purpose.MONITOR: 0.0,
    Purpose.MATCH: 0.0,
    Purpose.LINK: 0.0,
    Purpose.OTHER: 0.0,
}


class HeldBack(RateLimitError):
    """Refused here, not by the service: sending it would have been answered with a 429."""

    local = True


class CapReached(BillingError):
    """Refused here: the plan's monthly calls for this vehicle are spent (§9, 430)."""

    local = True


@dataclass(frozen=True, slots=True)
class RateLimitSettings:
    """Defaults are §9's published values; support can change the bucket for an account."""

    bucket_size: int = 120
    bucket_refill_per_minute: float = 2.0
    # §9 older guidance: poll at most every 30 minutes once the OEM's own limit is hit.
    upstream_backoff_s: float = 1800.0
    # A RATE_LIMIT:VEHICLE without Retry-After (the SDKs parse it only when present).
    vehicle_backoff_s: float = 60.0
    # RATE_LIMIT:SMARTCAR_API carries no Retry-After: exponential back-off from here.
    app_backoff_base_s: float = 30.0
    app_backoff_max_s: float = 900.0
    session_budget: int = 12


@dataclass(frozen=True, slots=True)
class CallContext:
    purpose: Purpose = Purpose.OTHER
    session_id: int | None = None


_NO_CONTEXT = CallContext()
_context: ContextVar[CallContext | None] = ContextVar("smartcar_call", default=None)


@contextlib.contextmanager
def call_purpose(purpose: Purpose, session_id: int | None = None) -> Iterator[CallContext]:
    """Every Smartcar call made inside is counted (and prioritised) as ``purpose``."""
    context = CallContext(purpose, session_id)
    token = _context.set(context)
    try:
        yield context
    finally:
        _context.reset(token)


def current_call() -> CallContext:
    return _context.get() or _NO_CONTEXT


@dataclass(slots=True)
class TokenBucket:
    """Pure: ``level`` tokens at monotonic time ``updated``; refills up to ``size``."""

    size: float
    refill_per_s: float
    level: float = -1.0
    updated: float = 0.0

    def _refill(self, now: float) -> None:
        if self.level < 0:
            self.level, self.updated = self.size, now
            return
        self.level = min(self.size, self.level + max(0.0, now - self.updated) * self.refill_per_s)
        self.updated = now

    def take(self, now: float, reserve: float = 0.0) -> float:
        """Take a token if more than ``reserve`` stay; else the seconds until one would."""
        self._refill(now)
        if self.level - 1.0 >= reserve:
            self.level -= 1.0
            return 0.0
        if self.refill_per_s <= 0:
            return math.inf
        return (reserve + 1.0 - self.level) / self.refill_per_s

    def drain(self, now: float) -> None:
        """The service says the application's bucket is empty: believe it."""
        self._refill(now)
        self.level = 0.0


def _next_month(moment: datetime) -> datetime:
    year, month = (moment.year + 1, 1) if moment.month == 12 else (moment.year, moment.month + 1)
    return datetime(year, month, 1, tzinfo=UTC)


@dataclass(slots=True)
class _Hold:
    until: float  # monotonic
    reason: str
    wall_until: datetime | None = None


@dataclass
class RateLimiter:
    """Consulted by the client before each attempt and told the outcome after it."""

    settings: RateLimitSettings = field(default_factory=RateLimitSettings)
    monotonic: Monotonic = time.monotonic
    wall_clock: WallClock = field(default=lambda: datetime.now(UTC))
    sleep: Sleep = asyncio.sleep
    count_call: Callable[[str], None] | None = None  # metrics: one call sent, by purpose
    # A cluster: the application's bucket and the vehicles' holds shared by every node.
    shared_bucket: SharedRateLimit | None = None
    shared_holds: SharedHolds | None = None
    by_purpose: Counter[str] = field(default_factory=Counter)
    by_session: Counter[int] = field(default_factory=Counter)
    _holds: dict[str, _Hold] = field(default_factory=dict)
    _app_hold_until: float = 0.0
    _app_failures: int = 0
    _warned_sessions: set[int] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.bucket = TokenBucket(
            float(self.settings.bucket_size), self.settings.bucket_refill_per_minute / 60.0
        )

    # --- before a call ----------------------------------------------------------------------

    async def acquire(self, vehicle_id: str | None) -> None:
        """Wait for (or refuse) the call about to be sent for ``current_call()``'s purpose.

        Raises the ``RateLimitError``/``BillingError`` the service would have answered,
        with ``local = True``, instead of sending a call that would be refused.
        """
        context = current_call()
        self._check_vehicle(vehicle_id)
        if self.shared_holds is not None and vehicle_id is not None:
            held = await self.shared_holds.held(vehicle_id)
            if held is not None:  # another node was told to wait: so do we
                self._hold(vehicle_id, self.monotonic() + held[0], held[1])
                self._check_vehicle(vehicle_id)
        reserve = RESERVE_SHARE[context.purpose] * self.bucket.size
        max_wait = MAX_BUCKET_WAIT_S[context.purpose]
        waited = 0.0
        while True:
            now = self.monotonic()
            wait = max(0.0, self._app_hold_until - now)
            if wait == 0.0:
                wait = await self._take(now, reserve)
                if wait == 0.0:
                    self._count(context)
                    return
            if waited + wait > max_wait:
                raise HeldBack(
                    "application call budget spent; this call would be refused",
                    code="SMARTCAR_API",
                    retry_after=math.ceil(wait) if math.isfinite(wait) else None,
                    retryable=True,
                )
            await self.sleep(wait)
            waited += wait

    async def _take(self, now: float, reserve: float) -> float:
        if self.shared_bucket is not None:
            return await self.shared_bucket.try_acquire(reserve)
        return self.bucket.take(now, reserve)

    def blocked_for(self, vehicle_id: str) -> float:
        """Seconds until ``vehicle_id`` may be called again (0 when it may now)."""
        hold = self._holds.get(vehicle_id)
        if hold is None:
            return 0.0
        return max(0.0, hold.until - self.monotonic())

    def _check_vehicle(self, vehicle_id: str | None) -> None:
        if vehicle_id is None:
            return
        hold = self._holds.get(vehicle_id)
        if hold is None:
            return
        remaining = hold.until - self.monotonic()
        if remaining <= 0:
            del self._holds[vehicle_id]
            return
        if hold.reason == "BILLING:VEHICLE_REQUEST_LIMIT":
            raise CapReached(
                "the plan's monthly calls for this vehicle are spent",
                code="VEHICLE_REQUEST_LIMIT",
                retry_after=math.ceil(remaining),
            )
        raise HeldBack(
            f"vehicle held back after {hold.reason}",
            code="VEHICLE",
            retry_after=math.ceil(remaining),
            retryable=True,
        )

    def _count(self, context: CallContext) -> None:
        self.by_purpose[context.purpose.value] += 1
        if self.count_call is not None:
            self.count_call(context.purpose.value)
        if context.session_id is None:
            return
        self.by_session[context.session_id] += 1
        spent = self.by_session[context.session_id]
        if spent > self.settings.session_budget and context.session_id not in self._warned_sessions:
            self._warned_sessions.add(context.session_id)
            log.warning(
                "bridge.smartcar_budget_exceeded",
                session_id=context.session_id,
                calls=spent,
                budget=self.settings.session_budget,
                purpose=context.purpose.value,
            )

    # --- after a call ----------------------------------------------------------------------

    def succeeded(self) -> None:
        self._app_failures = 0

    async def report_failure(self, vehicle_id: str | None, error: SmartcarError) -> None:
        """``failed``, then tell the other nodes (a cluster) before the next call goes."""
        self.failed(vehicle_id, error)
        if isinstance(error, HeldBack | CapReached):
            return
        if error.kind == "RATE_LIMIT:SMARTCAR_API" and self.shared_bucket is not None:
            await self.shared_bucket.drain()
        if vehicle_id is not None and self.shared_holds is not None:
            hold = self._holds.get(vehicle_id)
            if hold is not None:
                left = hold.until - self.monotonic()
                if left > 0:
                    await self.shared_holds.hold(vehicle_id, left, hold.reason)

    def failed(self, vehicle_id: str | None, error: SmartcarError) -> None:
        """Remember what the service said about the vehicle or the application."""
        if isinstance(error, HeldBack | CapReached):
            return
        now = self.monotonic()
        kind = error.kind
        if kind == "RATE_LIMIT:SMARTCAR_API":
            self.bucket.drain(now)
            backoff = self.settings.app_backoff_base_s * 2**self._app_failures
            self._app_failures += 1
            self._app_hold_until = now + min(self.settings.app_backoff_max_s, backoff)
            log.warning("bridge.smartcar_app_rate_limited", backoff_s=round(backoff, 1))
            return
        if vehicle_id is None:
            return
        if kind == "RATE_LIMIT:VEHICLE":
            # §7: wait exactly Retry-After and never less, however long it is.
            seconds = (
                error.retry_after
                if error.retry_after is not None
                else self.settings.vehicle_backoff_s
            )
            self._hold(vehicle_id, now + seconds, kind)
        elif kind == "UPSTREAM:RATE_LIMIT":
            self._hold(vehicle_id, now + self.settings.upstream_backoff_s, kind)
        elif kind == "BILLING:VEHICLE_REQUEST_LIMIT":
            wall = self.wall_clock()
            until = _next_month(wall)
            self._hold(vehicle_id, now + (until - wall).total_seconds(), kind, until)
            log.warning(
                "bridge.smartcar_vehicle_capped",
                vehicle_id=vehicle_id,
                until=until.isoformat(),
                detail="the plan's monthly calls for this vehicle are spent; not polling it",
            )

    def _hold(
        self, vehicle_id: str, until: float, reason: str, wall_until: datetime | None = None
    ) -> None:
        current = self._holds.get(vehicle_id)
        if current is None or current.until < until:
            self._holds[vehicle_id] = _Hold(until, reason, wall_until)
