"""Payload validation against the OCPP 1.6 JSON schemas shipped with the ``ocpp`` library.

The schemas are compiled once with fastjsonschema (about 18x faster than the
library's jsonschema validation, measured on MeterValues), after relaxing what
real chargers commonly get wrong but we can still use (see ocpp-field-notes.md):
extra fields are kept, timestamps are parsed leniently by ``normalize``, and
strings longer than their CiString maximum (idTags, serial numbers) are kept in full
(``string_too_long``) up to ``HARD_MAX_LENGTH``. A payload that fails is coerced
(numbers as strings, enum spelling) and validated again before we refuse it.

What the database cannot hold (NUL, lone surrogates, ``1e400``) is refused here, before
we answer (``csms.ocppj.holdable``), and so are connector ids 1.6 does not allow:
``connectorId`` >= 0 everywhere, > 0 on StartTransaction.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from functools import cache
from importlib import resources
from typing import Any

import fastjsonschema
from ocpp.exceptions import (
    FormationViolationError,
    OccurenceConstraintViolationError,
    OCPPError,
    PropertyConstraintViolationError,
    TypeConstraintViolationError,
)

from csms.ocpp16.normalize import coerce
from csms.ocppj.holdable import unholdable_error

Validator = Callable[[Any], Any]

# Over-long strings are kept (a charger must not be locked out by a 26-character serial
# number), up to a bound that keeps every indexed text column (idTag is in two btree
# indexes, whose entries cannot exceed 2,704 bytes) storable: 500 characters of at most
# 4 UTF-8 bytes each. Fields the spec already allows longer (a CSR) keep their maximum.
HARD_MAX_LENGTH = 500
# 1.6 connector ids: 0 is the charger itself, transactions run on connectors from 1.
_CONNECTOR_MINIMUM = {"StartTransaction": 1}
_INT4_MAX = 2**31 - 1
_INT8_MAX = 2**63 - 1
# Stored in integer (int4) columns.
_INT4_FIELDS = frozenset({"connectorId", "transactionId", "reservationId"})

# OCPP-J 4.2.3 error codes by the JSON-schema keyword that failed.
_ERROR_BY_RULE: dict[str, type[OCPPError]] = {
    "type": TypeConstraintViolationError,
    "required": OccurenceConstraintViolationError,
    "minItems": OccurenceConstraintViolationError,
    "maxItems": OccurenceConstraintViolationError,
    "enum": PropertyConstraintViolationError,
    "maxLength": PropertyConstraintViolationError,
    "minLength": PropertyConstraintViolationError,
    "minimum": PropertyConstraintViolationError,
    "maximum": PropertyConstraintViolationError,
    "multipleOf": PropertyConstraintViolationError,
    "pattern": PropertyConstraintViolationError,
    "format": PropertyConstraintViolationError,
}


def load_schema(name: str) -> dict[str, Any]:
    """The raw schema ``name`` (e.g. ``BootNotification``, ``ResetResponse``)."""
    path = resources.files("ocpp") / "v16" / "schemas" / f"{name}.json"
    return json.loads(path.read_text(encoding="utf-8-sig"))


def relax(schema: dict[str, Any]) -> dict[str, Any]:
    """Copy of ``schema`` that tolerates the deviations we normalise instead of refusing."""
    relaxed = copy.deepcopy(schema)
    _relax_node(relaxed, None)
    return relaxed


def _relax_node(node: Any, name: str | None) -> None:
    if isinstance(node, dict):
        node.pop("additionalProperties", None)
        node.pop("format", None)
        node.pop("$schema", None)
        if node.get("type") == "integer":
            # JSON integers are unbounded; our columns are not. "1e400" as meterStart
            # must be refused on the wire, not overflow the database.
            bound = _INT4_MAX if name in _INT4_FIELDS else _INT8_MAX
            node.setdefault("maximum", bound)
            node.setdefault("minimum", -bound - 1)
        if name == "connectorId" and node.get("type") == "integer":
            node["minimum"] = max(node.get("minimum", 0), 0)
        if "maxLength" in node:
            node["maxLength"] = max(node["maxLength"], HARD_MAX_LENGTH)
        for key, child in node.get("properties", {}).items():
            _relax_node(child, key)
        if "items" in node:
            _relax_node(node["items"], None)
    elif isinstance(node, list):
        for child in node:
            _relax_node(child, name)


@cache
def schema_for(name: str, *, relaxed: bool) -> dict[str, Any]:
    schema = load_schema(name)
    if not relaxed:
        return schema
    relaxed_schema = relax(schema)
    if name in _CONNECTOR_MINIMUM:
        relaxed_schema["properties"]["connectorId"]["minimum"] = _CONNECTOR_MINIMUM[name]
    return relaxed_schema


# A path into a payload ("*" = every item of an array) and the spec's maximum length there.
LengthRule = tuple[tuple[str, ...], int]


@cache
def length_rules(name: str) -> tuple[LengthRule, ...]:
    """Where the strict schema ``name`` bounds a string's length, and to how much."""
    rules: list[LengthRule] = []
    _collect_lengths(load_schema(name), (), rules)
    return tuple(rules)


