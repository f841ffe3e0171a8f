"""Pure rules for charge point registration (OCPP 1.6 section 4.2, BootNotification)."""

from __future__ import annotations

ACCEPTED = "Accepted"
PENDING = "Pending"
REJECTED = "Rejected"

_INITIAL_STATUS = {"accept": ACCEPTED, "pending": PENDING, "reject": REJECTED}


def initial_status(policy: str) -> str:
    """Registration status for a charger we have never seen, under ``CSMS_UNKNOWN_CHARGERS``."""
    return _INITIAL_STATUS[policy]


def may_send(registration_status: str | None, action: str) -> bool:
    """Whether a charger in this registration state may send ``action``.

    Until it is Accepted a charger may only boot (1.6 section 4.2.1).
    """
    return registration_status == ACCEPTED or action == "BootNotification"
