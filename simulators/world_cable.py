"""The car on a charger's cable, and the world's layout and cards. Pure: no I/O, no clock.

``CableSession`` is what a simulated charge point sees as its ``EV``; it forwards to the
world's ``Vehicle`` so both the charger and the Smartcar fake act on the same car.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace
from datetime import datetime

from simulators.world import Vehicle, World


def card_for(vin: str) -> str:
    """The RFID card a car's driver taps: derived from the VIN, so a central system can be
    told about it beforehand (OCPP idTag is CiString20)."""
    return f"RFID{vin[-8:]}"


def build_world(
    chargers: int,
    vehicles: int,
    seed: int | None,
    connectors: int | None = None,
    dc_share: float | None = None,
    per_site: int | None = None,
) -> World:
    """``World.generate``, with every charger's connector count and the DC share overridden."""
    world = World.generate(chargers, vehicles, seed, per_site)
    if connectors is None and dc_share is None:
        return world
    rng = random.Random(f"{seed}:layout")
    layout = []
    for charger in world.chargers.values():
        dc = charger.dc if dc_share is None else rng.random() < dc_share
        power = charger.max_power_w
        if dc != charger.dc:
            power = rng.choice((50_000.0, 150_000.0) if dc else (11_000.0, 22_000.0))
        count = connectors if connectors is not None else charger.connectors
        layout.append(replace(charger, dc=dc, max_power_w=power, connectors=count))
    return World(world.vehicles.values(), layout)


@dataclass(slots=True, eq=False)
class CableSession:
    """One plug-in, and the car as the charger sees it on its cable (the charger's ``EV``).

    It forwards to the world's ``Vehicle``: ``acceptance_w`` picks AC or DC by the charger
    (the EV protocol has no argument for it), ``absorb`` counts grid and battery energy.
    """

    vehicle: Vehicle
    charger_id: str
    connector_id: int
    dc: bool
    plugged_at: datetime
    # The card the driver taps; None: the car waits for a remote start.
    id_tag: str | None = None
    # Simulated seconds since the run started when the driver comes back; None: stays.
    leaves_at: float | None = None
    tapped: bool = False
    unplugged_at: datetime | None = None
    transaction_ids: list[int] = field(default_factory=list)
    grid_wh: float = 0.0
    battery_wh: float = 0.0
    # Last seen Smartcar START/STOP state, to make the charger re-sample at once.
    charging_enabled: bool = True

    @property
    def vin(self) -> str:
        return self.vehicle.vin

    @property
    def soc_percent(self) -> float:
        return self.vehicle.soc_percent

    def acceptance_w(self) -> float:
        return self.vehicle.acceptance_w(dc=self.dc)

    def absorb(self, grid_wh: float) -> float:
        gained = self.vehicle.absorb(grid_wh)
        self.grid_wh += grid_wh
        self.battery_wh += gained
        return gained
