"""The HTTP side (FastAPI): health now; the operator API and Smartcar callbacks build on it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Body, FastAPI, Query
from fastapi.responses import JSONResponse

from csms.http import (
    dashboard,
    routes_charge_points,
    routes_id_tags,
    routes_ops,
    routes_transactions,
)
from csms.http.auth import BearerAuth
from csms.http.problems import install_problem_handlers
from csms.http.request_metrics import HttpMetrics
from csms.ocpp16.errors import (
    CallErrorReceived,
    CommandTimeout,
    InvalidCommand,
    NotConnected,
)

if TYPE_CHECKING:
    from csms.app import CentralSystem


def create_app(system: CentralSystem, routers: Sequence[APIRouter] = ()) -> FastAPI:
    app = FastAPI(title="CSMS", version="0.1.0")
    install_problem_handlers(app)
    # Every /api/ route needs an operator token; see csms/http/auth.py for why a middleware.
    app.add_middleware(
        BearerAuth,
        pool=lambda: system.pool,
        clock=system.clock,
        on_refused=lambda reason: system.metrics.auth_failed("http", reason),
    )
    # Outermost, so it also counts what the token check refused.
    app.add_middleware(HttpMetrics, metrics=lambda: system.metrics)

    @app.get("/healthz")
    async def healthz() -> JSONResponse:
        checks = await system.health()
        status = 200 if all(checks.values()) else 503
        return JSONResponse({"status": "ok" if status == 200 else "unavailable", **checks}, status)

    @app.post("/api/charge-points/{charge_point_id}/commands/{action}")
    async def send_command(
        charge_point_id: str,
        action: str,
        payload: dict[str, Any] = Body(default_factory=dict),  # noqa: B008
        timeout: float | None = Query(default=None, gt=0, le=600),
    ) -> JSONResponse:
        try:
            response = await system.commands.send(charge_point_id, action, payload, timeout=timeout)
        except InvalidCommand as exc:
            return _problem(422, "Invalid command", str(exc), field=exc.field)
        except NotConnected as exc:
            return _problem(409, "Charge point not connected", str(exc))
        except CommandTimeout as exc:
            return _problem(504, "No answer from the charge point", str(exc))
        except CallErrorReceived as exc:
            return _problem(502, "The charge point answered with an error", str(exc), code=exc.code)
        return JSONResponse(response)

    @app.put("/api/charge-points/{charge_point_id}/registration")
    async def set_registration(
        charge_point_id: str,
        body: dict[str, str] = Body(...),  # noqa: B008
    ) -> JSONResponse:
        status = body.get("status")
        if status not in ("Accepted", "Pending", "Rejected"):
            return _problem(422, "Invalid status", "status must be Accepted, Pending or Rejected")
        if not await system.set_registration(charge_point_id, status):
            return _problem(404, "Unknown charge point", f"{charge_point_id!r} was never seen")
        return JSONResponse({"charge_point_id": charge_point_id, "registration_status": status})

    for module in (routes_charge_points, routes_transactions, routes_id_tags):
        app.include_router(module.create_router(system))
    app.include_router(routes_ops.create_router(system))  # /metrics, /readyz: open
    app.include_router(dashboard.create_page_router())  # the static page: open
    app.include_router(dashboard.create_api_router(system))  # /api/dashboard: token-guarded
    for router in routers:
        app.include_router(router)
    return app


def _problem(status: int, title: str, detail: str, **extra: Any) -> JSONResponse:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    body.update({k: v for k, v in extra.items() if v is not None})
    return JSONResponse(body, status_code=status, media_type="application/problem+json")
