"""What each v3 signal reads for a world ``Vehicle`` (smartcar-api.md §8, §14.3). Pure.

Each signal also names the v2.0 endpoint serving the same data (``FAULT_ENDPOINT``), so one
``FaultPlan`` (``force("SERVER:INTERNAL", endpoint="GET /battery")``) drives both versions.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from simulators.world import CHARGING, Vehicle

Body = dict[str, Any]


def _limit_percent(vehicle: Vehicle) -> float:
    return round(vehicle.charge_limit * 100.0, 2)


# code -> (name, group, body). Codes are the lower-case group-name form (§14.3).
SIGNALS: dict[str, tuple[str, str, Callable[[Vehicle], Body]]] = {
    "tractionbattery-stateofcharge": (
        "StateOfCharge",
        "TractionBattery",
        lambda v: {"unit": "percent", "value": round(v.soc * 100.0, 2)},
    ),
    "tractionbattery-range": (
        "Range",
        "TractionBattery",
        lambda v: {"unit": "kilometers", "value": round(v.range_km, 2)},
    ),
    "tractionbattery-nominalcapacity": (
        "NominalCapacity",
        "TractionBattery",
        lambda v: {"unit": "kilowattHours", "value": v.battery_kwh},
    ),
    "charge-ischarging": (
        "IsCharging",
        "Charge",
        lambda v: {"value": v.charge_state == CHARGING},
    ),
    "charge-ischargingcableconnected": (
        "IsChargingCableConnected",
        "Charge",
        lambda v: {"value": v.plugged_in},
    ),
    "charge-chargelimits": (
        "ChargeLimits",
        "Charge",
        lambda v: {
            "unit": "percent",
            "activeLimit": _limit_percent(v),
            "values": [{"type": "GLOBAL", "limit": _limit_percent(v)}],
        },
    ),
    "location-preciselocation": (
        "PreciseLocation",
        "Location",
        lambda v: {"latitude": v.latitude, "longitude": v.longitude, "unit": "degrees"},
    ),
    "vehicleidentification-vin": ("Vin", "VehicleIdentification", lambda v: {"value": v.vin}),
}

# The v2.0 endpoint with the same data: faults forced there hit the v3 read too.
FAULT_ENDPOINT = {
    "tractionbattery-stateofcharge": "GET /battery",
    "tractionbattery-range": "GET /battery",
    "tractionbattery-nominalcapacity": "GET /battery/nominal_capacity",
    "charge-ischarging": "GET /charge",
    "charge-ischargingcableconnected": "GET /charge",
    "charge-chargelimits": "GET /charge/limit",
    "location-preciselocation": "GET /location",
    "vehicleidentification-vin": None,  # static: from Smartcar's records (§11)
}
# The whole list is what v3 clients read for the charge state.
LIST_FAULT_ENDPOINT = "GET /charge"
COMMAND_FAULT_ENDPOINT = {
    "charge/start": "POST /charge",
    "charge/stop": "POST /charge",
    "charge/set-limit": "POST /charge/limit",
}


def epoch(moment: datetime, milliseconds: bool) -> int:
    """§14.3: the webhook docs use ms, the API examples look like seconds; a knob picks."""
    seconds = moment.timestamp()
    return round(seconds * 1000) if milliseconds else int(seconds)


def signal(
    vehicle: Vehicle, code: str, now: datetime, data_age_s: float, milliseconds: bool
) -> Body:
    name, group, read = SIGNALS[code]

    recorded = now - timedelta(seconds=data_age_s)
    return {
        "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{vehicle.smartcar_id}/{code}")),
        "type": "signal",
        "attributes": {
            "code": code,
            "name": name,
            "group": group,
            "status": {"value": "SUCCESS"},
            "body": read(vehicle),
        },
        "meta": {
            "retrievedAt": epoch(now, milliseconds),
            "oemUpdatedAt": epoch(recorded, milliseconds),
        },
        "links": {
            "self": f"/vehicles/{vehicle.smartcar_id}/signals/{code}",
            "vehicle": f"/vehicles/{vehicle.smartcar_id}",
        },
    }
