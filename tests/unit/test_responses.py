"""Chargers' answers to our commands checked against the 1.6 response schemas."""

from __future__ import annotations

import pytest

from csms.ocpp16.responses import check_response
from csms.ocppj.errors import InvalidResponse


def test_lower_case_enum_is_normalised_and_reported() -> None:
    deviations: list[str] = []
    assert check_response("RemoteStartTransaction", {"status": "accepted"}, deviations) == {
        "status": "Accepted"
    }
    assert deviations == ["enum_case"]


def test_number_as_string_is_normalised() -> None:
    deviations: list[str] = []
    assert check_response("GetLocalListVersion", {"listVersion": "7"}, deviations) == {
        "listVersion": 7
    }
    assert deviations == ["number_as_string"]


@pytest.mark.parametrize(
    ("action", "answer", "field"),
    [
        ("Reset", {}, "status"),
        ("Reset", {"status": "Maybe"}, "status"),
        ("GetConfiguration", {"configurationKey": [{"readonly": False}]}, "configurationKey.0.key"),
        ("GetLocalListVersion", {"listVersion": "seven"}, "listVersion"),
    ],
)
def test_an_answer_that_breaks_the_schema_names_the_field(
    action: str, answer: dict[str, object], field: str
) -> None:
    with pytest.raises(InvalidResponse) as error:
        check_response(action, answer, [])
    assert error.value.field == field
    assert error.value.response == answer
    assert field in str(error.value)
