"""``/_fake/...``: knobs and world state for tests and operators (not part of Smartcar)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel

from simulators.smartcar_fake.limits import CostLimits
from simulators.smartcar_fake.routes_oauth import fake_of
from simulators.world import Vehicle, WorldError

router = APIRouter(prefix="/_fake")


class FaultSettings(BaseModel):
    latency_s: float | None = None
    retry_after_s: int | None = None
    shares: dict[str, float] | None = None


class LimitSettings(BaseModel):
    """§9's cost limits; ``preset: "smartcar"`` starts from the published defaults."""

    preset: str | None = None
    vehicle_calls: int | None = None
    vehicle_window_s: float | None = None
    bucket_size: int | None = None
    bucket_refill_per_minute: float | None = None
    monthly_cap: int | None = None


class ForcedFaultIn(BaseModel):
    kind: str
    times: int = 1
    endpoint: str | None = None
    vehicle_id: str | None = None


class ConnectSettings(BaseModel):
    login_vins: list[str] | None = None
    decline: bool | None = None
    declined_scopes: list[str] | None = None
    error: str | None = None


class TokenSettings(BaseModel):
    access_token_ttl_s: float | None = None
    refresh_grace_s: float | None = None


class VehiclePatch(BaseModel):
    soc: float | None = None
    charge_limit: float | None = None
    charging_enabled: bool | None = None
    is_charging: bool | None = None
    latitude: float | None = None
    longitude: float | None = None


class PlugIn(BaseModel):
    charger_id: str
    connector_id: int


class WebhookSettings(BaseModel):
    url: str
    amt: str
    webhook_id: str | None = None
    retry_scale: float | None = None
    poll_interval_s: float | None = None
    verify: bool = True


def vehicle_json(vehicle: Vehicle) -> dict[str, Any]:
    return {
        "vin": vehicle.vin,
        "smartcar_id": vehicle.smartcar_id,
        "owner_id": vehicle.owner_id,
        "make": vehicle.make,
        "model": vehicle.model,
        "year": vehicle.year,
        "battery_kwh": vehicle.battery_kwh,
        "soc": vehicle.soc,
        "charge_limit": vehicle.charge_limit,
        "charging_enabled": vehicle.charging_enabled,
        "is_charging": vehicle.is_charging,
        "charge_state": vehicle.charge_state,
        "plugged_at": list(vehicle.plugged_at) if vehicle.plugged_at else None,
        "latitude": vehicle.latitude,
        "longitude": vehicle.longitude,
    }


@router.post("/faults")
async def set_faults(request: Request, settings: FaultSettings) -> dict[str, Any]:
    faults = fake_of(request).faults
    if settings.latency_s is not None:
        faults.latency_s = settings.latency_s
    if settings.retry_after_s is not None:
        faults.retry_after_s = settings.retry_after_s
    try:
        for kind, share in (settings.shares or {}).items():
            faults.set_share(kind, share)
    except ValueError as exc:
        raise HTTPException(400, str(exc)) from None
    return {"latency_s": faults.latency_s, "shares": faults.shares}


@router.post("/faults/force")
async def force_fault(request: Request, forced: ForcedFaultIn) -> dict[str, str]:
    try:
        fake_of(request).faults.force(forced.kind, forced.times, forced.endpoint, forced.vehicle_id)
    except ValueError as exc:
        raise HTTPException(400, str(exc)) from None
    return {"status": "ok"}


@router.delete("/faults")
async def clear_faults(request: Request) -> dict[str, str]:
    fake_of(request).faults.clear()
    return {"status": "ok"}


@router.post("/limits")
async def set_limits(request: Request, settings: LimitSettings) -> dict[str, Any]:
    """Replace the cost limits; fields left out are off (or the preset's value)."""
    if settings.preset not in (None, "smartcar", "off"):
        raise HTTPException(400, f"unknown preset {settings.preset!r}")
    limits = CostLimits.smartcar_defaults() if settings.preset == "smartcar" else CostLimits()
    for name, value in settings.model_dump(exclude={"preset"}, exclude_unset=True).items():
        setattr(limits, name, value)
    fake_of(request).costs.configure(limits)
    return limits_json(request)


@router.get("/limits")
async def get_limits(request: Request) -> dict[str, Any]:
    return limits_json(request)


def limits_json(request: Request) -> dict[str, Any]:
    fake = fake_of(request)
    costs = fake.costs
    return {
        "limits": asdict(costs.limits),
        "bucket_level": costs.bucket_level(fake.clock()),
        "accepted_by_vehicle": dict(costs.accepted),
        "refused_by_kind": dict(costs.refused),
    }


