"""OCPP-J framing (csms.ocppj.framing): text in, typed messages out, and back."""

from __future__ import annotations

import json

import pytest
from ocpp.exceptions import (
    FormationViolationError,
    OccurenceConstraintViolationError,
    ProtocolError,
)

from csms.ocppj.framing import (
    UNKNOWN_MESSAGE_ID,
    Call,
    CallError,
    CallResult,
    MalformedFrame,
    call_frame,
    error_frame,
    parse_frame,
    result_frame,
)


def _malformed(text: str | bytes) -> MalformedFrame:
    with pytest.raises(MalformedFrame) as caught:
        parse_frame(text)
    return caught.value


# --- well-formed frames -------------------------------------------------------------------------


def test_call_is_parsed_into_message_id_action_and_payload() -> None:
    message = parse_frame('[2,"19223201","BootNotification",{"chargePointVendor":"VendorX"}]')

    assert message == Call("19223201", "BootNotification", {"chargePointVendor": "VendorX"})


def test_call_with_empty_payload_is_parsed() -> None:
    assert parse_frame('[2,"1","Heartbeat",{}]') == Call("1", "Heartbeat", {})


def test_call_with_whitespace_between_elements_is_parsed() -> None:
    text = ' [ 2 , "abc" , "Heartbeat" , { } ] \n'

    assert parse_frame(text) == Call("abc", "Heartbeat", {})


def test_call_given_as_utf8_bytes_is_parsed() -> None:
    text = '[2,"m1","DataTransfer",{"vendorId":"Übercharge"}]'

    assert parse_frame(text.encode()) == Call("m1", "DataTransfer", {"vendorId": "Übercharge"})


def test_call_result_is_parsed_into_message_id_and_payload() -> None:
    message = parse_frame('[3,"19223201",{"currentTime":"2013-02-01T20:53:32.486Z"}]')

    assert message == CallResult("19223201", {"currentTime": "2013-02-01T20:53:32.486Z"})


def test_call_result_with_non_object_payload_is_read_as_empty_payload() -> None:
    # A CALLRESULT can never be answered with a CALLERROR (OCPP-J 4.2.3), so keep it usable.
    assert parse_frame('[3,"7",null]') == CallResult("7", {})
    assert parse_frame('[3,"7",[1,2]]') == CallResult("7", {})


def test_call_error_with_details_is_parsed() -> None:
    message = parse_frame(
        '[4,"162376037","NotSupported","SetDisplayMessage not supported",{"a":1}]'
    )

    assert message == CallError(
        "162376037", "NotSupported", "SetDisplayMessage not supported", {"a": 1}
    )


def test_call_error_without_details_element_has_empty_details() -> None:
    assert parse_frame('[4,"9","InternalError","boom"]') == CallError(
        "9", "InternalError", "boom", {}
    )


def test_call_error_with_non_object_details_has_empty_details() -> None:
    assert parse_frame('[4,"9","InternalError","boom","oops"]') == CallError(
        "9", "InternalError", "boom", {}
    )


def test_call_error_with_non_string_code_and_description_is_stringified() -> None:
    assert parse_frame('[4,"9",500,null,{}]') == CallError("9", "500", "None", {})


# --- malformed frames ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message_id"),
    [
        pytest.param('[2,"abc","Heartbeat",{', "abc", id="truncated-call-keeps-id"),
        pytest.param('[2, "abc" ,"Heartbeat", {', "abc", id="spaces-around-id"),
        pytest.param('  [ 2 , "m-1"', "m-1", id="truncated-right-after-id"),
        pytest.param("[2,\"abc\",'Heartbeat',{}]", "abc", id="single-quoted-action"),
        pytest.param('[2,"abc","Heartbeat",{},]', "abc", id="trailing-comma"),
        pytest.param(b'[2,"bytes-id","Heartbeat",{', "bytes-id", id="bytes"),
        pytest.param('[2,"' + "x" * 36 + '",{', "x" * 36, id="id-of-36-chars"),
        pytest.param('[2,"' + "x" * 37 + '",{', UNKNOWN_MESSAGE_ID, id="id-over-36-chars"),
        pytest.param('[2,"",{', UNKNOWN_MESSAGE_ID, id="empty-id"),
        pytest.param('[2,17,"Heartbeat",{', UNKNOWN_MESSAGE_ID, id="numeric-id"),
        pytest.param('{"a":', UNKNOWN_MESSAGE_ID, id="broken-object"),
        pytest.param("", UNKNOWN_MESSAGE_ID, id="empty-text"),
        pytest.param("hello", UNKNOWN_MESSAGE_ID, id="not-json"),
        pytest.param(b"\xff\xfe\x00", UNKNOWN_MESSAGE_ID, id="invalid-utf8"),
    ],
)
def test_invalid_json_is_a_formation_violation_answered_to_the_best_guess_id(
    text: str | bytes, message_id: str
) -> None:
    error = _malformed(text)

    assert error.error.code == "FormationViolation"
    assert isinstance(error.error, FormationViolationError)
    assert error.message_id == message_id


@pytest.mark.parametrize(
    "text",
    [
        pytest.param('{"messageTypeId":2}', id="object"),
        pytest.param('"Heartbeat"', id="string"),
        pytest.param("42", id="number"),
        pytest.param("null", id="null"),
        pytest.param("true", id="bool"),
    ],
)
def test_json_that_is_not_an_array_is_a_protocol_error_to_unknown_id(text: str) -> None:
    error = _malformed(text)

    assert error.error.code == "ProtocolError"
    assert isinstance(error.error, ProtocolError)
    assert error.message_id == UNKNOWN_MESSAGE_ID


