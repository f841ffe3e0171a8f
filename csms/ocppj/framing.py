"""OCPP-J framing, sans I/O: text in, typed messages out; messages in, text out.

A frame we cannot make sense of raises ``MalformedFrame``, which carries the
OCPP error to answer with and the message id to answer to (OCPP-J 4.2.3).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from ocpp.exceptions import (
    FormationViolationError,
    OCPPError,
    ProtocolError,
)

from csms.ocppj import holdable

CALL = 2
CALLRESULT = 3
CALLERROR = 4

# When the JSON cannot be parsed we still try to answer the right message id.
_MESSAGE_ID = re.compile(r'^\s*\[\s*\d\s*,\s*"((?:[^"\\]|\\.){1,36})"')
UNKNOWN_MESSAGE_ID = "-1"


def _reject_constant(name: str) -> Any:
    # NaN and Infinity are accepted by Python's json but are not JSON (RFC 8259).
    raise ValueError(f"{name} is not valid JSON")


# Built once: json.loads/dumps with options construct a codec per call, which was
# measurable on the heartbeat path. NaN/Infinity are refused on the way out too.
_DECODER = json.JSONDecoder(parse_constant=_reject_constant, parse_float=holdable.parse_float)
_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False)


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


Message = Call | CallResult | CallError


class MalformedFrame(Exception):
    """A frame that is not a usable OCPP-J message; answer ``error`` to ``message_id``."""

    def __init__(self, error: OCPPError, message_id: str) -> None:
        super().__init__(error.description)
        self.error = error
        self.message_id = message_id


def parse_frame(text: str | bytes) -> Message:
    """Parse one WebSocket message into a Call, CallResult or CallError."""
    try:
        text = text if isinstance(text, str) else text.decode("utf-8")
        # Bounded before parsing: nothing after the decoder recurses a thousand levels.
        if holdable.nesting_exceeds(text):
            depth = holdable.MAX_DEPTH
            raise MalformedFrame(
                FormationViolationError(description=f"Nested deeper than {depth} levels"),
                _guess_message_id(text),
            )
        overflows = holdable.overflows_seen()
        frame = _DECODER.decode(text)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise MalformedFrame(
            FormationViolationError(description="Message is not valid JSON"),
            _guess_message_id(text),
        ) from None
    if not isinstance(frame, list) or len(frame) < 3:
        raise MalformedFrame(
            ProtocolError(description="An OCPP-J message is a JSON array of 3 to 5 elements"),
            _message_id_of(frame),
        )
    message_type, message_id = frame[0], frame[1]
    if not isinstance(message_id, str) or not message_id:
        raise MalformedFrame(
            ProtocolError(description="The message id must be a non-empty string"),
            UNKNOWN_MESSAGE_ID,
        )
    if message_type == CALL and len(frame) == 4:
        action, payload = frame[2], frame[3]
        if not isinstance(action, str):
            raise MalformedFrame(ProtocolError(description="Action must be a string"), message_id)
        if not isinstance(payload, dict):
            raise MalformedFrame(
                FormationViolationError(description="Payload must be a JSON object"), message_id
            )
        # What we could not store is refused before anyone answers it (csms.ocppj.holdable).
        if holdable.may_be_unholdable(text, overflows):
            error = holdable.unholdable_error(payload)
            if error is not None:
                raise MalformedFrame(error, message_id)
        return Call(message_id, action, payload)
    if message_type == CALLRESULT and len(frame) == 3:
        payload = frame[2]
        return CallResult(message_id, payload if isinstance(payload, dict) else {})
    if message_type == CALLERROR and len(frame) in (4, 5):
        details = frame[4] if len(frame) == 5 and isinstance(frame[4], dict) else {}
        return CallError(message_id, str(frame[2]), str(frame[3]), details)
    if message_type in (CALL, CALLRESULT, CALLERROR):
        raise MalformedFrame(
            ProtocolError(description=f"Wrong number of elements for message type {message_type}"),
            message_id,
        )
    raise MalformedFrame(
        ProtocolError(description=f"Unknown message type {message_type!r}"), message_id
    )


def call_frame(message_id: str, action: str, payload: dict[str, Any]) -> str:
    return _ENCODER.encode([CALL, message_id, action, payload])


def result_frame(message_id: str, payload: dict[str, Any]) -> str:
    return _ENCODER.encode([CALLRESULT, message_id, payload])


def error_frame(message_id: str, error: OCPPError) -> str:
    details = error.details if isinstance(error.details, dict) else {}
    return _ENCODER.encode([CALLERROR, message_id, error.code, error.description or "", details])


def _message_id_of(frame: Any) -> str:
    if isinstance(frame, list) and len(frame) > 1 and isinstance(frame[1], str) and frame[1]:
        return frame[1]
    return UNKNOWN_MESSAGE_ID


def _guess_message_id(text: str | bytes) -> str:
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    match = _MESSAGE_ID.match(text)
    if match is None:
        return UNKNOWN_MESSAGE_ID
    try:
        return json.loads(f'"{match.group(1)}"')
    except ValueError:
        return match.group(1)
