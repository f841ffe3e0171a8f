"""Pure: the signals of a v4 ``VEHICLE_STATE`` webhook the bridge acts on (smartcar-api §10).

``signals`` carries every subscribed signal, each with ``body.value`` and
``meta.oemUpdatedAt`` (epoch milliseconds; seconds in some examples, told apart by size).
Deliveries are unordered: ``oemUpdatedAt``, not the arrival, says when the car changed.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

SOC = "tractionbattery-stateofcharge"
IS_CHARGING = "charge-ischarging"
CABLE_CONNECTED = "charge-ischargingcableconnected"
LOCATION = "location-preciselocation"
# Epoch values above this are milliseconds (10**11 s is the year 5138).
_MILLIS_FROM = 10**11


def _signal(event: dict[str, Any], code: str) -> dict[str, Any] | None:
    for signal in (event.get("data") or {}).get("signals") or []:
        if isinstance(signal, dict) and signal.get("code") == code:
            return signal
    return None


def oem_updated_at(signal: dict[str, Any]) -> datetime | None:
    """When the car recorded the value, or None when the signal carries no usable time."""
    value = (signal.get("meta") or {}).get("oemUpdatedAt")
    if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
        return None
    seconds = value / 1000 if value >= _MILLIS_FROM else value
    return datetime.fromtimestamp(seconds, UTC)


def soc_reported(event: dict[str, Any]) -> tuple[float, datetime] | None:
    """SoC in percent and its ``oemUpdatedAt``, if the event carries both."""
    signal = _signal(event, SOC)
    soc = soc_percent(event)
    at = oem_updated_at(signal) if signal else None
    return (soc, at) if soc is not None and at is not None else None


def soc_percent(event: dict[str, Any]) -> float | None:
    """SoC in percent, if present."""
    signal = _signal(event, SOC)
    value = (signal.get("body") or {}).get("value") if signal else None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def _flag(event: dict[str, Any], code: str) -> tuple[bool, datetime] | None:
    signal = _signal(event, code)
    if signal is None:
        return None
    value = (signal.get("body") or {}).get("value")
    at = oem_updated_at(signal)
    if not isinstance(value, bool) or at is None:
        return None
    return value, at


def cable_connected(event: dict[str, Any]) -> tuple[bool, datetime] | None:
    """``Charge.IsChargingCableConnected``: (plugged in, when), if the event carries it."""
    return _flag(event, CABLE_CONNECTED)


def is_charging(event: dict[str, Any]) -> tuple[bool, datetime] | None:
    """``Charge.IsCharging``: (charging, when), if the event carries it."""
    return _flag(event, IS_CHARGING)


def triggered_by(event: dict[str, Any], code: str) -> bool:
    """True when the delivery was triggered by a change of ``code`` (not a refresh)."""
    triggers = (event.get("data") or {}).get("triggers") or []
    return any(isinstance(t, dict) and t.get("code") == code for t in triggers)


def location(event: dict[str, Any]) -> tuple[float, float, datetime] | None:
    """``Location.PreciseLocation``: (latitude, longitude, when), if the event carries it."""
    signal = _signal(event, LOCATION)
    if signal is None:
        return None
    body = signal.get("body") or {}
    latitude, longitude, at = body.get("latitude"), body.get("longitude"), oem_updated_at(signal)
    if at is None or not isinstance(latitude, int | float) or isinstance(latitude, bool):
        return None
    if not isinstance(longitude, int | float) or isinstance(longitude, bool):
        return None
    return float(latitude), float(longitude), at
