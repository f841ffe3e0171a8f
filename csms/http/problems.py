"""RFC 9457 problem details: one way to write an error, and handlers so FastAPI's own
errors (validation, unknown route, wrong method) come out the same way."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from csms.cluster.errors import RoutingUnavailable
from csms.ocpp16.errors import (
    CallErrorReceived,
    CommandError,
    CommandTimeout,
    InvalidCommand,
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


def problem(
    status: int,
    title: str,
    detail: str,
    *,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status}
    body["detail"] = detail
    body.update({k: v for k, v in extra.items() if v is not None})
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def command_problem(exc: CommandError) -> JSONResponse:
    """The command API's errors as problems: the same mapping for every route that sends."""
    if isinstance(exc, InvalidCommand):
        return problem(422, "Invalid command", str(exc), field=exc.field)
    if isinstance(exc, RoutingUnavailable):
        return problem(503, "Cluster routing unavailable", str(exc))
    if isinstance(exc, NotConnected):
        return problem(409, "Charge point not connected", str(exc))
    if isinstance(exc, CommandTimeout):
        return problem(504, "No answer from the charge point", str(exc))
    if isinstance(exc, CallErrorReceived):
        return problem(502, "The charge point answered with an error", str(exc), code=exc.code)
    return problem(502, "Command failed", str(exc))


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
