"""The HTTP side (FastAPI): health now; the operator API and Smartcar callbacks build on it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Body, FastAPI
from fastapi.responses import JSONResponse

from csms.http import (
    dashboard,
    routes_charge_points,
    routes_commands,
    routes_id_tags,
    routes_ops,
    routes_transactions,
)
from csms.http.auth import BearerAuth
from csms.http.problems import install_problem_handlers

if TYPE_CHECKING:
    from csms.app import CentralSystem


def create_app(system: CentralSystem, routers: Sequence[APIRouter] = ()) -> FastAPI:
    app = FastAPI(title="CSMS", version="0.1.0")
    install_problem_handlers(app)
    # Every /api/ route needs an operator token; see csms/http/auth.py for why a middleware.
    app.add_middleware(BearerAuth, pool=lambda: system.pool, clock=system.clock)

    @app.get("/healthz")
    async def healthz() -> JSONResponse:
        checks = await system.health()
        status = 200 if all(checks.values()) else 503
        return JSONResponse({"status": "ok" if status == 200 else "unavailable", **checks}, status)

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

    for module in (routes_charge_points, routes_commands, routes_transactions, routes_id_tags):
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
