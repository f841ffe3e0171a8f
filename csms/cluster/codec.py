"""Domain events to and from bytes for NATS; pure.

Events are frozen dataclasses of plain values and aware datetimes. The message id that
JetStream de-duplicates on is a digest of the encoded event, so publishing the same event
twice (a retry after a lost acknowledgement) stores it once.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from datetime import datetime
from typing import Any

from csms.domain import events as domain

_TYPES: dict[str, type] = {}


def register(cls: type) -> type:
    """Make an event class travel between nodes (the domain's are registered here)."""
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls.__name__} is not a dataclass")
    _TYPES[cls.__name__] = cls
    return cls


for _cls in (
    domain.ChargePointConnected,
    domain.ChargePointDisconnected,
    domain.ConnectorStatusChanged,
    domain.TransactionStarted,
    domain.TransactionStopped,
    domain.MeterSampled,
):
    register(_cls)


class UnknownEvent(ValueError):
    """A message names an event type this node does not know (a newer node sent it)."""


def event_type(event: object) -> str:
    return type(event).__name__


def is_registered(event: object) -> bool:
    return type(event).__name__ in _TYPES


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return {"$dt": value.isoformat()}
    return value


def _value(value: Any) -> Any:
    if isinstance(value, dict) and set(value) == {"$dt"}:
        return datetime.fromisoformat(value["$dt"])
    return value


def encode(event: object) -> bytes:
    fields = {f.name: _plain(getattr(event, f.name)) for f in dataclasses.fields(event)}  # type: ignore[arg-type]
    body = {"type": event_type(event), "fields": fields}
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def decode(data: bytes) -> object:
    body = json.loads(data)
    cls = _TYPES.get(body.get("type"))
    if cls is None:
        raise UnknownEvent(str(body.get("type")))
    return cls(**{name: _value(value) for name, value in body["fields"].items()})


def message_id(data: bytes) -> str:
    """The de-duplication key of an encoded event."""
    return hashlib.sha256(data).hexdigest()[:32]
