"""Management API v3 webhook subscriptions (smartcar-api.md §14.4), under ``/management/v3``.

Both path forms are served: ``/subscriptions`` (management.yml) and the April 2026 blog's
``/webhooks/{webhookId}/subscriptions``. A subscription feeds the fake's webhook dispatcher.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from simulators.smartcar_fake.errors import ApiError
from simulators.smartcar_fake.routes_oauth import fake_of
from simulators.smartcar_fake.routes_v3 import connections
from simulators.smartcar_fake.state import FakeSmartcar
from simulators.smartcar_fake.v3_state import Subscription

router = APIRouter(prefix="/management/v3")


def _fake(request: Request) -> FakeSmartcar:
    fake = fake_of(request)
    fake.v3.authenticate(request.headers.get("authorization"))  # the same app token
    return fake


def _json(subscription: Subscription, fake: FakeSmartcar) -> dict[str, Any]:
    vehicle = fake.world.vehicles_by_smartcar_id.get(subscription.vehicle_id)
    described = (
        {"make": vehicle.make, "model": vehicle.model, "year": vehicle.year, "mode": "live",
         "powertrainType": "BEV"} if vehicle else None
    )  # fmt: skip
    created = subscription.created_at.isoformat()
    return {
        "id": subscription.id,
        "type": "subscription",
        "attributes": {"vehicle": described},
        "meta": {"createdAt": created, "updatedAt": created},
        "relationships": {
            name: {"data": {"id": value, "type": name}}
            for name, value in (
                ("webhook", subscription.webhook_id),
                ("user", subscription.user_id),
                ("vehicle", subscription.vehicle_id),
            )
        },
    }


async def _create(request: Request, webhook_id: str | None) -> Response:
    fake = _fake(request)
    try:
        body = await request.json()
        attributes = body["data"]["attributes"]
        webhook_id = webhook_id or attributes["webhookId"]
        user_id, vehicle_id = attributes["userId"], attributes["vehicleId"]
    except (ValueError, KeyError, TypeError):
        raise ApiError(
            "VALIDATION", description="Body must be {data: {attributes: {webhookId, userId, "
            "vehicleId}}}."
        ) from None  # fmt: skip
    if webhook_id != fake.webhooks.webhook_id:
        raise ApiError("RESOURCE_NOT_FOUND:PATH", description="Unknown webhook id.")
    if not any(c.user_id == user_id and c.vehicle_id == vehicle_id for c in connections(fake)):
        raise ApiError("RESOURCE_NOT_FOUND:PATH", description="Unknown user or vehicle.")
    created = fake.v3.subscribe(str(webhook_id), str(user_id), str(vehicle_id))
    if created is None:
        raise ApiError("VEHICLE_STATE", description="The vehicle is already subscribed.")
    fake.webhooks.subscribe(str(vehicle_id))
    return JSONResponse({"meta": {"message": "subscription creation in progress"}}, status_code=202)


@router.post("/subscriptions")
async def create_subscription(request: Request) -> Response:
    return await _create(request, None)


@router.post("/webhooks/{webhook_id}/subscriptions")
async def create_webhook_subscription(request: Request, webhook_id: str) -> Response:
    return await _create(request, webhook_id)


@router.get("/subscriptions")
async def list_subscriptions(request: Request) -> dict[str, Any]:
    fake = _fake(request)
    params = request.query_params
    found = [
        s
        for s in fake.v3.subscriptions.values()
        if params.get("filter[userId]") in (None, s.user_id)
        and params.get("filter[webhookId]") in (None, s.webhook_id)
        and params.get("filter[vehicleId]") in (None, s.vehicle_id)
    ]
    return {"data": [_json(s, fake) for s in found], "meta": {"totalCount": len(found)},
            "links": {"next": None}}  # fmt: skip


@router.get("/subscriptions/{subscription_id}")
async def get_subscription(request: Request, subscription_id: str) -> dict[str, Any]:
    fake = _fake(request)
    found = fake.v3.subscriptions.get(subscription_id)
    if found is None:
        raise ApiError("RESOURCE_NOT_FOUND:PATH", description="Unknown subscription.")
    return {"data": _json(found, fake)}


@router.delete("/subscriptions/{subscription_id}", status_code=204)
async def delete_subscription(request: Request, subscription_id: str) -> Response:
    fake = _fake(request)
    found = fake.v3.subscriptions.pop(subscription_id, None)
    if found is None:
        raise ApiError("RESOURCE_NOT_FOUND:PATH", description="Unknown subscription.")
    fake.webhooks.unsubscribe(found.vehicle_id)
    return Response(status_code=204)
