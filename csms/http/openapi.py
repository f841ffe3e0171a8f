"""``/openapi.json`` as clients need it: the bearer scheme, problem+json errors.

FastAPI documents what routes declare; three things are true of the whole API rather than
of one route, so they are added here once: every ``/api/`` operation needs the operator
token and can answer 401 (and 503 when the token cannot be checked, see ``auth.py``),
errors are ``application/problem+json`` (not FastAPI's ``application/json``), and a
request that does not validate gets our 422 problem, not FastAPI's ``HTTPValidationError``.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from csms.http.auth import is_protected
from csms.http.problems import PROBLEM_JSON
from csms.http.schemas import ERROR_DESCRIPTIONS, Problem, RegistrationIn, ValidationProblem

DESCRIPTION = """\
Operator API of the OCPP 1.6J central system, with the routes of its plug-ins (the Smartcar
bridge's, tagged `bridge`, when it runs).

Everything under `/api/` needs an operator token (`csms token create NAME`), sent as
`Authorization: Bearer <token>`. Errors are RFC 9457 problem documents
(`application/problem+json`). Lists are paged by an opaque `next_cursor`: pass it back as
`?cursor=` until it is null. Times are ISO 8601 with a time zone; energy is integer Wh;
money is a decimal string.
"""

SCHEME = "operatorToken"
_REF = "#/components/schemas/"


def install(app: FastAPI) -> None:
    """Replace ``app.openapi`` with one that completes the generated document."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(
                title=app.title,
                version=app.version,
                description=DESCRIPTION,
                routes=app.routes,
                tags=app.openapi_tags,
            )
            app.openapi_schema = complete(document)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def complete(document: dict[str, Any]) -> dict[str, Any]:
    components = document.setdefault("components", {})
    components.setdefault("securitySchemes", {})[SCHEME] = {
        "type": "http",
        "scheme": "bearer",
        "description": "An operator token from `csms token create NAME`.",
    }
    schemas = components.setdefault("schemas", {})
    for model in (Problem, ValidationProblem, RegistrationIn):
        schema = model.model_json_schema(ref_template=_REF + "{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas.setdefault(model.__name__, schema)
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    for path, operations in document.get("paths", {}).items():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            if is_protected(path):
                operation["security"] = [{SCHEME: []}]
                for status in ("401", "503"):
                    responses.setdefault(status, _problem(int(status), "Problem"))
            for status, response in responses.items():
                if status == "422":
                    responses[status] = _problem(422, "ValidationProblem")
                elif status[0] in "45" and _is_problem(response):
                    schema = {"$ref": _REF + "Problem"}
                    response["content"] = {PROBLEM_JSON: {"schema": schema}}
    return document


def _is_problem(response: dict[str, Any]) -> bool:
    """An error declared with the Problem model (or with no body): not the health checks'
    503, which is their ordinary JSON, nor the Smartcar callback's HTML pages."""
    content = response.get("content", {})
    schema = content.get("application/json", {}).get("schema", {})
    return set(content) <= {"application/json"} and schema.get("$ref") in (None, _REF + "Problem")


def _problem(status: int, model: str) -> dict[str, Any]:
    return {
        "description": ERROR_DESCRIPTIONS[status],
        "content": {PROBLEM_JSON: {"schema": {"$ref": _REF + model}}},
    }
