"""Errors of the command API (central system → charger).

CommandError
├── InvalidCommand       unknown action, or a payload that breaks the 1.6 schema
├── NotConnected         the charger has no open connection
├── CommandTimeout       no answer within the timeout
└── CallErrorReceived    the charger answered with a CALLERROR (``.code``)
"""

from __future__ import annotations

from typing import Any


class CommandError(Exception):
    """Root of the command API's errors."""


class InvalidCommand(CommandError):
    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class NotConnected(CommandError):
    def __init__(self, charge_point_id: str) -> None:
        super().__init__(f"charge point {charge_point_id!r} is not connected")
        self.charge_point_id = charge_point_id


class CommandTimeout(CommandError):
    def __init__(self, charge_point_id: str, action: str, timeout: float) -> None:
        super().__init__(f"{charge_point_id!r} did not answer {action} within {timeout:g} s")
        self.charge_point_id = charge_point_id
        self.action = action
        self.timeout = timeout


class CallErrorReceived(CommandError):
    def __init__(self, code: str, description: str, details: dict[str, Any]) -> None:
        super().__init__(f"{code}: {description}")
        self.code = code
        self.description = description
        self.details = details
