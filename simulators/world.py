"""The simulated world: vehicles, chargers and who is plugged in where.

Pure physics and bookkeeping: no I/O and no clock of its own (callers pass ``now``).
The charge point simulator and the fake Smartcar share one ``World``.

Exceptions::

    WorldError
    ├── UnknownVehicle
    ├── UnknownCharger
    └── PlugError          (connector busy, vehicle already plugged in, bad connector)
"""

from __future__ import annotations

import math
import random
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime

CHARGING = "CHARGING"
FULLY_CHARGED = "FULLY_CHARGED"
NOT_CHARGING = "NOT_CHARGING"

# ISO 3779: VINs never use I, O or Q (confusable with 1 and 0).
VIN_ALPHABET = "ABCDEFGHJKLMNPRSTUVWXYZ0123456789"
_VIN_VALUES = {
    **{str(d): d for d in range(10)},
    **dict(zip("ABCDEFGH", range(1, 9), strict=True)),
    **dict(zip("JKLMN", range(1, 6), strict=True)),
    "P": 7,
    "R": 9,
    **dict(zip("STUVWXYZ", range(2, 10), strict=True)),
}
_VIN_WEIGHTS = (8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2)


class WorldError(Exception):
    """Root of the world's errors."""


class UnknownVehicle(WorldError):
    """No vehicle with that VIN or Smartcar id."""


class UnknownCharger(WorldError):
    """No charger with that id."""


class PlugError(WorldError):
    """The plug-in or unplug cannot happen (connector busy, vehicle elsewhere, ...)."""


@dataclass(slots=True)
class Vehicle:
    """One electric vehicle: battery, charge state and where it is plugged in."""

    vin: str
    smartcar_id: str
    make: str
    model: str
    year: int
    battery_kwh: float
    soc: float
    charge_limit: float = 0.9
    max_ac_w: float = 11_000.0
    max_dc_w: float = 150_000.0
    latitude: float = 0.0
    longitude: float = 0.0
    # AC charging loses a few percent in the on-board charger and cabling.
    efficiency: float = 0.93
    charging_enabled: bool = True
    plugged_at: tuple[str, int] | None = None
    plugged_since: datetime | None = None
    is_charging: bool = False
    odometer_km: float = 0.0
    km_per_kwh: float = 6.0
    # The Smartcar user (driver account) owning the car; one driver may own several cars.
    owner_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    @property
    def soc_percent(self) -> float:
        """State of charge in percent, 0..100."""
        return self.soc * 100.0

    @property
    def plugged_in(self) -> bool:
        return self.plugged_at is not None

    @property
    def range_km(self) -> float:
        return self.soc * self.battery_kwh * self.km_per_kwh

    @property
    def charge_state(self) -> str:
        """Smartcar's charge ``state``: CHARGING, FULLY_CHARGED or NOT_CHARGING."""
        if self.plugged_at is not None and self.is_charging:
            return CHARGING
        if self.plugged_at is not None and self.soc >= self.charge_limit - 1e-9:
            return FULLY_CHARGED
        return NOT_CHARGING

    def acceptance_w(self, dc: bool = False) -> float:
        """Power the car will draw right now; tapers near full like real batteries."""
        if not self.charging_enabled or self.soc >= self.charge_limit - 1e-9:
            return 0.0
        if dc:
            # DC fast charging tapers from 80 % down to a tenth of peak at 100 %.
            return self.max_dc_w * _taper(self.soc, start=0.8, floor=0.1)
        # The on-board AC charger holds full power until about 90 %.
        return self.max_ac_w * _taper(self.soc, start=0.9, floor=0.3)

    def absorb(self, grid_wh: float) -> float:
        """Take ``grid_wh`` from the charger; return the Wh the battery gained.

        The battery gains ``grid_wh * efficiency``, capped at the charge limit.
        """
        if grid_wh <= 0.0:
            self.is_charging = False
            return 0.0
        capacity_wh = self.battery_kwh * 1000.0
        room_wh = max(0.0, (self.charge_limit - self.soc) * capacity_wh)
        gained_wh = min(grid_wh * self.efficiency, room_wh)
        self.soc = (
            min(self.charge_limit, self.soc + gained_wh / capacity_wh) if gained_wh else self.soc
        )
        self.is_charging = gained_wh > 0.0
        return gained_wh


