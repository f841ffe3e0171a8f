"""Request validation (csms.ocpp16.validation): strict where it matters, lenient to the field."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from ocpp.exceptions import (
    OCPPError,
    PropertyConstraintViolationError,
    TypeConstraintViolationError,
)

from csms.ocpp16.validation import (
    HARD_MAX_LENGTH,
    load_schema,
    relax,
    schema_for,
    validate_request,
)

TIMESTAMP = "2024-03-01T10:00:00Z"

VALID: dict[str, dict[str, Any]] = {
    "BootNotification": {
        "chargePointVendor": "VendorX",
        "chargePointModel": "Wallbox 22",
        "chargePointSerialNumber": "SN-0001",
        "chargeBoxSerialNumber": "CB-0001",
        "firmwareVersion": "1.2.3",
        "iccid": "8931440400000000000",
        "imsi": "240010000000000",
        "meterType": "EM340",
        "meterSerialNumber": "M-0001",
    },
    "Heartbeat": {},
    "StatusNotification": {
        "connectorId": 1,
        "errorCode": "NoError",
        "status": "Available",
        "info": "ok",
        "timestamp": TIMESTAMP,
        "vendorId": "com.vendor",
        "vendorErrorCode": "E0",
    },
    "Authorize": {"idTag": "04A23BC1"},
    "StartTransaction": {
        "connectorId": 1,
        "idTag": "04A23BC1",
        "meterStart": 1234,
        "reservationId": 7,
        "timestamp": TIMESTAMP,
    },
    "StopTransaction": {
        "transactionId": 42,
        "idTag": "04A23BC1",
        "meterStop": 5678,
        "timestamp": TIMESTAMP,
        "reason": "EVDisconnected",
        "transactionData": [
            {
                "timestamp": TIMESTAMP,
                "sampledValue": [
                    {"value": "5678", "measurand": "Energy.Active.Import.Register", "unit": "Wh"}
                ],
            }
        ],
    },
    "MeterValues": {
        "connectorId": 1,
        "transactionId": 42,
        "meterValue": [
            {
                "timestamp": TIMESTAMP,
                "sampledValue": [
                    {
                        "value": "12.5",
                        "context": "Sample.Periodic",
                        "format": "Raw",
                        "measurand": "Energy.Active.Import.Register",
                        "phase": "L1",
                        "location": "Outlet",
                        "unit": "kWh",
                    },
                    {"value": "80", "measurand": "SoC", "unit": "Percent", "location": "EV"},
                ],
            }
        ],
    },
    "DataTransfer": {"vendorId": "com.vendor", "messageId": "Plug", "data": '{"a":1}'},
    "DiagnosticsStatusNotification": {"status": "Uploaded"},
    "FirmwareStatusNotification": {"status": "Installed"},
}

MINIMAL: dict[str, dict[str, Any]] = {
    "BootNotification": {"chargePointVendor": "VendorX", "chargePointModel": "Wallbox 22"},
    "Heartbeat": {},
    "StatusNotification": {"connectorId": 0, "errorCode": "NoError", "status": "Available"},
    "Authorize": {"idTag": "04A23BC1"},
    "StartTransaction": {
        "connectorId": 1,
        "idTag": "04A23BC1",
        "meterStart": 0,
        "timestamp": TIMESTAMP,
    },
    "StopTransaction": {"transactionId": 42, "meterStop": 5678, "timestamp": TIMESTAMP},
    "MeterValues": {
        "connectorId": 1,
        "meterValue": [{"timestamp": TIMESTAMP, "sampledValue": [{"value": "1"}]}],
    },
    "DataTransfer": {"vendorId": "com.vendor"},
    "DiagnosticsStatusNotification": {"status": "Idle"},
    "FirmwareStatusNotification": {"status": "Idle"},
}

ACTIONS = sorted(VALID)


def _with(action: str, **changes: Any) -> dict[str, Any]:
    payload = copy.deepcopy(VALID[action])
    payload.update(changes)
    return payload


def _without(action: str, field: str) -> dict[str, Any]:
    payload = copy.deepcopy(VALID[action])
    del payload[field]
    return payload


def _meter_values(**sampled: Any) -> dict[str, Any]:
    return {
        "connectorId": 1,
        "meterValue": [{"timestamp": TIMESTAMP, "sampledValue": [sampled]}],
    }


def _error_code(action: str, payload: dict[str, Any]) -> str:
    with pytest.raises(OCPPError) as caught:
        validate_request(action, payload, [])
    return caught.value.code


# --- valid payloads pass unchanged ---------------------------------------------------------------


@pytest.mark.parametrize("action", ACTIONS)
def test_complete_valid_payload_passes_unchanged_without_deviations(action: str) -> None:
    payload = copy.deepcopy(VALID[action])
    deviations: list[str] = []

    result = validate_request(action, payload, deviations)

    assert result == VALID[action]
    assert deviations == []


@pytest.mark.parametrize("action", ACTIONS)
def test_minimal_valid_payload_passes_unchanged_without_deviations(action: str) -> None:
    deviations: list[str] = []

    assert validate_request(action, copy.deepcopy(MINIMAL[action]), deviations) == MINIMAL[action]
    assert deviations == []


@pytest.mark.parametrize(
    "status",
    [
        "Available",
        "Preparing",
        "Charging",
        "SuspendedEVSE",
        "SuspendedEV",
        "Finishing",
        "Reserved",
        "Unavailable",
        "Faulted",
    ],
)
def test_every_1_6_connector_status_is_accepted(status: str) -> None:
    payload = _with("StatusNotification", status=status)

    assert validate_request("StatusNotification", payload, [])["status"] == status


@pytest.mark.parametrize(
    "reason",
    [
        "EmergencyStop",
        "EVDisconnected",
        "HardReset",
        "Local",
        "Other",
        "PowerLoss",
        "Reboot",
        "Remote",
        "SoftReset",
        "UnlockCommand",
        "DeAuthorized",
    ],
)
def test_every_1_6_stop_reason_is_accepted(reason: str) -> None:
    payload = _with("StopTransaction", reason=reason)

    assert validate_request("StopTransaction", payload, [])["reason"] == reason


# --- missing required fields ---------------------------------------------------------------------


REQUIRED = [
    ("BootNotification", "chargePointVendor"),
    ("BootNotification", "chargePointModel"),
    ("StatusNotification", "connectorId"),
    ("StatusNotification", "errorCode"),
    ("StatusNotification", "status"),
    ("Authorize", "idTag"),
    ("StartTransaction", "connectorId"),
    ("StartTransaction", "idTag"),
    ("StartTransaction", "meterStart"),
    ("StartTransaction", "timestamp"),
    ("StopTransaction", "transactionId"),
    ("StopTransaction", "meterStop"),
    ("StopTransaction", "timestamp"),
    ("MeterValues", "connectorId"),
    ("MeterValues", "meterValue"),
    ("DataTransfer", "vendorId"),
    ("DiagnosticsStatusNotification", "status"),
    ("FirmwareStatusNotification", "status"),
]


@pytest.mark.parametrize(("action", "field"), REQUIRED)
def test_missing_required_field_is_an_occurrence_constraint_violation(
    action: str, field: str
) -> None:
    assert _error_code(action, _without(action, field)) == "OccurenceConstraintViolation"


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param({"connectorId": 1, "meterValue": []}, id="no-meter-value"),
        pytest.param(
            {"connectorId": 1, "meterValue": [{"timestamp": TIMESTAMP, "sampledValue": []}]},
            id="no-sampled-value",
        ),
        pytest.param(
            {"connectorId": 1, "meterValue": [{"sampledValue": [{"value": "1"}]}]},
            id="meter-value-without-timestamp",
        ),
        pytest.param(_meter_values(unit="Wh"), id="sampled-value-without-value"),
    ],
)
def test_meter_values_with_missing_parts_are_an_occurrence_constraint_violation(
    payload: dict[str, Any],
) -> None:
    assert _error_code("MeterValues", payload) == "OccurenceConstraintViolation"


def test_stop_transaction_data_without_sampled_value_is_an_occurrence_violation() -> None:
    payload = _with("StopTransaction", transactionData=[{"timestamp": TIMESTAMP}])

    assert _error_code("StopTransaction", payload) == "OccurenceConstraintViolation"


def test_missing_required_field_is_not_fixed_by_coercing_other_fields() -> None:
    payload = {"connectorId": "1", "errorCode": "noerror"}  # status missing

    assert _error_code("StatusNotification", payload) == "OccurenceConstraintViolation"


# --- wrong types ---------------------------------------------------------------------------------


WRONG_TYPE = [
    ("BootNotification", {"chargePointVendor": {"name": "VendorX"}}),
    ("BootNotification", {"chargePointModel": ["Wallbox"]}),
    ("BootNotification", {"chargePointVendor": True}),
    ("BootNotification", {"firmwareVersion": None}),
    ("StatusNotification", {"connectorId": "one"}),
    ("StatusNotification", {"connectorId": None}),
    ("StatusNotification", {"connectorId": [1]}),
    ("Authorize", {"idTag": None}),
    ("Authorize", {"idTag": {"uid": "04A23BC1"}}),
    ("StartTransaction", {"meterStart": "lots"}),
    ("StartTransaction", {"meterStart": True}),
    ("StartTransaction", {"connectorId": "first"}),
    ("StartTransaction", {"reservationId": {}}),
    ("StopTransaction", {"transactionId": "abc"}),
    ("StopTransaction", {"meterStop": [5678]}),
    ("StopTransaction", {"transactionData": {"timestamp": TIMESTAMP}}),
    ("MeterValues", {"meterValue": {"timestamp": TIMESTAMP}}),
    ("MeterValues", {"transactionId": "tx-1"}),
    ("DataTransfer", {"vendorId": None}),
    ("DataTransfer", {"messageId": ["Plug"]}),
    ("DiagnosticsStatusNotification", {"status": None}),
    ("FirmwareStatusNotification", {"status": False}),
]


@pytest.mark.parametrize(("action", "changes"), WRONG_TYPE)
def test_field_of_the_wrong_type_is_a_type_constraint_violation(
    action: str, changes: dict[str, Any]
) -> None:
    assert _error_code(action, _with(action, **changes)) == "TypeConstraintViolation"


@pytest.mark.parametrize(
    ("action", "changes"),
    [
        ("StatusNotification", {"status": 3}),
        ("StatusNotification", {"errorCode": 0}),
        ("StopTransaction", {"reason": 1}),
        ("FirmwareStatusNotification", {"status": 2.5}),
    ],
)
def test_number_in_an_enum_field_is_a_type_constraint_violation(
    action: str, changes: dict[str, Any]
) -> None:
    deviations: list[str] = []

    with pytest.raises(OCPPError) as caught:
        validate_request(action, _with(action, **changes), deviations)

    assert caught.value.code == "TypeConstraintViolation"
    assert deviations == []


def test_timestamp_as_a_number_passes_validation_as_a_string_for_the_parser_to_judge() -> None:
    deviations: list[str] = []

    result = validate_request(
        "StatusNotification", _with("StatusNotification", timestamp=1709287200), deviations
    )

    assert result["timestamp"] == "1709287200"
    assert deviations == ["string_as_number"]


def test_sampled_value_that_is_an_object_is_a_type_constraint_violation() -> None:
    assert _error_code("MeterValues", _meter_values(value={"v": 1})) == "TypeConstraintViolation"


def test_type_error_details_name_the_field() -> None:
    with pytest.raises(TypeConstraintViolationError) as caught:
        validate_request("StartTransaction", _with("StartTransaction", meterStart="lots"), [])

    assert caught.value.details == {"field": "meterStart"}


def test_failed_validation_leaves_the_payload_untouched() -> None:
    payload = _with("StatusNotification", connectorId="1", status="Unknown")
    original = copy.deepcopy(payload)

    with pytest.raises(OCPPError):
        validate_request("StatusNotification", payload, [])

    assert payload == original


# --- bad values ----------------------------------------------------------------------------------


BAD_VALUE = [
    ("StatusNotification", {"status": "Plugged"}),
    ("StatusNotification", {"status": "Occupied-ish"}),
    ("StatusNotification", {"errorCode": "Meltdown"}),
    ("StopTransaction", {"reason": "Bored"}),
    ("DiagnosticsStatusNotification", {"status": "Done"}),
    ("FirmwareStatusNotification", {"status": "Flashing"}),
    ("BootNotification", {"chargePointVendor": "V" * (HARD_MAX_LENGTH + 1)}),
    ("StatusNotification", {"info": "i" * (HARD_MAX_LENGTH + 1)}),
    ("Authorize", {"idTag": "X" * (HARD_MAX_LENGTH + 1)}),
]

TOO_LONG = [
    ("BootNotification", {"chargePointVendor": "V" * 21}),
    ("BootNotification", {"chargePointModel": "M" * 21}),
    ("BootNotification", {"chargePointSerialNumber": "S" * 26}),
    ("BootNotification", {"chargeBoxSerialNumber": "C" * 40}),
    ("BootNotification", {"firmwareVersion": "F" * 51}),
    ("BootNotification", {"iccid": "1" * 21}),
    ("StatusNotification", {"info": "i" * 51}),
    ("StatusNotification", {"vendorErrorCode": "e" * 51}),
    ("DataTransfer", {"vendorId": "v" * 256}),
    ("DataTransfer", {"messageId": "m" * 51}),
    ("Authorize", {"idTag": "X" * 256}),
    ("StartTransaction", {"idTag": "X" * HARD_MAX_LENGTH}),
]


@pytest.mark.parametrize(("action", "changes"), TOO_LONG)
def test_string_over_its_cistring_maximum_is_kept_in_full_and_reported(
    action: str, changes: dict[str, Any]
) -> None:
    deviations: list[str] = []

    result = validate_request(action, _with(action, **changes), deviations)

    assert result == _with(action, **changes)
    assert deviations == ["string_too_long"]


def test_string_within_its_maximum_is_not_reported() -> None:
    deviations: list[str] = []

    validate_request("BootNotification", _with("BootNotification", iccid="1" * 20), deviations)

    assert deviations == []


@pytest.mark.parametrize(("action", "changes"), BAD_VALUE)
def test_bad_enum_or_string_over_the_hard_bound_is_a_property_constraint_violation(
    action: str, changes: dict[str, Any]
) -> None:
    assert _error_code(action, _with(action, **changes)) == "PropertyConstraintViolation"


@pytest.mark.parametrize(
    "sampled",
    [
        {"value": "1", "measurand": "Energy.Active.Import.Total"},
        {"value": "1", "unit": "MWh"},
        {"value": "1", "context": "Sample.Sometimes"},
        {"value": "1", "phase": "L4"},
        {"value": "1", "location": "Roof"},
        {"value": "1", "format": "Signed"},
    ],
)
def test_unknown_sampled_value_enum_is_a_property_constraint_violation(
    sampled: dict[str, Any],
) -> None:
    assert _error_code("MeterValues", _meter_values(**sampled)) == "PropertyConstraintViolation"


def test_property_error_details_name_the_nested_field() -> None:
    with pytest.raises(PropertyConstraintViolationError) as caught:
        validate_request("MeterValues", _meter_values(value="1", unit="MWh"), [])

    assert caught.value.details == {"field": "meterValue.0.sampledValue.0.unit"}


# --- coercions of what real chargers send --------------------------------------------------------


def test_meter_start_as_string_is_coerced_to_int() -> None:
    deviations: list[str] = []

    result = validate_request(
        "StartTransaction", _with("StartTransaction", meterStart="1234"), deviations
    )

    assert result["meterStart"] == 1234
    assert type(result["meterStart"]) is int
    assert deviations == ["number_as_string"]


def test_meter_start_as_decimal_is_rounded_to_int() -> None:
    deviations: list[str] = []

    result = validate_request(
        "StartTransaction", _with("StartTransaction", meterStart=1234.7), deviations
    )

    assert result["meterStart"] == 1235
    assert deviations == ["integer_as_decimal"]


def test_meter_start_of_half_a_wh_rounds_to_even() -> None:
    result = validate_request("StartTransaction", _with("StartTransaction", meterStart=1234.5), [])

    assert result["meterStart"] == 1234


def test_meter_stop_as_decimal_string_is_coerced_to_int() -> None:
    deviations: list[str] = []

    result = validate_request(
        "StopTransaction", _with("StopTransaction", meterStop=" 5678.0 "), deviations
    )

    assert result["meterStop"] == 5678
    assert deviations == ["number_as_string"]


@pytest.mark.parametrize(
    ("action", "field"),
    [
        ("StatusNotification", "connectorId"),
        ("StartTransaction", "connectorId"),
        ("StartTransaction", "reservationId"),
        ("StopTransaction", "transactionId"),
        ("MeterValues", "connectorId"),
        ("MeterValues", "transactionId"),
    ],
)
def test_integer_ids_as_strings_are_coerced(action: str, field: str) -> None:
    deviations: list[str] = []

    result = validate_request(action, _with(action, **{field: "17"}), deviations)

    assert result[field] == 17
    assert "number_as_string" in deviations


@pytest.mark.parametrize(
    ("value", "expected"),
    [(1234, "1234"), (0, "0"), (12.5, "12.5"), (1234.0, "1234"), (-3, "-3")],
)
def test_sampled_value_as_json_number_is_coerced_to_string(value: Any, expected: str) -> None:
    deviations: list[str] = []

    result = validate_request("MeterValues", _meter_values(value=value), deviations)

    assert result["meterValue"][0]["sampledValue"][0]["value"] == expected
    assert deviations == ["string_as_number"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [(123456.7, 123456.7), (1234567.8, 1234567.8), (98765432.1, 98765432.1)],
)
def test_large_sampled_value_as_json_number_keeps_its_precision(
    value: float, expected: float
) -> None:
    result = validate_request("MeterValues", _meter_values(value=value), [])

    assert float(result["meterValue"][0]["sampledValue"][0]["value"]) == expected


def test_sampled_value_in_stop_transaction_data_as_json_number_is_coerced() -> None:
    payload = _with(
        "StopTransaction",
        transactionData=[{"timestamp": TIMESTAMP, "sampledValue": [{"value": 5678}]}],
    )
    deviations: list[str] = []

    result = validate_request("StopTransaction", payload, deviations)

    assert result["transactionData"][0]["sampledValue"][0]["value"] == "5678"
    assert deviations == ["string_as_number"]


@pytest.mark.parametrize(
    ("action", "field", "sent", "expected"),
    [
        ("StatusNotification", "status", "charging", "Charging"),
        ("StatusNotification", "status", "AVAILABLE", "Available"),
        ("StatusNotification", "status", "suspendedev", "SuspendedEV"),
        ("StatusNotification", "errorCode", "noError", "NoError"),
        ("StopTransaction", "reason", "evdisconnected", "EVDisconnected"),
        ("DiagnosticsStatusNotification", "status", "uploaded", "Uploaded"),
        ("FirmwareStatusNotification", "status", "installed", "Installed"),
    ],
)
def test_enum_in_the_wrong_case_is_mapped_to_the_1_6_spelling(
    action: str, field: str, sent: str, expected: str
) -> None:
    deviations: list[str] = []

    result = validate_request(action, _with(action, **{field: sent}), deviations)

    assert result[field] == expected
    assert deviations == ["enum_case"]


def test_sampled_value_unit_in_the_wrong_case_is_mapped() -> None:
    deviations: list[str] = []

    result = validate_request("MeterValues", _meter_values(value="1", unit="KWH"), deviations)

    assert result["meterValue"][0]["sampledValue"][0]["unit"] == "kWh"
    assert deviations == ["enum_case"]


@pytest.mark.parametrize("sent", ["Occupied", "occupied", "OCCUPIED"])
def test_occupied_status_from_2_0_firmware_is_mapped_to_preparing(sent: str) -> None:
    deviations: list[str] = []

    result = validate_request(
        "StatusNotification", _with("StatusNotification", status=sent), deviations
    )

    assert result["status"] == "Preparing"
    assert deviations == ["enum_alias"]


def test_occupied_is_not_an_alias_outside_connector_status() -> None:
    payload = _with("FirmwareStatusNotification", status="Occupied")

    assert _error_code("FirmwareStatusNotification", payload) == "PropertyConstraintViolation"


def test_several_deviations_in_one_payload_are_all_fixed_and_recorded() -> None:
    payload = {"connectorId": "2", "errorCode": "noerror", "status": "occupied"}
    deviations: list[str] = []

    result = validate_request("StatusNotification", payload, deviations)

    assert result == {"connectorId": 2, "errorCode": "NoError", "status": "Preparing"}
    assert sorted(deviations) == ["enum_alias", "enum_case", "number_as_string"]


def test_coercion_returns_a_new_payload_and_leaves_the_received_one_as_sent() -> None:
    payload = _with("StartTransaction", meterStart="1234")

    result = validate_request("StartTransaction", payload, [])

    assert payload["meterStart"] == "1234"
    assert result is not payload


def test_coercion_that_does_not_fix_everything_still_refuses() -> None:
    payload = _with("StartTransaction", meterStart="1234", connectorId="left")

    assert _error_code("StartTransaction", payload) == "TypeConstraintViolation"


@pytest.mark.parametrize("action", ACTIONS)
def test_extra_vendor_fields_at_the_top_level_are_kept(action: str) -> None:
    payload = _with(action, vendorExtension={"x": 1}, firmwareBuild="abc")
    deviations: list[str] = []

    result = validate_request(action, payload, deviations)

    assert result["vendorExtension"] == {"x": 1}
    assert result["firmwareBuild"] == "abc"
    assert deviations == []


def test_extra_vendor_fields_inside_sampled_values_are_kept() -> None:
    payload = _meter_values(value="1", signedMeterValue="abc", vendorPhaseAngle=12)

    result = validate_request("MeterValues", payload, [])

    sampled = result["meterValue"][0]["sampledValue"][0]
    assert sampled["signedMeterValue"] == "abc"
    assert sampled["vendorPhaseAngle"] == 12


def test_extra_vendor_fields_survive_coercion_of_other_fields() -> None:
    payload = _with("StartTransaction", meterStart="1234", vendorSession={"id": 9})

    result = validate_request("StartTransaction", payload, [])

    assert result["meterStart"] == 1234
    assert result["vendorSession"] == {"id": 9}


@pytest.mark.parametrize("action", ["Authorize", "StartTransaction", "StopTransaction"])
@pytest.mark.parametrize("length", [21, 32, 255])
def test_id_tag_longer_than_20_characters_is_accepted(action: str, length: int) -> None:
    id_tag = "A" * length

    assert validate_request(action, _with(action, idTag=id_tag), [])["idTag"] == id_tag


@pytest.mark.parametrize(
    "timestamp", ["2024-03-01T10:00:00", "2024-03-01 10:00:00+01:00", "1970-01-01T00:00:00Z"]
)
def test_timestamp_in_a_lenient_format_passes_validation(timestamp: str) -> None:
    # Timestamps are parsed leniently later by normalize.parse_timestamp.
    payload = _with("StartTransaction", timestamp=timestamp)

    assert validate_request("StartTransaction", payload, [])["timestamp"] == timestamp


@pytest.mark.parametrize(
    "meter_start",
    [
        pytest.param(float("nan"), id="nan"),
        pytest.param(float("inf"), id="infinity"),
    ],
)
def test_non_finite_meter_start_is_a_type_constraint_violation(meter_start: float) -> None:
    payload = _with("StartTransaction", meterStart=meter_start)

    assert _error_code("StartTransaction", payload) == "TypeConstraintViolation"


# --- schemas -------------------------------------------------------------------------------------


def test_relax_does_not_mutate_the_schema_it_is_given() -> None:
    schema = load_schema("StartTransaction")
    original = copy.deepcopy(schema)

    relaxed = relax(schema)

    assert schema == original
    assert "additionalProperties" not in relaxed
    assert relaxed["properties"]["idTag"]["maxLength"] == HARD_MAX_LENGTH


def test_relaxing_leaves_the_cached_strict_schema_strict() -> None:
    strict_before = copy.deepcopy(schema_for("MeterValues", relaxed=False))

    schema_for("MeterValues", relaxed=True)
    validate_request("MeterValues", _meter_values(value=1, vendorField=True), [])

    strict = schema_for("MeterValues", relaxed=False)
    assert strict == strict_before
    assert strict["additionalProperties"] is False
    sampled = strict["properties"]["meterValue"]["items"]["properties"]["sampledValue"]
    assert sampled["items"]["additionalProperties"] is False


def test_relaxed_schema_drops_formats_and_additional_properties_at_every_level() -> None:
    relaxed = schema_for("StopTransaction", relaxed=True)

    assert "additionalProperties" not in relaxed
    assert "format" not in relaxed["properties"]["timestamp"]
    item = relaxed["properties"]["transactionData"]["items"]
    assert "additionalProperties" not in item
    assert "additionalProperties" not in item["properties"]["sampledValue"]["items"]


def test_relaxed_schema_bounds_strings_by_the_hard_limit_and_keeps_longer_ones() -> None:
    relaxed = schema_for("BootNotification", relaxed=True)

    assert relaxed["properties"]["chargePointVendor"]["maxLength"] == HARD_MAX_LENGTH
    assert relaxed["required"] == ["chargePointVendor", "chargePointModel"]
    csr = schema_for("SignCertificate", relaxed=True)["properties"]["csr"]
    assert csr["maxLength"] == load_schema("SignCertificate")["properties"]["csr"]["maxLength"]


@pytest.mark.parametrize(
    ("action", "connector_id"),
    [
        ("StartTransaction", 0),
        ("StartTransaction", -1),
        ("StatusNotification", -1),
        ("MeterValues", -1),
        ("MeterValues", "-3"),
    ],
)
def test_connector_id_outside_what_1_6_allows_is_a_property_constraint_violation(
    action: str, connector_id: Any
) -> None:
    with pytest.raises(PropertyConstraintViolationError) as caught:
        validate_request(action, _with(action, connectorId=connector_id), [])

    assert caught.value.details == {"field": "connectorId"}


@pytest.mark.parametrize("action", ["StatusNotification", "MeterValues"])
def test_connector_zero_is_the_charger_itself_and_allowed(action: str) -> None:
    assert validate_request(action, _with(action, connectorId=0), [])["connectorId"] == 0


UNHOLDABLE = [
    ("Authorize", {"idTag": "AB\x00CD"}, "idTag", "NUL"),
    ("Authorize", {"idTag": "AB\ud800"}, "idTag", "surrogate"),
    ("BootNotification", {"firmwareVersion": "\udfff1.2"}, "firmwareVersion", "surrogate"),
    ("StartTransaction", {"vendorData": {"k": [1.0, float("inf")]}}, "vendorData.k.1", "finite"),
    ("StartTransaction", {"vendorData": {"k\x00": 1}}, "vendorData.k\x00", "NUL"),
    ("DataTransfer", {"data": "x\x00"}, "data", "NUL"),
    ("StopTransaction", {"reasonText": float("-inf")}, "reasonText", "finite"),
]


@pytest.mark.parametrize(("action", "changes", "field", "word"), UNHOLDABLE)
def test_value_postgresql_cannot_hold_is_refused_naming_the_field(
    action: str, changes: dict[str, Any], field: str, word: str
) -> None:
    with pytest.raises(PropertyConstraintViolationError) as caught:
        validate_request(action, _with(action, **changes), [], screen=True)

    assert caught.value.details == {"field": field}
    assert word in caught.value.description


def test_number_as_string_that_overflows_once_coerced_is_refused_unscreened() -> None:
    payload = _with("StartTransaction", vendorData={"k": 1}, meterStart="1e400")

    with pytest.raises(OCPPError):
        validate_request("StartTransaction", payload, [])


def test_unholdable_sampled_value_is_refused_naming_its_place() -> None:
    payload = _meter_values(value="12\x00")

    with pytest.raises(PropertyConstraintViolationError) as caught:
        validate_request("MeterValues", payload, [], screen=True)

    assert caught.value.details == {"field": "meterValue.0.sampledValue.0.value"}


def test_characters_outside_the_bmp_and_literal_escapes_are_holdable() -> None:
    # Screened as suspicious (a surrogate pair once encoded, a backslash-u), then cleared.
    payload = _with("DataTransfer", data="car \U0001f697 \\u0000 Infinity")

    assert validate_request("DataTransfer", payload, [], screen=True) == payload
