"""Normalisation of what real chargers send (csms.ocpp16.normalize), see ocpp-field-notes.md."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from csms.ocpp16.normalize import (
    SampledNumber,
    Timestamp,
    TimestampError,
    coerce,
    identity_from_path,
    normalise_sampled_value,
    parse_meter_wh,
    parse_timestamp,
)

ENERGY = "Energy.Active.Import.Register"


def _utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


# --- parse_timestamp -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-03-01T10:00:00Z", _utc(2024, 3, 1, 10, 0, 0)),
        ("2024-03-01T10:00:00z", _utc(2024, 3, 1, 10, 0, 0)),
        ("2024-03-01T10:00:00+00:00", _utc(2024, 3, 1, 10, 0, 0)),
        ("2024-03-01T10:00:00+01:00", _utc(2024, 3, 1, 9, 0, 0)),
        ("2024-03-01T10:00:00-05:30", _utc(2024, 3, 1, 15, 30, 0)),
        ("2024-03-01T10:00:00+0530", _utc(2024, 3, 1, 4, 30, 0)),
        ("2024-03-01T10:00:00+02", _utc(2024, 3, 1, 8, 0, 0)),
        ("2024-03-01T00:30:00+01:00", _utc(2024, 2, 29, 23, 30, 0)),
        ("2024-03-01 10:00:00Z", _utc(2024, 3, 1, 10, 0, 0)),
        ("2024-03-01T10:00Z", _utc(2024, 3, 1, 10, 0, 0)),
        ("  2024-03-01T10:00:00Z  ", _utc(2024, 3, 1, 10, 0, 0)),
        ("2024-03-01T10:00:00 +01:00", _utc(2024, 3, 1, 9, 0, 0)),
    ],
)
def test_timestamp_with_a_zone_is_converted_to_utc_without_deviation(
    text: str, expected: datetime
) -> None:
    deviations: list[str] = []

    parsed = parse_timestamp(text, deviations)

    assert parsed == Timestamp(expected, clock_suspect=False)
    assert parsed.value.utcoffset().total_seconds() == 0
    assert deviations == []


def test_timestamp_without_a_zone_is_read_as_utc_and_flagged() -> None:
    deviations: list[str] = []

    parsed = parse_timestamp("2024-03-01T10:00:00", deviations)

    assert parsed.value == _utc(2024, 3, 1, 10, 0, 0)
    assert parsed.value.tzinfo is UTC
    assert deviations == ["timestamp_no_zone"]


@pytest.mark.parametrize(
    ("fraction", "micros"),
    [
        ("", 0),
        (".1", 100000),
        (".12", 120000),
        (".123", 123000),
        (".1234", 123400),
        (".12345", 123450),
        (".123456", 123456),
        (",5", 500000),
    ],
)
def test_up_to_six_fractional_digits_are_kept_exactly(fraction: str, micros: int) -> None:
    deviations: list[str] = []

    parsed = parse_timestamp(f"2024-03-01T10:00:00{fraction}Z", deviations)

    assert parsed.value == _utc(2024, 3, 1, 10, 0, 0, micros)
    assert deviations == []


@pytest.mark.parametrize(
    ("fraction", "micros"), [(".1234567", 123456), (".12345678", 123456), (".999999999", 999999)]
)
def test_more_than_six_fractional_digits_are_truncated_and_flagged(
    fraction: str, micros: int
) -> None:
    deviations: list[str] = []

    parsed = parse_timestamp(f"2024-03-01T10:00:00{fraction}+00:00", deviations)

    assert parsed.value == _utc(2024, 3, 1, 10, 0, 0, micros)
    assert deviations == ["timestamp_precision"]


@pytest.mark.parametrize(
    "text",
    [
        "1970-01-01T00:00:00Z",
        "1970-01-01T00:00:12.345Z",
        "2000-01-01T00:00:00Z",
        "2000-01-01T00:05:00",
        "2009-12-31T23:59:59Z",
    ],
)
def test_timestamp_from_a_charger_without_a_clock_is_kept_and_flagged(text: str) -> None:
    deviations: list[str] = []

    parsed = parse_timestamp(text, deviations)

    assert parsed.clock_suspect is True
    assert parsed.value.year in (1970, 2000, 2009)
    assert "clock_not_set" in deviations


def test_timestamp_after_the_clock_floor_is_not_suspect() -> None:
    assert parse_timestamp("2010-01-01T00:00:00Z", []).clock_suspect is False


def test_clock_floor_is_judged_in_utc_after_applying_the_offset() -> None:
    # 2010-01-01 00:30 at +01:00 is still 2009 in UTC.
    assert parse_timestamp("2010-01-01T00:30:00+01:00", []).clock_suspect is True


@pytest.mark.parametrize(
    "text",
    [
        "",
        "garbage",
        "2024-03-01",
        "10:00:00Z",
        "2024/03/01T10:00:00Z",
        "2024-3-1T10:00:00Z",
        "2024-03-01T10Z",
        "2024-13-01T10:00:00Z",
        "2024-02-30T10:00:00Z",
        "2024-03-01T25:00:00Z",
        "2024-03-01T10:61:00Z",
        "2024-03-01T10:00:00 UTC",
        "2024-03-01T10:00:00Z trailing",
        "1709287200",
    ],
)
def test_unreadable_timestamp_raises_timestamp_error(text: str) -> None:
    with pytest.raises(TimestampError):
        parse_timestamp(text, [])


@pytest.mark.parametrize("value", [None, 1709287200, 1709287200.5, ["2024-03-01T10:00:00Z"], {}])
def test_timestamp_that_is_not_a_string_raises_timestamp_error(value: Any) -> None:
    with pytest.raises(TimestampError, match="must be a string"):
        parse_timestamp(value, [])


def test_timestamp_error_is_a_value_error() -> None:
    assert issubclass(TimestampError, ValueError)


@pytest.mark.parametrize("text", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
def test_timestamp_that_overflows_when_converted_to_utc_raises_timestamp_error(
    text: str,
) -> None:
    with pytest.raises(TimestampError):
        parse_timestamp(text, [])


# --- parse_meter_wh ------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [0, 1234, 987654321, -5])
def test_integer_meter_reading_is_returned_as_is(value: int) -> None:
    deviations: list[str] = []

    assert parse_meter_wh(value, deviations) == value
    assert deviations == []


@pytest.mark.parametrize(
    ("value", "expected"), [(1234.0, 1234), (1234.4, 1234), (1234.6, 1235), (1234.5, 1234)]
)
def test_decimal_meter_reading_is_rounded_and_flagged(value: float, expected: int) -> None:
    deviations: list[str] = []

    assert parse_meter_wh(value, deviations) == expected
    assert deviations == ["meter_decimal"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [("1234", 1234), (" 1234 ", 1234), ("1234.0", 1234), ("1234.6", 1235), ("1e3", 1000)],
)
def test_meter_reading_as_string_is_parsed_and_flagged(value: str, expected: int) -> None:
    deviations: list[str] = []

    result = parse_meter_wh(value, deviations)

    assert result == expected
    assert type(result) is int
    assert deviations == ["number_as_string"]


@pytest.mark.parametrize("value", ["", "lots", "12,5", "0x10"])
def test_meter_reading_string_that_is_not_a_number_raises_value_error(value: str) -> None:
    deviations: list[str] = []

    with pytest.raises(ValueError, match="not a number"):
        parse_meter_wh(value, deviations)
    assert deviations == []


@pytest.mark.parametrize("value", [None, True, False, [1234], {"wh": 1}])
def test_meter_reading_of_another_type_raises_value_error(value: Any) -> None:
    with pytest.raises(ValueError, match="must be a number"):
        parse_meter_wh(value, [])


@pytest.mark.parametrize("value", [float("nan"), "NaN"])
def test_nan_meter_reading_raises_value_error(value: Any) -> None:
    with pytest.raises(ValueError):
        parse_meter_wh(value, [])


@pytest.mark.parametrize("value", [float("inf"), float("-inf"), "Infinity", "sNaN"])
def test_non_finite_meter_reading_raises_value_error(value: Any) -> None:
    with pytest.raises(ValueError):
        parse_meter_wh(value, [])


# --- normalise_sampled_value ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "unit", "measurand", "expected", "deviations"),
    [
        ("12.5", "kWh", ENERGY, SampledNumber(12500.0, "Wh"), ["unit_kWh"]),
        ("12500", "Wh", ENERGY, SampledNumber(12500.0, "Wh"), []),
        ("7.4", "kW", "Power.Active.Import", SampledNumber(7400.0, "W"), ["unit_kW"]),
        ("7400", "W", "Power.Active.Import", SampledNumber(7400.0, "W"), []),
        (
            "2",
            "kvarh",
            "Energy.Reactive.Import.Register",
            SampledNumber(2000.0, "varh"),
            ["unit_kvarh"],
        ),
        ("2", "kvar", "Power.Reactive.Import", SampledNumber(2000.0, "var"), ["unit_kvar"]),
        ("16", "A", "Current.Import", SampledNumber(16.0, "A"), []),
        ("230.1", "V", "Voltage", SampledNumber(230.1, "V"), []),
        ("80", "Percent", "SoC", SampledNumber(80.0, "Percent"), []),
        ("21.5", "Celsius", "Temperature", SampledNumber(21.5, "Celsius"), []),
        ("11", "kVA", "Power.Offered", SampledNumber(11.0, "kVA"), []),
        ("-1.5", "kWh", ENERGY, SampledNumber(-1500.0, "Wh"), ["unit_kWh"]),
    ],
)
def test_sampled_value_is_converted_to_the_canonical_unit(
    raw: str, unit: str, measurand: str, expected: SampledNumber, deviations: list[str]
) -> None:
    recorded: list[str] = []

    assert normalise_sampled_value(raw, unit, measurand, "Raw", recorded) == expected
    assert recorded == deviations


@pytest.mark.parametrize(
    ("unit", "expected"),
    [
        ("kwh", SampledNumber(1500.0, "Wh")),
        ("KWH", SampledNumber(1500.0, "Wh")),
        ("KWh", SampledNumber(1500.0, "Wh")),
        ("wh", SampledNumber(1.5, "Wh")),
        ("WH", SampledNumber(1.5, "Wh")),
        ("KW", SampledNumber(1500.0, "W")),
        ("w", SampledNumber(1.5, "W")),
    ],
)
def test_units_are_matched_case_insensitively(unit: str, expected: SampledNumber) -> None:
    assert normalise_sampled_value("1.5", unit, ENERGY, "Raw", []) == expected


def test_kwh_in_lower_case_is_flagged_with_the_unit_as_sent() -> None:
    deviations: list[str] = []

    normalise_sampled_value("1", "kwh", ENERGY, "Raw", deviations)

    assert deviations == ["unit_kwh"]


@pytest.mark.parametrize(
    ("measurand", "raw", "expected"),
    [
        (ENERGY, "12500", SampledNumber(12500.0, "Wh")),
        ("Energy.Active.Export.Register", "3", SampledNumber(3.0, "Wh")),
        ("Energy.Active.Import.Interval", "250", SampledNumber(250.0, "Wh")),
        ("Power.Active.Import", "7400", SampledNumber(7400.0, "W")),
        ("Power.Offered", "11000", SampledNumber(11000.0, "W")),
        ("Current.Import", "16", SampledNumber(16.0, "A")),
        ("Current.Offered", "32", SampledNumber(32.0, "A")),
        ("Voltage", "230", SampledNumber(230.0, "V")),
        ("SoC", "80", SampledNumber(80.0, "Percent")),
        ("Frequency", "50", SampledNumber(50.0, None)),
        ("Temperature", "21", SampledNumber(21.0, None)),
    ],
)
def test_missing_unit_defaults_by_measurand(
    measurand: str, raw: str, expected: SampledNumber
) -> None:
    deviations: list[str] = []

    assert normalise_sampled_value(raw, None, measurand, "Raw", deviations) == expected
    assert deviations == []


def test_power_factor_without_unit_gets_no_unit() -> None:
    assert normalise_sampled_value("0.95", None, "Power.Factor", "Raw", []) == SampledNumber(
        0.95, None
    )


@pytest.mark.parametrize(
    ("raw", "expected_wh"), [("12.5", 12500.0), ("0.75", 750.0), (12.345, 12345.0)]
)
def test_decimal_energy_register_without_unit_is_read_as_kwh(raw: Any, expected_wh: float) -> None:
    deviations: list[str] = []

    result = normalise_sampled_value(raw, None, ENERGY, "Raw", deviations)

    assert result.unit == "Wh"
    assert result.value == pytest.approx(expected_wh)
    assert deviations == ["energy_kwh_without_unit"]


def test_whole_energy_register_without_unit_is_read_as_wh() -> None:
    deviations: list[str] = []

    assert normalise_sampled_value("12.0", None, ENERGY, "Raw", deviations) == SampledNumber(
        12.0, "Wh"
    )
    assert deviations == []


def test_decimal_energy_interval_without_unit_is_not_read_as_kwh() -> None:
    result = normalise_sampled_value("12.5", None, "Energy.Active.Import.Interval", "Raw", [])

    assert result == SampledNumber(12.5, "Wh")


def test_decimal_energy_with_explicit_wh_unit_is_not_rescaled() -> None:
    deviations: list[str] = []

    assert normalise_sampled_value("12.5", "Wh", ENERGY, "Raw", deviations) == SampledNumber(
        12.5, "Wh"
    )
    assert deviations == []


@pytest.mark.parametrize("raw", [12500, 12.5])
def test_sampled_value_given_as_a_json_number_is_accepted(raw: float) -> None:
    assert normalise_sampled_value(raw, "Wh", ENERGY, "Raw", []).value == float(raw)


def test_signed_data_is_not_read_as_a_number() -> None:
    deviations: list[str] = []

    result = normalise_sampled_value("AQIDBAUG", "Wh", ENERGY, "SignedData", deviations)

    assert result == SampledNumber(None, "Wh")
    assert deviations == []


def test_signed_data_that_looks_numeric_is_still_not_a_number() -> None:
    assert normalise_sampled_value("1234", "kWh", ENERGY, "SignedData", []).value is None


@pytest.mark.parametrize("raw", ["", "n/a", "12,5", "--", None, {"v": 1}])
def test_non_numeric_sampled_value_has_no_number_and_is_flagged(raw: Any) -> None:
    deviations: list[str] = []

    result = normalise_sampled_value(raw, "kWh", ENERGY, "Raw", deviations)

    assert result == SampledNumber(None, "kWh")
    assert deviations == ["sampled_value_not_numeric"]


@pytest.mark.parametrize("raw", ["NaN", "nan", "inf", "-Infinity"])
def test_non_finite_sampled_value_has_no_number_and_is_flagged(raw: str) -> None:
    deviations: list[str] = []

    result = normalise_sampled_value(raw, "Wh", ENERGY, "Raw", deviations)

    assert result.value is None
    assert deviations == ["sampled_value_not_numeric"]


# --- identity_from_path --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "identity"),
    [
        ("/ocpp/CP-001", "CP-001"),
        ("/CP-001", "CP-001"),
        ("CP-001", "CP-001"),
        ("/ocpp/CP-001/", "CP-001"),
        ("/ocpp//CP-001//", "CP-001"),
        ("/ocpp/16/CP-001", "CP-001"),
        ("/ocpp/CP%20001", "CP 001"),
        ("/ocpp/CP%2D001", "CP-001"),
        ("/ocpp/CP%2F001", "CP/001"),
        ("/ocpp/%C3%9Cber-1", "Über-1"),
        ("/ocpp/CP-001?token=abc", "CP-001"),
        ("/ocpp/CP-001/?x=/y/z", "CP-001"),
        ("/ocpp/CP-001#frag", "CP-001"),
        ("/ocpp/", "ocpp"),
    ],
)
def test_identity_is_the_last_path_segment_percent_decoded(path: str, identity: str) -> None:
    assert identity_from_path(path) == identity


@pytest.mark.parametrize("path", ["/", "", "//", "/?id=CP-001", "?CP-001"])
def test_path_without_any_segment_has_no_identity(path: str) -> None:
    assert identity_from_path(path) is None


# --- coerce --------------------------------------------------------------------------------------


INTEGER = {"type": "integer"}
NUMBER = {"type": "number"}
STRING = {"type": "string"}
ENUM = {"type": "string", "enum": ["Available", "Preparing", "Charging"]}


@pytest.mark.parametrize(
    ("schema", "value", "expected", "deviations"),
    [
        (INTEGER, "42", 42, ["number_as_string"]),
        (INTEGER, " -7 ", -7, ["number_as_string"]),
        (INTEGER, "42.6", 43, ["number_as_string"]),
        (INTEGER, 42.4, 42, ["integer_as_decimal"]),
        (INTEGER, 42, 42, []),
        (INTEGER, "forty-two", "forty-two", []),
        (INTEGER, "NaN", "NaN", []),
        (INTEGER, "Infinity", "Infinity", []),
        (INTEGER, None, None, []),
        (INTEGER, True, True, []),
        (NUMBER, "4.5", 4.5, ["number_as_string"]),
        (NUMBER, "four", "four", []),
        (NUMBER, 4.5, 4.5, []),
        (STRING, 12, "12", ["string_as_number"]),
        (STRING, 12.5, "12.5", ["string_as_number"]),
        (STRING, 12.0, "12", ["string_as_number"]),
        (STRING, True, True, []),
        (STRING, None, None, []),
        (STRING, "x", "x", []),
        (ENUM, "Charging", "Charging", []),
        (ENUM, "charging", "Charging", ["enum_case"]),
        (ENUM, " CHARGING ", "Charging", ["enum_case"]),
        (ENUM, "Occupied", "Preparing", ["enum_alias"]),
        (ENUM, "Plugged", "Plugged", []),
        ({}, "anything", "anything", []),
    ],
)
def test_coerce_fixes_known_deviations_of_scalars(
    schema: dict[str, Any], value: Any, expected: Any, deviations: list[str]
) -> None:
    recorded: list[str] = []

    result = coerce(schema, value, recorded)

    assert result == expected
    assert type(result) is type(expected)
    assert recorded == deviations


def test_occupied_alias_needs_preparing_among_the_allowed_values() -> None:
    recorded: list[str] = []

    assert coerce({"type": "string", "enum": ["Idle", "Uploaded"]}, "Occupied", recorded) == (
        "Occupied"
    )
    assert recorded == []


def test_coerce_walks_objects_and_arrays_and_keeps_unknown_keys() -> None:
    schema = {
        "type": "object",
        "properties": {
            "connectorId": INTEGER,
            "samples": {
                "type": "array",
                "items": {"type": "object", "properties": {"value": STRING, "status": ENUM}},
            },
        },
    }
    value = {
        "connectorId": "1",
        "samples": [{"value": 5, "status": "charging", "vendor": 1}, {"value": "6"}],
        "extra": "1",
    }
    recorded: list[str] = []

    result = coerce(schema, value, recorded)

    assert result == {
        "connectorId": 1,
        "samples": [{"value": "5", "status": "Charging", "vendor": 1}, {"value": "6"}],
        "extra": "1",
    }
    assert sorted(recorded) == ["enum_case", "number_as_string", "string_as_number"]
    assert value["connectorId"] == "1"  # the input is not modified


def test_coerce_leaves_a_value_of_the_wrong_container_type_alone() -> None:
    schema = {"type": "object", "properties": {"a": INTEGER}}

    assert coerce(schema, ["1"], []) == ["1"]
    assert coerce({"type": "array", "items": INTEGER}, {"a": "1"}, []) == {"a": "1"}
