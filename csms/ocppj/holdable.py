"""What the database could not hold, found before we answer: what we acknowledge, we store.

Two checks, pure but for one counter:

- ``nesting_exceeds``: a frame nested deeper than ``MAX_DEPTH`` is refused before it is
  parsed (``FormationViolation``), so neither the JSON decoder nor anything after it
  recurses a thousand levels deep. No 1.6 message nests deeper than 8 levels.
- ``unholdable_field``: PostgreSQL refuses NUL in ``text`` and ``jsonb``, cannot take a
  lone UTF-16 surrogate (not encodable as UTF-8), and ``jsonb`` has no ``Infinity`` (what
  ``1e400`` becomes once parsed). A payload carrying one of them anywhere, in a known
  field or a vendor extra kept as ``jsonb``, is refused with ``PropertyConstraintViolation``
  naming the field, instead of being acknowledged and then lost in a batch writer.
  On the wire this costs almost nothing: JSON writes NUL and surrogates only as ``\\u``
  escapes, and the decoder reports every number literal that overflows (``parse_float``),
  so the payload is walked only when its frame has one of them.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from ocpp.exceptions import PropertyConstraintViolationError

MAX_DEPTH = 32

# A JSON string, for the rare frame whose strings contain a backslash escape.
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
# Bytes other than brackets, quotes and backslashes are deleted; braces become brackets.
_SQUARE = bytes.maketrans(b"{}", b"[]")
_NOT_STRUCTURE = bytes(sorted(set(range(256)) - set(b'[]{}"\\')))

# ensure_ascii escapes every NUL as \u0000 and every surrogate as \udXXX; allow_nan (the
# default) writes non-finite floats as Infinity. Built once (see framing's codec).
_SCREEN = json.JSONEncoder(ensure_ascii=True, check_circular=False)


def nesting_exceeds(text: str, limit: int = MAX_DEPTH) -> bool:
    """True if the JSON ``text`` nests arrays/objects more than ``limit`` levels deep."""
    # On the MeterValues hot path: only C-speed bytes operations unless the frame is deep.
    # UTF-8 never uses an ASCII byte inside a multi-byte character: no bracket is invented.
    structure = text.encode("utf-8", "surrogatepass").translate(_SQUARE, _NOT_STRUCTURE)
    # A frame cannot nest deeper than it has opening brackets.
    if structure.count(b"[") <= limit:
        return False
    if b"\\" not in structure:
        # Quotes stay in the way of a string's brackets, so those can only pair among
        # themselves: this may overestimate (then the exact count below decides), never
        # underestimate.
        depth = _depth(structure, limit, b'""')
        if depth is not None and depth <= limit:
            return False
    exact = _STRING.sub("", text).encode("utf-8", "surrogatepass")
    depth = _depth(exact.translate(_SQUARE, _NOT_STRUCTURE), limit, b"")
    # Unbalanced (None) is not JSON either; refusing it before the decoder is as good.
    return depth is None or depth > limit


def _depth(structure: bytes, limit: int, empty_string: bytes) -> int | None:
    """Nesting depth of a bytes of brackets (None if unbalanced), counting up to limit+1."""
    # Removing every innermost "[]" pair once per round takes exactly depth rounds.
    depth = 0
    while structure and depth <= limit:
        shorter = structure.replace(b"[]", b"")
        if empty_string:
            shorter = shorter.replace(empty_string, b"")
        if len(shorter) == len(structure):
            return None
        structure = shorter
        depth += 1
    return depth


# How many number literals decoded so far overflowed a double; read before and after one
# decode (which never yields to the event loop) to know whether that frame had one.
_overflows = 0


def parse_float(text: str) -> float:
    """``json`` ``parse_float`` hook: a float, counting literals like ``1e400``."""
    global _overflows
    value = float(text)
    if not math.isfinite(value):
        _overflows += 1
    return value


def overflows_seen() -> int:
    return _overflows


def may_be_unholdable(text: str, overflows_before: int) -> bool:
    """False if the frame ``text`` certainly decoded to values PostgreSQL can hold."""
    return "\\u" in text or _overflows != overflows_before


def unholdable_error(payload: dict[str, Any]) -> PropertyConstraintViolationError | None:
    """The CALLERROR for the first value PostgreSQL could not store, naming its field."""
    found = unholdable_field(payload)
    if found is None:
        return None
    field, reason = found
    return PropertyConstraintViolationError(
        description=f"{field or 'payload'} {reason}", details={"field": field}
    )


def unholdable_field(payload: dict[str, Any]) -> tuple[str, str] | None:
    """``(field, reason)`` for the first value PostgreSQL could not store, else None."""
    # One C-speed encoding screens the whole payload; the walk runs only on a hit (or on
    # a harmless look-alike: an emoji's surrogate pair, a literal "\\u0000", "Infinity").
    screen = _SCREEN.encode(payload)
    if "\\u0000" not in screen and "\\ud" not in screen and "Infinity" not in screen:
        return None
    return _walk(payload, [])


def _walk(value: Any, path: list[str]) -> tuple[str, str] | None:
    if isinstance(value, str):
        reason = _string_problem(value)
        return (".".join(path), reason) if reason else None
    if isinstance(value, float):
        if math.isfinite(value):
            return None
        return ".".join(path), "is a number too large to store (not a finite double)"
    if isinstance(value, dict):
        for key, item in value.items():
            reason = _string_problem(key)
            if reason:
                return ".".join([*path, key]), f"field name {reason}"
            found = _walk(item, [*path, key])
            if found:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = _walk(item, [*path, str(index)])
            if found:
                return found
    return None


def _string_problem(text: str) -> str | None:
    if "\x00" in text:
        return "contains a NUL character, which cannot be stored"
    if text.isascii():
        return None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "contains a lone UTF-16 surrogate, which is not a character"
    return None
