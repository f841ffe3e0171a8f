"""Simulated clock and shared statistics for simulated charge points."""

from __future__ import annotations

import random
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

# Enough samples for a stable p99 while bounding memory on long benchmark runs.
_RESERVOIR = 20_000


class SimClock:
    """Wall clock running ``speed`` times faster than real time, from ``start`` (default now).

    Deadlines for asyncio are real monotonic seconds: ``real_delay(sim_seconds)``.
    """

    __slots__ = ("_t0_real", "_t0_sim", "speed")

    def __init__(self, speed: float = 1.0, start: datetime | None = None) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.speed = speed
        self._t0_real = time.monotonic()
        self._t0_sim = start or datetime.now(UTC)

    def now(self) -> datetime:
        elapsed = (time.monotonic() - self._t0_real) * self.speed
        return self._t0_sim + timedelta(seconds=elapsed)

    def real_delay(self, sim_seconds: float) -> float:
        return sim_seconds / self.speed


def isoformat(moment: datetime) -> str:
    """OCPP dateTime: UTC with milliseconds and ``Z``."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def backoff_delay(attempt: int, base_s: float, cap_s: float, rng: random.Random) -> float:
    """Exponential back-off with "equal jitter": in [d/2, d] for d = min(cap, base * 2**attempt).

    Jitter keeps a restarted central system from being hit by every charger at once.
    """
    delay = min(cap_s, base_s * 2 ** min(attempt, 32))
    return delay * rng.uniform(0.5, 1.0)


class Stats:
    """Counters shared by every charge point of a fleet (one event loop, no locking)."""

    __slots__ = (
        "_rng",
        "_seen",
        "boots_accepted",
        "call_errors",
        "connect_failures",
        "connections",
        "deviations",
        "latencies",
        "received",
        "reconnects",
        "results",
        "sent",
        "timeouts",
    )

    def __init__(self, seed: int | None = None) -> None:
        self.sent: Counter[str] = Counter()
        self.received: Counter[str] = Counter()
        self.results: Counter[str] = Counter()
        self.call_errors: Counter[str] = Counter()
        self.timeouts: Counter[str] = Counter()
        self.deviations: Counter[str] = Counter()
        self.latencies: dict[str, list[float]] = {}
        self._seen: Counter[str] = Counter()
        self.reconnects = 0
        self.connect_failures = 0
        self.connections = 0
        self.boots_accepted = 0
        self._rng = random.Random(seed)

    def record_latency(self, action: str, seconds: float) -> None:
        """Reservoir sampling (algorithm R): a uniform sample of all round trips."""
        self._seen[action] += 1
        samples = self.latencies.setdefault(action, [])
        if len(samples) < _RESERVOIR:
            samples.append(seconds)
            return
        slot = self._rng.randrange(self._seen[action])
        if slot < _RESERVOIR:
            samples[slot] = seconds

    def percentiles(self) -> dict[str, dict[str, float]]:
        """Per action: count, p50 and p99 round-trip latency in milliseconds."""
        out: dict[str, dict[str, float]] = {}
        for action, samples in sorted(self.latencies.items()):
            ordered = sorted(samples)
            out[action] = {
                "count": self._seen[action],
                "p50_ms": round(_quantile(ordered, 0.50) * 1000, 3),
                "p99_ms": round(_quantile(ordered, 0.99) * 1000, 3),
            }
        return out

    def summary(self) -> dict[str, object]:
        return {
            "sent": dict(self.sent),
            "received": dict(self.received),
            "results": dict(self.results),
            "call_errors": dict(self.call_errors),
            "timeouts": dict(self.timeouts),
            "deviations": dict(self.deviations),
            "latency": self.percentiles(),
            "connections": self.connections,
            "reconnects": self.reconnects,
            "connect_failures": self.connect_failures,
            "boots_accepted": self.boots_accepted,
        }


def _quantile(ordered: list[float], q: float) -> float:
    if not ordered:
        return 0.0
    index = min(len(ordered) - 1, int(q * len(ordered)))
    return ordered[index]
