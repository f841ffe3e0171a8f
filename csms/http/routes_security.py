"""Operator API for charger security: status, passwords, profiles, security events.

A generated password is in the response body once and nowhere else: not in the
database (only its hash), not in the logs, not in the commands table.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Body, Query
from fastapi.responses import JSONResponse

from csms.db import security as db
from csms.domain import registration
from csms.http.problems import command_problem
from csms.http.problems import problem as _problem
from csms.http.schemas import PasswordOut, ProfileOut, SecurityEvents, SecurityStatus, errors
from csms.ocpp16.errors import CommandError
from csms.security.profiles import DowngradeRefused
from csms.security.rotation import ChargerRefused, UnknownChargePoint

if TYPE_CHECKING:
    import asyncpg

    from csms.security.service import SecurityService


def create_router(
    pool: asyncpg.Pool, security: SecurityService, unknown_chargers: str
) -> APIRouter:
    """``unknown_chargers``: the site policy, the registration of a provisioned charger."""
    router = APIRouter(prefix="/api/charge-points/{charge_point_id}", tags=["security"])

    @router.get(
        "/security",
        response_model=SecurityStatus,
        responses=errors(404),
        summary="A charger's security profile and password state",
    )
    async def security_status(charge_point_id: str) -> JSONResponse:
        status = await security.status(charge_point_id)
        if status is None:
            return _problem(404, "Unknown charge point", f"{charge_point_id!r} was never seen")
        return JSONResponse(status)

    @router.post(
        "/security/password",
        response_model=PasswordOut,
        responses=errors(404, 409, 502, 504),
        summary="Rotate (or, with provision, pre-set) a charger's Basic-auth password",
        description="The new password is in this answer once, and stored only as a hash.",
    )
    async def new_password(
        charge_point_id: str,
        body: dict[str, Any] = Body(default_factory=dict),  # noqa: B008
    ) -> JSONResponse:
        flows = security.flows
        try:
            if body.get("provision"):
                initial = registration.initial_status(unknown_chargers)
                password = await flows.provision_password(charge_point_id, initial)
                applied = "stored; enter it as the charger's AuthorizationKey"
            else:
                password = await flows.rotate_password(charge_point_id)
                applied = "accepted by the charger"
        except _MAPPED as exc:
            return _error(exc)
        return JSONResponse(
            {"charge_point_id": charge_point_id, "password": password, "applied": applied}
        )

    @router.put(
        "/security/profile",
        response_model=ProfileOut,
        responses=errors(404, 409, 422, 502, 504),
        summary="Move a charger to security profile 0-3",
        description="A downgrade is refused (409); a password is generated when needed.",
    )
    async def set_profile(
        charge_point_id: str,
        body: dict[str, Any] = Body(...),  # noqa: B008
    ) -> JSONResponse:
        profile = body.get("profile")
        if type(profile) is not int or not 0 <= profile <= 3:
            return _problem(422, "Invalid profile", "profile must be 0, 1, 2 or 3")
        try:
            change = await security.flows.set_profile(charge_point_id, profile)
        except _MAPPED as exc:
            return _error(exc)
        answer: dict[str, Any] = {
            "charge_point_id": charge_point_id,
            "security_profile": change.security_profile,
            "pending_security_profile": change.pending_security_profile,
        }
        if change.password is not None:
            answer["password"] = change.password
        return JSONResponse(answer)

    @router.get(
        "/security-events",
        response_model=SecurityEvents,
        responses=errors(422),
        summary="Security events a charger reported, newest first",
    )
    async def security_events(
        charge_point_id: str, limit: int = Query(default=100, ge=1, le=1000)
    ) -> JSONResponse:
        rows = await db.fetch_security_events(pool, charge_point_id, limit)
        events = [
            {
                "type": r["type"],
                "tech_info": r["tech_info"],
                "reported_at": r["reported_at"].isoformat() if r["reported_at"] else None,
                "received_at": r["received_at"].isoformat(),
            }
            for r in rows
        ]
        return JSONResponse({"charge_point_id": charge_point_id, "events": events})

    return router


_MAPPED = (
    UnknownChargePoint,
    DowngradeRefused,
    ChargerRefused,
    CommandError,
)


def _error(exc: Exception) -> JSONResponse:
    if isinstance(exc, UnknownChargePoint):
        return _problem(404, "Unknown charge point", str(exc))
    if isinstance(exc, DowngradeRefused):
        return _problem(409, "Downgrade refused", str(exc))
    if isinstance(exc, ChargerRefused):
        # ``status`` is the problem's own HTTP field: the charger's answer gets its own name.
        return _problem(
            409, "The charge point refused the change", str(exc), charger_status=exc.status
        )
    if isinstance(exc, CommandError):
        return command_problem(exc)  # the one mapping every sending route uses
    raise exc  # not reached: _MAPPED lists what is handled above
