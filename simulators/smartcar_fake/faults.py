"""Injected faults: random shares per error kind plus deterministic "next N calls fail".

Pure: a seeded ``random.Random`` decides, so a test that sets a share of 1.0 or forces a
fault is exactly reproducible.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from simulators.smartcar_fake.errors import ApiError, split_kind

# The faults the brief asks for; any ``TYPE:CODE`` from errors.STATUS_BY_TYPE can be forced.
FAULT_KINDS = (
    "RATE_LIMIT:VEHICLE",
    "RATE_LIMIT:SMARTCAR_API",
    "VEHICLE_STATE:ASLEEP",
    "VEHICLE_STATE:UNREACHABLE",
    "VEHICLE_STATE:CHARGE_FAULT",
    "SERVER:INTERNAL",
    "UPSTREAM:INVALID_DATA",
    "UPSTREAM:KNOWN_ISSUE",
    "UPSTREAM:NO_RESPONSE",
    "UPSTREAM:RATE_LIMIT",
    "UPSTREAM:UNKNOWN_ISSUE",
)
# A charge fault only makes sense as the answer to a charge command.
_COMMAND_ONLY = {"VEHICLE_STATE:CHARGE_FAULT": "POST /charge"}


@dataclass(slots=True)
class ForcedFault:
    kind: str
    remaining: int
    endpoint: str | None = None  # e.g. "POST /charge", "GET /battery"; None matches any
    vehicle_id: str | None = None

    def matches(self, endpoint: str, vehicle_id: str) -> bool:
        return (self.endpoint is None or self.endpoint == endpoint) and (
            self.vehicle_id is None or self.vehicle_id == vehicle_id
        )


@dataclass(slots=True)
class FaultPlan:
    """Knobs: ``latency_s``, ``shares`` (kind → 0..1), ``retry_after_s``, forced faults."""

    rng: random.Random = field(default_factory=random.Random)
    latency_s: float = 0.0
    retry_after_s: int = 30
    shares: dict[str, float] = field(default_factory=dict)
    forced: list[ForcedFault] = field(default_factory=list)

    def set_share(self, kind: str, share: float) -> None:
        split_kind(kind)  # rejects unknown types early
        if not 0.0 <= share <= 1.0:
            raise ValueError(f"share must be within 0..1, got {share}")
        if share == 0.0:
            self.shares.pop(kind, None)
        else:
            self.shares[kind] = share
        if sum(self.shares.values()) > 1.0 + 1e-9:
            raise ValueError("fault shares add up to more than 1")

    def force(
        self, kind: str, times: int = 1, endpoint: str | None = None, vehicle_id: str | None = None
    ) -> None:
        """The next ``times`` matching calls fail with ``kind``."""
        split_kind(kind)
        self.forced.append(ForcedFault(kind, times, endpoint, vehicle_id))

    def clear(self) -> None:
        self.latency_s = 0.0
        self.shares.clear()
        self.forced.clear()

    def draw(self, endpoint: str, vehicle_id: str) -> ApiError | None:
        """The fault this call suffers, if any; forced faults first, then the random shares."""
        for forced in self.forced:
            if forced.remaining > 0 and forced.matches(endpoint, vehicle_id):
                forced.remaining -= 1
                self.forced = [f for f in self.forced if f.remaining > 0]
                return self._error(forced.kind)
        if not self.shares:
            return None
        roll = self.rng.random()
        for kind, share in self.shares.items():
            if roll < share:
                only = _COMMAND_ONLY.get(kind)
                return None if only is not None and only != endpoint else self._error(kind)
            roll -= share
        return None

    def _error(self, kind: str) -> ApiError:
        # §9: only the per-vehicle limit is documented to carry Retry-After.
        headers = {"Retry-After": str(self.retry_after_s)} if kind == "RATE_LIMIT:VEHICLE" else {}
        return ApiError(kind, headers=headers)
