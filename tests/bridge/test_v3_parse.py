"""Pure v3 parsing: both forms of every unconfirmed fact (smartcar-api.md §14) are read."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from smartcar_bridge.errors import UpstreamError, VehicleStateError
from smartcar_bridge.responses import Meta
from smartcar_bridge.v3 import choices, parse

META = Meta("req-1", datetime(2026, 12, 1, tzinfo=UTC))


@pytest.mark.parametrize(
    "value", [1696156800, 1696156800000, "2023-10-01T10:40:00Z", "2023-10-01T10:40:00+00:00"]
)
def test_timestamps_in_seconds_milliseconds_or_iso_are_the_same_moment(value: object) -> None:
    assert choices.moment(value) == datetime(2023, 10, 1, 10, 40, tzinfo=UTC)


def test_junk_timestamps_are_none() -> None:
    assert [choices.moment(v) for v in (None, True, "soon", {})] == [None] * 4


def _signal(code: str, body: dict | None, **status: object) -> dict:
    attributes = {"code": code, "status": {"value": "SUCCESS", **status}}
    if body is not None:
        attributes["body"] = body
    return {"id": code, "type": "signal", "attributes": attributes,
            "meta": {"oemUpdatedAt": 1696156799000, "retrievedAt": 1696156800}}  # fmt: skip


def test_a_signal_reads_with_or_without_the_data_wrapper() -> None:
    raw = _signal("tractionbattery-stateofcharge", {"unit": "percent", "value": 61.5})
    for body in (raw, {"data": raw}):
        found = parse.signal(body)
        assert (found.code, found.ok, found.value) == ("tractionbattery-stateofcharge", True, 61.5)
        assert found.oem_updated_at == datetime(2023, 10, 1, 10, 39, 59, tzinfo=UTC)


def test_battery_is_kept_as_a_fraction_and_a_failed_signal_is_not_a_reading() -> None:
    soc = parse.signal(_signal(choices.SOC, {"value": 61.5}))
    assert parse.battery({choices.SOC: soc}, META).percent_remaining == pytest.approx(0.615)
    failed = parse.signal(_signal(choices.SOC, None, value="ERROR"))
    with pytest.raises(KeyError):
        parse.battery({choices.SOC: failed}, META)
    with pytest.raises(ValueError):
        parse.battery({choices.SOC: parse.signal(_signal(choices.SOC, {"value": 140}))}, META)


@pytest.mark.parametrize(
    ("charging", "cable", "soc", "limit", "expected"),
    [
        (True, True, 50, 80, (True, "CHARGING")),
        (False, True, 50, 80, (True, "NOT_CHARGING")),
        (False, True, 80, 80, (True, "FULLY_CHARGED")),
        (False, False, 50, 80, (False, "NOT_CHARGING")),
        (True, None, None, None, (True, "CHARGING")),  # no cable signal: charging proves it
        (False, None, None, None, (False, "NOT_CHARGING")),
    ],
)
def test_charge_status_is_derived_from_the_charge_signals(
    charging: bool, cable: bool | None, soc: float | None, limit: float | None,
    expected: tuple[bool, str],
) -> None:  # fmt: skip
    signals = {choices.IS_CHARGING: parse.signal(_signal(choices.IS_CHARGING, {"value": charging}))}
    if cable is not None:
        raw = _signal(choices.CABLE_CONNECTED, {"value": cable})
        signals[choices.CABLE_CONNECTED] = parse.signal(raw)
    if soc is not None:
        signals[choices.SOC] = parse.signal(_signal(choices.SOC, {"value": soc}))
        raw = _signal(choices.CHARGE_LIMITS, {"activeLimit": limit})
        signals[choices.CHARGE_LIMITS] = parse.signal(raw)
    status = parse.charge_status(signals, META)
    assert (status.is_plugged_in, status.state) == expected


@pytest.mark.parametrize(
    ("link", "expected"),
    [
        (
            "/vehicles/v1/signals?page=2&pageSize=10",
            "https://h/v3/vehicles/v1/signals?page=2&pageSize=10",
        ),
        ("/v3/vehicles/v1/signals?pageNumber=2", "https://h/v3/vehicles/v1/signals?pageNumber=2"),
        ("https://other/v3/x?page[number]=2", "https://other/v3/x?page[number]=2"),
        (None, None),
    ],
)
def test_next_links_resolve_whichever_base_they_are_relative_to(
    link: str | None, expected: str | None
) -> None:
    body = {"links": {"next": link, "prev": None}}
    assert choices.next_url(body, "https://h/v3/vehicles/v1/signals") == expected


def test_connections_read_ids_from_attributes_or_relationships() -> None:
    body = {"data": [
        {"id": "c1", "attributes": {"userId": "u1", "vehicleId": "v1"}},
        {"id": "c2", "relationships": {"user": {"data": {"id": "u2"}},
                                       "vehicle": {"data": {"id": "v2"}}}},
        {"id": "v3"},
    ]}  # fmt: skip
    found, _ = parse.connection_page(body, META)
    assert [(c.vehicle_id, c.user_id) for c in found] == [("v1", "u1"), ("v2", "u2"), ("v3", None)]


def test_executions_are_running_until_a_final_status_and_failures_carry_their_error() -> None:
    def body(status: dict) -> dict:
        attributes = {"commandType": "charge-start", "status": status}
        return {"data": {"id": "exec_1", "type": "command-execution", "attributes": attributes}}

    assert parse.execution(body({"value": "PENDING"}), META).state == "running"
    assert parse.execution({"data": {"id": "e", "attributes": {}}}, META).state == "running"
    assert parse.execution(body({"value": "SUCCESS"}), META).state == "succeeded"
    failed = parse.execution(
        body({"value": "FAILURE", "error": {"type": "VEHICLE_STATE", "code": "CHARGE_FAULT"}}),
        META,
    )
    assert failed.state == "failed" and isinstance(failed.error, VehicleStateError)
    assert failed.error.request_id == "req-1"
    upstream = parse.execution(
        body({"value": "FAILED", "error": {"status": "502", "type": "UPSTREAM",
                                           "code": "NO_RESPONSE"}}), META)  # fmt: skip
    assert isinstance(upstream.error, UpstreamError) and upstream.error.retryable
    bare = parse.execution(body({"value": "FAILURE"}), META)
    assert bare.error is not None and bare.error.type == "COMMAND_FAILED"


def test_v3_metric_endpoints_carry_no_ids() -> None:
    from smartcar_bridge.metrics import smartcar_endpoint

    assert smartcar_endpoint("/v3/vehicles/v-1/commands/exec_9f") == (
        "/v3/vehicles/{id}/commands/{execution_id}"
    )
    assert smartcar_endpoint("/v3/connections/v-1") == "/v3/connections/{id}"
    assert smartcar_endpoint("/management/v3/subscriptions/s-1") == (
        "/management/v3/subscriptions/{id}"
    )