def _taper(soc: float, *, start: float, floor: float) -> float:
    if soc <= start:
        return 1.0
    return max(floor, 1.0 - (1.0 - floor) * (soc - start) / (1.0 - start))


@dataclass(slots=True, frozen=True)
class Charger:
    """A charge point as it stands in the world (the OCPP simulator gives it a voice)."""

    id: str
    latitude: float
    longitude: float
    max_power_w: float
    connectors: int
    dc: bool = False


PlugListener = Callable[[Vehicle, str, int, bool], None]


class World:
    """All vehicles and chargers, indexed for O(1) lookups by VIN, Smartcar id and connector."""

    def __init__(self, vehicles: Iterable[Vehicle] = (), chargers: Iterable[Charger] = ()) -> None:
        self.vehicles: dict[str, Vehicle] = {}
        self.vehicles_by_smartcar_id: dict[str, Vehicle] = {}
        self.chargers: dict[str, Charger] = {}
        self._occupancy: dict[tuple[str, int], Vehicle] = {}
        self._listeners: list[PlugListener] = []
        for vehicle in vehicles:
            self.add_vehicle(vehicle)
        for charger in chargers:
            self.add_charger(charger)

    def add_vehicle(self, vehicle: Vehicle) -> None:
        self.vehicles[vehicle.vin] = vehicle
        self.vehicles_by_smartcar_id[vehicle.smartcar_id] = vehicle

    def add_charger(self, charger: Charger) -> None:
        self.chargers[charger.id] = charger

    def vehicle(self, vin: str) -> Vehicle:
        try:
            return self.vehicles[vin]
        except KeyError:
            raise UnknownVehicle(vin) from None

    def vehicle_by_smartcar_id(self, smartcar_id: str) -> Vehicle:
        try:
            return self.vehicles_by_smartcar_id[smartcar_id]
        except KeyError:
            raise UnknownVehicle(smartcar_id) from None

    def charger(self, charger_id: str) -> Charger:
        try:
            return self.chargers[charger_id]
        except KeyError:
            raise UnknownCharger(charger_id) from None

    def vehicle_at(self, charger_id: str, connector_id: int) -> Vehicle | None:
        """The vehicle plugged into that connector, if any."""
        return self._occupancy.get((charger_id, connector_id))

    def vehicles_of(self, owner_id: str) -> list[Vehicle]:
        return [v for v in self.vehicles.values() if v.owner_id == owner_id]

    def on_plug(self, callback: PlugListener) -> Callable[[], None]:
        """Call ``callback(vehicle, charger_id, connector_id, plugged)`` on every (un)plug.

        Returns a function that removes the listener.
        """
        self._listeners.append(callback)
        return lambda: self._listeners.remove(callback)

    def plug_in(self, vin: str, charger_id: str, connector_id: int, now: datetime) -> Vehicle:
        """Plug the vehicle into a free connector; the car parks at the charger."""
        vehicle = self.vehicle(vin)
        charger = self.charger(charger_id)
        if not 1 <= connector_id <= charger.connectors:
            raise PlugError(f"{charger_id} has no connector {connector_id}")
        key = (charger_id, connector_id)
        if key in self._occupancy:
            raise PlugError(f"{charger_id}/{connector_id} is occupied")
        if vehicle.plugged_at is not None:
            raise PlugError(f"{vin} is already plugged in at {vehicle.plugged_at}")
        vehicle.plugged_at = key
        vehicle.plugged_since = now
        vehicle.is_charging = False
        # Location matching in the bridge relies on the car reporting the charger's position.
        vehicle.latitude, vehicle.longitude = charger.latitude, charger.longitude
        self._occupancy[key] = vehicle
        self._notify(vehicle, charger_id, connector_id, plugged=True)
        return vehicle

    def unplug(self, vin: str, now: datetime) -> Vehicle:
        """Unplug the vehicle; energy stops flowing at once."""
        del now  # kept for symmetry with plug_in and for future drive simulation
        vehicle = self.vehicle(vin)
        if vehicle.plugged_at is None:
            raise PlugError(f"{vin} is not plugged in")
        charger_id, connector_id = vehicle.plugged_at
        del self._occupancy[vehicle.plugged_at]
        vehicle.plugged_at = None
        vehicle.plugged_since = None
        vehicle.is_charging = False
        # A remote STOP lasts for one plug-in session only, as on real cars.
        vehicle.charging_enabled = True
        self._notify(vehicle, charger_id, connector_id, plugged=False)
        return vehicle

    def _notify(self, vehicle: Vehicle, charger_id: str, connector_id: int, plugged: bool) -> None:
        for listener in list(self._listeners):
            listener(vehicle, charger_id, connector_id, plugged)

    @classmethod
    def generate(
        cls, chargers: int, vehicles: int, seed: int | None = None, per_site: int | None = None
    ) -> World:
        """A reproducible random world: chargers grouped in sites, a mixed fleet of cars."""
        rng = random.Random(seed)
        charger_list = _generate_chargers(rng, chargers, per_site or _CHARGERS_PER_SITE)
        return cls(_generate_vehicles(rng, vehicles, charger_list), charger_list)


