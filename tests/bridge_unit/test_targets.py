"""When to stop a session, and how soon to read the vehicle again (smartcar_bridge.targets)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from smartcar_bridge.targets import next_poll_delay, seconds_to_target, should_stop

NOW = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)


def stop(**overrides: Any) -> str | None:
    """should_stop() for an 80 % target with nothing known unless told."""
    inputs: dict[str, Any] = {
        "soc_percent": None,
        "target_soc_percent": 80,
        "energy_wh": None,
        "max_energy_wh": None,
        "departure_at": None,
        "now": NOW,
    }
    inputs.update(overrides)
    return should_stop(**inputs)


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        pytest.param({}, None, id="nothing_known_keeps_charging"),
        pytest.param({"soc_percent": 79.9}, None, id="below_target_keeps_charging"),
        pytest.param({"soc_percent": 80.0}, "target_soc", id="at_target_stops"),
        pytest.param({"soc_percent": 93.0}, "target_soc", id="above_target_stops"),
        pytest.param(
            {"soc_percent": 0.57 * 100, "target_soc_percent": 57},
            "target_soc",
            id="fraction_times_100_rounding_still_reaches_target",
        ),
        pytest.param({"soc_percent": 56.9, "target_soc_percent": 57}, None, id="tenth_below"),
        pytest.param(
            {"soc_percent": 100.0, "target_soc_percent": 100}, "target_soc", id="full_target"
        ),
        pytest.param({"energy_wh": 9_999, "max_energy_wh": 10_000}, None, id="below_energy_cap"),
        pytest.param(
            {"energy_wh": 10_000, "max_energy_wh": 10_000}, "max_energy", id="energy_cap_reached"
        ),
        pytest.param(
            {"energy_wh": 12_000, "max_energy_wh": 10_000}, "max_energy", id="energy_cap_passed"
        ),
        pytest.param({"energy_wh": 12_000}, None, id="no_energy_cap"),
        pytest.param({"max_energy_wh": 10_000}, None, id="unknown_energy_does_not_stop"),
        pytest.param(
            {"departure_at": NOW + timedelta(seconds=1)}, None, id="departure_still_ahead"
        ),
        pytest.param({"departure_at": NOW}, "departure", id="departure_time_reached"),
        pytest.param(
            {"departure_at": NOW - timedelta(hours=1)}, "departure", id="departure_passed"
        ),
        pytest.param(
            {
                "departure_at": NOW + timedelta(hours=2),
                "now": NOW + timedelta(hours=2, seconds=1),
            },
            "departure",
            id="departure_compared_with_the_given_now",
        ),
        pytest.param(
            {
                "soc_percent": 85.0,
                "energy_wh": 20_000,
                "max_energy_wh": 10_000,
                "departure_at": NOW,
            },
            "target_soc",
            id="target_soc_wins_over_other_reasons",
        ),
        pytest.param(
            {
                "soc_percent": 50.0,
                "energy_wh": 20_000,
                "max_energy_wh": 10_000,
                "departure_at": NOW,
            },
            "max_energy",
            id="energy_cap_wins_over_departure",
        ),
    ],
)
def test_should_stop(overrides: dict[str, Any], reason: str | None) -> None:
    assert stop(**overrides) == reason


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param({"now": datetime(2025, 3, 1, 8)}, id="naive_now"),
        pytest.param({"departure_at": datetime(2025, 3, 1, 9)}, id="naive_departure"),
    ],
)
def test_should_stop_refuses_naive_datetimes(overrides: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        stop(**overrides)


# --- seconds_to_target ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("soc", "power_w", "capacity_wh", "expected"),
    [
        pytest.param(79.0, 7_200.0, 60_000, 300.0, id="one_percent_of_60_kwh_at_7_2_kw"),
        pytest.param(20.0, 11_000.0, 60_000, 36_000 / 11_000 * 3600, id="far_from_target"),
        pytest.param(80.0, 7_200.0, 60_000, 0.0, id="at_target"),
        pytest.param(90.0, 7_200.0, 60_000, 0.0, id="past_target_is_zero_not_negative"),
        pytest.param(None, 7_200.0, 60_000, None, id="unknown_soc"),
        pytest.param(50.0, None, 60_000, None, id="unknown_power"),
        pytest.param(50.0, 0.0, 60_000, None, id="no_power_flowing"),
        pytest.param(50.0, -500.0, 60_000, None, id="negative_power"),
        pytest.param(50.0, 7_200.0, None, None, id="unknown_capacity"),
        pytest.param(50.0, 7_200.0, 0, None, id="zero_capacity"),
    ],
)
def test_seconds_to_target(
    soc: float | None, power_w: float | None, capacity_wh: int | None, expected: float | None
) -> None:
    result = seconds_to_target(
        soc_percent=soc, target_soc_percent=80, power_w=power_w, battery_capacity_wh=capacity_wh
    )
    assert result == (None if expected is None else pytest.approx(expected))


# --- next_poll_delay -----------------------------------------------------------------------------


def delay(**overrides: Any) -> float:
    """next_poll_delay() every 300 s towards 80 % of 60 kWh at 7.2 kW, data fresh."""
    inputs: dict[str, Any] = {
        "base_interval_s": 300.0,
        "soc_percent": None,
        "target_soc_percent": 80,
        "power_w": 7_200.0,
        "battery_capacity_wh": 60_000,
        "data_age": None,
        "now": NOW,
    }
    inputs.update(overrides)
    return next_poll_delay(**inputs)


@pytest.mark.parametrize(
    ("overrides", "expected_s"),
    [
        pytest.param({}, 300.0, id="unknown_soc_polls_at_base_interval"),
        pytest.param({"soc_percent": 20.0}, 300.0, id="far_from_target_polls_at_base_interval"),
        pytest.param({"soc_percent": 79.0}, 150.0, id="near_target_polls_at_half_the_time_left"),
        pytest.param({"soc_percent": 78.0}, 300.0, id="half_the_time_left_equals_base"),
        pytest.param({"soc_percent": 79.95}, 15.0, id="very_near_target_never_below_min"),
        pytest.param({"soc_percent": 80.0}, 15.0, id="at_target_polls_at_min_to_confirm"),
        pytest.param({"soc_percent": 85.0}, 15.0, id="past_target_polls_at_min"),
        pytest.param(
            {"soc_percent": 79.95, "min_interval_s": 30.0}, 30.0, id="custom_min_interval"
        ),
        pytest.param({"soc_percent": 79.0, "power_w": None}, 300.0, id="unknown_power"),
        pytest.param({"soc_percent": 79.0, "power_w": 0.0}, 300.0, id="no_power_flowing"),
        pytest.param(
            {"soc_percent": 79.0, "battery_capacity_wh": None}, 300.0, id="unknown_capacity"
        ),
        pytest.param(
            {"soc_percent": 79.0, "power_w": 14_400.0}, 75.0, id="faster_charging_polls_sooner"
        ),
        pytest.param(
            {"base_interval_s": 10.0}, 15.0, id="base_interval_below_min_is_raised_to_min"
        ),
        pytest.param(
            {"soc_percent": 79.0, "data_age": NOW - timedelta(seconds=10)},
            150.0,
            id="fresh_data_allows_faster_polling",
        ),
        pytest.param(
            {"soc_percent": 79.0, "data_age": NOW - timedelta(seconds=200)},
            200.0,
            id="stale_data_slows_polling_to_its_age",
        ),
        pytest.param(
            {"soc_percent": 79.0, "data_age": NOW - timedelta(minutes=30)},
            300.0,
            id="very_stale_data_never_slower_than_base",
        ),
        pytest.param(
            {"data_age": NOW - timedelta(minutes=30)},
            300.0,
            id="stale_data_at_base_interval_stays_at_base",
        ),
        pytest.param(
            {"soc_percent": 79.0, "data_age": NOW + timedelta(seconds=90)},
            150.0,
            id="data_age_in_the_future_counts_as_fresh",
        ),
        pytest.param(
            {"soc_percent": 79.95, "data_age": NOW - timedelta(seconds=5)},
            15.0,
            id="data_younger_than_min_still_respects_min",
        ),
    ],
)
def test_next_poll_delay(overrides: dict[str, Any], expected_s: float) -> None:
    assert delay(**overrides) == pytest.approx(expected_s)


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param({"base_interval_s": 0.0}, id="zero_base_interval"),
        pytest.param({"min_interval_s": -1.0}, id="negative_min_interval"),
        pytest.param({"now": datetime(2025, 3, 1, 8)}, id="naive_now"),
        pytest.param({"data_age": datetime(2025, 3, 1, 8)}, id="naive_data_age"),
    ],
)
def test_next_poll_delay_refuses_bad_input(overrides: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        delay(**overrides)
