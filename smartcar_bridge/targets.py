"""Pure: when a session should stop, and how soon to read the vehicle again.

The caller passes ``now``; all datetimes are timezone-aware UTC.

Stopping (:func:`should_stop`), checked in this order, the first that holds is the reason:

1. ``target_soc``: the battery is at or above the target state of charge.
2. ``max_energy``: the charger has delivered at least the session's energy cap.
3. ``departure``: the driver's departure time has come.

Polling (:func:`next_poll_delay`):

1. Normally ``base_interval_s``.
2. When the state of charge, the charging power and the battery capacity are known, estimate
   the time to reach the target, (target - SoC) / 100 x capacity / power, and poll after half
   of it if that is sooner, so the stop lands close to the target without polling all along.
3. The data the vehicle last reported is ``now - data_age`` old (``SC-Data-Age``). When it is
   older than the delay from step 2, the OEM refreshes it more slowly than we would poll, and
   polling faster only returns the same cached values (and wakes the car, and costs requests):
   wait at least as long as the data is old, never longer than ``base_interval_s``.
4. Never less than ``min_interval_s``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

StopDecision = Literal["target_soc", "max_energy", "departure"]

# Smartcar reports a fraction (0.57); x 100 gives 56.99999999999999, which is 57 %.
_SOC_EPSILON = 1e-9


def _require_aware(name: str, value: datetime | None) -> None:
    if value is not None and (value.tzinfo is None or value.utcoffset() is None):
        raise ValueError(f"{name} must be a timezone-aware datetime, got {value!r}")


def should_stop(
    *,
    soc_percent: float | None,
    target_soc_percent: int,
    energy_wh: int | None,
    max_energy_wh: int | None,
    departure_at: datetime | None,
    now: datetime,
) -> StopDecision | None:
    """Why the session should stop now, or None to keep charging (module docstring)."""
    _require_aware("now", now)
    _require_aware("departure_at", departure_at)
    if soc_percent is not None and soc_percent >= target_soc_percent - _SOC_EPSILON:
        return "target_soc"
    if energy_wh is not None and max_energy_wh is not None and energy_wh >= max_energy_wh:
        return "max_energy"
    if departure_at is not None and now >= departure_at:
        return "departure"
    return None


def seconds_to_target(
    *,
    soc_percent: float | None,
    target_soc_percent: int,
    power_w: float | None,
    battery_capacity_wh: int | None,
) -> float | None:
    """Estimated seconds until the target SoC at the present power; None when unknown."""
    if soc_percent is None or power_w is None or battery_capacity_wh is None:
        return None
    if power_w <= 0 or battery_capacity_wh <= 0:
        return None
    remaining_wh = max(0.0, target_soc_percent - soc_percent) / 100 * battery_capacity_wh
    return remaining_wh / power_w * 3600


def next_poll_delay(
    *,
    base_interval_s: float,
    soc_percent: float | None,
    target_soc_percent: int,
    power_w: float | None,
    battery_capacity_wh: int | None,
    data_age: datetime | None,
    now: datetime,
    min_interval_s: float = 15.0,
) -> float:
    """Seconds to wait before reading the vehicle's battery again (module docstring)."""
    if base_interval_s <= 0 or min_interval_s <= 0:
        raise ValueError("base_interval_s and min_interval_s must be positive")
    _require_aware("now", now)
    _require_aware("data_age", data_age)
    delay = base_interval_s
    to_target = seconds_to_target(
        soc_percent=soc_percent,
        target_soc_percent=target_soc_percent,
        power_w=power_w,
        battery_capacity_wh=battery_capacity_wh,
    )
    if to_target is not None:
        delay = min(delay, to_target / 2)
    if data_age is not None:
        # A data age in the future (clock skew) counts as fresh.
        age_s = max(0.0, (now - data_age).total_seconds())
        if age_s > delay:
            delay = min(base_interval_s, age_s)
    return max(min_interval_s, delay)


# Grid energy reaching the battery while charging (AC on-board charger and cabling lose a
# few percent; the reconciliation measures the real figure per session afterwards).
EXPECTED_EFFICIENCY = 0.9


def predicted_soc_percent(
    *,
    start_soc_percent: float | None,
    energy_wh: int | None,
    battery_capacity_wh: int | None,
    efficiency: float = EXPECTED_EFFICIENCY,
) -> float | None:
    """SoC from the charger's metered energy: start + energy x efficiency / capacity."""
    if start_soc_percent is None or energy_wh is None or not battery_capacity_wh:
        return None
    return start_soc_percent + 100.0 * energy_wh * efficiency / battery_capacity_wh


def prediction_margin(start_soc_percent: float, predicted_soc_percent: float) -> float:
    """How far below the target a prediction must stay to skip a read.

    The efficiency is the unknown: real sessions land between about 0.85 and 0.97, so the
    gain may be off by a tenth either way, plus two points for the car's own rounding.
    """
    return 2.0 + 0.1 * max(0.0, predicted_soc_percent - start_soc_percent)


def seconds_until_confirm(
    *,
    predicted_soc_percent: float,
    margin: float,
    target_soc_percent: int,
    power_w: float | None,
    battery_capacity_wh: int,
    efficiency: float = EXPECTED_EFFICIENCY,
) -> float | None:
    """Seconds until the prediction comes within ``margin`` of the target, at this power."""
    if power_w is None or power_w <= 0:
        return None
    points = target_soc_percent - margin - predicted_soc_percent
    if points <= 0:
        return 0.0
    return points / 100.0 * battery_capacity_wh / (power_w * efficiency) * 3600.0
