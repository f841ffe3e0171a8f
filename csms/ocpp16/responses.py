"""What a charger answers to our commands, checked against the 1.6 response schemas.

The same relaxed schemas and normalisation as incoming CALLs (``validation``): a
lower-case ``accepted`` is ``Accepted``, ``"3"`` is ``3``, each deviation reported for
``ocpp.nonconforming``. An answer that still breaks the schema is an ``InvalidResponse``
naming the field, never passed on as if valid.
"""

from __future__ import annotations

from typing import Any

from ocpp.exceptions import OccurenceConstraintViolationError, OCPPError

from csms.ocpp16.validation import schema_for, validate_response
from csms.ocppj.errors import InvalidResponse


def check_response(action: str, payload: dict[str, Any], deviations: list[str]) -> dict[str, Any]:
    """The answer to ``action``, normalised; raises ``InvalidResponse`` naming the field."""
    try:
        return validate_response(action, payload, deviations)
    except OCPPError as exc:
        details = exc.details if isinstance(exc.details, dict) else {}
        field = details.get("field")
        if isinstance(exc, OccurenceConstraintViolationError):
            # The schema error names the object; the operator needs the missing property.
            schema = schema_for(f"{action}Response", relaxed=True)
            field = missing_field(schema, payload) or field
        raise InvalidResponse(action, exc.description or "invalid", field, payload) from None


def missing_field(schema: dict[str, Any], value: Any, path: str = "") -> str | None:
    """The dotted path of the first required property absent from ``value``, if any."""
    if isinstance(value, dict) and schema.get("type") == "object":
        properties = schema.get("properties", {})
        for name in schema.get("required", []):
            if name not in value:
                return f"{path}{name}"
        for name, item in value.items():
            if name in properties:
                found = missing_field(properties[name], item, f"{path}{name}.")
                if found is not None:
                    return found
    elif isinstance(value, list) and schema.get("type") == "array":
        for index, item in enumerate(value):
            found = missing_field(schema.get("items", {}), item, f"{path}{index}.")
            if found is not None:
                return found
    return None
