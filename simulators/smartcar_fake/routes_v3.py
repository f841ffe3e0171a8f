"""Vehicles API v3 (smartcar-api.md §14): application token at ``/oauth2/token``
(iam.smartcar.com), signals, commands with sync and long-running answers, connections.

Every vehicle call needs an application token and ``sc-user-id`` naming a user connected to
the vehicle; faults are drawn under the v2.0 endpoint with the same data
(``v3_signals.FAULT_ENDPOINT``). Errors render in the v3 JSON:API shape (``app.py``).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlencode

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from simulators.smartcar_fake import vehicle_api
from simulators.smartcar_fake.errors import ApiError
from simulators.smartcar_fake.routes_oauth import fake_of
from simulators.smartcar_fake.state import FakeSmartcar
from simulators.smartcar_fake.v3_signals import (
    COMMAND_FAULT_ENDPOINT,
    FAULT_ENDPOINT,
    LIST_FAULT_ENDPOINT,
    SIGNALS,
    signal,
)
from simulators.smartcar_fake.v3_state import Execution
from simulators.world import Vehicle

iam_router = APIRouter()
router = APIRouter(prefix="/v3")

COMMAND_TYPES = {
    "charge/start": "charge-start",
    "charge/stop": "charge-stop",
    "charge/set-limit": "charge-set-limit",
}


@iam_router.post("/oauth2/token")
async def app_token(request: Request) -> JSONResponse:
    """§14.1: form fields (or the same three in JSON) ``grant_type=client_credentials``."""
    raw = await request.body()
    if request.headers.get("content-type", "").startswith("application/json"):
        try:
            loaded = json.loads(raw or b"{}")
        except ValueError:
            loaded = {}
        form = {k: str(v) for k, v in loaded.items()} if isinstance(loaded, dict) else {}
    else:
        form = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
    body = fake_of(request).v3.issue_app_token(form)
    return JSONResponse(body, headers={"Cache-Control": "no-store"})


@dataclass(slots=True, frozen=True)
class Connection:
    user_id: str
    vehicle_id: str
    scopes: frozenset[str]


def connections(fake: FakeSmartcar) -> list[Connection]:
    """Who is connected to what: every live Connect grant's (user, vehicle) pairs."""
    found: dict[tuple[str, str], Connection] = {}
    for code in fake.tokens.codes.values():
        grant = code.grant
        if grant.revoked:
            continue
        for vehicle_id in sorted(grant.vehicle_ids):
            key = (grant.user_id, vehicle_id)
            old = found.get(key)
            scopes = grant.scopes | (old.scopes if old else frozenset())
            found[key] = Connection(grant.user_id, vehicle_id, scopes)
    return list(found.values())


async def _authorize(
    request: Request, vehicle_id: str, *, scope: str | None, endpoint: str | None
) -> tuple[FakeSmartcar, Vehicle, str]:
    fake = fake_of(request)
    if fake.faults.latency_s > 0:
        await asyncio.sleep(fake.faults.latency_s)
    fake.v3.authenticate(request.headers.get("authorization"))
    user_id = request.headers.get("sc-user-id")
    if not user_id:
        raise ApiError("VALIDATION:PARAMETER", description="The sc-user-id header is required.")
    try:
        uuid.UUID(vehicle_id)
    except ValueError:
        raise ApiError("VALIDATION", description="Invalid vehicle id.") from None
    vehicle = fake.world.vehicles_by_smartcar_id.get(vehicle_id)
    link = next(
        (c for c in connections(fake) if c.user_id == user_id and c.vehicle_id == vehicle_id),
        None,
    )
    if vehicle is None or link is None:
        raise ApiError("PERMISSION", description="This user has not connected this vehicle.")
    # §14.7: the same cost limits as v2.0 (§9) are assumed to apply.
    fake.costs.charge(vehicle_id, fake.clock())
    if scope is not None:
        vehicle_api.require_scope(link.scopes, scope)
    if endpoint is not None:
        fault = fake.faults.draw(endpoint, vehicle_id)
        if fault is not None:
            raise fault
    return fake, vehicle, user_id


