"""Errors of the command API (central system → charger), for any OCPP-J version.

CommandError
├── InvalidCommand       unknown action, a payload that breaks the schema, or a key that
│                        has its own route (``.field``, ``.route``)
├── NotConnected         never sent: the charger has no open connection (or lost it first)
├── ChargerBusy          never sent: earlier commands held the charger's queue past the
│                        caller's timeout
├── OutcomeUnknown       sent, but no answer: the charger may have acted on it
│   ├── CommandTimeout   no answer within the timeout, counted from when it was sent
│   └── ConnectionLost   the connection closed after the CALL was written
├── CallErrorReceived    the charger answered with a CALLERROR (``.code``)
└── InvalidResponse      the charger's answer breaks the response schema (``.field``)

``.outcome`` is the name stored in the ``commands`` table, logged and counted.
"""

from __future__ import annotations

from typing import Any


class CommandError(Exception):
    """Root of the command API's errors."""

    outcome = "failed"


class InvalidCommand(CommandError):
    outcome = "invalid"

    def __init__(self, message: str, field: str | None = None, route: str | None = None) -> None:
        super().__init__(message)
        self.field = field
        self.route = route


class NotConnected(CommandError):
    outcome = "not_connected"

    def __init__(self, charge_point_id: str, reason: str = "is not connected") -> None:
        super().__init__(f"charge point {charge_point_id!r} {reason}")
        self.charge_point_id = charge_point_id


class ChargerBusy(CommandError):
    outcome = "queue_timeout"

    def __init__(self, charge_point_id: str, action: str, timeout: float, ahead: int) -> None:
        super().__init__(
            f"{action} was not sent: {charge_point_id!r} was still busy with earlier commands "
            f"after {timeout:g} s ({ahead} ahead of it); nothing reached the charger"
        )
        self.charge_point_id = charge_point_id
        self.action = action
        self.timeout = timeout
        self.ahead = ahead


class OutcomeUnknown(CommandError):
    """The CALL went out; whether the charger acted on it is unknown."""


class CommandTimeout(OutcomeUnknown):
    outcome = "timeout"

    def __init__(self, charge_point_id: str, action: str, timeout: float) -> None:
        super().__init__(f"{charge_point_id!r} did not answer {action} within {timeout:g} s")
        self.charge_point_id = charge_point_id
        self.action = action
        self.timeout = timeout


class ConnectionLost(OutcomeUnknown):
    outcome = "connection_lost"

    def __init__(self, charge_point_id: str, action: str) -> None:
        super().__init__(
            f"the connection to {charge_point_id!r} closed after {action} was sent and before "
            "its answer: the charger may have acted on it"
        )
        self.charge_point_id = charge_point_id
        self.action = action


class CallErrorReceived(CommandError):
    outcome = "call_error"

    def __init__(self, code: str, description: str, details: dict[str, Any]) -> None:
        super().__init__(f"{code}: {description}")
        self.code = code
        self.description = description
        self.details = details


class InvalidResponse(CommandError):
    outcome = "invalid_response"

    def __init__(
        self, action: str, description: str, field: str | None, response: dict[str, Any]
    ) -> None:
        named = f" (field {field})" if field else ""
        super().__init__(f"the answer to {action} breaks the schema{named}: {description}")
        self.action = action
        self.field = field
        self.response = response
