"""Operations endpoints, open like ``/healthz``: ``/metrics`` for Prometheus, ``/readyz``.

``/readyz`` is what a load balancer or orchestrator should route on: 200 only while the
database answers and the OCPP listener accepts connections, else 503 naming what failed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from csms.http.schemas import Readiness

if TYPE_CHECKING:
    from csms.metrics import Metrics

Health = Callable[[], Awaitable[dict[str, bool]]]


def create_router(metrics: Metrics, health: Health) -> APIRouter:
    router = APIRouter(tags=["operations"])

    @router.get("/metrics", include_in_schema=False)
    async def scrape() -> Response:
        await metrics.refresh()
        body = generate_latest(metrics.registry)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    @router.get(
        "/readyz",
        response_model=Readiness,
        responses={503: {"model": Readiness, "description": "Not ready: `failed` names why"}},
        summary="Readiness for a load balancer: database and OCPP listener",
    )
    async def readyz() -> JSONResponse:
        checks = await health()
        failed = [name for name, ok in checks.items() if not ok]
        status = 503 if failed else 200
        body = {"status": "unavailable" if failed else "ready", "checks": checks, "failed": failed}
        return JSONResponse(body, status_code=status, headers={"Cache-Control": "no-store"})

    return router