def _links(path: str, query: dict[str, str], page: int, size: int, total: int) -> dict[str, Any]:
    last = max(1, -(-total // size))

    def at(number: int) -> str:
        return f"{path}?{urlencode({**query, 'page': number, 'pageSize': size})}"

    return {
        "self": at(page),
        "first": at(1),
        "previous": at(page - 1) if page > 1 else None,
        "next": at(page + 1) if page < last else None,
        "last": at(last),
    }


def _paging(request: Request, default_size: int) -> tuple[int, int]:
    # §14.3/§14.5: docs say page/pageSize, a third-party reading page[number]/page[size].
    params = request.query_params
    try:
        page = int(params.get("page") or params.get("page[number]") or 1)
        size = int(params.get("pageSize") or params.get("page[size]") or default_size)
    except ValueError:
        raise ApiError("VALIDATION:PARAMETER", description="Bad paging parameters.") from None
    if page < 1 or not 1 <= size <= 100:
        raise ApiError("VALIDATION:PARAMETER", description="page >= 1, pageSize 1..100.")
    return page, size


@router.get("/vehicles/{vehicle_id}")
async def get_vehicle(request: Request, vehicle_id: str) -> dict[str, Any]:
    _, vehicle, _ = await _authorize(request, vehicle_id, scope=None, endpoint=None)
    attributes = {"make": vehicle.make, "model": vehicle.model, "year": vehicle.year,
                  "powertrainType": "BEV", "mode": "live"}  # fmt: skip
    return {"data": {"id": vehicle.smartcar_id, "type": "vehicle", "attributes": attributes,
                     "links": {"self": f"/vehicles/{vehicle.smartcar_id}"}}}  # fmt: skip


@router.get("/vehicles/{vehicle_id}/signals")
async def list_signals(request: Request, vehicle_id: str) -> dict[str, Any]:
    fake, vehicle, _ = await _authorize(
        request, vehicle_id, scope=None, endpoint=LIST_FAULT_ENDPOINT
    )
    page, size = _paging(request, fake.v3.page_size)
    now, ms = fake.clock(), fake.v3.epoch_ms
    codes = sorted(SIGNALS)
    items = [signal(vehicle, c, now, fake.data_age_s, ms) for c in codes]
    chosen = items[(page - 1) * size : page * size]
    path = f"/vehicles/{vehicle_id}/signals"
    return {
        "data": chosen,
        "meta": {"page": page, "pageSize": size, "totalCount": len(items)},
        "links": _links(path, {}, page, size, len(items)),
    }


@router.get("/vehicles/{vehicle_id}/signals/{code}")
async def get_signal(request: Request, vehicle_id: str, code: str) -> dict[str, Any]:
    if code not in SIGNALS:
        raise ApiError("RESOURCE_NOT_FOUND:PATH", description=f"SIGNAL_NOT_FOUND: {code}.")
    fake, vehicle, _ = await _authorize(
        request, vehicle_id, scope=None, endpoint=FAULT_ENDPOINT[code]
    )
    # The docs' single-signal example has no "data" wrapper (§14.3).
    return signal(vehicle, code, fake.clock(), fake.data_age_s, fake.v3.epoch_ms)


def _apply(vehicle: Vehicle, name: str, parameters: dict[str, Any]) -> None:
    """The command's effect on the car; raises the same VEHICLE_STATE refusals as v2.0."""
    if name == "charge/start":
        vehicle_api.charge_command(vehicle, "START")
    elif name == "charge/stop":
        vehicle_api.charge_command(vehicle, "STOP")
    else:
        percent = parameters.get("percent")
        if isinstance(percent, bool) or not isinstance(percent, int | float):
            raise ApiError("VALIDATION:PARAMETER", description='"percent" must be a number.')
        if not 50 <= percent <= 100:
            raise ApiError("VALIDATION:PARAMETER", description='"percent" must be 50..100.')
        vehicle_api.set_charge_limit(vehicle, percent / 100.0)


def execution_body(fake: FakeSmartcar, execution: Execution) -> dict[str, Any]:
    status: dict[str, Any] = {"value": execution.status}
    if execution.error is not None:
        error = execution.error
        status["error"] = {"status": str(error.status), "type": error.error_type,
                           "code": error.code, "detail": error.kind}  # fmt: skip
    completed = execution.completed_at
    meta: dict[str, Any] = {
        "executedAt": execution.executed_at.isoformat(),
        "completedAt": completed.isoformat() if completed else None,
    }
    if completed is not None:
        meta["durationInSeconds"] = round((completed - execution.executed_at).total_seconds())
    return {"data": {"id": execution.id, "type": "command-execution",
                     "attributes": {"commandType": execution.command_type, "status": status,
                                    "executionMode": execution.mode,
                                    "parameters": execution.parameters},
                     "meta": meta}}  # fmt: skip


def _run(fake: FakeSmartcar, vehicle: Vehicle, name: str, execution: Execution) -> None:
    failure = fake.v3.next_failure()
    if failure is None:
        try:
            _apply(vehicle, name, execution.parameters)
        except ApiError as exc:
            failure = exc
    fake.v3.finish(execution, failure)


@router.post("/vehicles/{vehicle_id}/commands/{group}/{action}")
async def command(request: Request, vehicle_id: str, group: str, action: str) -> Response:
    name = f"{group}/{action}"
    if name not in COMMAND_TYPES:
        raise ApiError("RESOURCE_NOT_FOUND:PATH")
    fake, vehicle, _ = await _authorize(
        request, vehicle_id, scope="control_charge", endpoint=COMMAND_FAULT_ENDPOINT[name]
    )
    parameters = await _attributes(request)
    state = fake.v3
    if state.command_mode == "sync":
        # A refusal the car gives at once is an HTTP error, as in v2.0.
        failure = state.next_failure()
        if failure is None:
            _apply(vehicle, name, parameters)
        execution = state.new_execution(vehicle_id, COMMAND_TYPES[name], parameters, "sync")
        state.finish(execution, failure)
        return JSONResponse(execution_body(fake, execution), status_code=200)
    execution = state.new_execution(vehicle_id, COMMAND_TYPES[name], parameters, "async")
    if state.command_mode == "stream":
        # §14.2 (third-party): a 202 held open, the final result streamed on it.
        await asyncio.sleep(state.command_duration_s)
        _run(fake, vehicle, name, execution)
        return JSONResponse(execution_body(fake, execution), status_code=202)
    asyncio.get_running_loop().call_later(
        state.command_duration_s, _run, fake, vehicle, name, execution
    )
    return JSONResponse(execution_body(fake, execution), status_code=202)


async def _attributes(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw:
        return {}
    try:
        body = json.loads(raw)
        attributes = body["data"]["attributes"]
    except (ValueError, KeyError, TypeError):
        raise ApiError("VALIDATION", description="Body must be {data: {attributes}}.") from None
    if not isinstance(attributes, dict):
        raise ApiError("VALIDATION", description="attributes must be an object.")
    return attributes


@router.get("/vehicles/{vehicle_id}/commands/{execution_id}")
async def get_execution(request: Request, vehicle_id: str, execution_id: str) -> dict[str, Any]:
    fake, _, _ = await _authorize(request, vehicle_id, scope=None, endpoint=None)
    execution = fake.v3.executions.get(execution_id)
    if execution is None or execution.vehicle_id != vehicle_id:
        raise ApiError("RESOURCE_NOT_FOUND:PATH", description="Unknown command execution.")
    return execution_body(fake, execution)


def _connection_json(connection: Connection) -> dict[str, Any]:
    return {"id": connection.vehicle_id, "type": "connection",
            "attributes": {"userId": connection.user_id, "vehicleId": connection.vehicle_id,
                           "mode": "live"},
            "relationships": {"user": {"data": {"id": connection.user_id, "type": "user"}},
                              "vehicle": {"data": {"id": connection.vehicle_id,
                                                   "type": "vehicle"}}}}  # fmt: skip


@router.get("/connections")
async def list_connections(request: Request) -> dict[str, Any]:
    fake = fake_of(request)
    fake.v3.authenticate(request.headers.get("authorization"))
    params = request.query_params
    # §14.5: sc-user-id is optional here and filters by user, like filter[userId].
    user_id = params.get("filter[userId]") or request.headers.get("sc-user-id")
    vehicle_id = params.get("filter[vehicleId]")
    found = [
        c
        for c in connections(fake)
        if (user_id is None or c.user_id == user_id)
        and (vehicle_id is None or c.vehicle_id == vehicle_id)
    ]
    page, size = _paging(request, fake.v3.page_size)
    query = {k: v for k, v in params.items() if k.startswith("filter[")}
    return {
        "data": [_connection_json(c) for c in found[(page - 1) * size : page * size]],
        "meta": {"page": page, "pageSize": size, "totalCount": len(found)},
        "links": _links("/connections", query, page, size, len(found)),
    }


@router.delete("/connections/{vehicle_id}", status_code=204)
async def delete_connection(request: Request, vehicle_id: str) -> Response:
    fake = fake_of(request)
    fake.v3.authenticate(request.headers.get("authorization"))
    found = False
    for code in fake.tokens.codes.values():
        if vehicle_id in code.grant.vehicle_ids:
            fake.tokens.disconnect_vehicle(code.grant, vehicle_id)
            found = True
    if not found:
        raise ApiError("RESOURCE_NOT_FOUND:PATH", description="Unknown connection.")
    fake.webhooks.unsubscribe(vehicle_id)
    return Response(status_code=204)