@pytest.mark.parametrize(
    ("text", "message_id"),
    [
        pytest.param("[]", UNKNOWN_MESSAGE_ID, id="empty-array"),
        pytest.param("[2]", UNKNOWN_MESSAGE_ID, id="type-only"),
        pytest.param('[2,"abc"]', "abc", id="type-and-id-keeps-id"),
        pytest.param("[2,5]", UNKNOWN_MESSAGE_ID, id="type-and-numeric-id"),
        pytest.param('[2,"abc","Heartbeat"]', "abc", id="call-without-payload"),
        pytest.param('[2,"abc","Heartbeat",{},{}]', "abc", id="call-with-five-elements"),
        pytest.param('[3,"abc",{},{}]', "abc", id="result-with-four-elements"),
        pytest.param('[4,"abc","InternalError"]', "abc", id="error-with-three-elements"),
        pytest.param('[4,"abc","InternalError","x",{},1]', "abc", id="error-with-six-elements"),
    ],
)
def test_array_of_the_wrong_length_is_a_protocol_error(text: str, message_id: str) -> None:
    error = _malformed(text)

    assert error.error.code == "ProtocolError"
    assert error.message_id == message_id


@pytest.mark.parametrize(
    "text",
    [
        pytest.param('[5,"abc","Heartbeat",{}]', id="five"),
        pytest.param('[0,"abc",{}]', id="zero"),
        pytest.param('["2","abc","Heartbeat",{}]', id="type-as-string"),
        pytest.param('[null,"abc",{}]', id="null"),
    ],
)
def test_unknown_message_type_is_a_protocol_error_to_its_message_id(text: str) -> None:
    error = _malformed(text)

    assert error.error.code == "ProtocolError"
    assert error.message_id == "abc"


@pytest.mark.parametrize(
    "text",
    [
        pytest.param('[2,"","Heartbeat",{}]', id="empty-string"),
        pytest.param('[2,123,"Heartbeat",{}]', id="number"),
        pytest.param('[2,null,"Heartbeat",{}]', id="null"),
        pytest.param('[2,["x"],"Heartbeat",{}]', id="array"),
        pytest.param('[3,{"id":1},{}]', id="object-in-result"),
    ],
)
def test_bad_message_id_is_a_protocol_error_to_unknown_id(text: str) -> None:
    error = _malformed(text)

    assert error.error.code == "ProtocolError"
    assert error.message_id == UNKNOWN_MESSAGE_ID


def test_call_with_non_string_action_is_a_protocol_error_to_its_message_id() -> None:
    error = _malformed('[2,"abc",42,{}]')

    assert error.error.code == "ProtocolError"
    assert error.message_id == "abc"


@pytest.mark.parametrize("payload", ["[]", '"x"', "1", "null", "true"])
def test_call_with_non_object_payload_is_a_formation_violation(payload: str) -> None:
    error = _malformed(f'[2,"abc","Heartbeat",{payload}]')

    assert error.error.code == "FormationViolation"
    assert error.message_id == "abc"


def test_malformed_frame_message_is_the_error_description() -> None:
    error = _malformed("[2]")

    assert str(error) == error.error.description
    assert error.error.description


@pytest.mark.parametrize(
    ("text", "message_id"),
    [
        pytest.param(r'[2,"a\"b","Heartbeat",{', 'a"b', id="escaped-quote"),
        pytest.param(r'[2,"\u00e9t\u00e9","Heartbeat",{', "été", id="unicode-escape"),
    ],
)
def test_recovered_message_id_has_its_json_escapes_decoded(text: str, message_id: str) -> None:
    assert _malformed(text).message_id == message_id


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_non_json_number_constants_are_a_formation_violation(constant: str) -> None:
    text = f'[2,"abc","StartTransaction",{{"meterStart":{constant}}}]'

    error = _malformed(text)

    assert error.error.code == "FormationViolation"
    assert error.message_id == "abc"


# --- builders -----------------------------------------------------------------------------------


def test_call_frame_is_compact_json_array() -> None:
    assert call_frame("1", "Reset", {"type": "Soft"}) == '[2,"1","Reset",{"type":"Soft"}]'


def test_call_frame_round_trips_through_parse_frame() -> None:
    payload = {"connectorId": 1, "idTag": "Ünïcödé", "nested": {"a": [1, 2.5, None]}}

    assert parse_frame(call_frame("m-1", "RemoteStartTransaction", payload)) == Call(
        "m-1", "RemoteStartTransaction", payload
    )


def test_result_frame_round_trips_through_parse_frame() -> None:
    payload = {"status": "Accepted", "interval": 300}

    assert result_frame("42", payload) == '[3,"42",{"status":"Accepted","interval":300}]'
    assert parse_frame(result_frame("42", payload)) == CallResult("42", payload)


def test_error_frame_round_trips_with_code_description_and_details() -> None:
    error = OccurenceConstraintViolationError(
        description="idTag is required", details={"field": "idTag"}
    )

    frame = error_frame("abc", error)

    assert json.loads(frame) == [
        4,
        "abc",
        "OccurenceConstraintViolation",
        "idTag is required",
        {"field": "idTag"},
    ]
    assert parse_frame(frame) == CallError(
        "abc", "OccurenceConstraintViolation", "idTag is required", {"field": "idTag"}
    )


def test_error_frame_without_description_or_details_sends_empty_ones() -> None:
    frame = error_frame("abc", ProtocolError())

    # OCPP-J 4.2.3: errorDescription is a string and errorDetails an object, never null.
    message_type, message_id, code, description, details = json.loads(frame)
    assert (message_type, message_id, code) == (4, "abc", "ProtocolError")
    assert isinstance(description, str)
    assert details == {}


def test_error_frame_to_unknown_message_id_uses_minus_one() -> None:
    error = _malformed("not json")

    assert json.loads(error_frame(error.message_id, error.error))[1] == "-1"
