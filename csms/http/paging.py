"""Opaque cursors for keyset pagination, and JSON for what the database hands back."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import date, datetime
from decimal import Decimal
from typing import Any

MAX_LIMIT = 500


class InvalidCursor(ValueError):
    """A cursor we did not issue (or from another listing)."""


def encode_cursor(kind: str, *values: Any) -> str:
    """Opaque to clients: they hand it back unchanged, we never promise its shape."""
    raw = json.dumps([kind, *(_plain(v) for v in values)], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(kind: str, cursor: str) -> list[Any]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        decoded = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise InvalidCursor("the cursor is not one this API issued") from None
    if not isinstance(decoded, list) or not decoded or decoded[0] != kind:
        raise InvalidCursor("the cursor belongs to another listing")
    return decoded[1:]


def decode_timestamp_cursor(kind: str, cursor: str) -> tuple[datetime, int]:
    values = decode_cursor(kind, cursor)
    try:
        at, row_id = values
        parsed = datetime.fromisoformat(at)
    except (TypeError, ValueError):
        raise InvalidCursor("the cursor is not one this API issued") from None
    if parsed.tzinfo is None or not isinstance(row_id, int):
        raise InvalidCursor("the cursor is not one this API issued")
    return parsed, row_id


def _plain(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def jsonable(value: Any) -> Any:
    """Datetimes as ISO 8601, money (Decimal) as a string so no cent is lost to a float."""
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value