def vin_check_digit(vin: str) -> str:
    """The North-American check digit (position 9) of a 17-character VIN."""
    total = sum(_VIN_VALUES[c] * w for c, w in zip(vin, _VIN_WEIGHTS, strict=True))
    remainder = total % 11
    return "X" if remainder == 10 else str(remainder)


def is_valid_vin(vin: str) -> bool:
    """17 characters from the VIN alphabet with a correct check digit."""
    return len(vin) == 17 and all(c in VIN_ALPHABET for c in vin) and vin[8] == vin_check_digit(vin)


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in metres (haversine)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6_371_000.0 * math.asin(math.sqrt(a))


# --- scripted scenarios ----------------------------------------------------------------------


@dataclass(slots=True, frozen=True)
class ScenarioEvent:
    """One scripted happening, ``at`` seconds after the scenario starts.

    ``action`` is ``plug_in`` (needs charger_id, connector_id), ``unplug``, ``set_soc`` or
    ``set_charge_limit`` (both need value, a fraction).
    """

    at: float
    action: str
    vin: str
    charger_id: str | None = None
    connector_id: int | None = None
    value: float | None = None


def due_events(events: Iterable[ScenarioEvent], after: float, until: float) -> list[ScenarioEvent]:
    """Events with ``after < at <= until``, in time order (for a step-by-step driver)."""
    return sorted((e for e in events if after < e.at <= until), key=lambda e: e.at)


def apply(world: World, event: ScenarioEvent, now: datetime) -> Vehicle:
    """Make the event happen in the world."""
    if event.action == "plug_in":
        if event.charger_id is None or event.connector_id is None:
            raise ValueError("plug_in needs charger_id and connector_id")
        return world.plug_in(event.vin, event.charger_id, event.connector_id, now)
    if event.action == "unplug":
        return world.unplug(event.vin, now)
    vehicle = world.vehicle(event.vin)
    if event.value is None:
        raise ValueError(f"{event.action} needs a value")
    if event.action == "set_soc":
        vehicle.soc = min(1.0, max(0.0, event.value))
    elif event.action == "set_charge_limit":
        vehicle.charge_limit = min(1.0, max(0.5, event.value))
    else:
        raise ValueError(f"unknown scenario action {event.action!r}")
    return vehicle


# --- random generation -----------------------------------------------------------------------

