"""What each v2.0 vehicle endpoint answers, computed from a world ``Vehicle`` (§5).

Pure functions shared by the direct routes and by ``/batch``; they raise ``ApiError``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from simulators.smartcar_fake.errors import ApiError
from simulators.world import CHARGING, Vehicle

KM_PER_MILE = 1.609344
COMMAND_SUCCESS = {"message": "Successfully sent request to vehicle", "status": "success"}

Body = dict[str, Any]


def _distance(km: float, unit_system: str) -> float:
    return round(km / KM_PER_MILE if unit_system == "imperial" else km, 2)


def attributes(vehicle: Vehicle, unit_system: str) -> Body:
    return {
        "id": vehicle.smartcar_id,
        "make": vehicle.make,
        "model": vehicle.model,
        "year": vehicle.year,
    }


def vin(vehicle: Vehicle, unit_system: str) -> Body:
    return {"vin": vehicle.vin}


def battery(vehicle: Vehicle, unit_system: str) -> Body:
    # percentRemaining is a fraction 0..1, not a percentage (§5, §13).
    return {
        "percentRemaining": round(vehicle.soc, 4),
        "range": _distance(vehicle.range_km, unit_system),
    }


def battery_capacity(vehicle: Vehicle, unit_system: str) -> Body:
    return {"capacity": vehicle.battery_kwh}


def nominal_capacity(vehicle: Vehicle, unit_system: str) -> Body:
    return {
        "availableCapacities": [{"capacity": vehicle.battery_kwh, "description": None}],
        "capacity": {"nominal": vehicle.battery_kwh, "source": "SMARTCAR"},
        "url": None,
    }


def charge_status(vehicle: Vehicle, unit_system: str) -> Body:
    return {"isPluggedIn": vehicle.plugged_in, "state": vehicle.charge_state}


def charge_limit(vehicle: Vehicle, unit_system: str) -> Body:
    return {"limit": vehicle.charge_limit}


def location(vehicle: Vehicle, unit_system: str) -> Body:
    return {"latitude": vehicle.latitude, "longitude": vehicle.longitude}


def odometer(vehicle: Vehicle, unit_system: str) -> Body:
    return {"distance": _distance(vehicle.odometer_km, unit_system)}


@dataclass(slots=True, frozen=True)
class ReadEndpoint:
    path: str
    scope: str
    read: Callable[[Vehicle, str], Body]
    # Static data (attributes, VIN) comes from Smartcar's records, not the car, so it never
    # meets vehicle faults (see the error-testing notes in §11).
    static: bool = False


READS: dict[str, ReadEndpoint] = {
    e.path: e
    for e in (
        ReadEndpoint("/", "read_vehicle_info", attributes, static=True),
        ReadEndpoint("/vin", "read_vin", vin, static=True),
        ReadEndpoint("/battery", "read_battery", battery),
        ReadEndpoint("/battery/capacity", "read_battery", battery_capacity),
        ReadEndpoint("/battery/nominal_capacity", "read_battery", nominal_capacity),
        ReadEndpoint("/charge", "read_charge", charge_status),
        ReadEndpoint("/charge/limit", "read_charge", charge_limit),
        ReadEndpoint("/location", "read_location", location),
        ReadEndpoint("/odometer", "read_odometer", odometer),
    )
}


def require_scope(scopes: frozenset[str], scope: str) -> None:
    if scope not in scopes:
        raise ApiError("PERMISSION")


def charge_command(vehicle: Vehicle, action: object) -> Body:
    """POST /charge: START or STOP with the real VEHICLE_STATE refusals (§7)."""
    if action not in ("START", "STOP"):
        raise ApiError("VALIDATION", description='"action" must be one of START, STOP.')
    if not vehicle.plugged_in:
        raise ApiError("VEHICLE_STATE:CHARGING_PLUG_NOT_CONNECTED")
    charging = vehicle.charge_state == CHARGING
    if action == "START":
        if charging:
            raise ApiError("VEHICLE_STATE:CHARGING_IN_PROGRESS")
        if vehicle.soc >= vehicle.charge_limit - 1e-9:
            raise ApiError("VEHICLE_STATE:FULLY_CHARGED")
        vehicle.charging_enabled = True
        return dict(COMMAND_SUCCESS)
    if not charging:
        raise ApiError("VEHICLE_STATE:NOT_CHARGING")
    # The car stops drawing at once; the charger sees acceptance drop to zero.
    vehicle.charging_enabled = False
    vehicle.is_charging = False
    return dict(COMMAND_SUCCESS)


def set_charge_limit(vehicle: Vehicle, raw: Any) -> Body:
    """POST /charge/limit: a fraction 0.5..1; the Node SDK sends it as a string.

    ``raw`` is whatever the JSON body held: anything ``float()`` refuses is a VALIDATION error.
    """
    try:
        limit = float(raw)
    except (TypeError, ValueError):
        raise ApiError("VALIDATION", description='"limit" must be a number.') from None
    if not 0.5 <= limit <= 1.0:
        raise ApiError("VALIDATION", description='"limit" must be between 0.5 and 1.')
    vehicle.charge_limit = limit
    return dict(COMMAND_SUCCESS)
