"""The generic command route: any central-system-initiated 1.6 action, as the operator wrote it.

Configuration keys that are credentials or the security profile are refused here: the
security routes also update what the handshake checks, so a charger changed behind
their back would be locked out at its next connection.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Body, Query
from fastapi.responses import JSONResponse

from csms.http.problems import command_problem
from csms.http.schemas import COMMAND_ERRORS, CommandAnswer, errors
from csms.ocpp16.errors import CommandError, InvalidCommand

if TYPE_CHECKING:
    from csms.ports import CommandPort

# ChangeConfiguration key (compared case-insensitively: chargers do) -> its own route.
SECURITY_KEY_ROUTES = {
    "authorizationkey": "POST /api/charge-points/{charge_point_id}/security/password",
    "securityprofile": "PUT /api/charge-points/{charge_point_id}/security/profile",
}


def security_key_route(charge_point_id: str, action: str, payload: dict[str, Any]) -> str | None:
    """The route that must be used instead, if this command changes a security key."""
    key = payload.get("key")
    if action != "ChangeConfiguration" or not isinstance(key, str):
        return None
    route = SECURITY_KEY_ROUTES.get(key.lower())
    return route.format(charge_point_id=charge_point_id) if route else None


def create_router(commands: CommandPort) -> APIRouter:
    router = APIRouter()

    @router.post(
        "/api/charge-points/{charge_point_id}/commands/{action}",
        tags=["charge points"],
        response_model=CommandAnswer,
        responses=errors(*COMMAND_ERRORS),
        summary="Send an OCPP command to a connected charger",
        description=(
            "`action` is any central-system-to-charger OCPP 1.6 action (Reset, "
            "UnlockConnector, RemoteStartTransaction, ChangeConfiguration, …) and the body "
            "its payload, in OCPP's camelCase. Commands to one charger go out one at a time. "
            "Answers with the charger's own answer; 409 when it is not connected (never "
            "sent), 503 when its queue did not drain in time (never sent), 422 for an "
            "unknown action, an invalid payload or a security key (use the security routes), "
            "502 for a CALLERROR, an answer breaking the schema or a connection lost after "
            "sending (outcome unknown), 504 when it does not answer within `timeout` seconds."
        ),
    )
    async def send_command(
        charge_point_id: str,
        action: str,
        payload: dict[str, Any] = Body(default_factory=dict),  # noqa: B008
        timeout: float | None = Query(default=None, gt=0, le=600),
    ) -> JSONResponse:
        route = security_key_route(charge_point_id, action, payload)
        try:
            if route is not None:
                raise InvalidCommand(
                    f"{payload['key']} is changed only through {route}, which also updates "
                    "the credential the charger is checked against",
                    field="key",
                    route=route,
                )
            response = await commands.send(charge_point_id, action, payload, timeout=timeout)
        except CommandError as exc:
            return command_problem(exc)
        return JSONResponse(response)

    return router
