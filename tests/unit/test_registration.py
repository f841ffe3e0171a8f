"""Charge point registration rules (csms.domain.registration)."""

from __future__ import annotations

import pytest

from csms.domain.registration import ACCEPTED, PENDING, REJECTED, initial_status, may_send


@pytest.mark.parametrize(
    ("policy", "status"),
    [("accept", "Accepted"), ("pending", "Pending"), ("reject", "Rejected")],
)
def test_unknown_charger_policy_sets_the_initial_registration_status(
    policy: str, status: str
) -> None:
    assert initial_status(policy) == status


def test_initial_status_refuses_a_policy_it_does_not_know() -> None:
    with pytest.raises(KeyError):
        initial_status("maybe")


@pytest.mark.parametrize(
    "action",
    ["BootNotification", "Heartbeat", "StatusNotification", "StartTransaction", "MeterValues"],
)
def test_accepted_charger_may_send_anything(action: str) -> None:
    assert may_send(ACCEPTED, action) is True


@pytest.mark.parametrize("status", [PENDING, REJECTED, None])
def test_charger_not_yet_accepted_may_boot(status: str | None) -> None:
    assert may_send(status, "BootNotification") is True


@pytest.mark.parametrize("status", [PENDING, REJECTED, None])
@pytest.mark.parametrize(
    "action", ["Heartbeat", "StatusNotification", "Authorize", "StartTransaction", "MeterValues"]
)
def test_charger_not_yet_accepted_may_send_nothing_but_boot(
    status: str | None, action: str
) -> None:
    assert may_send(status, action) is False
