"""The set matcher: time correlation both ways, place, claims, and plug-ins decided together."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from smartcar_bridge.matching import (
    Car,
    ChargingReading,
    PlugIn,
    confirmed_car,
    decide,
    haversine_m,
    relate,
)

T0 = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)
W = timedelta(seconds=120)
SITE_A = (52.5200, 13.4050)
SITE_B = (48.1370, 11.5750)
NEXT_TO_A = (52.5201, 13.4051)  # ~13 m from A


def s(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def plug(
    plug_id: int,
    at: float = 0,
    where: tuple[float, float] | None = SITE_A,
    ended: float | None = None,
    cp: str | None = None,
) -> PlugIn:
    lat, lon = where if where else (None, None)
    return PlugIn(
        plug_id,
        cp or f"CP-{plug_id}",
        1,
        s(at),
        lat,
        lon,
        s(ended) if ended is not None else None,
    )


def car(
    vehicle_id: int,
    *,
    plugged: bool | None = True,
    data: float | None = 5,
    unplugged: float | None = -30,
    plugged_at: float | None = 5,
    where: tuple[float, float] | None = NEXT_TO_A,
    charging: bool = False,
    claimed: bool = False,
) -> Car:
    lat, lon = where if where else (None, None)
    return Car(
        vehicle_id,
        plugged,
        s(data) if data is not None else None,
        s(unplugged) if unplugged is not None else None,
        s(plugged_at) if plugged_at is not None and plugged else None,
        lat,
        lon,
        charging,
        claimed,
    )


def run(plugs: list[PlugIn], cars: list[Car], now: float = 10, **options: object) -> dict:
    return decide(plugs, cars, now=s(now), window=W, **options)  # type: ignore[arg-type]


# --- relate: one car, one plug-in ---------------------------------------------------------


@pytest.mark.parametrize(
    ("the_car", "relation", "reason"),
    [
        (car(1), "candidate", "timed"),
        (car(1, unplugged=None), "candidate", "plugged_in"),
        (car(1, claimed=True), "excluded", "claimed"),
        (car(1, charging=True), "excluded", "already_charging"),
        (car(1, where=SITE_B), "excluded", "elsewhere"),
        (car(1, where=None), "candidate", "timed"),
        (car(1, plugged=None, data=None), "undetermined", "unreadable"),
        (car(1, plugged=False, data=-10, unplugged=-10), "undetermined", "data_older_than_plug_in"),
        (car(1, plugged=False, data=8, unplugged=8), "excluded", "not_plugged_in"),
        (car(1, plugged_at=-600, unplugged=-900, data=5), "excluded", "plugged_in_long_before"),
        (car(1, unplugged=200, plugged_at=210, data=210), "excluded", "plugged_in_later"),
        (car(1, plugged_at=-100, unplugged=-110), "candidate", "timed"),
    ],
)
def test_relation_of_a_car_to_a_plug_in(the_car: Car, relation: str, reason: str) -> None:
    assert relate(plug(1), the_car, window=W) == (relation, reason)


def test_car_plugged_in_after_the_connector_left_preparing_is_not_a_candidate() -> None:
    ended = plug(1, at=0, ended=20)
    later = car(1, unplugged=30, plugged_at=40, data=40)
    assert relate(ended, later, window=W) == ("excluded", "plugged_in_later")


def test_car_plugged_in_two_minutes_after_a_stale_event_is_not_taken_for_it() -> None:
    stale = plug(1, at=0)
    # Read unplugged until 130 s (fresher than the window), plugged at 135 s.
    newcomer = car(1, unplugged=130, plugged_at=135, data=135)
    assert relate(stale, newcomer, window=W)[0] == "excluded"
    assert run([stale], [newcomer], now=140)[1].outcome == "no_match"


def test_location_accuracy_counts_before_excluding() -> None:
    nearby = (52.5200 + 160 / 111_195, 13.4050)  # ~160 m north
    assert haversine_m(*SITE_A, *nearby) == pytest.approx(160, rel=0.01)
    assert relate(plug(1), car(1, where=nearby), window=W)[0] == "candidate"
    assert relate(plug(1), car(1, where=nearby), window=W, max_distance_m=100)[0] == "excluded"


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        PlugIn(1, "CP", 1, datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="timezone-aware"):
        decide([], [], now=datetime(2026, 1, 1), window=W)


# --- decide: the set -----------------------------------------------------------------------


def test_one_plug_in_one_candidate_is_matched() -> None:
    decision = run([plug(1)], [car(7), car(8, plugged=False, data=8, unplugged=8)])[1]
    assert (decision.outcome, decision.vehicle_id) == ("matched", 7)


def test_no_linked_car_plugged_in_is_no_match() -> None:
    decision = run([plug(1)], [car(7, plugged=False, data=8, unplugged=8)])[1]
    assert decision.outcome == "no_match"


def test_plug_in_still_settling_waits_and_still_contests_its_car() -> None:
    decisions = run([plug(1, at=0), plug(2, at=9)], [car(7)], now=10, settle=timedelta(seconds=3))
    # Plug-in 2 is younger than the settle time: it waits, and 1 cannot take car 7 alone.
    assert decisions[2].outcome == "wait" and decisions[2].reason == "settling"
    assert decisions[1].outcome == "confirm"


def test_car_that_plugged_in_after_the_plug_ins_were_read_is_matched_to_nothing_yet() -> None:
    # Plug-in 1 at 0 s; the car plugs in at 7 s on the next connector, whose Preparing (7 s)
    # is not in the set read at 7.2 s, although the car, read after it, shows plugged in.
    settle = timedelta(seconds=0.5)
    fresh = car(7, plugged_at=7, unplugged=-30, data=7)
    early = run([plug(1, at=0)], [fresh], now=8, settle=settle, plugs_known_at=s(7.2))
    assert early[1].outcome == "wait" and early[1].reason == "car_just_plugged_in"
    # Read again a moment later, the set holds the Preparing of the car's own connector.
    both = run([plug(1, at=0), plug(2, at=7)], [fresh], now=9, settle=settle, plugs_known_at=s(8.5))
    assert both[1].outcome != "matched" and both[2].outcome != "matched"
    # Nobody else plugged in: once the set is read settle after the car, it is matched.
    alone = run([plug(1, at=0)], [fresh], now=9, settle=settle, plugs_known_at=s(8.5))
    assert (alone[1].outcome, alone[1].vehicle_id) == ("matched", 7)


def test_a_just_plugged_car_still_contests_and_holds_only_the_plug_ins_it_is_candidate_of() -> None:
    settle = timedelta(seconds=3)
    cars = [car(7, plugged_at=7, data=7), car(8, where=SITE_B, plugged_at=1, data=1)]
    decisions = run(
        [plug(1, at=0), plug(2, at=0, where=SITE_B)], cars, now=8, settle=settle,
        plugs_known_at=s(8),
    )  # fmt: skip
    assert decisions[1].reason == "car_just_plugged_in"
    assert (decisions[2].outcome, decisions[2].vehicle_id) == ("matched", 8)


def test_an_ended_plug_in_still_contests_a_car_that_plugged_in_during_it() -> None:
    # The car plugged in with plug-in 1 (at 0 s, ended at 12 s); its unplug is not known.
    # Plug-in 2 (5 s) must not take it as its only candidate.
    left = plug(1, at=0, ended=12)
    decisions = run([left, plug(2, at=5, cp="CP-2")], [car(7, plugged_at=0.5, data=0.5)], now=20)
    assert decisions[2].outcome != "matched"
    # A car that plugged in after plug-in 1 ended is not its: plug-in 2 is matched.
    later = car(7, unplugged=13, plugged_at=14, data=14)
    decisions = run([left, plug(2, at=13, cp="CP-2")], [later], now=20)
    assert (decisions[2].outcome, decisions[2].vehicle_id) == ("matched", 7)


def test_two_sites_two_simultaneous_plug_ins_each_get_their_own_car() -> None:
    decisions = run(
        [plug(1, where=SITE_A), plug(2, where=SITE_B)],
        [car(7, where=SITE_A), car(8, where=SITE_B)],
    )
    assert (decisions[1].vehicle_id, decisions[2].vehicle_id) == (7, 8)


def test_two_plug_ins_two_cars_same_site_same_minute_go_to_confirmation_together() -> None:
    decisions = run([plug(1, at=0), plug(2, at=4)], [car(7), car(8)])
    assert {d.outcome for d in decisions.values()} == {"confirm"}
    assert decisions[1].group == decisions[2].group == (1, 2)
    assert decisions[1].candidates == (7, 8)


def test_two_plug_ins_same_site_told_apart_by_time() -> None:
    early, late = plug(1, at=0), plug(2, at=300)
    car_early = car(7, unplugged=-20, plugged_at=2, data=2)
    car_late = car(8, unplugged=290, plugged_at=302, data=302)
    decisions = run([early, late], [car_early, car_late], now=310)
    assert (decisions[1].vehicle_id, decisions[2].vehicle_id) == (7, 8)


def test_unlinked_car_next_to_a_linked_one_makes_the_single_car_contested() -> None:
    # Two plug-ins at one site, one linked car: it can be at either connector.
    decisions = run([plug(1), plug(2)], [car(7)])
    assert decisions[1].outcome == decisions[2].outcome == "confirm"
    assert decisions[1].reason == "contested"


def test_a_match_frees_the_others_by_elimination() -> None:
    # 1 sees only car 7 (site A); 2 (no location) sees 7 and 8; 7 goes to 1 only if 2 has
    # another car: the rule never gives a contested car away.
    decisions = run(
        [plug(1, where=SITE_A), plug(2, where=SITE_B)],
        [car(7, where=SITE_A), car(8, where=SITE_B), car(9, where=SITE_B)],
    )
    assert decisions[1].vehicle_id == 7
    assert decisions[2].outcome == "confirm" and decisions[2].candidates == (8, 9)


def test_claimed_cars_are_nobodys_candidates() -> None:
    decisions = run([plug(1)], [car(7, claimed=True), car(8)])
    assert decisions[1].vehicle_id == 8


def test_car_held_by_another_confirmation_makes_the_plug_in_wait_not_give_up() -> None:
    held = Car(7, True, s(5), s(-30), s(5), *NEXT_TO_A, in_confirmation=True)
    assert relate(plug(1), held, window=W) == ("undetermined", "in_confirmation")
    late = run([plug(1)], [held], now=500)[1]
    assert late.outcome == "wait" and late.undetermined == (7,)
    # Even with another candidate after the window: no confirmation while 7 is held.
    both = run([plug(1)], [held, car(8)], now=500)[1]
    assert (both.outcome, both.reason) == ("wait", "waiting_for_confirmation")


def test_a_confirmation_elsewhere_or_earlier_holds_nobody_here() -> None:
    """At rush hour some car is always in a confirmation. Only a plug-in that car could
    belong to waits for it: not one at another site, nor one its plug-in cannot fit in time."""
    elsewhere = Car(7, True, s(5), s(-30), s(5), *SITE_B, in_confirmation=True)
    assert relate(plug(1), elsewhere, window=W) == ("excluded", "elsewhere")
    long_before = Car(8, True, s(5), s(-400), s(-300), *NEXT_TO_A, in_confirmation=True)
    assert relate(plug(1), long_before, window=W) == ("excluded", "plugged_in_long_before")
    later = Car(9, True, s(300), s(300), s(300), *NEXT_TO_A, in_confirmation=True)
    assert relate(plug(1), later, window=W) == ("excluded", "plugged_in_later")
    # Many plug-ins across the city, three cars held: each plug-in is decided on its own car.
    plugs = [plug(n) for n in range(1, 6)]
    cars = [elsewhere, long_before, later]
    cars += [Car(20 + n, True, s(5), s(-30), s(5), *NEXT_TO_A) for n in range(1, 6)]
    decisions = run(plugs, cars, now=500)
    assert {d.outcome for d in decisions.values()} == {"confirm"}  # five alike, one site
    assert all(d.reason != "waiting_for_confirmation" for d in decisions.values())


def test_charger_without_location_with_one_car_in_the_fleet_is_matched_by_time() -> None:
    decision = run([plug(1, where=None)], [car(7, where=SITE_B)])[1]
    assert decision.vehicle_id == 7


def test_charger_without_location_never_takes_the_only_plugged_car_when_others_fit_in_time() -> (
    None
):
    decision = run([plug(1, where=None)], [car(7, where=SITE_A), car(8, where=SITE_B)])[1]
    assert decision.outcome == "confirm" and decision.candidates == (7, 8)


def test_charger_without_location_ignores_cars_plugged_in_long_before() -> None:
    old = car(8, where=SITE_B, unplugged=-4000, plugged_at=-3600, data=5)
    decision = run([plug(1, where=None)], [car(7, where=SITE_A), old])[1]
    assert decision.vehicle_id == 7


def test_slow_car_cloud_waits_then_confirms_rather_than_guessing() -> None:
    fresh, slow = car(7), car(8, plugged=False, data=-30, unplugged=-30)
    within = run([plug(1)], [fresh, slow], now=30)[1]
    assert within.outcome == "wait" and within.undetermined == (8,)
    after = run([plug(1)], [fresh, slow], now=200)[1]
    assert after.outcome == "confirm" and after.reason == "car_data_missing"
    assert after.candidates == (7,)


def test_slow_cloud_without_any_candidate_keeps_waiting() -> None:
    decision = run([plug(1)], [car(8, plugged=False, data=-30, unplugged=-30)], now=500)[1]
    assert decision.outcome == "wait"


def test_slow_cloud_of_a_car_elsewhere_does_not_delay_another_site() -> None:
    slow_far = car(8, plugged=False, data=-30, unplugged=-30, where=SITE_B)
    decision = run([plug(1, where=SITE_A)], [car(7), slow_far])[1]
    assert decision.vehicle_id == 7


def test_decisions_do_not_depend_on_input_order() -> None:
    plugs = [plug(1, at=0), plug(2, at=1, where=SITE_B), plug(3, at=2)]
    cars = [car(7), car(8, where=SITE_B), car(9), car(10, plugged=False, data=9, unplugged=9)]
    forward = run(plugs, cars)
    backward = run(plugs[::-1], cars[::-1])
    assert forward == backward
    assert forward[2].vehicle_id == 8
    assert forward[1].group == forward[3].group == (1, 3)


def test_repeated_plug_in_ids_are_refused() -> None:
    with pytest.raises(ValueError, match="repeat"):
        run([plug(1), plug(1)], [])


def test_no_car_is_ever_matched_to_two_plug_ins() -> None:
    # Exhaustive over small layouts: every matched car is distinct and a candidate there.
    import itertools

    sites = [SITE_A, SITE_B, None]
    for layout in itertools.product(range(3), repeat=3):
        plugs = [plug(i + 1, at=i, where=sites[w]) for i, w in enumerate(layout)]
        for car_sites in itertools.product(range(2), repeat=3):
            cars = [car(10 + i, where=sites[w]) for i, w in enumerate(car_sites)]
            decisions = run(plugs, cars)
            matched = [d.vehicle_id for d in decisions.values() if d.outcome == "matched"]
            assert len(matched) == len(set(matched))
            for plug_in in plugs:
                d = decisions[plug_in.id]
                if d.outcome == "matched":
                    chosen = next(c for c in cars if c.vehicle_id == d.vehicle_id)
                    assert relate(plug_in, chosen, window=W)[0] == "candidate"
                    rivals = [
                        p
                        for p in plugs
                        if p.id != plug_in.id and relate(p, chosen, window=W)[0] == "candidate"
                    ]
                    assert not rivals


# --- confirmation ---------------------------------------------------------------------------


def test_confirmation_attributes_to_the_one_car_that_turned_to_charging() -> None:
    readings = [ChargingReading(7, False), ChargingReading(8, True), ChargingReading(9, None)]
    assert confirmed_car(readings) == (8, "confirmed")


def test_confirmation_with_several_cars_charging_attributes_to_nobody() -> None:
    readings = [ChargingReading(7, True), ChargingReading(8, True)]
    assert confirmed_car(readings) == (None, "several_charging")


def test_confirmation_with_nobody_charging_keeps_watching() -> None:
    assert confirmed_car([ChargingReading(7, False), ChargingReading(8, None)]) == (
        None,
        "none_charging",
    )


def test_the_cars_left_out_by_latitude_are_exactly_ones_relate_excludes() -> None:
    """A decision weighs only the cars around each charger (``_Nearby``); every car it
    leaves out must be one that ``relate`` would have excluded anyway, right up to the edge
    of the distance, or skipping it could change a decision."""
    import random

    from smartcar_bridge.matching import _Nearby

    rng = random.Random(16)
    # A 3 km city; many cars sit right at 175 m (the limit) from some charger.
    sites = [(52.5 + rng.uniform(0, 0.03), 13.4 + rng.uniform(0, 0.04)) for _ in range(30)]
    cars = []
    for n in range(600):
        lat, lon = rng.choice(sites)
        shift = rng.choice([0.0, 175.0 / 111_195.0, 175.2 / 111_195.0, rng.uniform(-0.01, 0.01)])
        where = None if n % 37 == 0 else (lat + rng.choice([-1, 1]) * shift, lon)
        cars.append(
            Car(
                n,
                rng.choice([True, False, None]),
                s(rng.uniform(-60, 60)),
                latitude=where[0] if where else None,
                longitude=where[1] if where else None,
                claimed=n % 11 == 0,
                in_confirmation=n % 13 == 0,
            )
        )
    plugs = [plug(i, where=rng.choice([*sites, None])) for i in range(40)]
    nearby = _Nearby(cars, 175.0)
    left_out = 0
    for p in plugs:
        weighed = {c.vehicle_id for c in nearby.around(p)}
        for c in cars:
            if c.vehicle_id not in weighed:
                left_out += 1
                assert relate(p, c, window=W)[0] == "excluded", (p, c)
    assert left_out > len(plugs) * len(cars) // 2  # it does leave most pairs out
