"""Charger energy against battery energy, and the bill (smartcar_bridge.reconcile)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from smartcar_bridge.reconcile import Reconciliation, reconcile

T0 = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)


def samples(*values: float) -> list[tuple[datetime, float]]:
    """Register readings one minute apart, in the order given."""
    return [(T0 + timedelta(minutes=i), float(v)) for i, v in enumerate(values)]


def run(**overrides: Any) -> Reconciliation:
    """A 20 kWh session: meter 10000 -> 30000 Wh, SoC 20 -> 50 % of 60 kWh (18 kWh)."""
    inputs: dict[str, Any] = {
        "meter_start_wh": 10_000,
        "meter_stop_wh": 30_000,
        "energy_register_samples": samples(10_000, 20_000, 30_000),
        "start_soc_percent": 20.0,
        "end_soc_percent": 50.0,
        "battery_capacity_wh": 60_000,
        "tariff_per_kwh": Decimal("0.30"),
        "currency": "EUR",
    }
    inputs.update(overrides)
    return reconcile(**inputs)


def test_consistent_session_is_billed_on_the_charger_energy() -> None:
    assert run() == Reconciliation(
        grid_energy_wh=20_000,
        register_energy_wh=20_000,
        battery_energy_wh=18_000,
        efficiency=Decimal("0.9000"),
        flags=(),
        bill_energy_wh=20_000,
        bill_basis="charger",
        bill_amount=Decimal("6.00"),
        tariff_per_kwh=Decimal("0.30"),
        currency="EUR",
    )


# --- charger energy: meterStart/meterStop and the register samples -----------------------------


@pytest.mark.parametrize(
    ("overrides", "grid", "register", "flags"),
    [
        pytest.param(
            {"energy_register_samples": []}, 20_000, None, (), id="no_register_samples_uses_meters"
        ),
        pytest.param(
            {"energy_register_samples": samples(15_000)},
            20_000,
            None,
            (),
            id="one_sample_gives_no_register_energy",
        ),
        pytest.param(
            {"energy_register_samples": samples(12_000, 25_000)},
            20_000,
            13_000,
            (),
            id="samples_inside_the_meter_window_agree",
        ),
        pytest.param(
            {"energy_register_samples": list(reversed(samples(10_000, 20_000, 30_000)))},
            20_000,
            20_000,
            (),
            id="out_of_order_samples_are_taken_in_time_order",
        ),
        pytest.param(
            {"energy_register_samples": samples(10.0, 20.0, 30.0)},
            20_000,
            20,
            ("register_mismatch",),
            id="samples_in_wrong_unit_disagree_with_meters",
        ),
        pytest.param(
            {"energy_register_samples": samples(10_000, 34_000)},
            20_000,
            24_000,
            ("register_mismatch",),
            id="samples_beyond_meter_stop_by_more_than_tolerance_disagree",
        ),
        pytest.param(
            {"energy_register_samples": samples(10_000, 33_000)},
            20_000,
            23_000,
            (),
            id="samples_beyond_meter_stop_within_tolerance_agree",
        ),
        pytest.param(
            {"energy_register_samples": samples(8_500, 31_600)},
            20_000,
            23_100,
            ("register_mismatch",),
            id="small_overshoots_at_both_ends_add_up",
        ),
        pytest.param(
            {"meter_stop_wh": 10_000, "energy_register_samples": samples(10_000.4)},
            0,
            None,
            (),
            id="zero_energy_session_tolerates_sub_wh_sample_noise",
        ),
        pytest.param(
            {
                "energy_register_samples": samples(10_000, 15_000, 200, 5_200),
                "meter_stop_wh": 5_200,
            },
            10_000,
            10_000,
            ("meter_went_backwards",),
            id="meter_reset_mid_session_with_stop_below_start_sums_the_forward_steps",
        ),
        pytest.param(
            {
                "meter_start_wh": 1_000,
                "energy_register_samples": samples(1_000, 9_000, 0, 4_000),
                "meter_stop_wh": 4_000,
            },
            12_000,
            12_000,
            ("meter_went_backwards",),
            id="meter_reset_mid_session_distrusts_a_plausible_stop_minus_start",
        ),
        pytest.param(
            {
                "meter_start_wh": 1_000,
                "energy_register_samples": samples(1_500, 9_000, 0, 4_000),
                "meter_stop_wh": 4_500,
            },
            12_500,
            11_500,
            ("meter_went_backwards",),
            id="fallback_counts_energy_before_first_and_after_last_sample",
        ),
        pytest.param(
            {"meter_stop_wh": 5_000, "energy_register_samples": []},
            None,
            None,
            ("meter_went_backwards", "no_charger_energy"),
            id="stop_below_start_without_samples_has_no_charger_energy",
        ),
        pytest.param(
            {"meter_stop_wh": 0, "energy_register_samples": samples(10_000, 16_000, 22_000)},
            12_000,
            12_000,
            ("meter_reset",),
            id="zero_meter_stop_falls_back_to_the_samples",
        ),
        pytest.param(
            {"meter_stop_wh": 0, "energy_register_samples": samples(10_000, 16_000, 0, 300)},
            6_300,
            6_300,
            ("meter_reset", "meter_went_backwards"),
            id="zero_meter_stop_after_a_reset_seen_in_the_samples",
        ),
        pytest.param(
            {"meter_stop_wh": 0, "energy_register_samples": []},
            None,
            None,
            ("meter_reset", "no_charger_energy"),
            id="zero_meter_stop_without_samples_has_no_charger_energy",
        ),
        pytest.param(
            {"meter_start_wh": 0, "meter_stop_wh": 0, "energy_register_samples": []},
            0,
            None,
            (),
            id="meter_at_zero_throughout_is_a_zero_energy_session",
        ),
        pytest.param(
            {"meter_start_wh": 0, "meter_stop_wh": 20_000, "energy_register_samples": []},
            20_000,
            None,
            (),
            id="meter_starting_at_zero_is_not_a_reset",
        ),
        pytest.param(
            {"meter_stop_wh": None, "energy_register_samples": samples(12_000, 26_000)},
            16_000,
            14_000,
            ("meter_incomplete",),
            id="missing_meter_stop_uses_start_and_samples",
        ),
        pytest.param(
            {"meter_start_wh": None, "meter_stop_wh": None},
            20_000,
            20_000,
            ("meter_incomplete",),
            id="missing_start_and_stop_uses_the_samples",
        ),
        pytest.param(
            {"meter_start_wh": None, "energy_register_samples": samples(12_000)},
            18_000,
            None,
            ("meter_incomplete",),
            id="missing_meter_start_uses_one_sample_and_stop",
        ),
        pytest.param(
            {"meter_start_wh": None, "meter_stop_wh": None, "energy_register_samples": samples(1)},
            None,
            None,
            ("meter_incomplete", "no_charger_energy"),
            id="a_single_reading_is_no_energy",
        ),
        pytest.param(
            {"meter_stop_wh": None, "energy_register_samples": []},
            None,
            None,
            ("no_charger_energy",),
            id="missing_meter_stop_without_samples_has_no_charger_energy",
        ),
        pytest.param(
            {"meter_start_wh": 0, "meter_stop_wh": 1, "energy_register_samples": samples(0.2, 0.7)},
            1,
            1,
            (),
            id="fractional_wh_round_half_up",
        ),
    ],
)
def test_charger_energy(
    overrides: dict[str, Any], grid: int | None, register: int | None, flags: tuple[str, ...]
) -> None:
    # Battery data are left out so that only the charger's flags show.
    result = run(start_soc_percent=None, **overrides)
    assert (result.grid_energy_wh, result.register_energy_wh) == (grid, register)
    assert result.flags == (*flags, "no_battery_data")
    assert result.grid_energy_wh is None or result.grid_energy_wh >= 0


def test_register_energy_is_the_sum_of_forward_steps_when_it_goes_backwards() -> None:
    result = run(
        meter_start_wh=None,
        meter_stop_wh=None,
        energy_register_samples=samples(100, 600, 550, 900, 0, 250),
    )
    assert result.register_energy_wh == 500 + 350 + 250
    assert result.grid_energy_wh == 1_100
    assert result.flags[:2] == ("meter_incomplete", "meter_went_backwards")


# --- battery energy and efficiency ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "battery", "efficiency", "flags"),
    [
        pytest.param({}, 18_000, Decimal("0.9000"), (), id="efficiency_in_range"),
        pytest.param(
            {"start_soc_percent": None}, None, None, ("no_battery_data",), id="no_start_soc"
        ),
        pytest.param({"end_soc_percent": None}, None, None, ("no_battery_data",), id="no_end_soc"),
        pytest.param(
            {"battery_capacity_wh": None}, None, None, ("no_battery_data",), id="unknown_capacity"
        ),
        pytest.param(
            {"battery_capacity_wh": 0}, None, None, ("no_battery_data",), id="zero_capacity"
        ),
        pytest.param(
            {"start_soc_percent": 50.0, "end_soc_percent": 45.0},
            -3_000,
            Decimal("-0.1500"),
            ("soc_decreased", "energy_mismatch"),
            id="soc_decreased",
        ),
        pytest.param(
            {"start_soc_percent": 50.0, "end_soc_percent": 50.0},
            0,
            Decimal("0.0000"),
            ("energy_mismatch",),
            id="battery_gained_nothing_while_charger_delivered",
        ),
        pytest.param(
            {"end_soc_percent": 86.0},
            39_600,
            Decimal("1.9800"),
            ("energy_mismatch",),
            id="battery_gained_more_than_the_charger_delivered",
        ),
        pytest.param(
            {"end_soc_percent": 58.3333},
            23_000,
            Decimal("1.1500"),
            (),
            id="upper_bound_widened_by_tolerance_is_inclusive",
        ),
        pytest.param(
            {"end_soc_percent": 58.35},
            23_010,
            Decimal("1.1505"),
            ("energy_mismatch",),
            id="just_above_widened_upper_bound",
        ),
        pytest.param(
            {"end_soc_percent": 42.6667},
            13_600,
            Decimal("0.6800"),
            (),
            id="lower_bound_widened_by_tolerance_is_inclusive",
        ),
        pytest.param(
            {"end_soc_percent": 42.65},
            13_590,
            Decimal("0.6795"),
            ("energy_mismatch",),
            id="just_below_widened_lower_bound",
        ),
        pytest.param(
            {"end_soc_percent": 42.65, "tolerance": 0.2},
            13_590,
            Decimal("0.6795"),
            (),
            id="wider_tolerance_accepts_more_losses",
        ),
        pytest.param(
            {"expected_efficiency": (0.9, 0.95), "tolerance": 0.0},
            18_000,
            Decimal("0.9000"),
            (),
            id="custom_expected_range",
        ),
        pytest.param(
            {"end_soc_percent": 40.0, "expected_efficiency": (0.9, 0.95), "tolerance": 0.0},
            12_000,
            Decimal("0.6000"),
            ("energy_mismatch",),
            id="custom_expected_range_rejects",
        ),
        pytest.param(
            {"start_soc_percent": 10.0, "end_soc_percent": 11.0, "battery_capacity_wh": 50_050},
            501,
            Decimal("0.0251"),
            ("energy_mismatch",),
            id="battery_energy_rounds_half_up",
        ),
        pytest.param(
            {"meter_stop_wh": 13_000, "energy_register_samples": [], "end_soc_percent": 23.3333},
            2_000,
            Decimal("0.6667"),
            ("energy_mismatch",),
            id="efficiency_has_four_places_half_up",
        ),
    ],
)
def test_battery_energy_and_efficiency(
    overrides: dict[str, Any],
    battery: int | None,
    efficiency: Decimal | None,
    flags: tuple[str, ...],
) -> None:
    result = run(**overrides)
    assert (result.battery_energy_wh, result.efficiency, result.flags) == (
        battery,
        efficiency,
        flags,
    )


def test_zero_charger_energy_with_a_battery_that_gained_is_a_mismatch() -> None:
    result = run(meter_stop_wh=10_000, energy_register_samples=[])
    assert (result.grid_energy_wh, result.efficiency) == (0, None)
    assert result.flags == ("energy_mismatch",)


def test_zero_charger_energy_with_an_unchanged_battery_is_consistent() -> None:
    result = run(meter_stop_wh=10_000, energy_register_samples=[], end_soc_percent=20.0)
    assert (result.grid_energy_wh, result.battery_energy_wh, result.efficiency) == (0, 0, None)
    assert result.flags == ()


# --- the bill -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "energy", "basis", "amount"),
    [
        pytest.param({}, 20_000, "charger", "6.00", id="charger_energy_even_when_battery_known"),
        pytest.param(
            {"end_soc_percent": 86.0},
            20_000,
            "charger",
            "6.00",
            id="charger_energy_even_when_battery_disagrees",
        ),
        pytest.param(
            {"meter_stop_wh": 10_000, "energy_register_samples": []},
            0,
            "charger",
            "0.00",
            id="charger_zero_is_billed_as_zero_not_replaced_by_battery",
        ),
        pytest.param(
            {"meter_stop_wh": 0, "energy_register_samples": samples(10_000, 14_000)},
            4_000,
            "charger",
            "1.20",
            id="charger_fallback_from_samples_beats_battery",
        ),
        pytest.param(
            {"meter_stop_wh": 0, "energy_register_samples": []},
            18_000,
            "battery",
            "5.40",
            id="battery_only_when_charger_reported_no_usable_energy",
        ),
        pytest.param(
            {"meter_start_wh": None, "meter_stop_wh": None, "energy_register_samples": []},
            18_000,
            "battery",
            "5.40",
            id="battery_when_charger_reported_nothing",
        ),
        pytest.param(
            {
                "meter_stop_wh": None,
                "energy_register_samples": [],
                "start_soc_percent": 50.0,
                "end_soc_percent": 45.0,
            },
            0,
            "battery",
            "0.00",
            id="battery_that_lost_charge_bills_nothing",
        ),
        pytest.param(
            {"meter_stop_wh": None, "energy_register_samples": [], "battery_capacity_wh": None},
            0,
            "charger",
            "0.00",
            id="neither_charger_nor_battery_bills_nothing",
        ),
        pytest.param(
            {
                "meter_stop_wh": 11_010,
                "energy_register_samples": [],
                "tariff_per_kwh": Decimal("0.50"),
            },
            1_010,
            "charger",
            "0.51",
            id="half_cent_rounds_up",
        ),
        pytest.param(
            {
                "meter_stop_wh": 11_005,
                "energy_register_samples": [],
                "tariff_per_kwh": Decimal("0.50"),
            },
            1_005,
            "charger",
            "0.50",
            id="below_half_cent_rounds_down",
        ),
        pytest.param(
            {
                "meter_stop_wh": 10_333,
                "energy_register_samples": [],
                "tariff_per_kwh": Decimal("0.35"),
            },
            333,
            "charger",
            "0.12",
            id="fractional_cents_round_half_up",
        ),
        pytest.param(
            {
                "meter_stop_wh": 10_015,
                "energy_register_samples": [],
                "tariff_per_kwh": Decimal("0.333"),
            },
            15,
            "charger",
            "0.00",
            id="tiny_session_rounds_to_zero",
        ),
        pytest.param(
            {"tariff_per_kwh": Decimal("0.4567")}, 20_000, "charger", "9.13", id="four_place_tariff"
        ),
        pytest.param({"tariff_per_kwh": Decimal(0)}, 20_000, "charger", "0.00", id="free_charging"),
    ],
)
def test_bill(overrides: dict[str, Any], energy: int, basis: str, amount: str) -> None:
    result = run(**overrides)
    assert (result.bill_energy_wh, result.bill_basis, result.bill_amount) == (
        energy,
        basis,
        Decimal(amount),
    )
    assert isinstance(result.bill_amount, Decimal)
    assert result.bill_amount.as_tuple().exponent == -2


def test_bill_carries_tariff_and_currency() -> None:
    result = run(tariff_per_kwh=Decimal("0.2950"), currency="CHF")
    assert (result.tariff_per_kwh, result.currency, result.bill_amount) == (
        Decimal("0.2950"),
        "CHF",
        Decimal("5.90"),
    )


def test_flags_without_any_data_name_both_sides() -> None:
    result = run(
        meter_start_wh=None,
        meter_stop_wh=None,
        energy_register_samples=[],
        start_soc_percent=None,
        end_soc_percent=None,
        battery_capacity_wh=None,
    )
    assert result.flags == ("no_charger_energy", "no_battery_data")
    assert (result.grid_energy_wh, result.battery_energy_wh, result.efficiency) == (
        None,
        None,
        None,
    )


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        pytest.param({"tariff_per_kwh": 0.30}, TypeError, id="float_tariff"),
        pytest.param({"tariff_per_kwh": Decimal("-0.01")}, ValueError, id="negative_tariff"),
        pytest.param({"tolerance": -0.1}, ValueError, id="negative_tolerance"),
        pytest.param({"expected_efficiency": (1.0, 0.8)}, ValueError, id="inverted_range"),
        pytest.param({"expected_efficiency": (0.0, 1.0)}, ValueError, id="zero_lower_bound"),
    ],
)
def test_invalid_parameters_are_refused(overrides: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error):
        run(**overrides)
