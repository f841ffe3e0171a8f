"""The session state machine: every transition, and nothing moves a session backwards."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from smartcar_bridge.matcher import CarWatch, PlugInterval, cable_event, observe
from smartcar_bridge.session_machine import (
    _TRANSITIONS,
    CHARGING,
    COMPLETED,
    FAILED,
    FINAL,
    MATCHED,
    RECONCILING,
    STARTING,
    STOPPING,
    InvalidTransition,
    applies,
    next_state,
    sources,
)
from smartcar_bridge.webhook_signals import (
    cable_connected,
    is_charging,
    soc_percent,
    soc_reported,
    triggered_by,
)

STATES = (MATCHED, STARTING, CHARGING, STOPPING, RECONCILING, COMPLETED, FAILED)
TRIGGERS = sorted({t for _, t in _TRANSITIONS})
ORDER = {state: n for n, state in enumerate(STATES[:-1])}


def test_the_normal_path_from_match_to_bill() -> None:
    state = MATCHED
    for trigger in (
        "remote_start_sent",
        "transaction_started",
        "stop_requested",
        "transaction_stopped",
        "reconciled",
    ):
        state = next_state(state, trigger)
    assert state == COMPLETED


def test_driver_unplugging_while_charging_goes_straight_to_reconciling() -> None:
    assert next_state(CHARGING, "transaction_stopped") == RECONCILING


@pytest.mark.parametrize(
    ("state", "trigger", "target"),
    [
        (MATCHED, "abandoned", FAILED),
        (MATCHED, "unplugged", FAILED),
        (STARTING, "start_failed", FAILED),
        (STARTING, "unplugged", FAILED),
        (CHARGING, "superseded", FAILED),
        (STOPPING, "superseded", FAILED),
    ],
)
def test_failures(state: str, trigger: str, target: str) -> None:
    assert next_state(state, trigger) == target


@pytest.mark.parametrize(("state", "trigger"), list(itertools.product(STATES, TRIGGERS)))
def test_every_state_and_trigger_is_either_a_transition_or_refused(
    state: str, trigger: str
) -> None:
    if applies(state, trigger):
        target = next_state(state, trigger)
        # Never backwards: a target is final or later in the normal order.
        assert target in FINAL or ORDER[target] > ORDER[state]
        assert state in sources(trigger)
    else:
        with pytest.raises(InvalidTransition) as caught:
            next_state(state, trigger)
        assert (caught.value.state, caught.value.trigger) == (state, trigger)


@pytest.mark.parametrize("state", sorted(FINAL))
def test_final_states_accept_nothing(state: str) -> None:
    assert not any(applies(state, trigger) for trigger in TRIGGERS)


def test_a_duplicate_stop_does_not_apply_twice() -> None:
    state = next_state(CHARGING, "transaction_stopped")
    assert not applies(state, "transaction_stopped")
    assert not applies(next_state(state, "reconciled"), "reconciled")


def test_every_trigger_leads_to_one_state() -> None:
    # session_store.transition relies on it for its single compare-and-set.
    for trigger in TRIGGERS:
        assert len({next_state(s, trigger) for s in sources(trigger)}) == 1


# --- plug intervals (what the car's data says about its own plug-in) ------------------------

T = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)


def at(seconds: int) -> datetime:
    return T + timedelta(seconds=seconds)


def test_unplugged_then_plugged_gives_the_interval_of_the_plug_in() -> None:
    interval = observe(PlugInterval(None, None, None), False, at(10))
    interval = observe(interval, False, at(20))
    interval = observe(interval, True, at(30))
    interval = observe(interval, True, at(40))
    assert interval == PlugInterval(at(20), at(30), at(40))


def test_older_data_never_overrides_newer() -> None:
    interval = observe(PlugInterval(at(20), at(30), at(30)), False, at(25))
    assert interval == PlugInterval(at(20), at(30), at(30))


def test_unplugging_clears_the_plugged_time() -> None:
    assert observe(PlugInterval(at(20), at(30), at(30)), False, at(50)) == PlugInterval(
        at(50), None, at(50)
    )


def test_a_cable_webhook_pins_the_plug_in_to_its_oem_time() -> None:
    assert cable_event(True, at(33)) == PlugInterval(at(33), at(33), at(33))
    assert cable_event(False, at(33)) == PlugInterval(at(33), None, at(33))


def test_webhook_signals_are_read_with_their_oem_time() -> None:
    millis = int(at(12).timestamp() * 1000)
    event = {
        "data": {
            "triggers": [{"code": "charge-ischargingcableconnected"}],
            "signals": [
                {"code": "charge-ischargingcableconnected", "body": {"value": True},
                 "meta": {"oemUpdatedAt": millis}},
                {"code": "charge-ischarging", "body": {"value": False},
                 "meta": {"oemUpdatedAt": millis // 1000}},
                {"code": "tractionbattery-stateofcharge", "body": {"value": 64}},
            ],
        }
    }  # fmt: skip
    assert cable_connected(event) == (True, at(12))
    assert is_charging(event) == (False, at(12))
    assert soc_percent(event) == 64.0
    assert triggered_by(event, "charge-ischargingcableconnected")
    assert not triggered_by(event, "charge-ischarging")


def test_webhook_soc_is_kept_per_car_newest_oem_time_first_whatever_the_arrival() -> None:
    def event(soc: float, second: int) -> dict:
        millis = int(at(second).timestamp() * 1000)
        return {"data": {"signals": [
            {"code": "tractionbattery-stateofcharge", "body": {"value": soc},
             "meta": {"oemUpdatedAt": millis}},
        ]}}  # fmt: skip

    watch = CarWatch(None, None, lambda: at(0), reuse_for=1.0)  # type: ignore[arg-type]
    assert soc_reported(event(64, 12)) == (64.0, at(12))
    assert soc_reported({"data": {"signals": [
        {"code": "tractionbattery-stateofcharge", "body": {"value": 64}}]}}) is None  # fmt: skip
    for soc, second in [(70, 20), (64, 12), (71, 21), (66, 15)]:  # unordered deliveries
        reported = soc_reported(event(soc, second))
        assert reported is not None
        watch.report_soc(1, *reported)
    watch.report_soc(2, 30.0, at(5))
    assert watch.reported_soc(1, since=at(0)) == 71.0
    assert watch.reported_soc(1, since=at(22)) is None  # older than the caller accepts
    assert watch.reported_soc(2, since=at(0)) == 30.0 and watch.reported_soc(3, at(0)) is None


def test_webhook_signal_without_a_time_or_value_is_ignored() -> None:
    event = {"data": {"signals": [{"code": "charge-ischargingcableconnected", "body": {}}]}}
    assert cable_connected(event) is None
    assert soc_percent({"data": {}}) is None
