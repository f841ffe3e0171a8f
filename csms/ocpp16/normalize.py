"""Pure normalisation of what real chargers send (see ocpp-field-notes.md).

Nothing here does I/O or reads a clock: callers pass the receive time in.
Each function reports deviations as short stable names (``timestamp_no_zone``,
``number_as_string`` …) so the connection can log ``ocpp.nonconforming`` once
per charger and kind.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import unquote

# 2.0-style words some 1.6 firmware sends. "Occupied" means a car is connected,
# which in 1.6 terms is Preparing (no transaction yet).
ENUM_ALIASES = {"occupied": "Preparing"}

# Chargers without a clock send the epoch or 2000-01-01 until a Boot/Heartbeat
# answer sets it; anything before this is not a real reading time.
_CLOCK_FLOOR = datetime(2010, 1, 1, tzinfo=UTC)

_TIMESTAMP = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?"
    r"\s*(Z|z|[+-]\d{2}(?::?\d{2})?)?$"
)


class TimestampError(ValueError):
    """A timestamp we cannot read at all."""


@dataclass(slots=True, frozen=True)
class Timestamp:
    value: datetime
    clock_suspect: bool


def parse_timestamp(text: Any, deviations: list[str]) -> Timestamp:
    """Parse an OCPP timestamp leniently (Z, offsets, no zone, 0-9 fractional digits)."""
    if not isinstance(text, str):
        raise TimestampError(f"timestamp must be a string, got {type(text).__name__}")
    match = _TIMESTAMP.match(text.strip())
    if match is None:
        raise TimestampError(f"not a date-time: {text!r}")
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    micros = int((fraction or "0")[:6].ljust(6, "0"))
    if fraction and len(fraction) > 6:
        deviations.append("timestamp_precision")
    try:
        value = datetime(
            int(year), int(month), int(day), int(hour), int(minute), int(second or 0), micros
        )
    except ValueError as exc:
        raise TimestampError(f"not a date-time: {text!r} ({exc})") from None
    if zone is None:
        deviations.append("timestamp_no_zone")
        value = value.replace(tzinfo=UTC)
    elif zone in ("Z", "z"):
        value = value.replace(tzinfo=UTC)
    else:
        sign = 1 if zone[0] == "+" else -1
        digits = zone[1:].replace(":", "")
        offset = timedelta(hours=int(digits[:2]), minutes=int(digits[2:4] or 0))
        try:
            value = (value - sign * offset).replace(tzinfo=UTC)
        except OverflowError:
            raise TimestampError(f"not a representable date-time: {text!r}") from None
    suspect = value < _CLOCK_FLOOR
    if suspect:
        deviations.append("clock_not_set")
    return Timestamp(value, suspect)


def parse_meter_wh(value: Any, deviations: list[str]) -> int:
    """``meterStart`` / ``meterStop``: an integer Wh, sometimes a string or a decimal."""
    if isinstance(value, bool):
        raise ValueError("meter value must be a number")
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("meter value must be a finite number")
        deviations.append("meter_decimal")
        return round(value)
    if isinstance(value, str):
        try:
            number = Decimal(value.strip())
        except InvalidOperation:
            raise ValueError(f"meter value is not a number: {value!r}") from None
        if not number.is_finite():
            raise ValueError(f"meter value is not a finite number: {value!r}")
        deviations.append("number_as_string")
        return int(number.to_integral_value())
    raise ValueError("meter value must be a number")


# Multipliers to the canonical unit we store (Wh, W, varh, var, A, V).
_UNIT_SCALE = {
    "wh": ("Wh", 1),
    "kwh": ("Wh", 1000),
    "w": ("W", 1),
    "kw": ("W", 1000),
    "varh": ("varh", 1),
    "kvarh": ("varh", 1000),
    "var": ("var", 1),
    "kvar": ("var", 1000),
}
_DEFAULT_UNIT: dict[str, str | None] = {
    "Energy": "Wh",
    "Power": "W",
    "Current": "A",
    "Voltage": "V",
    "SoC": "Percent",
    "Frequency": None,
    "RPM": None,
    # A ratio: no unit, and not Watts despite the "Power." prefix.
    "Power.Factor": None,
}
_KWH_GUESS_LIMIT = 1000


@dataclass(slots=True, frozen=True)
class SampledNumber:
    value: float | None
    unit: str | None


def normalise_sampled_value(
    raw_value: Any, unit: str | None, measurand: str, value_format: str, deviations: list[str]
) -> SampledNumber:
    """Turn a sampled value into a number in the canonical unit (Wh, W, A …)."""
    if value_format == "SignedData":
        return SampledNumber(None, unit)
    try:
        number = float(raw_value)
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number):
        deviations.append("sampled_value_not_numeric")
        return SampledNumber(None, unit)
    if unit is None:
        unit = _DEFAULT_UNIT.get(measurand, _DEFAULT_UNIT.get(measurand.split(".", 1)[0]))
        # Wh registers are whole numbers; a small fraction with no unit is a kWh
        # reading from firmware that forgot the unit. Above 1000 we cannot tell, and
        # keep the spec's default (Wh).
        if (
            unit == "Wh"
            and measurand.endswith("Register")
            and not number.is_integer()
            and number < _KWH_GUESS_LIMIT
        ):
            deviations.append("energy_kwh_without_unit")
            return SampledNumber(number * 1000, "Wh")
    scale = _UNIT_SCALE.get(unit.lower()) if unit else None
    if scale is None:
        return SampledNumber(number, unit)
    canonical, factor = scale
    if factor != 1:
        deviations.append(f"unit_{unit}")
        if not math.isfinite(number * factor):
            # "1e306" kWh is a finite reading but no finite number of Wh: keep it raw only.
            deviations.append("sampled_value_not_numeric")
            return SampledNumber(None, canonical)
    return SampledNumber(number * factor, canonical)


def identity_from_path(path: str) -> str | None:
    """Charge point identity: the last non-empty path segment, percent-decoded."""
    path = path.split("?", 1)[0].split("#", 1)[0]
    segments = [s for s in path.split("/") if s]
    if not segments:
        return None
    return unquote(segments[-1])


def coerce(schema: dict[str, Any], value: Any, deviations: list[str]) -> Any:
    """Return ``value`` with schema-known deviations fixed (types, enum spelling)."""
    expected = schema.get("type")
    if expected == "object" and isinstance(value, dict):
        properties = schema.get("properties", {})
        return {
            key: coerce(properties[key], item, deviations) if key in properties else item
            for key, item in value.items()
        }
    if expected == "array" and isinstance(value, list):
        items = schema.get("items", {})
        return [coerce(items, item, deviations) for item in value]
    if expected == "integer":
        return _coerce_integer(value, deviations)
    if expected == "number" and isinstance(value, str):
        try:
            result = float(value)
        except ValueError:
            return value
        deviations.append("number_as_string")
        return result
    if expected == "string":
        # A number where an enum is expected is a type error, not a spelling to fix.
        if isinstance(value, int | float) and not isinstance(value, bool) and "enum" not in schema:
            deviations.append("string_as_number")
            return _number_text(value)
        if isinstance(value, str) and "enum" in schema:
            return _coerce_enum(schema["enum"], value, deviations)
    return value


def _number_text(value: int | float) -> str:
    # repr keeps every digit a float has; "g" formatting would round 1234567.8.
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return repr(value)


def _coerce_integer(value: Any, deviations: list[str]) -> Any:
    # meterStart/meterStop arrive as "1234", 1234.0 and 1234.5 from real firmware.
    if isinstance(value, float):
        if not math.isfinite(value):
            return value
        deviations.append("integer_as_decimal")
        return round(value)
    if isinstance(value, str):
        try:
            number = Decimal(value.strip())
        except InvalidOperation:
            return value
        if not number.is_finite():
            return value
        deviations.append("number_as_string")
        return int(number.to_integral_value())
    return value


def _coerce_enum(allowed: list[str], value: str, deviations: list[str]) -> str:
    if value in allowed:
        return value
    by_lower = {a.lower(): a for a in allowed}
    lowered = value.strip().lower()
    if lowered in by_lower:
        deviations.append("enum_case")
        return by_lower[lowered]
    alias = ENUM_ALIASES.get(lowered)
    if alias in allowed:
        deviations.append("enum_alias")
        return alias
    return value
