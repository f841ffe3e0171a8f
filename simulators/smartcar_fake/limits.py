"""What a call costs at the real service (§9): a per-vehicle throttle, the application's token
bucket and the plan's monthly per-vehicle cap.

Pure: the caller passes the time, so a test with a manual clock is exact. Every knob set to
``None`` turns that limit off; ``CostLimits.smartcar_defaults()`` is the published default.
Only calls that the service accepts count (a refused call costs nothing), and a batch counts
once per path (§9: "Each batch path counts").
"""

from __future__ import annotations

import math
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import datetime

from simulators.smartcar_fake.errors import ApiError

# §9: 120 requests, refilled at 2 a minute, unless support changed it.
DEFAULT_BUCKET_SIZE = 120
DEFAULT_REFILL_PER_MINUTE = 2.0
# §9 gives 500 calls per vehicle per month as an example plan.
DEFAULT_MONTHLY_CAP = 500
# §9: "no number is published"; the issue saw a 429 after as few as two quick calls. Six calls
# a minute is our stand-in: tight enough that a client which ignores Retry-After is caught.
DEFAULT_VEHICLE_CALLS = 6
DEFAULT_VEHICLE_WINDOW_S = 60.0


@dataclass(slots=True)
class CostLimits:
    """The knobs; ``None`` switches a limit off."""

    vehicle_calls: int | None = None
    vehicle_window_s: float = DEFAULT_VEHICLE_WINDOW_S
    bucket_size: int | None = None
    bucket_refill_per_minute: float = DEFAULT_REFILL_PER_MINUTE
    monthly_cap: int | None = None

    @classmethod
    def smartcar_defaults(cls) -> CostLimits:
        return cls(
            vehicle_calls=DEFAULT_VEHICLE_CALLS,
            bucket_size=DEFAULT_BUCKET_SIZE,
            monthly_cap=DEFAULT_MONTHLY_CAP,
        )

    def compressed(self, speed: float) -> CostLimits:
        """The same limits for a world running ``speed`` simulated seconds per real one.

        The fake answers on the real clock (tokens, ``SC-Data-Age``), so the rates are put on
        the world's: the bucket refills ``speed`` times faster and the vehicle window is
        ``speed`` times shorter, i.e. 2 calls per *simulated* minute and 6 calls per
        *simulated* minute and car. Sizes and the monthly cap (a compressed day is one day of
        the month) stay. ``Retry-After`` stays whole real seconds, at least 1: a client
        that honours it waits longer than the compressed window needs, never less.
        """
        if speed <= 0:
            raise ValueError("speed must be positive")
        return CostLimits(
            vehicle_calls=self.vehicle_calls,
            vehicle_window_s=self.vehicle_window_s / speed,
            bucket_size=self.bucket_size,
            bucket_refill_per_minute=self.bucket_refill_per_minute * speed,
            monthly_cap=self.monthly_cap,
        )


def _month(moment: datetime) -> tuple[int, int]:
    return moment.year, moment.month


@dataclass(slots=True)
class CostMeter:
    """Applies ``limits`` to each call and counts what was accepted and what was refused."""

    limits: CostLimits = field(default_factory=CostLimits)
    _recent: dict[str, deque[datetime]] = field(default_factory=dict)
    _monthly: Counter[tuple[str, tuple[int, int]]] = field(default_factory=Counter)
    _tokens: float | None = None
    _refilled_at: datetime | None = None
    accepted: Counter[str] = field(default_factory=Counter)  # by vehicle id
    refused: Counter[str] = field(default_factory=Counter)  # by error kind

    def configure(self, limits: CostLimits) -> None:
        """New knobs; the bucket starts full again, counts are kept."""
        self.limits = limits
        self._tokens, self._refilled_at = None, None

    def charge(self, vehicle_id: str, now: datetime, cost: int = 1) -> None:
        """Account one call (``cost`` paths for a batch) or raise the error the service sends.

        Order: the plan's cap (430) first, then the application bucket, then the vehicle's
        throttle, so the most permanent refusal is the one reported.
        """
        try:
            self._check_monthly(vehicle_id, now, cost)
            self._check_bucket(now)
            self._check_vehicle(vehicle_id, now)
        except ApiError as exc:
            self.refused[exc.kind] += 1
            raise
        self._take_bucket()
        self._recent.setdefault(vehicle_id, deque()).append(now)
        self._monthly[(vehicle_id, _month(now))] += cost
        self.accepted[vehicle_id] += cost

    def monthly_count(self, vehicle_id: str, now: datetime) -> int:
        return self._monthly[(vehicle_id, _month(now))]

    def bucket_level(self, now: datetime) -> float | None:
        self._refill(now)
        return self._tokens

    def _check_monthly(self, vehicle_id: str, now: datetime, cost: int) -> None:
        cap = self.limits.monthly_cap
        if cap is not None and self._monthly[(vehicle_id, _month(now))] + cost > cap:
            raise ApiError("BILLING:VEHICLE_REQUEST_LIMIT")

    def _refill(self, now: datetime) -> None:
        size = self.limits.bucket_size
        if size is None:
            self._tokens = None
            return
        if self._tokens is None or self._refilled_at is None:
            self._tokens, self._refilled_at = float(size), now
            return
        elapsed = max(0.0, (now - self._refilled_at).total_seconds())
        self._tokens = min(float(size), self._tokens + elapsed * self._refill_per_s)
        self._refilled_at = now

    @property
    def _refill_per_s(self) -> float:
        return self.limits.bucket_refill_per_minute / 60.0

    def _check_bucket(self, now: datetime) -> None:
        self._refill(now)
        if self._tokens is not None and self._tokens < 1.0:
            # §9 documents no Retry-After for the application limit; we send none either.
            raise ApiError("RATE_LIMIT:SMARTCAR_API")

    def _take_bucket(self) -> None:
        if self._tokens is not None:
            self._tokens -= 1.0

    def _check_vehicle(self, vehicle_id: str, now: datetime) -> None:
        allowed = self.limits.vehicle_calls
        if allowed is None:
            return
        window = self.limits.vehicle_window_s
        recent = self._recent.setdefault(vehicle_id, deque())
        while recent and (now - recent[0]).total_seconds() >= window:
            recent.popleft()
        if len(recent) >= allowed:
            # The slot frees when the oldest call leaves the window; a call before then is
            # refused again, so a client that retries early is never rewarded.
            wait = window - (now - recent[0]).total_seconds()
            retry_after = max(1, math.ceil(wait))
            raise ApiError("RATE_LIMIT:VEHICLE", headers={"Retry-After": str(retry_after)})