@router.post("/connect")
async def set_connect(request: Request, settings: ConnectSettings) -> dict[str, str]:
    fake = fake_of(request)
    if settings.login_vins is not None:
        try:
            fake.login(*settings.login_vins)
        except WorldError as exc:
            raise HTTPException(404, f"unknown VIN {exc}") from None
    if settings.decline is not None:
        fake.connect.decline = settings.decline
    if settings.declined_scopes is not None:
        fake.connect.declined_scopes = set(settings.declined_scopes)
    if "error" in settings.model_fields_set:
        fake.connect.error = settings.error
    return {"status": "ok"}


@router.post("/tokens")
async def set_tokens(request: Request, settings: TokenSettings) -> dict[str, float]:
    tokens = fake_of(request).tokens
    if settings.access_token_ttl_s is not None:
        tokens.access_token_ttl_s = settings.access_token_ttl_s
    if settings.refresh_grace_s is not None:
        tokens.refresh_grace_s = settings.refresh_grace_s
    return {"access_token_ttl_s": tokens.access_token_ttl_s,
            "refresh_grace_s": tokens.refresh_grace_s}  # fmt: skip


@router.post("/tokens/expire_access")
async def expire_access_tokens(request: Request) -> dict[str, int]:
    return {"expired": fake_of(request).tokens.expire_access_tokens()}


@router.post("/tokens/revoke_refresh/{refresh_token}")
async def revoke_refresh_token(request: Request, refresh_token: str) -> dict[str, bool]:
    return {"revoked": fake_of(request).tokens.revoke_refresh_token(refresh_token)}


@router.get("/vehicles")
async def list_vehicles(request: Request, limit: int = 50, offset: int = 0) -> dict[str, Any]:
    """World vehicles in insertion order, so an operator can pick VINs to log in with."""
    vehicles = list(fake_of(request).world.vehicles.values())
    page = vehicles[offset : offset + max(0, limit)]
    return {"count": len(vehicles), "vehicles": [vehicle_json(v) for v in page]}


@router.get("/vehicles/{vin}")
async def get_vehicle(request: Request, vin: str) -> dict[str, Any]:
    try:
        return vehicle_json(fake_of(request).world.vehicle(vin))
    except WorldError:
        raise HTTPException(404, f"unknown VIN {vin}") from None


@router.patch("/vehicles/{vin}")
async def patch_vehicle(request: Request, vin: str, patch: VehiclePatch) -> dict[str, Any]:
    try:
        vehicle = fake_of(request).world.vehicle(vin)
    except WorldError:
        raise HTTPException(404, f"unknown VIN {vin}") from None
    for name, value in patch.model_dump(exclude_none=True).items():
        setattr(vehicle, name, value)
    return vehicle_json(vehicle)


@router.post("/vehicles/{vin}/plug")
async def plug_in(request: Request, vin: str, plug: PlugIn) -> dict[str, Any]:
    fake = fake_of(request)
    try:
        vehicle = fake.world.plug_in(vin, plug.charger_id, plug.connector_id, fake.clock())
    except WorldError as exc:
        raise HTTPException(409, f"{type(exc).__name__}: {exc}") from None
    return vehicle_json(vehicle)


@router.post("/vehicles/{vin}/unplug")
async def unplug(request: Request, vin: str) -> dict[str, Any]:
    fake = fake_of(request)
    try:
        vehicle = fake.world.unplug(vin, fake.clock())
    except WorldError as exc:
        raise HTTPException(409, f"{type(exc).__name__}: {exc}") from None
    return vehicle_json(vehicle)


@router.post("/webhook")
async def configure_webhook(request: Request, settings: WebhookSettings) -> dict[str, Any]:
    webhooks = fake_of(request).webhooks
    webhooks.configure(settings.url, settings.amt, settings.webhook_id)
    if settings.retry_scale is not None:
        webhooks.retry_scale = settings.retry_scale
    if settings.poll_interval_s is not None:
        webhooks.poll_interval_s = settings.poll_interval_s
    verified = await webhooks.verify() if settings.verify else False
    return {"webhook_id": webhooks.webhook_id, "verified": verified}


@router.post("/webhook/verify")
async def verify_webhook(request: Request) -> dict[str, bool]:
    return {"verified": await fake_of(request).webhooks.verify()}


@router.post("/webhook/emit/{vehicle_id}")
async def emit_webhook(request: Request, vehicle_id: str) -> dict[str, str | None]:
    return {"event_id": fake_of(request).webhooks.emit_vehicle_state(vehicle_id)}


@router.get("/webhook/deliveries")
async def webhook_deliveries(request: Request) -> list[dict[str, Any]]:
    return [
        {"event_id": d.event_id, "event_type": d.event_type, "delivery_id": d.delivery_id,
         "attempt": d.attempt, "status": d.status, "error": d.error}
        for d in fake_of(request).webhooks.deliveries
    ]  # fmt: skip