# (make, model, battery sizes kWh, max AC W, max DC W, world manufacturer identifier)
_MODELS: tuple[tuple[str, str, tuple[float, ...], float, float, str], ...] = (
    ("TESLA", "Model 3", (57.5, 75.0), 11_000, 170_000, "5YJ"),
    ("TESLA", "Model Y", (75.0, 82.0), 11_000, 250_000, "7SA"),
    ("VOLKSWAGEN", "ID.4", (52.0, 77.0), 11_000, 135_000, "WVG"),
    ("NISSAN", "Leaf", (40.0, 62.0), 6_600, 50_000, "1N4"),
    ("HYUNDAI", "Ioniq 5", (58.0, 77.4), 11_000, 230_000, "KM8"),
    ("KIA", "EV6", (58.0, 77.4), 11_000, 230_000, "KNA"),
    ("BMW", "i4", (83.9,), 11_000, 205_000, "WBY"),
    ("FORD", "Mustang Mach-E", (72.0, 91.0), 11_000, 150_000, "3FM"),
    ("CHEVROLET", "Bolt EV", (65.0,), 11_500, 55_000, "1G1"),
    ("AUDI", "Q4 e-tron", (77.0,), 11_000, 135_000, "WAU"),
    ("RIVIAN", "R1S", (100.0,), 11_500, 220_000, "7PD"),
)
# Site centres the chargers cluster around (Berlin, Munich, Amsterdam, Oslo, Palo Alto).
_CITIES = ((52.520, 13.405), (48.137, 11.575), (52.370, 4.895), (59.913, 10.752), (37.44, -122.14))
_MODEL_YEAR_CODES = {2019: "K", 2020: "L", 2021: "M", 2022: "N", 2023: "P", 2024: "R", 2025: "S"}
_CHARGERS_PER_SITE = 8


def _random_vin(rng: random.Random, wmi: str, year: int) -> str:
    body = "".join(rng.choices(VIN_ALPHABET, k=5))
    plant = rng.choice(VIN_ALPHABET)
    serial = "".join(rng.choices("0123456789", k=6))
    draft = f"{wmi}{body}0{_MODEL_YEAR_CODES[year]}{plant}{serial}"
    return draft[:8] + vin_check_digit(draft) + draft[9:]


def _generate_chargers(rng: random.Random, count: int, per_site: int) -> list[Charger]:
    chargers = []
    sites = max(1, math.ceil(count / per_site))
    centres = []
    for site in range(sites):
        city_lat, city_lon = _CITIES[site % len(_CITIES)]
        # Sites spread over ~10 km around the city; chargers on a site within ~50 m.
        centres.append((city_lat + rng.uniform(-0.05, 0.05), city_lon + rng.uniform(-0.07, 0.07)))
    for n in range(count):
        lat, lon = centres[n // per_site]
        dc = rng.random() < 0.2
        chargers.append(
            Charger(
                id=f"CP{n + 1:05d}",
                latitude=round(lat + rng.uniform(-0.0004, 0.0004), 6),
                longitude=round(lon + rng.uniform(-0.0006, 0.0006), 6),
                max_power_w=rng.choice((50_000.0, 150_000.0))
                if dc
                else rng.choice((11_000.0, 22_000.0)),
                connectors=rng.choice((1, 2)) if dc else 2,
                dc=dc,
            )
        )
    return chargers


def _generate_vehicles(rng: random.Random, count: int, chargers: list[Charger]) -> list[Vehicle]:
    vehicles: list[Vehicle] = []
    vins: set[str] = set()
    owner = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    while len(vehicles) < count:
        make, model, sizes, max_ac, max_dc, wmi = rng.choice(_MODELS)
        year = rng.choice(tuple(_MODEL_YEAR_CODES))
        vin = _random_vin(rng, wmi, year)
        if vin in vins:
            continue
        vins.add(vin)
        # Most drivers own one car; about one in ten owns a second one.
        if vehicles and rng.random() > 0.1:
            owner = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        near = rng.choice(chargers) if chargers else None
        home_lat, home_lon = (near.latitude, near.longitude) if near else rng.choice(_CITIES)
        vehicles.append(
            Vehicle(
                vin=vin,
                smartcar_id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                make=make,
                model=model,
                year=year,
                battery_kwh=min(100.0, max(40.0, rng.choice(sizes))),
                soc=round(rng.uniform(0.10, 0.70), 4),
                charge_limit=rng.choice((0.8, 0.9, 0.9, 1.0)),
                max_ac_w=float(max_ac),
                max_dc_w=float(max_dc),
                latitude=round(home_lat + rng.uniform(-0.03, 0.03), 6),
                longitude=round(home_lon + rng.uniform(-0.04, 0.04), 6),
                efficiency=round(rng.uniform(0.9, 0.95), 3),
                odometer_km=round(rng.uniform(500.0, 120_000.0), 1),
                owner_id=owner,
            )
        )
    return vehicles
