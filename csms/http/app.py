"""The HTTP side (FastAPI): the operator API, operations endpoints and the dashboard.

``create_app`` gets ``HttpServices`` (the ports, built by ``csms/app.py``) and hands each
router only the ones it uses; plug-ins' routers, panels and tags come in beside them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
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
    routes_security,
    routes_transactions,
)
from csms.http.auth import BearerAuth
from csms.http.problems import install_problem_handlers
from csms.http.request_metrics import HttpMetrics
from csms.http.schemas import (
    Health,
    RegistrationOut,
    errors,
)

if TYPE_CHECKING:
    import asyncpg

    from csms.http.dashboard import DashboardFeed
    from csms.metrics import Metrics
    from csms.plugins import DashboardPanel, TransactionLink
    from csms.ports import CommandPort, PresencePort, Registrations
    from csms.security.service import SecurityService

TAGS = [
    {"name": "charge points", "description": "Chargers, their connectors and commands."},
    {"name": "transactions", "description": "Charging transactions and their meter values."},
    {"name": "id tags", "description": "The authorisation list and local-list pushes."},
    {"name": "security", "description": "Security profiles, passwords and events."},
    {"name": "dashboard", "description": "What the operators' dashboard page reads."},
    {"name": "operations", "description": "Health and readiness, open without a token."},
]


@dataclass(frozen=True, slots=True)
class HttpServices:
    """What the routes use; nothing else of the running system reaches them."""

    pool: asyncpg.Pool
    clock: Callable[[], datetime]
    metrics: Metrics
    health: Callable[[], Awaitable[dict[str, bool]]]
    commands: CommandPort
    presence: PresencePort
    registrations: Registrations
    security: SecurityService
    unknown_chargers: str
    dashboard_feed: DashboardFeed | None
    # The plug-ins' filters and records in the transactions API.
    transaction_links: Sequence[TransactionLink] = ()


def create_app(
    services: HttpServices,
    routers: Sequence[APIRouter] = (),
    dashboard_panels: Mapping[str, DashboardPanel] | None = None,
    tags: Sequence[dict[str, str]] = (),
) -> FastAPI:
    """The HTTP app; ``routers``, ``dashboard_panels`` and ``tags`` are the plug-ins'."""
    app = FastAPI(title="CSMS", version="0.1.0", openapi_tags=[*TAGS[:-1], *tags, TAGS[-1]])
    install_problem_handlers(app)
    openapi.install(app)
    # Every /api/ route needs an operator token; see csms/http/auth.py for why a middleware.
    app.add_middleware(
        BearerAuth,
        pool=lambda: services.pool,
        clock=services.clock,
        on_refused=lambda reason: services.metrics.auth_failed("http", reason),
    )
    # Outermost, so it also counts what the token check refused.
    app.add_middleware(HttpMetrics, metrics=lambda: services.metrics)

    @app.get(
        "/healthz",
        tags=["operations"],
        response_model=Health,
        responses={503: {"model": Health, "description": "A check failed"}},
        summary="Liveness, with one boolean per check",
    )
    async def healthz() -> JSONResponse:
        checks = await services.health()
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
        if not await services.registrations.set(charge_point_id, status):
            return _problem(404, "Unknown charge point", f"{charge_point_id!r} was never seen")
        return JSONResponse({"charge_point_id": charge_point_id, "registration_status": status})

    pool = services.pool
    app.include_router(
        routes_charge_points.create_router(pool, services.presence, services.registrations)
    )
    app.include_router(routes_commands.create_router(services.commands))
    app.include_router(routes_transactions.create_router(pool, services.transaction_links))
    app.include_router(routes_id_tags.create_router(pool, services.commands, services.clock))
    app.include_router(
        routes_security.create_router(pool, services.security, services.unknown_chargers)
    )
    # /metrics, /readyz: open
    app.include_router(routes_ops.create_router(services.metrics, services.health))
    app.include_router(dashboard.create_page_router())  # the static page: open
    # /api/dashboard/*: token-guarded
    app.include_router(
        dashboard.create_api_router(
            pool, services.presence, services.clock, services.dashboard_feed, dashboard_panels
        )
    )
    for router in routers:
        app.include_router(router)
    return app


def _problem(status: int, title: str, detail: str, **extra: Any) -> JSONResponse:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    body.update({k: v for k, v in extra.items() if v is not None})
    return JSONResponse(body, status_code=status, media_type="application/problem+json")
