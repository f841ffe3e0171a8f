"""Connector ids a charger may use (csms.domain.connectors)."""

from __future__ import annotations

import pytest

from csms.domain.connectors import MAX_CONNECTOR_ID, connector_deviation, is_plausible


@pytest.mark.parametrize("connector_id", [0, 1, 2, MAX_CONNECTOR_ID])
def test_connector_ids_up_to_the_bound_may_create_a_connector(connector_id: int) -> None:
    assert is_plausible(connector_id)


@pytest.mark.parametrize("connector_id", [-1, MAX_CONNECTOR_ID + 1, 2**31 - 1])
def test_connector_ids_no_charger_has_create_none(connector_id: int) -> None:
    assert not is_plausible(connector_id)
    assert connector_deviation(connector_id, {1, 2}) == "connector_out_of_range"


def test_a_connector_the_charger_reported_is_no_deviation() -> None:
    assert connector_deviation(2, {0, 1, 2}) is None


def test_connector_zero_is_the_charger_itself_and_never_unreported() -> None:
    assert connector_deviation(0, set()) is None


def test_a_connector_never_reported_is_a_deviation() -> None:
    assert connector_deviation(3, {0, 1, 2}) == "connector_not_reported"
