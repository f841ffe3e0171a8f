"""Vehicles API v2.0 routes (§5): auth, scope and fault checks, then ``vehicle_api``."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from simulators.smartcar_fake import vehicle_api
from simulators.smartcar_fake.errors import ApiError
from simulators.smartcar_fake.routes_oauth import fake_of
from simulators.smartcar_fake.state import FakeSmartcar
from simulators.smartcar_fake.tokens import Grant
from simulators.world import Vehicle

RETIRED = (
    "Vehicles API v2.0 has been retired and is no longer available. "
    "Please migrate to Vehicles API v3."
)


async def _v2_alive(request: Request) -> None:
    """§14.6: once v2.0 is switched off every path answers 404 RESOURCE_NOT_FOUND:VERSION."""
    if fake_of(request).v3.v2_retired:
        raise ApiError("RESOURCE_NOT_FOUND:VERSION", description=RETIRED)


router = APIRouter(prefix="/v2.0", dependencies=[Depends(_v2_alive)])

MAX_PAGE = 50


def iso_ms(moment: datetime) -> str:
    """``2019-10-24T00:43:46.000Z``, the shape of SC-Data-Age in Smartcar's examples."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def unit_system(request: Request) -> str:
    return "imperial" if request.headers.get("sc-unit-system") == "imperial" else "metric"


def data_headers(fake: FakeSmartcar, units: str) -> dict[str, str]:
    now = fake.clock()
    return {
        "sc-data-age": iso_ms(now - timedelta(seconds=fake.data_age_s)),
        "sc-fetched-at": iso_ms(now),
        "sc-unit-system": units,
    }


def _granted_vehicle(fake: FakeSmartcar, grant: Grant, vehicle_id: str) -> Vehicle:
    try:
        uuid.UUID(vehicle_id)
    except ValueError:
        # §5: GET /vehicles/bad_id answers 400.
        raise ApiError("VALIDATION", description="Invalid vehicle id.") from None
    vehicle = fake.world.vehicles_by_smartcar_id.get(vehicle_id)
    if vehicle is None or vehicle_id not in grant.vehicle_ids:
        # The token holds no credentials for this vehicle (never granted, or disconnected).
        raise ApiError("AUTHENTICATION")
    return vehicle


async def _authorize(
    request: Request,
    vehicle_id: str,
    *,
    scope: str | None,
    endpoint: str | None,
    cost: int = 1,
) -> tuple[FakeSmartcar, Grant, Vehicle]:
    """Latency, bearer token, vehicle, cost limits, scope and (with ``endpoint``) faults."""
    fake = fake_of(request)
    if fake.faults.latency_s > 0:
        await asyncio.sleep(fake.faults.latency_s)
    grant = fake.tokens.authenticate(request.headers.get("authorization"))
    vehicle = _granted_vehicle(fake, grant, vehicle_id)
    if cost:
        fake.costs.charge(vehicle_id, fake.clock(), cost)
    if scope is not None:
        vehicle_api.require_scope(grant.scopes, scope)
    if endpoint is not None:
        fault = fake.faults.draw(endpoint, vehicle_id)
        if fault is not None:
            raise fault
    return fake, grant, vehicle


