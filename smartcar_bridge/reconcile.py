"""Pure: charger energy against battery energy at the end of a session, and the bill.

Energy is integer Wh (rounded half up), money is ``Decimal``; nothing here reads a clock.

Rules (:func:`reconcile`):

1. **Register energy** comes from the charger's Energy.Active.Import.Register samples, taken in
   time order: last minus first; when the register steps backwards between two samples, the sum
   of the positive steps instead (flag ``meter_went_backwards``). Fewer than two samples: None.
2. **Grid energy** is meterStop - meterStart when both are known and consistent. They are not
   when meterStop is 0 while meterStart is not (flag ``meter_reset``: the charger lost its
   register, typically in a reboot), when meterStop < meterStart (flag
   ``meter_went_backwards``), or when the samples step backwards (a reset mid-session, same
   flag). Then, and when meterStart or meterStop is missing (flag ``meter_incomplete``), grid
   energy is the sum of the non-negative steps along meterStart, the samples in time order,
   meterStop (whichever are known), provided there is at least one sample and two readings in
   all. Otherwise there is no grid energy (flag ``no_charger_energy``). It is never negative.
3. ``register_mismatch``: with consistent meterStart/meterStop, the samples reach outside
   [meterStart, meterStop] by more than ``tolerance`` x (meterStop - meterStart) in total.
   (Last - first is not compared with stop - start directly: the samples never cover the
   minutes before the first and after the last, so short sessions would always disagree.)
4. **Battery energy** is (end SoC - start SoC) / 100 x capacity, when all three are known and
   the capacity is positive (flag ``no_battery_data`` otherwise). A negative value is kept and
   flagged ``soc_decreased``.
5. **Efficiency** is battery / grid energy (4 places) when both are known and grid > 0. Flag
   ``energy_mismatch`` when it falls outside ``expected_efficiency`` widened by ``tolerance``
   (low x (1 - tolerance) .. high x (1 + tolerance)), or when the charger delivered 0 Wh while
   the battery gained energy.
6. **The bill** is for the charger's energy, even 0 Wh. The battery estimate is billed (basis
   ``battery``) ONLY when the charger reported no usable energy; with neither, or with a battery
   that lost charge, 0 Wh is billed. Amount = kWh x tariff, rounded half up to cents.

Flags come in a fixed order: the charger's, then the battery's, then ``energy_mismatch``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from itertools import pairwise
from typing import Literal

BillBasis = Literal["charger", "battery"]

CENTS = Decimal("0.01")
_EFFICIENCY_PLACES = Decimal("0.0001")
_WH = Decimal(1)
_ZERO = Decimal(0)
_KWH = Decimal(1000)


@dataclass(slots=True, frozen=True)
class Reconciliation:
    """What the charger and the battery say was delivered, what disagrees, and the bill."""

    grid_energy_wh: int | None
    register_energy_wh: int | None
    battery_energy_wh: int | None
    efficiency: Decimal | None
    flags: tuple[str, ...]
    bill_energy_wh: int
    bill_basis: BillBasis
    bill_amount: Decimal
    tariff_per_kwh: Decimal
    currency: str


def _decimal(value: float) -> Decimal:
    """The float as the shortest decimal that round-trips: what was sent, not binary noise."""
    return Decimal(repr(float(value)))


def _wh(value: int | Decimal) -> int:
    """Round to whole Wh, half up (away from zero)."""
    return int(Decimal(value).quantize(_WH, rounding=ROUND_HALF_UP))


def _positive_steps(readings: Sequence[Decimal]) -> Decimal:
    return sum((max(_ZERO, b - a) for a, b in pairwise(readings)), _ZERO)


def _steps_back(readings: Sequence[Decimal]) -> bool:
    return any(b < a for a, b in pairwise(readings))


def _register_energy(readings: Sequence[Decimal]) -> int | None:
    if len(readings) < 2:
        return None
    return _wh(_positive_steps(readings))  # equals last - first when it never steps back


def _samples_outside(readings: Sequence[Decimal], start_wh: int, stop_wh: int) -> Decimal:
    """How far, in total, the samples reach below meterStart and above meterStop."""
    if not readings:
        return _ZERO
    return max(_ZERO, start_wh - min(readings)) + max(_ZERO, max(readings) - stop_wh)


def _grid_energy(
    meter_start_wh: int | None,
    meter_stop_wh: int | None,
    readings: Sequence[Decimal],
    tolerance: float,
    flags: list[str],
) -> int | None:
    start, stop = meter_start_wh, meter_stop_wh
    consistent = False
    if start is not None and stop is not None:
        if stop == 0 and start > 0:
            flags.append("meter_reset")
        elif stop < start:
            flags.append("meter_went_backwards")
        else:
            consistent = True
    elif readings:
        flags.append("meter_incomplete")
    if _steps_back(readings):
        consistent = False
        if "meter_went_backwards" not in flags:
            flags.append("meter_went_backwards")

    if consistent and start is not None and stop is not None:
        grid = stop - start
        if _wh(_samples_outside(readings, start, stop)) > tolerance * grid:
            flags.append("register_mismatch")
        return grid
    chain = [Decimal(v) for v in (start, *readings, stop) if v is not None] if readings else []
    if len(chain) < 2:
        flags.append("no_charger_energy")
        return None
    return _wh(_positive_steps(chain))


def _battery_energy(
    start_soc_percent: float | None,
    end_soc_percent: float | None,
    battery_capacity_wh: int | None,
    flags: list[str],
) -> int | None:
    if (
        start_soc_percent is None
        or end_soc_percent is None
        or battery_capacity_wh is None
        or battery_capacity_wh <= 0
    ):
        flags.append("no_battery_data")
        return None
    delta = _decimal(end_soc_percent) - _decimal(start_soc_percent)
    energy = _wh(delta / 100 * battery_capacity_wh)
    if delta < 0:
        flags.append("soc_decreased")
    return energy


def reconcile(
    *,
    meter_start_wh: int | None,
    meter_stop_wh: int | None,
    energy_register_samples: Sequence[tuple[datetime, float]] = (),
    start_soc_percent: float | None,
    end_soc_percent: float | None,
    battery_capacity_wh: int | None,
    tariff_per_kwh: Decimal,
    currency: str,
    tolerance: float = 0.15,
    expected_efficiency: tuple[float, float] = (0.80, 1.0),
) -> Reconciliation:
    """Compare the charger's and the battery's energy for one session and bill it."""
    if not isinstance(tariff_per_kwh, Decimal):
        raise TypeError("tariff_per_kwh must be a Decimal: money is never a float")
    if tariff_per_kwh < 0:
        raise ValueError("tariff_per_kwh must not be negative")
    if tolerance < 0:
        raise ValueError("tolerance must not be negative")
    low, high = expected_efficiency
    if not 0 < low <= high:
        raise ValueError("expected_efficiency must be (low, high) with 0 < low <= high")

    flags: list[str] = []
    # Offline chargers queue MeterValues and may deliver them out of order.
    readings = [
        _decimal(value)
        for _, value in sorted(energy_register_samples, key=lambda sample: sample[0])
    ]
    register = _register_energy(readings)
    grid = _grid_energy(meter_start_wh, meter_stop_wh, readings, tolerance, flags)
    battery = _battery_energy(start_soc_percent, end_soc_percent, battery_capacity_wh, flags)

    efficiency: Decimal | None = None
    if grid is not None and battery is not None:
        if grid > 0:
            efficiency = (Decimal(battery) / Decimal(grid)).quantize(
                _EFFICIENCY_PLACES, rounding=ROUND_HALF_UP
            )
            lowest = _decimal(low) * (1 - _decimal(tolerance))
            highest = _decimal(high) * (1 + _decimal(tolerance))
            if not lowest <= efficiency <= highest:
                flags.append("energy_mismatch")
        elif battery > 0:
            flags.append("energy_mismatch")

    bill_basis: BillBasis = "charger"
    bill_energy_wh = 0
    if grid is not None:
        bill_energy_wh = grid
    elif battery is not None:
        bill_basis = "battery"
        bill_energy_wh = max(0, battery)
    bill_amount = (Decimal(bill_energy_wh) / _KWH * tariff_per_kwh).quantize(
        CENTS, rounding=ROUND_HALF_UP
    )
    return Reconciliation(
        grid_energy_wh=grid,
        register_energy_wh=register,
        battery_energy_wh=battery,
        efficiency=efficiency,
        flags=tuple(flags),
        bill_energy_wh=bill_energy_wh,
        bill_basis=bill_basis,
        bill_amount=bill_amount,
        tariff_per_kwh=tariff_per_kwh,
        currency=currency,
    )
