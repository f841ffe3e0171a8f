"""Payload validation against the OCPP 1.6 JSON schemas shipped with the ``ocpp`` library.

The schemas are compiled once with fastjsonschema (about 18x faster than the
library's jsonschema validation, measured on MeterValues), after relaxing what
real chargers commonly get wrong but we can still use (see ocpp-field-notes.md):
extra fields are kept, timestamps are parsed leniently by ``normalize``, and
idTags longer than 20 characters are accepted. A payload that fails is coerced
(numbers as strings, enum spelling) and validated again before we refuse it.
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

Validator = Callable[[Any], Any]

_RELAXED_MAX_LENGTH = {"idTag": 255, "parentIdTag": 255}
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
        if name in _RELAXED_MAX_LENGTH and "maxLength" in node:
            node["maxLength"] = _RELAXED_MAX_LENGTH[name]
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
    return relax(schema) if relaxed else schema


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


def validate_request(action: str, payload: dict[str, Any], deviations: list[str]) -> dict[str, Any]:
    """Validate a charger's request; coerce known deviations; raise the matching OCPPError."""
    return _validate(action, payload, deviations)


def validate_response(
    action: str, payload: dict[str, Any], deviations: list[str]
) -> dict[str, Any]:
    return _validate(f"{action}Response", payload, deviations)


def _validate(name: str, payload: dict[str, Any], deviations: list[str]) -> dict[str, Any]:
    validate = validator_for(name)
    try:
        validate(payload)
        return payload
    except fastjsonschema.JsonSchemaValueException as first:
        coerced = coerce(schema_for(name, relaxed=True), payload, deviations)
        if not deviations:
            raise to_ocpp_error(first) from None
        try:
            validate(coerced)
        except fastjsonschema.JsonSchemaValueException as second:
            raise to_ocpp_error(second) from None
        return coerced
