"""The HTTP side (FastAPI): health now; the operator API and Smartcar callbacks build on it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Body, FastAPI
from fastapi.responses import JSONResponse

from csms.http import (
    dashboard,
    openapi,
    routes_charge_points,
    routes_commands,
    routes_id_tags,
    routes_ops,
    routes_transactions,
)
from csms.http.auth import BearerAuth
from csms.http.dashboard import SummarySection
from csms.http.problems import install_problem_handlers
from csms.http.request_metrics import HttpMetrics
from csms.http.schemas import (
    Health,
    RegistrationOut,
    errors,
)

if TYPE_CHECKING:
    from csms.app import CentralSystem

TAGS = [
    {"name": "charge points", "description": "Chargers, their connectors and commands."},
    {"name": "transactions", "description": "Charging transactions and their meter values."},
    {"name": "id tags", "description": "The authorisation list and local-list pushes."},
    {"name": "security", "description": "Security profiles, passwords and events."},
    {"name": "dashboard", "description": "What the operators' dashboard page reads."},
    {"name": "bridge", "description": "Smartcar plug-and-charge: accounts, cars, sessions."},
    {"name": "operations", "description": "Health and readiness, open without a token."},
]


def create_app(
    system: CentralSystem,
    routers: Sequence[APIRouter] = (),
    dashboard_sections: Mapping[str, SummarySection] | None = None,
) -> FastAPI:
    """The HTTP app; ``dashboard_sections`` add parts (the bridge's) to the fleet summary."""
    app = FastAPI(title="CSMS", version="0.1.0", openapi_tags=TAGS)
    install_problem_handlers(app)
    openapi.install(app)
    # Every /api/ route needs an operator token; see csms/http/auth.py for why a middleware.
    app.add_middleware(
        BearerAuth,
        pool=lambda: system.pool,
        clock=system.clock,
        on_refused=lambda reason: system.metrics.auth_failed("http", reason),
    )
    # Outermost, so it also counts what the token check refused.
    app.add_middleware(HttpMetrics, metrics=lambda: system.metrics)

    @app.get(
        "/healthz",
        tags=["operations"],
        response_model=Health,
        responses={503: {"model": Health, "description": "A check failed"}},
        summary="Liveness, with one boolean per check",
    )
    async def healthz() -> JSONResponse:
        checks = await system.health()
        status = 200 if all(checks.values()) else 503
        return JSONResponse({"status": "ok" if status == 200 else "unavailable", **checks}, status)

    @app.put(
        "/api/charge-points/{charge_point_id}/registration",
        tags=["charge points"],
        response_model=RegistrationOut,
        responses=errors(404, 422),
        summary="Set a charger's registration (Accepted, Pending, Rejected)",
        description="An accepted charger that is connected is asked to boot again at once.",
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/RegistrationIn"}}
                },
            }
        },
    )
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
    # /api/dashboard/*: token-guarded
    app.include_router(dashboard.create_api_router(system, dashboard_sections))
    for router in routers:
        app.include_router(router)
    return app


def _problem(status: int, title: str, detail: str, **extra: Any) -> JSONResponse:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    body.update({k: v for k, v in extra.items() if v is not None})
    return JSONResponse(body, status_code=status, media_type="application/problem+json")
