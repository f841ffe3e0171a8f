"""What the Smartcar bridge's routes answer on a server that runs without it.

Without these, ``csms account create`` against such a server got a bare ``404: Not Found``:
the operator could not tell a typo from a switched-off feature.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from csms.http.problems import problem

# The path prefixes smartcar_bridge.http and .http_plug_ins mount when the bridge is on.
BRIDGE_PATHS = ("/api/accounts", "/api/vehicles", "/api/sessions", "/api/plug-ins", "/smartcar")
_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]


def create_router(reason: str) -> APIRouter:
    """Every bridge path answers 404 ``bridge_off`` naming ``reason`` and what to set."""
    router = APIRouter(include_in_schema=False)
    detail = (
        f"the Smartcar bridge is off on this server ({reason}): set SMARTCAR_CLIENT_ID, "
        "SMARTCAR_CLIENT_SECRET, SMARTCAR_REDIRECT_URI and CSMS_SECRET_KEY and restart it"
    )

    async def bridge_off() -> JSONResponse:
        return problem(404, "Smartcar bridge is off", detail, reason="bridge_off")

    for prefix in BRIDGE_PATHS:
        router.add_api_route(prefix, bridge_off, methods=_METHODS)
        router.add_api_route(prefix + "/{rest:path}", bridge_off, methods=_METHODS)
    router.add_api_route(
        "/api/charge-points/{charge_point_id}/location", bridge_off, methods=["GET", "PUT"]
    )
    return router
