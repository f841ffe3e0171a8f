"""The sans-I/O OCPP-J framing helper of the simulator, with plain values."""

from __future__ import annotations

import json

import pytest

from simulators import ocppj


def test_call_frame_round_trips() -> None:
    text = ocppj.encode_call("7", "Heartbeat", {})
    assert json.loads(text) == [2, "7", "Heartbeat", {}]
    assert ocppj.parse(text) == ocppj.Call("7", "Heartbeat", {})


def test_result_and_error_frames_parse() -> None:
    result = ocppj.parse(ocppj.encode_result("1", {"currentTime": "2024-01-01T00:00:00Z"}))
    assert result == ocppj.CallResult("1", {"currentTime": "2024-01-01T00:00:00Z"})
    error = ocppj.parse(ocppj.encode_error("2", "NotImplemented", "nope"))
    assert error == ocppj.CallError("2", "NotImplemented", "nope", {})


def test_non_ascii_payload_is_sent_as_utf8_text() -> None:
    text = ocppj.encode_call("1", "DataTransfer", {"vendorId": "Zürich"})
    assert "Zürich" in text
    assert ocppj.parse(text.encode()).payload == {"vendorId": "Zürich"}  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("text", "code", "message_id"),
    [
        ("not json", "FormationViolation", None),
        ('{"a": 1}', "FormationViolation", None),
        ("[2, 5, 'x', {}]".replace("'", '"'), "FormationViolation", None),
        ('[2, "9", "Heartbeat"]', "FormationViolation", "9"),
        ('[2, "9", "Heartbeat", []]', "FormationViolation", "9"),
        ('[7, "9", {}]', "ProtocolError", "9"),
    ],
)
def test_malformed_frames_raise_with_the_callerror_code(
    text: str, code: str, message_id: str | None
) -> None:
    with pytest.raises(ocppj.FramingError) as info:
        ocppj.parse(text)
    assert info.value.code == code
    assert info.value.message_id == message_id


def test_correlator_matches_answers_and_drops_late_ones() -> None:
    correlator = ocppj.Correlator()
    first, second = correlator.next_id(), correlator.next_id()
    assert first != second
    correlator.register(first, "Heartbeat", 1.0, context="ctx")
    pending = correlator.resolve(ocppj.CallResult(first, {}))
    assert pending is not None
    assert (pending.action, pending.context, pending.sent_at) == ("Heartbeat", "ctx", 1.0)
    # Answered once: a duplicate or late answer finds nothing.
    assert correlator.resolve(ocppj.CallResult(first, {})) is None
    assert correlator.resolve(ocppj.CallError("unknown", "X", "", {})) is None


def test_correlator_expire_all_keeps_ids_unique_but_reset_restarts_them() -> None:
    correlator = ocppj.Correlator()
    correlator.register(correlator.next_id(), "StartTransaction", 0.0)
    assert [p.action for p in correlator.expire_all()] == ["StartTransaction"]
    assert correlator.outstanding == 0
    assert correlator.next_id() == "2"
    correlator.reset()
    # Like much firmware, a new connection restarts the counter.
    assert correlator.next_id() == "1"
