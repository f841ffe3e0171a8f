"""Which linked vehicle was plugged in at a connector (smartcar_bridge.matching)."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from smartcar_bridge.matching import (
    EARTH_RADIUS_M,
    Candidate,
    PlugEvent,
    assign_matches,
    haversine_m,
    match_vehicle,
)

T0 = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
BERLIN = (52.5200, 13.4050)
MUNICH = (48.1371, 11.5754)
# Degrees of latitude for a distance north of the charger: 1 degree is ~111.2 km.
M_PER_DEG = 2 * math.pi * EARTH_RADIUS_M / 360


def north_of(site: tuple[float, float], metres: float) -> tuple[float, float]:
    return (site[0] + metres / M_PER_DEG, site[1])


def car(vehicle_id: int, **fields: Any) -> Candidate:
    """A plugged-in vehicle, free, with no location and no history unless told."""
    values: dict[str, Any] = {"vin": f"VIN{vehicle_id:014d}", "is_plugged_in": True}
    if "at" in fields:
        fields["latitude"], fields["longitude"] = fields.pop("at")
    values.update(fields)
    return Candidate(vehicle_id=vehicle_id, **values)


def plug(
    site: tuple[float, float] | None = BERLIN,
    *,
    charge_point_id: str = "CP-1",
    connector_id: int = 1,
    at: datetime = T0,
) -> PlugEvent:
    lat, lon = site if site is not None else (None, None)
    return PlugEvent(charge_point_id, connector_id, at, lat, lon)


# --- haversine_m -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b", "expected_m", "within_m"),
    [
        pytest.param(BERLIN, BERLIN, 0.0, 1e-9, id="same_point_is_zero"),
        pytest.param((0.0, 0.0), (1.0, 0.0), M_PER_DEG, 1e-6, id="one_degree_of_latitude"),
        pytest.param((0.0, 0.0), (0.0, 1.0), M_PER_DEG, 1e-6, id="one_degree_of_lon_at_equator"),
        pytest.param((60.0, 0.0), (60.0, 1.0), M_PER_DEG / 2, 5.0, id="lon_shrinks_at_60_degrees"),
        pytest.param(BERLIN, MUNICH, 504_000.0, 2_000.0, id="berlin_to_munich"),
        pytest.param((0.0, 0.0), (0.0, 180.0), math.pi * EARTH_RADIUS_M, 1e-3, id="antipodes"),
        pytest.param((0.0, 179.9995), (0.0, -179.9995), 111.2, 0.5, id="across_date_line"),
    ],
)
def test_haversine_distance(
    a: tuple[float, float], b: tuple[float, float], expected_m: float, within_m: float
) -> None:
    assert haversine_m(*a, *b) == pytest.approx(expected_m, abs=within_m)
    assert haversine_m(*b, *a) == pytest.approx(haversine_m(*a, *b))


# --- match_vehicle: one event ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("event", "candidates", "outcome", "vehicle_id", "finalists", "reason"),
    [
        pytest.param(plug(), [], "no_match", None, (), "none_plugged_in", id="no_candidates"),
        pytest.param(
            plug(), [car(1)], "matched", 1, (1,), "only_plugged_in_nearby", id="single_plugged_in"
        ),
        pytest.param(
            plug(),
            [car(1, is_plugged_in=False)],
            "no_match",
            None,
            (),
            "none_plugged_in",
            id="unplugged_car_is_not_matched",
        ),
        pytest.param(
            plug(),
            [car(1, is_plugged_in=None)],
            "no_match",
            None,
            (),
            "none_plugged_in",
            id="unreadable_charge_status_is_not_matched",
        ),
        pytest.param(
            plug(),
            [car(1, in_session=True, previously_plugged_in=False)],
            "no_match",
            None,
            (),
            "none_plugged_in",
            id="car_already_in_a_session_is_not_matched",
        ),
        pytest.param(
            plug(),
            [car(1, in_session=True), car(2, is_plugged_in=False), car(3)],
            "matched",
            3,
            (3,),
            "only_plugged_in_nearby",
            id="busy_and_unplugged_cars_leave_the_one_plugged_in",
        ),
        pytest.param(
            plug(BERLIN),
            [car(1, at=MUNICH)],
            "no_match",
            None,
            (),
            "none_nearby",
            id="car_plugged_in_elsewhere_is_not_matched",
        ),
        pytest.param(
            plug(BERLIN),
            [car(1, at=north_of(BERLIN, 170))],
            "matched",
            1,
            (1,),
            "only_plugged_in_nearby",
            id="within_max_distance_plus_gps_accuracy_is_near",
        ),
        pytest.param(
            plug(BERLIN),
            [car(1, at=north_of(BERLIN, 180))],
            "no_match",
            None,
            (),
            "none_nearby",
            id="beyond_max_distance_plus_gps_accuracy_is_far",
        ),
        pytest.param(
            plug(BERLIN),
            [car(1, latitude=MUNICH[0])],
            "matched",
            1,
            (1,),
            "only_plugged_in_nearby",
            id="half_known_location_counts_as_unknown",
        ),
        pytest.param(
            plug(BERLIN),
            [car(1)],
            "matched",
            1,
            (1,),
            "only_plugged_in_nearby",
            id="unknown_car_location_cannot_exclude_it",
        ),
        pytest.param(
            plug(None),
            [car(1, at=MUNICH)],
            "matched",
            1,
            (1,),
            "only_plugged_in_nearby",
            id="unknown_charger_location_excludes_nobody",
        ),
        pytest.param(
            plug(BERLIN),
            [car(1, at=MUNICH), car(2, at=north_of(BERLIN, 20))],
            "matched",
            2,
            (2,),
            "only_plugged_in_nearby",
            id="location_separates_two_plugged_in_cars",
        ),
        pytest.param(
            plug(),
            [car(1, plugged_in_since=T0 - timedelta(hours=3)), car(2, plugged_in_since=T0)],
            "matched",
            2,
            (2,),
            "recently_plugged_in",
            id="recent_plug_in_beats_a_car_plugged_in_for_hours",
        ),
        pytest.param(
            plug(),
            [car(1, previously_plugged_in=True), car(2, previously_plugged_in=False)],
            "matched",
            2,
            (2,),
            "recently_plugged_in",
            id="car_seen_unplugged_before_this_read_is_recent",
        ),
        pytest.param(
            plug(),
            [car(1), car(2, plugged_in_since=T0 + timedelta(minutes=2))],
            "matched",
            2,
            (2,),
            "recently_plugged_in",
            id="plug_in_seen_just_after_the_event_counts_clock_skew",
        ),
        pytest.param(
            plug(),
            [car(1), car(2, plugged_in_since=T0 - timedelta(minutes=10))],
            "matched",
            2,
            (2,),
            "recently_plugged_in",
            id="plug_in_exactly_at_the_window_edge_is_recent",
        ),
        pytest.param(
            plug(),
            [car(1), car(2, plugged_in_since=T0 - timedelta(minutes=10, seconds=1))],
            "ambiguous",
            None,
            (1, 2),
            "several_plugged_in_nearby",
            id="plug_in_just_outside_the_window_is_not_recent",
        ),
        pytest.param(
            plug(),
            [car(1, plugged_in_since=T0 + timedelta(minutes=11)), car(2)],
            "ambiguous",
            None,
            (1, 2),
            "several_plugged_in_nearby",
            id="plug_in_far_after_the_event_is_not_recent",
        ),
        pytest.param(
            plug(),
            [
                car(1, previously_plugged_in=True, plugged_in_since=T0 - timedelta(seconds=30)),
                car(2, previously_plugged_in=True, plugged_in_since=T0 - timedelta(hours=1)),
            ],
            "matched",
            1,
            (1,),
            "recently_plugged_in",
            id="recent_since_counts_even_when_already_plugged_at_last_read",
        ),
        pytest.param(
            plug(),
            [car(1, previously_plugged_in=False), car(2, plugged_in_since=T0)],
            "ambiguous",
            None,
            (1, 2),
            "several_plugged_in_nearby",
            id="two_recent_plug_ins_without_location_are_ambiguous",
        ),
        pytest.param(
            plug(),
            [car(1), car(2)],
            "ambiguous",
            None,
            (1, 2),
            "several_plugged_in_nearby",
            id="two_cars_with_no_history_are_ambiguous_never_guessed",
        ),
        pytest.param(
            plug(BERLIN),
            [car(1), car(2, at=north_of(BERLIN, 40))],
            "matched",
            2,
            (2,),
            "only_known_location_nearby",
            id="known_near_location_beats_unknown_location",
        ),
        pytest.param(
            plug(None),
            [car(1), car(2, at=north_of(BERLIN, 40))],
            "ambiguous",
            None,
            (1, 2),
            "several_plugged_in_nearby",
            id="known_location_means_nothing_without_the_charger_location",
        ),
        pytest.param(
            plug(BERLIN),
            [car(1, at=north_of(BERLIN, 5)), car(2, at=north_of(BERLIN, 120))],
            "ambiguous",
            None,
            (1, 2),
            "several_plugged_in_nearby",
            id="two_cars_near_the_charger_are_ambiguous_even_at_different_distances",
        ),
        pytest.param(
            plug(BERLIN),
            [
                car(1, previously_plugged_in=False, at=north_of(BERLIN, 10)),
                car(2, previously_plugged_in=False),
                car(3, at=north_of(BERLIN, 10)),
            ],
            "matched",
            1,
            (1,),
            "only_known_location_nearby",
            id="recency_then_location_narrow_three_to_one",
        ),
        pytest.param(
            plug(BERLIN),
            [
                car(1, previously_plugged_in=False),
                car(2, previously_plugged_in=False),
                car(3, at=north_of(BERLIN, 10)),
            ],
            "ambiguous",
            None,
            (1, 2),
            "several_plugged_in_nearby",
            id="location_is_not_used_to_undo_the_recency_preference",
        ),
        pytest.param(
            plug(),
            [car(1, charge_state="CHARGING"), car(2, charge_state="NOT_CHARGING")],
            "ambiguous",
            None,
            (1, 2),
            "several_plugged_in_nearby",
            id="charge_state_alone_decides_nothing",
        ),
    ],
)
def test_match_vehicle(
    event: PlugEvent,
    candidates: list[Candidate],
    outcome: str,
    vehicle_id: int | None,
    finalists: tuple[int, ...],
    reason: str,
) -> None:
    result = match_vehicle(event, candidates)
    assert (result.outcome, result.vehicle_id, result.finalists, result.reason) == (
        outcome,
        vehicle_id,
        finalists,
        reason,
    )
    assert result.candidates == tuple(c.vehicle_id for c in candidates)


def test_distance_and_window_are_configurable() -> None:
    event = plug(BERLIN)
    near_but_old = car(1, at=north_of(BERLIN, 100), plugged_in_since=T0 - timedelta(minutes=3))
    other = car(2, at=north_of(BERLIN, 10))
    assert match_vehicle(event, [near_but_old, other]).vehicle_id == 1
    tight = match_vehicle(
        event,
        [near_but_old, other],
        max_distance_m=50,
        location_accuracy_m=0,
        recent_window=timedelta(minutes=1),
    )
    assert (tight.outcome, tight.vehicle_id, tight.reason) == (
        "matched",
        2,
        "only_plugged_in_nearby",
    )


@pytest.mark.parametrize(
    "build",
    [
        pytest.param(lambda: PlugEvent("CP-1", 1, datetime(2025, 3, 1, 8)), id="naive_event_time"),
        pytest.param(lambda: PlugEvent("CP-1", 1, None), id="missing_event_time"),  # type: ignore[arg-type]
        pytest.param(
            lambda: car(1, plugged_in_since=datetime(2025, 3, 1, 8)), id="naive_plugged_in_since"
        ),
        pytest.param(lambda: match_vehicle(plug(), [], max_distance_m=-1), id="negative_distance"),
        pytest.param(
            lambda: match_vehicle(plug(), [], location_accuracy_m=-1), id="negative_accuracy"
        ),
    ],
)
def test_invalid_input_is_refused(build: Any) -> None:
    with pytest.raises(ValueError):
        build()


# --- assign_matches: near-simultaneous events ---------------------------------------------------

CP1 = ("CP-1", 1)
CP2 = ("CP-2", 1)
CP1_2 = ("CP-1", 2)
CP3 = ("CP-3", 1)


def outcomes(results: dict[tuple[str, int], Any]) -> dict[tuple[str, int], tuple[str, Any]]:
    return {key: (r.outcome, r.vehicle_id) for key, r in results.items()}


def test_simultaneous_plug_ins_at_two_distant_sites_each_get_their_car() -> None:
    berlin_car = car(1, at=north_of(BERLIN, 15), previously_plugged_in=False)
    munich_car = car(2, at=north_of(MUNICH, 30), previously_plugged_in=False)
    events = [plug(BERLIN, charge_point_id="CP-1"), plug(MUNICH, charge_point_id="CP-2")]
    both = [berlin_car, munich_car]
    results = assign_matches(events, {CP1: both, CP2: both})
    assert outcomes(results) == {CP1: ("matched", 1), CP2: ("matched", 2)}


def test_two_cars_at_one_site_are_told_apart_by_when_each_was_seen_plugged_in() -> None:
    # Connector 1 is read when only car 1 has plugged in; connector 2 twenty seconds later,
    # when both have: car 2 alone would be a guess, but car 1 is already connector 1's.
    later = T0 + timedelta(seconds=20)
    first_read = [car(1, previously_plugged_in=False), car(2, is_plugged_in=False)]
    second_read = [
        car(1, previously_plugged_in=True, plugged_in_since=T0),
        car(2, previously_plugged_in=False),
    ]
    events = [plug(connector_id=1), plug(connector_id=2, at=later)]
    assert match_vehicle(events[1], second_read).outcome == "ambiguous"
    results = assign_matches(events, {CP1: first_read, CP1_2: second_read})
    assert outcomes(results) == {CP1: ("matched", 1), CP1_2: ("matched", 2)}
    assert results[CP1_2].candidates == (1, 2)


def test_two_cars_both_just_plugged_in_at_one_site_are_not_guessed() -> None:
    both = [car(1, previously_plugged_in=False), car(2, previously_plugged_in=False)]
    events = [plug(connector_id=1), plug(connector_id=2, at=T0 + timedelta(seconds=5))]
    results = assign_matches(events, {CP1: both, CP1_2: both})
    assert outcomes(results) == {CP1: ("ambiguous", None), CP1_2: ("ambiguous", None)}


def test_car_that_is_the_only_match_of_two_connectors_goes_to_neither() -> None:
    only = [car(7)]
    results = assign_matches([plug(connector_id=1), plug(connector_id=2)], {CP1: only, CP1_2: only})
    assert outcomes(results) == {CP1: ("ambiguous", None), CP1_2: ("ambiguous", None)}
    assert {r.reason for r in results.values()} == {"matched_by_several_events"}
    assert results[CP1].finalists == (7,)


def test_contested_car_is_not_taken_from_a_third_connector() -> None:
    # Car 7 is plugged in at CP-1 or CP-2 (unknown which), so CP-3 cannot rule it out either.
    events = [plug(charge_point_id=cp) for cp in ("CP-1", "CP-2", "CP-3")]
    results = assign_matches(events, {CP1: [car(7)], CP2: [car(7)], CP3: [car(7), car(8)]})
    assert outcomes(results) == {
        CP1: ("ambiguous", None),
        CP2: ("ambiguous", None),
        CP3: ("ambiguous", None),
    }
    assert results[CP3].finalists == (7, 8)


def test_claims_cascade_until_every_connector_is_resolved() -> None:
    a, b, c = car(1), car(2), car(3)
    events = [plug(charge_point_id=cp) for cp in ("CP-1", "CP-2", "CP-3")]
    results = assign_matches(events, {CP1: [a], CP2: [a, b], CP3: [a, b, c]})
    assert outcomes(results) == {CP1: ("matched", 1), CP2: ("matched", 2), CP3: ("matched", 3)}
    assert results[CP3].candidates == (1, 2, 3)
    assert results[CP3].reason == "only_plugged_in_nearby"


def test_result_does_not_depend_on_the_order_of_events() -> None:
    a, b, c = car(1), car(2), car(3)
    events = [plug(charge_point_id=cp) for cp in ("CP-1", "CP-2", "CP-3")]
    by_event = {CP1: [a, b, c], CP2: [a, b], CP3: [a]}
    forward = assign_matches(events, by_event)
    backward = assign_matches(list(reversed(events)), by_event)
    assert outcomes(forward) == outcomes(backward)
    assert list(backward) == [CP3, CP2, CP1]


def test_connector_whose_cars_all_went_elsewhere_has_no_match() -> None:
    events = [plug(charge_point_id=cp) for cp in ("CP-1", "CP-2", "CP-3")]
    results = assign_matches(events, {CP1: [car(1)], CP2: [car(1), car(2)], CP3: [car(2)]})
    assert outcomes(results) == {
        CP1: ("matched", 1),
        CP2: ("no_match", None),
        CP3: ("matched", 2),
    }
    assert results[CP2].reason == "assigned_to_other_connector"
    assert results[CP2].candidates == (1, 2)


def test_event_without_candidates_has_no_match() -> None:
    results = assign_matches([plug()], {})
    assert outcomes(results) == {CP1: ("no_match", None)}
    assert results[CP1].reason == "none_plugged_in"


def test_single_event_matches_like_match_vehicle() -> None:
    candidates = [car(1, plugged_in_since=T0), car(2, plugged_in_since=T0 - timedelta(hours=1))]
    assert assign_matches([plug()], {CP1: candidates})[CP1] == match_vehicle(plug(), candidates)


def test_options_reach_every_match() -> None:
    far = car(1, at=north_of(BERLIN, 100))
    results = assign_matches([plug(BERLIN)], {CP1: [far]}, max_distance_m=50, location_accuracy_m=0)
    assert outcomes(results) == {CP1: ("no_match", None)}


def test_the_same_connector_twice_is_refused() -> None:
    with pytest.raises(ValueError):
        assign_matches([plug(), plug(at=T0 + timedelta(seconds=1))], {})


def test_candidates_are_immutable_values() -> None:
    original = car(1)
    assert replace(original, in_session=True) != original
    with pytest.raises(AttributeError):
        original.in_session = True  # type: ignore[misc]
