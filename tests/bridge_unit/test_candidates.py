"""Pure: which cars a plug-in decision may spend Smartcar calls on, and the SoC predicted
from the charger's meter (issue 16)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from smartcar_bridge.candidates import Known, affordable_reads, groups, select, silence_data_at
from smartcar_bridge.matching import PlugIn
from smartcar_bridge.targets import (
    predicted_soc_percent,
    prediction_margin,
    seconds_until_confirm,
)

AT = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
NOW = AT + timedelta(seconds=5)
SITE = (48.137, 11.575)  # Munich
FAR = (52.520, 13.405)  # Berlin, 500 km away
WEEK = timedelta(days=7)


def plug(n: int = 1, where: tuple[float, float] | None = SITE) -> PlugIn:
    lat, lon = where if where is not None else (None, None)
    return PlugIn(n, f"CP{n}", 1, AT, lat, lon)


def car(
    n: int,
    where: tuple[float, float] | None = None,
    located: datetime | None = None,
    webhook: datetime | None = None,
) -> Known:
    lat, lon = where if where is not None else (None, None)
    return Known(n, lat, lon, located, webhook)


def test_cars_watched_by_webhooks_are_never_read() -> None:
    cars = [car(n, webhook=AT - timedelta(minutes=n)) for n in range(1, 1001)]
    chosen = select(cars, [plug()], NOW, budget=2, webhook_fresh=WEEK)
    assert len(chosen.watched) == 1000
    assert chosen.read == ()


def test_reads_per_decision_do_not_grow_with_the_fleet() -> None:
    for fleet in (10, 100, 1000, 10_000):
        cars = [car(n) for n in range(fleet)]
        chosen = select(cars, [plug()], NOW, budget=2, webhook_fresh=WEEK)
        assert len(chosen.read) == 2, fleet
        assert len(chosen.skipped) == fleet - 2


def test_a_car_known_to_be_elsewhere_is_not_read() -> None:
    cars = [car(1, FAR, AT - timedelta(minutes=2)), car(2, SITE, AT - timedelta(minutes=1))]
    chosen = select(cars, [plug()], NOW, budget=2, webhook_fresh=WEEK)
    assert chosen.read == (2,)
    assert chosen.skipped == (1,)


def test_evidence_ranks_near_then_unknown_then_long_ago() -> None:
    cars = [
        car(1, FAR, AT - timedelta(hours=5)),  # far, but long ago: may have driven here
        car(2),  # nowhere known
        car(3, (48.1375, 11.5755), AT - timedelta(minutes=3)),  # 60 m away, recently
        car(4, FAR, AT - timedelta(hours=9)),  # older still
    ]
    chosen = select(cars, [plug()], NOW, budget=4, webhook_fresh=WEEK)
    assert chosen.read == (3, 2, 4, 1)


def test_a_charger_without_a_location_rules_nobody_out_by_place() -> None:
    cars = [car(1, FAR, AT - timedelta(minutes=1))]
    chosen = select(cars, [plug(where=None)], NOW, budget=1, webhook_fresh=WEEK)
    assert chosen.read == (1,)


def test_cars_already_paid_for_cost_no_more_budget() -> None:
    cars = [car(n) for n in range(1, 6)]
    first = select(cars, [plug()], NOW, budget=2, webhook_fresh=WEEK)
    again = select(
        cars, [plug()], NOW, budget=2, webhook_fresh=WEEK, already_read=frozenset(first.read)
    )
    assert set(first.read) < set(again.read)
    assert len(again.read) == 4


def test_a_webhook_car_whose_stream_went_quiet_for_long_is_polled() -> None:
    chosen = select(
        [car(1, webhook=AT - timedelta(days=8))], [plug()], NOW, budget=1, webhook_fresh=WEEK
    )
    assert chosen.read == (1,)


def test_silence_after_the_lag_counts_as_recent_data() -> None:
    lag = timedelta(seconds=30)
    assert silence_data_at(None, NOW, lag) == NOW - lag
    old = AT - timedelta(hours=2)
    assert silence_data_at(old, AT + timedelta(seconds=40), lag) == AT + timedelta(seconds=10)
    fresh = NOW - timedelta(seconds=1)
    assert silence_data_at(fresh, NOW, lag) == fresh


def test_predicted_soc_follows_the_meter() -> None:
    # 20 % of a 60 kWh battery at 90 % efficiency needs 13.33 kWh from the grid.
    assert predicted_soc_percent(
        start_soc_percent=30.0, energy_wh=13_333, battery_capacity_wh=60_000
    ) == pytest.approx(50.0, abs=0.01)
    assert (
        predicted_soc_percent(start_soc_percent=30.0, energy_wh=None, battery_capacity_wh=60_000)
        is None
    )
    assert (
        predicted_soc_percent(start_soc_percent=30.0, energy_wh=10, battery_capacity_wh=None)
        is None
    )


def test_margin_grows_with_the_predicted_gain() -> None:
    assert prediction_margin(30.0, 30.0) == pytest.approx(2.0)
    assert prediction_margin(30.0, 70.0) == pytest.approx(6.0)


def test_time_until_a_confirming_read_at_the_present_power() -> None:
    # 11 kW into 60 kWh at 90 %: 10 points take 60,000 * 0.1 / 9,900 h = 36.4 min.
    seconds = seconds_until_confirm(
        predicted_soc_percent=62.0,
        margin=8.0,
        target_soc_percent=80,
        power_w=11_000,
        battery_capacity_wh=60_000,
    )
    assert seconds == pytest.approx(60_000 * 0.10 / 9_900 * 3600, rel=1e-6)
    assert (
        seconds_until_confirm(
            predicted_soc_percent=75.0,
            margin=6.0,
            target_soc_percent=80,
            power_w=11_000,
            battery_capacity_wh=60_000,
        )
        == 0.0
    )
    assert (
        seconds_until_confirm(
            predicted_soc_percent=50.0,
            margin=5.0,
            target_soc_percent=80,
            power_w=None,
            battery_capacity_wh=60_000,
        )
        is None
    )


def test_the_nearest_site_is_the_nearest_of_all_of_them() -> None:
    """``Sites`` walks outwards by latitude and stops early; it must find what measuring
    every site would (ties and equal latitudes included)."""
    import random

    from smartcar_bridge.candidates import Sites
    from smartcar_bridge.matching import haversine_m

    rng = random.Random(16)
    points = [(48.1 + rng.uniform(0, 0.2), 11.5 + rng.uniform(0, 0.2)) for _ in range(50)]
    points += [(points[0][0], 11.9), (points[0][0], 11.2)]  # the same latitude as another
    sites = Sites([PlugIn(n, f"CP{n}", 1, AT, lat, lon) for n, (lat, lon) in enumerate(points)])
    for _ in range(2_000):
        lat, lon = 48.0 + rng.uniform(0, 0.4), 11.4 + rng.uniform(0, 0.4)
        brute = min(haversine_m(lat, lon, a, b) for a, b in points)
        assert sites.nearest_m(lat, lon) == pytest.approx(brute, abs=1e-6)
    assert sites.nearest_m(None, 11.5) is None
    assert Sites([plug(1), plug(2, where=None)]).nearest_m(48.1, 11.5) is None
    assert Sites([]).nearest_m(48.1, 11.5) is None


@pytest.mark.parametrize(
    ("spent", "read_cars", "expected"),
    [
        (0, 0, 4),  # a first round reads the whole read budget
        (2, 2, 1),  # a re-read of two cars keeps a confirmation read for each: 2 + 1 + 2
        (4, 4, 0),
        (1, 1, 3),
        (3, 1, 1),
    ],
)
def test_re_reads_keep_a_confirmation_read_per_car_within_the_call_budget(
    spent: int, read_cars: int, expected: int
) -> None:
    assert affordable_reads(4, 5, spent=spent, read_cars=read_cars) == expected
    assert spent == 0 or expected == 0 or spent + expected + read_cars <= 5


def test_a_read_budget_beyond_the_call_budget_keeps_no_reserve() -> None:
    assert affordable_reads(50, 5, spent=12, read_cars=12) == 38


NEAR_SITE = (48.139, 11.577)  # a few hundred metres from SITE
RECENT = AT - timedelta(minutes=2)


def _ids(grouped: dict[int, tuple[PlugIn, ...]]) -> dict[int, list[int]]:
    return {n: [p.id for p in group] for n, group in grouped.items()}


def test_plug_ins_at_sites_no_car_can_share_are_separate_groups() -> None:
    plugs = [plug(1), plug(2, FAR), plug(3, NEAR_SITE)]
    cars = [car(1, SITE, RECENT), car(2, FAR, RECENT), car(3, NEAR_SITE, webhook=RECENT)]
    grouped = groups(cars, plugs, NOW, webhook_fresh=WEEK)
    # Car 1 may be on CP1 or CP3 (both within a kilometre): they share a group, CP2 does not.
    assert _ids(grouped) == {1: [1, 3], 2: [2], 3: [1, 3]}


def test_a_car_that_may_be_anywhere_joins_every_plug_in() -> None:
    plugs = [plug(1), plug(2, FAR)]
    for anywhere in (
        car(9),  # never located
        car(9, FAR, AT - timedelta(hours=2)),  # located long ago: it may have driven
    ):
        grouped = groups([car(1, SITE, RECENT), anywhere], plugs, NOW, webhook_fresh=WEEK)
        assert _ids(grouped) == {1: [1, 2], 2: [1, 2]}
    # A charger without a location may have any car on it.
    grouped = groups([car(1, SITE, RECENT)], [plug(1), plug(2, None)], NOW, webhook_fresh=WEEK)
    assert _ids(grouped) == {1: [1, 2], 2: [1, 2]}


def test_groups_link_transitively_and_agree_with_measuring_every_pair() -> None:
    """The latitude band only saves work: what it finds is what measuring every car against
    every plug-in finds, chains of shared cars included."""
    import random

    from smartcar_bridge.matching import haversine_m

    rng = random.Random(5)
    for _ in range(200):
        plugs = [
            plug(n, (48.1 + rng.uniform(0, 0.05), 11.5 + rng.uniform(0, 0.05)))
            for n in range(1, rng.randint(2, 12))
        ]
        cars = [
            car(n, (48.1 + rng.uniform(0, 0.05), 11.5 + rng.uniform(0, 0.05)), RECENT)
            for n in range(rng.randint(0, 12))
        ]
        grouped = groups(cars, plugs, NOW, webhook_fresh=WEEK)
        # Brute force: a plug-in's group is what is reachable through shared cars.
        links = {p.id: {p.id} for p in plugs}
        for c in cars:
            assert c.latitude is not None and c.longitude is not None
            near = {
                p.id
                for p in plugs
                if haversine_m(c.latitude, c.longitude, p.latitude or 0, p.longitude or 0) <= 1_000
            }
            for n in near:
                links[n] |= near
        for p in plugs:
            reach, frontier = {p.id}, [p.id]
            while frontier:
                for other in links[frontier.pop()] - reach:
                    reach.add(other)
                    frontier.append(other)
            assert [q.id for q in grouped[p.id]] == sorted(reach)


def test_a_group_ranking_leaves_out_the_cars_of_another_group() -> None:
    plugs = [plug(1), plug(2, FAR)]
    cars = [car(1, SITE, RECENT), car(2, FAR, RECENT)]
    grouped = groups(cars, plugs, NOW, webhook_fresh=WEEK)
    assert select(cars, list(grouped[1]), NOW, budget=4, webhook_fresh=WEEK).read == (1,)
    assert select(cars, plugs, NOW, budget=4, webhook_fresh=WEEK).read == (1, 2)
