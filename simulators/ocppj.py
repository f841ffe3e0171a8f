"""Sans-I/O OCPP-J framing for the charge point simulator.

Builds CALL / CALLRESULT / CALLERROR frames, parses incoming text and correlates
answers with our outstanding CALLs. No sockets, no clock of its own, no schema
validation: this sits on the hot path of a 5,000-charger load generator.

Exceptions::

    FramingError            the text is not an OCPP-J frame (carries the CALLERROR code to answer)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

# OCPP-J 4.1.3: MessageTypeId values.
CALL = 2
CALLRESULT = 3
CALLERROR = 4

_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
_loads = json.loads


class FramingError(Exception):
    """Incoming text we cannot treat as an OCPP-J frame.

    ``code`` is the OCPP-J 4.2.3 error code to answer with when ``message_id`` is known.
    """

    def __init__(self, code: str, description: str, message_id: str | None = None) -> None:
        super().__init__(description)
        self.code = code
        self.description = description
        self.message_id = message_id


@dataclass(slots=True, frozen=True)
class Call:
    message_id: str
    action: str
    payload: dict[str, Any]


@dataclass(slots=True, frozen=True)
class CallResult:
    message_id: str
    payload: dict[str, Any]


@dataclass(slots=True, frozen=True)
class CallError:
    message_id: str
    code: str
    description: str
    details: dict[str, Any]


Frame = Call | CallResult | CallError


def encode_call(message_id: str, action: str, payload: dict[str, Any]) -> str:
    """Serialise ``[2, id, action, payload]``."""
    return _dumps([CALL, message_id, action, payload])


def encode_result(message_id: str, payload: dict[str, Any]) -> str:
    """Serialise ``[3, id, payload]``."""
    return _dumps([CALLRESULT, message_id, payload])


def encode_error(
    message_id: str, code: str, description: str = "", details: dict[str, Any] | None = None
) -> str:
    """Serialise ``[4, id, code, description, details]``."""
    return _dumps([CALLERROR, message_id, code, description, details or {}])


def parse(text: str | bytes) -> Frame:
    """Parse one WebSocket text message into a frame, or raise FramingError."""
    try:
        msg = _loads(text)
    except ValueError as exc:
        raise FramingError("FormationViolation", "not JSON") from exc
    if not isinstance(msg, list) or len(msg) < 3:
        raise FramingError("FormationViolation", "not an OCPP-J array")
    kind, message_id = msg[0], msg[1]
    if not isinstance(message_id, str):
        raise FramingError("FormationViolation", "message id is not a string")
    if kind == CALL:
        if len(msg) != 4 or not isinstance(msg[2], str) or not isinstance(msg[3], dict):
            raise FramingError("FormationViolation", "malformed CALL", message_id)
        return Call(message_id, msg[2], msg[3])
    if kind == CALLRESULT:
        payload = msg[2]
        if not isinstance(payload, dict):
            raise FramingError("FormationViolation", "malformed CALLRESULT", message_id)
        return CallResult(message_id, payload)
    if kind == CALLERROR:
        if len(msg) < 4:
            raise FramingError("FormationViolation", "malformed CALLERROR", message_id)
        details = msg[4] if len(msg) > 4 and isinstance(msg[4], dict) else {}
        return CallError(message_id, str(msg[2]), str(msg[3]), details)
    # OCPP-J 4.2.3: an unknown MessageTypeId is a protocol error.
    raise FramingError("ProtocolError", f"unknown message type {kind!r}", message_id)


@dataclass(slots=True)
class Pending:
    """One of our CALLs awaiting its answer; ``context`` is whatever the caller needs."""

    message_id: str
    action: str
    sent_at: float
    context: Any = None


class Correlator:
    """Issues message ids for our CALLs and matches answers to them.

    Ids are a per-connection counter, as much firmware does (and restarts after a
    reconnect); ``reset()`` forgets everything outstanding.
    """

    __slots__ = ("_counter", "_pending")

    def __init__(self) -> None:
        self._counter = 0
        self._pending: dict[str, Pending] = {}

    def next_id(self) -> str:
        self._counter += 1
        return str(self._counter)

    def register(self, message_id: str, action: str, sent_at: float, context: Any = None) -> None:
        self._pending[message_id] = Pending(message_id, action, sent_at, context)

    def resolve(self, frame: CallResult | CallError) -> Pending | None:
        """The CALL this frame answers, or None for a late/unknown answer."""
        return self._pending.pop(frame.message_id, None)

    def expire(self, message_id: str) -> Pending | None:
        """Forget a CALL whose answer did not come in time."""
        return self._pending.pop(message_id, None)

    @property
    def outstanding(self) -> int:
        return len(self._pending)

    def expire_all(self) -> list[Pending]:
        """Forget every outstanding CALL but keep counting ids (same connection)."""
        dropped = list(self._pending.values())
        self._pending.clear()
        return dropped

    def reset(self) -> list[Pending]:
        """Drop all outstanding CALLs (connection closed); returns them."""
        dropped = list(self._pending.values())
        self._pending.clear()
        self._counter = 0
        return dropped