def _collect_lengths(node: Any, path: tuple[str, ...], rules: list[LengthRule]) -> None:
    if not isinstance(node, dict):
        return
    if "maxLength" in node:
        rules.append((path, node["maxLength"]))
    for key, child in node.get("properties", {}).items():
        _collect_lengths(child, (*path, key), rules)
    if "items" in node:
        _collect_lengths(node["items"], (*path, "*"), rules)


def _exceeds(value: Any, path: tuple[str, ...], limit: int) -> bool:
    if not path:
        return isinstance(value, str) and len(value) > limit
    head, rest = path[0], path[1:]
    if head == "*":
        return isinstance(value, list) and any(_exceeds(item, rest, limit) for item in value)
    return isinstance(value, dict) and head in value and _exceeds(value[head], rest, limit)


@cache
def validator_for(name: str, *, relaxed: bool = True) -> Validator:
    return fastjsonschema.compile(schema_for(name, relaxed=relaxed), use_formats=False)


def to_ocpp_error(exc: fastjsonschema.JsonSchemaValueException) -> OCPPError:
    error_class = _ERROR_BY_RULE.get(exc.rule or "", FormationViolationError)
    field = ".".join(str(p) for p in (exc.path or [])[1:]) or None
    return error_class(
        description=exc.message.replace("data.", "", 1) if exc.message else "invalid payload",
        details={"field": field} if field else {},
    )


def validate_request(
    action: str, payload: dict[str, Any], deviations: list[str], *, screen: bool = False
) -> dict[str, Any]:
    """Validate a charger's request; coerce known deviations; raise the matching OCPPError.

    A CALL from ``parse_frame`` has been screened for values PostgreSQL cannot hold;
    ``screen=True`` checks a payload that did not come that way.
    """
    return _validate(action, payload, deviations, screen=screen)


def validate_response(
    action: str, payload: dict[str, Any], deviations: list[str]
) -> dict[str, Any]:
    # CALLRESULTs are not screened by parse_frame.
    return _validate(f"{action}Response", payload, deviations, screen=True)


def _validate(
    name: str, payload: dict[str, Any], deviations: list[str], *, screen: bool
) -> dict[str, Any]:
    validate = validator_for(name)
    try:
        validate(payload)
    except fastjsonschema.JsonSchemaValueException as first:
        coerced = coerce(schema_for(name, relaxed=True), payload, deviations)
        if not deviations:
            raise to_ocpp_error(first) from None
        try:
            validate(coerced)
        except fastjsonschema.JsonSchemaValueException as second:
            raise to_ocpp_error(second) from None
        payload = coerced
        # "1e400" as a string where a number belongs becomes Infinity here.
        check_holdable(payload)
    else:
        if screen:
            check_holdable(payload)
    if any(_exceeds(payload, path, limit) for path, limit in length_rules(name)):
        deviations.append("string_too_long")
    return payload


def check_holdable(payload: dict[str, Any]) -> None:
    """Refuse what PostgreSQL could not store, naming the field (see ``holdable``)."""
    error = unholdable_error(payload)
    if error is not None:
        raise error
