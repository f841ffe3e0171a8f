"""The command API's errors, defined in the version-neutral core (``csms.ocppj.errors``).

Re-exported here because the 1.6 command service, the routes and the bridge import them
from this module.
"""

from __future__ import annotations

from csms.ocppj.errors import (
    CallErrorReceived,
    ChargerBusy,
    CommandError,
    CommandTimeout,
    ConnectionLost,
    InvalidCommand,
    InvalidResponse,
    NotConnected,
    OutcomeUnknown,
)

__all__ = [
    "CallErrorReceived",
    "ChargerBusy",
    "CommandError",
    "CommandTimeout",
    "ConnectionLost",
    "InvalidCommand",
    "InvalidResponse",
    "NotConnected",
    "OutcomeUnknown",
]
