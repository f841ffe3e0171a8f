"""Operator routes for charge points: list, detail, status history, registration, delete."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import structlog
from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse

from csms.db import charge_points, listings, operator_actions
from csms.domain import registration
from csms.http.paging import MAX_LIMIT, InvalidCursor, decode_cursor, encode_cursor, jsonable
from csms.http.problems import problem
from csms.http.schemas import (
    ChargePointDetail,
    ChargePointPage,
    RegistrationOut,
    StatusHistoryPage,
    errors,
)

if TYPE_CHECKING:
    import asyncpg

    from csms.ports import PresencePort, Registrations

log = structlog.get_logger()


def _unknown(charge_point_id: str) -> JSONResponse:
    return problem(404, "Unknown charge point", f"{charge_point_id!r} was never seen")


def create_router(
    pool: asyncpg.Pool, presence: PresencePort, registrations: Registrations
) -> APIRouter:
    router = APIRouter(prefix="/api/charge-points", tags=["charge points"])

    def live() -> dict[str, Any]:
        return {"node_id": presence.node_id, "live": presence.held_here()}

    @router.get(
        "",
        response_model=ChargePointPage,
        responses=errors(422),
        summary="List chargers, filtered, by id",
        description="`status` matches the registration status or any connector's status.",
    )
    async def list_charge_points(
        connected: bool | None = None,
        status: str | None = Query(default=None, description="registration or connector status"),
        vendor: str | None = None,
        limit: int = Query(default=MAX_LIMIT, ge=1, le=MAX_LIMIT),
        cursor: str | None = None,
    ) -> JSONResponse:
        try:
            after = decode_cursor("cp", cursor)[0] if cursor else None
        except (InvalidCursor, IndexError):
            return problem(422, "Invalid request", "invalid value for cursor", field="cursor")
        rows = await listings.charge_points(
            pool,
            **live(),
            connected=connected,
            status=status,
            vendor=vendor,
            after_id=after,
            limit=limit,
        )
        next_cursor = encode_cursor("cp", rows[-1]["id"]) if len(rows) == limit else None
        return JSONResponse({"items": jsonable(rows), "next_cursor": next_cursor})

    @router.get(
        "/{charge_point_id}",
        response_model=ChargePointDetail,
        responses=errors(404),
        summary="One charger: boot details, presence, connectors, open transactions",
    )
    async def get_charge_point(charge_point_id: str) -> JSONResponse:
        found = await listings.charge_point(pool, charge_point_id, **live())
        if found is None:
            return _unknown(charge_point_id)
        return JSONResponse(jsonable(found))

    @router.get(
        "/{charge_point_id}/status-history",
        response_model=StatusHistoryPage,
        responses=errors(404, 422),
        summary="Status notifications of a charger, newest first",
    )
    async def status_history(
        charge_point_id: str,
        connector_id: int | None = Query(default=None, ge=0),
        limit: int = Query(default=100, ge=1, le=MAX_LIMIT),
        cursor: str | None = None,
    ) -> JSONResponse:
        try:
            before = int(decode_cursor("sh", cursor)[0]) if cursor else None
        except (InvalidCursor, IndexError, TypeError, ValueError):
            return problem(422, "Invalid request", "invalid value for cursor", field="cursor")
        if await charge_points.fetch_registration(pool, charge_point_id) is None:
            return _unknown(charge_point_id)
        rows = await listings.status_history(
            pool, charge_point_id, connector_id=connector_id, before_id=before, limit=limit
        )
        next_cursor = encode_cursor("sh", rows[-1]["id"]) if len(rows) == limit else None
        return JSONResponse({"items": jsonable(rows), "next_cursor": next_cursor})

    async def decide(request: Request, charge_point_id: str, status: str) -> JSONResponse:
        if not await registrations.set(charge_point_id, status):
            return _unknown(charge_point_id)
        log.info(
            "http.registration_decided",
            charge_point_id=charge_point_id,
            status=status,
            operator=getattr(request.state, "operator", None),
        )
        return JSONResponse({"charge_point_id": charge_point_id, "registration_status": status})

    @router.post(
        "/{charge_point_id}/accept",
        response_model=RegistrationOut,
        responses=errors(404),
        summary="Accept a pending (or rejected) charger",
        description="A connected charger is asked to boot again at once (TriggerMessage).",
    )
    async def accept(request: Request, charge_point_id: str) -> JSONResponse:
        return await decide(request, charge_point_id, registration.ACCEPTED)

    @router.post(
        "/{charge_point_id}/reject",
        response_model=RegistrationOut,
        responses=errors(404),
        summary="Reject a charger: its next boot is refused",
    )
    async def reject(request: Request, charge_point_id: str) -> JSONResponse:
        return await decide(request, charge_point_id, registration.REJECTED)

    @router.delete(
        "/{charge_point_id}",
        status_code=204,
        responses=errors(404, 409),
        summary="Forget a charger that is not connected",
    )
    async def delete(request: Request, charge_point_id: str) -> Response:
        if presence.connected_anywhere(charge_point_id):
            return _connected(charge_point_id)
        outcome = await operator_actions.delete_charge_point(pool, charge_point_id, **live())
        if outcome == "unknown":
            return _unknown(charge_point_id)
        if outcome == "connected":
            return _connected(charge_point_id)
        # Forget the cached decision too (every node's): if it comes back it is unknown again.
        registrations.forget(charge_point_id)
        log.info(
            "http.charge_point_deleted",
            charge_point_id=charge_point_id,
            operator=getattr(request.state, "operator", None),
        )
        return Response(status_code=204)

    return router


def _connected(charge_point_id: str) -> JSONResponse:
    return problem(
        409,
        "Charge point connected",
        f"{charge_point_id!r} is connected; disconnect it before deleting it",
    )
