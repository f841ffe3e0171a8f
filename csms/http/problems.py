"""RFC 9457 problem details: one way to write an error, and handlers so FastAPI's own
errors (validation, unknown route, wrong method) come out the same way."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from csms.ocpp16.errors import (
    CallErrorReceived,
    ChargerBusy,
    CommandError,
    CommandTimeout,
    ConnectionLost,
    InvalidCommand,
    InvalidResponse,
    NotConnected,
)

PROBLEM_JSON = "application/problem+json"

_TITLES = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    422: "Invalid request",
    503: "Unavailable",
}

# The command API's errors: HTTP status, title and problem type, one definition for every
# route that sends. "Never sent" (409, 503) is safe to retry; "sent, outcome unknown"
# (502 connection-lost, 504) is not, for a non-idempotent command such as RemoteStart.
_COMMAND_PROBLEMS: dict[type[CommandError], tuple[int, str, str]] = {
    InvalidCommand: (422, "Invalid command", "invalid-command"),
    NotConnected: (409, "Charge point not connected", "not-connected"),
    ChargerBusy: (503, "Charge point busy: command not sent", "charger-busy"),
    CommandTimeout: (504, "No answer from the charge point", "timeout"),
    ConnectionLost: (502, "Connection lost after sending: outcome unknown", "connection-lost"),
    CallErrorReceived: (502, "The charge point answered with an error", "call-error"),
    InvalidResponse: (502, "The charge point's answer breaks the OCPP schema", "invalid-response"),
}
PROBLEM_TYPE_PREFIX = "urn:csms:problem:"


def problem(
    status: int,
    title: str,
    detail: str,
    *,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body: dict[str, Any] = {"type": extra.pop("type", None) or "about:blank", "title": title}
    body.update(status=status, detail=detail)
    body.update({k: v for k, v in extra.items() if v is not None})
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def command_problem(exc: CommandError) -> JSONResponse:
    """The command API's errors as problems: the same mapping for every route that sends."""
    status, title, kind = _COMMAND_PROBLEMS.get(type(exc), (502, "Command failed", "failed"))
    extra: dict[str, Any] = {"outcome": exc.outcome}
    if isinstance(exc, InvalidCommand):
        extra.update(field=exc.field, route=exc.route)
    elif isinstance(exc, CallErrorReceived):
        extra["code"] = exc.code
    elif isinstance(exc, InvalidResponse):
        extra.update(field=exc.field, response=exc.response)
    if not isinstance(exc, InvalidCommand):
        # Whether the CALL reached the wire: the operator's cue for whether to resend.
        extra["sent"] = not isinstance(exc, NotConnected | ChargerBusy)
    return problem(status, title, str(exc), type=PROBLEM_TYPE_PREFIX + kind, **extra)


def _field(location: tuple[Any, ...]) -> str:
    # ("query", "limit") -> "limit"; ("body", "expiry_date") -> "expiry_date"
    parts = [str(p) for p in location if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [{"field": _field(tuple(e["loc"])), "message": e["msg"]} for e in exc.errors()]
    fields = sorted({e["field"] for e in errors})
    return problem(
        422,
        "Invalid request",
        f"invalid value for {', '.join(fields)}",
        field=fields[0] if len(fields) == 1 else None,
        errors=errors,
    )


async def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    title = _TITLES.get(exc.status_code, "Error")
    detail = exc.detail if isinstance(exc.detail, str) else title
    return problem(exc.status_code, title, detail, headers=getattr(exc, "headers", None))


def install_problem_handlers(app: FastAPI) -> None:
    """Validation errors (422 naming the fields), 404s and other HTTP errors as problems."""
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