async def _json_body(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise ApiError("VALIDATION", description="Request body must be JSON.") from None
    if not isinstance(body, dict):
        raise ApiError("VALIDATION", description="Request body must be a JSON object.")
    return body


def _paging(limit: int | None, offset: int) -> tuple[int, int]:
    limit = 10 if limit is None else limit
    if not 1 <= limit <= MAX_PAGE or offset < 0:
        raise ApiError("VALIDATION", description=f"limit must be 1..{MAX_PAGE}, offset >= 0.")
    return limit, offset


@router.get("/user")
async def get_user(request: Request) -> dict[str, str]:
    grant = fake_of(request).tokens.authenticate(request.headers.get("authorization"))
    return {"id": grant.user_id}


@router.get("/vehicles")
async def list_vehicles(request: Request, limit: int | None = None, offset: int = 0) -> Any:
    grant = fake_of(request).tokens.authenticate(request.headers.get("authorization"))
    limit, offset = _paging(limit, offset)
    ids = sorted(grant.vehicle_ids)
    page = ids[offset : offset + limit]
    # §5: count is the total, not the page size.
    return {"paging": {"count": len(ids), "offset": offset}, "vehicles": page}


@router.get("/vehicles/{vehicle_id}/permissions")
async def permissions(
    request: Request, vehicle_id: str, limit: int | None = None, offset: int = 0
) -> Any:
    _, grant, _ = await _authorize(request, vehicle_id, scope=None, endpoint=None)
    limit, offset = _paging(limit, offset)
    scopes = sorted(grant.scopes)
    page = scopes[offset : offset + limit]
    return {"paging": {"count": len(scopes), "offset": offset}, "permissions": page}


@router.delete("/vehicles/{vehicle_id}/application")
async def disconnect(request: Request, vehicle_id: str) -> dict[str, str]:
    fake, grant, _ = await _authorize(request, vehicle_id, scope=None, endpoint=None)
    fake.tokens.disconnect_vehicle(grant, vehicle_id)
    fake.webhooks.unsubscribe(vehicle_id)
    return {"status": "success"}


@router.post("/vehicles/{vehicle_id}/charge")
async def control_charge(request: Request, vehicle_id: str) -> dict[str, str]:
    _, _, vehicle = await _authorize(
        request, vehicle_id, scope="control_charge", endpoint="POST /charge"
    )
    body = await _json_body(request)
    return vehicle_api.charge_command(vehicle, body.get("action"))


@router.post("/vehicles/{vehicle_id}/charge/limit")
async def set_charge_limit(request: Request, vehicle_id: str) -> dict[str, str]:
    _, _, vehicle = await _authorize(
        request, vehicle_id, scope="control_charge", endpoint="POST /charge/limit"
    )
    body = await _json_body(request)
    return vehicle_api.set_charge_limit(vehicle, body.get("limit"))


@router.post("/vehicles/{vehicle_id}/batch")
async def batch(request: Request, vehicle_id: str) -> dict[str, Any]:
    # §9: a batch costs one call per path, charged once the paths are known.
    fake, grant, vehicle = await _authorize(request, vehicle_id, scope=None, endpoint=None, cost=0)
    body = await _json_body(request)
    items = body.get("requests")
    if not isinstance(items, list) or not items:
        raise ApiError("VALIDATION", description='"requests" must be a non-empty list.')
    paths: list[str] = []
    for item in items:
        path = item.get("path") if isinstance(item, dict) else None
        if not isinstance(path, str) or path not in vehicle_api.READS:
            # §5: one misspelled path fails the whole batch.
            raise ApiError("VALIDATION", description=f"Invalid path in batch request: {path}.")
        paths.append(path)
    fake.costs.charge(vehicle_id, fake.clock(), len(paths))
    units = unit_system(request)
    request_id = request.state.request_id
    responses = []
    for path in paths:
        endpoint = vehicle_api.READS[path]
        try:
            vehicle_api.require_scope(grant.scopes, endpoint.scope)
            fault = None if endpoint.static else fake.faults.draw(f"GET {path}", vehicle_id)
            if fault is not None:
                raise fault
            item = {"path": path, "code": 200, "body": endpoint.read(vehicle, units),
                    "headers": data_headers(fake, units)}  # fmt: skip
        except ApiError as exc:
            headers: dict[str, Any] = {
                # python-sdk's unit test shows an integer Retry-After inside batch items.
                k: int(v) if k == "Retry-After" else v
                for k, v in exc.headers.items()
            }
            item = {"path": path, "code": exc.status, "body": exc.body(request_id),
                    "headers": headers}  # fmt: skip
        responses.append(item)
    return {"responses": responses}


@router.post("/vehicles/{vehicle_id}/webhooks/{webhook_id}")
async def subscribe(request: Request, vehicle_id: str, webhook_id: str) -> dict[str, str]:
    fake, _, _ = await _authorize(request, vehicle_id, scope=None, endpoint=None)
    if webhook_id != fake.webhooks.webhook_id:
        raise ApiError("RESOURCE_NOT_FOUND:PATH", description="Unknown webhook id.")
    fake.webhooks.subscribe(vehicle_id)
    return {"vehicleId": vehicle_id, "webhookId": webhook_id}


@router.delete("/vehicles/{vehicle_id}/webhooks/{webhook_id}")
async def unsubscribe(request: Request, vehicle_id: str, webhook_id: str) -> dict[str, str]:
    fake = fake_of(request)
    # §5: unsubscribing authenticates with the application management token, not a user token.
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not fake.webhooks.amt or token != fake.webhooks.amt:
        raise ApiError("AUTHENTICATION")
    if webhook_id != fake.webhooks.webhook_id:
        raise ApiError("RESOURCE_NOT_FOUND:PATH", description="Unknown webhook id.")
    fake.webhooks.unsubscribe(vehicle_id)
    return {"status": "success"}


# Generic reads last, so the explicit routes above win.
@router.get("/vehicles/{vehicle_id}")
async def get_attributes(request: Request, vehicle_id: str) -> JSONResponse:
    return await _read(request, vehicle_id, "/")


@router.get("/vehicles/{vehicle_id}/{rest:path}")
async def get_read(request: Request, vehicle_id: str, rest: str) -> JSONResponse:
    path = "/" + rest
    if path not in vehicle_api.READS or path == "/":
        raise ApiError("RESOURCE_NOT_FOUND:PATH")
    return await _read(request, vehicle_id, path)


async def _read(request: Request, vehicle_id: str, path: str) -> JSONResponse:
    endpoint = vehicle_api.READS[path]
    fake, _, vehicle = await _authorize(
        request,
        vehicle_id,
        scope=endpoint.scope,
        endpoint=None if endpoint.static else f"GET {path}",
    )
    units = unit_system(request)
    return JSONResponse(endpoint.read(vehicle, units), headers=data_headers(fake, units))
