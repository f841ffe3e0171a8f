"""The fake's configuration and the state object tests and routes share.

``FakeSmartcar`` bundles the world, the clock and every knob: tokens (``.tokens``), faults
(``.faults``), Connect behaviour (``.connect``), webhooks (``.webhooks``) and v3 (``.v3``:
app tokens, command executions, subscriptions, ``v2_retired``).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from simulators.smartcar_fake.faults import FaultPlan
from simulators.smartcar_fake.limits import CostMeter
from simulators.smartcar_fake.tokens import Clock, TokenStore
from simulators.smartcar_fake.v3_state import V3State
from simulators.smartcar_fake.webhooks import WebhookDispatcher
from simulators.world import World

# The plug-and-charge guide's scope set (§12), used when Connect gets no ``scope``.
DEFAULT_SCOPES = (
    "read_vehicle_info",
    "read_vin",
    "read_battery",
    "read_charge",
    "control_charge",
    "read_location",
)


def utc_now() -> datetime:
    return datetime.now(UTC)


class ManualClock:
    """A clock tests move by hand: ``clock.advance(seconds=61)``."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2025, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


@dataclass(slots=True, frozen=True)
class FakeConfig:
    """The registered application, as in the Smartcar Dashboard."""

    client_id: str = "fake-client-id"
    client_secret: str = "fake-client-secret"
    redirect_uris: tuple[str, ...] = ("http://127.0.0.1/callback",)
    default_scopes: tuple[str, ...] = DEFAULT_SCOPES
    access_token_ttl_s: float = 7200.0
    refresh_grace_s: float = 60.0
    seed: int | None = 0


@dataclass(slots=True)
class ConnectKnobs:
    """Who logs in at Connect and what they do there."""

    # The driver owning these VINs logs in and ticks all of them (single_select narrows it).
    login_vins: list[str] = field(default_factory=list)
    # The driver presses "Deny": redirect with error=access_denied.
    decline: bool = False
    # Optional scopes the driver unticks; ``required:`` scopes cannot be unticked.
    declined_scopes: set[str] = field(default_factory=set)
    # Force another Connect error code (no_vehicles, vehicle_incompatible, server_error, ...).
    error: str | None = None


class FakeSmartcar:
    """Everything the fake knows; safe to drive from tests directly (same event loop)."""

    def __init__(
        self,
        world: World,
        config: FakeConfig | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.world = world
        self.config = config or FakeConfig()
        self.clock: Clock = clock or utc_now
        self.tokens = TokenStore(
            self.clock,
            access_token_ttl_s=self.config.access_token_ttl_s,
            refresh_grace_s=self.config.refresh_grace_s,
        )
        self.faults = FaultPlan(rng=random.Random(self.config.seed))
        # §9's cost limits; off until configured (``costs.configure(CostLimits...)``).
        self.costs = CostMeter()
        self.connect = ConnectKnobs()
        self.webhooks = WebhookDispatcher(world, self.clock)
        # Vehicles API v3, iam app tokens, Management API, and the v2.0 switch-off (§14).
        self.v3 = V3State(self.clock, self.config.client_id, self.config.client_secret)
        # How old the car's data is when served (SC-Data-Age = now - this).
        self.data_age_s: float = 0.0
        self.request_count = 0

    def login(self, *vins: str) -> None:
        """The next Connect sessions are by the driver owning ``vins`` (checked now)."""
        for vin in vins:
            self.world.vehicle(vin)
        self.connect.login_vins = list(vins)
