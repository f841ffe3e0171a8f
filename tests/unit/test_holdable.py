"""Pre-parse bounds (csms.ocppj.holdable): nesting depth, values PostgreSQL cannot hold."""

from __future__ import annotations

import json

import pytest

from csms.ocppj.framing import MalformedFrame, parse_frame
from csms.ocppj.holdable import MAX_DEPTH, nesting_exceeds, unholdable_field


def _frame(levels: int, text: str = "") -> str:
    # The frame array and the payload object are two levels; ``levels`` more inside.
    inner = "[" * levels + "1" + "]" * levels
    return f'[2,"id-1","DataTransfer",{{"vendorId":"V","data":{json.dumps(text)},"x":{inner}}}]'


@pytest.mark.parametrize("levels", [0, 1, MAX_DEPTH - 2])
def test_frame_at_or_under_the_depth_bound_passes(levels: int) -> None:
    assert not nesting_exceeds(_frame(levels))


@pytest.mark.parametrize("levels", [MAX_DEPTH - 1, 990, 10_000])
def test_frame_over_the_depth_bound_is_caught_before_parsing(levels: int) -> None:
    assert nesting_exceeds(_frame(levels))


@pytest.mark.parametrize(
    "text",
    ["]" * 80, "[" * 80, "[" * 40 + "]" * 40, 'quote " then ]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]'],
)
def test_brackets_inside_strings_do_not_count(text: str) -> None:
    assert not nesting_exceeds(_frame(3, text))
    assert nesting_exceeds(_frame(MAX_DEPTH, text))


def test_many_siblings_are_not_depth() -> None:
    sampled = [{"value": str(i)} for i in range(500)]
    payload = {"connectorId": 1, "meterValue": [{"timestamp": "t", "sampledValue": sampled}]}

    assert not nesting_exceeds(json.dumps([2, "m", "MeterValues", payload]))


def test_unbalanced_deep_input_is_caught() -> None:
    assert nesting_exceeds("[" * 5000)


@pytest.mark.parametrize("levels", [MAX_DEPTH, 10_000])
def test_deep_frame_is_a_formation_violation_answered_to_its_id(levels: int) -> None:
    with pytest.raises(MalformedFrame) as caught:
        parse_frame(_frame(levels))

    assert caught.value.error.code == "FormationViolation"
    assert caught.value.message_id == "id-1"


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"a": "x\x00"}, "a"),
        ({"a": ["ok", {"b": "\udc80"}]}, "a.1.b"),
        ({"a": 1e308 * 10}, "a"),
        ({"\x00": 1}, "\x00"),
    ],
)
def test_unholdable_values_are_found_with_their_path(
    payload: dict[str, object], field: str
) -> None:
    found = unholdable_field(payload)

    assert found is not None
    assert found[0] == field


@pytest.mark.parametrize(
    "payload",
    [{"a": "plain"}, {"a": "\U0001f697 ü"}, {"a": "\\u0000"}, {"a": "Infinity", "b": 1e308}],
)
def test_holdable_values_pass(payload: dict[str, object]) -> None:
    assert unholdable_field(payload) is None


@pytest.mark.parametrize(
    ("payload_text", "field"),
    [
        ('{"idTag": "A\\u0000"}', "idTag"),
        ('{"idTag": "A\\ud800"}', "idTag"),
        ('{"v": [1, {"n": 1e400}]}', "v.1.n"),
        ('{"v": -1e999}', "v"),
        ('{"v": ' + "9" * 400 + ".0}", "v"),
    ],
)
def test_call_with_an_unholdable_value_is_refused_by_the_framing_naming_the_field(
    payload_text: str, field: str
) -> None:
    with pytest.raises(MalformedFrame) as caught:
        parse_frame(f'[2, "id-9", "Authorize", {payload_text}]')

    assert caught.value.error.code == "PropertyConstraintViolation"
    assert caught.value.error.details == {"field": field}
    assert caught.value.message_id == "id-9"


@pytest.mark.parametrize(
    "payload_text", ['{"idTag": "\\ud83d\\ude97"}', '{"n": 1e308}', '{"s": "\\\\u0000"}']
)
def test_call_with_only_holdable_values_passes_the_framing(payload_text: str) -> None:
    assert parse_frame(f'[2, "id-9", "Authorize", {payload_text}]').message_id == "id-9"
