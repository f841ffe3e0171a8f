"""HTTP routes of the bridge: Smartcar Connect and webhooks, and the JSON to operate the flow."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
from datetime import datetime
from decimal import Decimal
from html import escape
from typing import TYPE_CHECKING, Any

import structlog
from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, Field

from csms.http.paging import MAX_LIMIT, InvalidCursor, decode_cursor, encode_cursor, jsonable
from csms.http.problems import problem
from csms.http.schemas import errors
from csms.log import mask_vin
from smartcar_bridge import listings, session_store, store
from smartcar_bridge.errors import ApiVersionRetired, ResourceNotFoundError, SmartcarError
from smartcar_bridge.linking import MissingUserId
from smartcar_bridge.oauth import InvalidState
from smartcar_bridge.ratelimit import Purpose, call_purpose
from smartcar_bridge.schemas import (
    Account,
    AccountDetail,
    AccountRow,
    LocationOut,
    SessionDetail,
    SessionPage,
    UnlinkedVehicle,
    Vehicle,
    WebhookAnswer,
)

if TYPE_CHECKING:
    from smartcar_bridge.bridge import Bridge

log = structlog.get_logger()


class AccountIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    payment_status: str = Field(default="none", pattern="^(valid|suspended|none)$")
    tariff_per_kwh: Decimal = Field(default=Decimal("0"), ge=0, max_digits=12, decimal_places=4)
    currency: str = Field(default="EUR", min_length=3, max_length=3)


class AccountPatch(BaseModel):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    payment_status: str | None = Field(default=None, pattern="^(valid|suspended|none)$")
    tariff_per_kwh: Decimal | None = Field(default=None, ge=0, max_digits=12, decimal_places=4)
    currency: str | None = Field(default=None, min_length=3, max_length=3)


class PreferencesPatch(BaseModel):
    target_soc_percent: int | None = Field(default=None, ge=1, le=100)
    max_energy_wh: int | None = Field(default=None, gt=0)
    departure_at: datetime | None = None


class Location(BaseModel):
    latitude: float = Field(ge=-90, le=90)
    longitude: float = Field(ge=-180, le=180)


def _html(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"text/html": {}}}


def _problem(status: int, title: str, detail: str) -> JSONResponse:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    return JSONResponse(body, status_code=status, media_type="application/problem+json")


def _account(account: store.Account) -> dict[str, Any]:
    return {
        "id": account.id,
        "name": account.name,
        "payment_status": account.payment_status,
        "tariff_per_kwh": str(account.tariff_per_kwh),
        "currency": account.currency,
    }


def _vehicle(vehicle: store.Vehicle) -> dict[str, Any]:
    return {
        "id": vehicle.id,
        "vin": mask_vin(vehicle.vin),
        "account_id": vehicle.account_id,
        "id_tag": vehicle.id_tag,
        "payment_status": vehicle.payment_status,
        "battery_capacity_wh": vehicle.battery_capacity_wh,
        "target_soc_percent": vehicle.target_soc_percent,
        "max_energy_wh": vehicle.max_energy_wh,
        "departure_at": vehicle.departure_at.isoformat() if vehicle.departure_at else None,
    }


def _vehicle_row(row: dict[str, Any]) -> dict[str, Any]:
    return jsonable({**row, "vin": mask_vin(row["vin"])})


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


def create_router(bridge: Bridge) -> APIRouter:
    router = APIRouter(tags=["bridge"])
    pool = bridge.pool

    @router.get(
        "/smartcar/connect",
        status_code=302,
        response_class=RedirectResponse,
        responses={302: {"description": "Redirect to Smartcar Connect"}, **errors(404, 422)},
        summary="Start linking an account's car: redirects the driver to Smartcar Connect",
    )
    async def connect(account_id: int = Query(...)) -> Response:
        if await store.get_account(pool, account_id) is None:
            return _problem(404, "Unknown account", f"account {account_id} does not exist")
        return RedirectResponse(bridge.linker.connect_url(account_id), status_code=302)

    @router.get(
        "/smartcar/callback",
        response_class=HTMLResponse,
        responses={
            400: _html("Declined, expired or tampered link"),
            404: _html("The account or vehicle is gone"),
            502: _html("Smartcar did not complete the link, or sent no user id (v3)"),
            503: _html("Smartcar has retired the API version in use"),
        },
        summary="Smartcar Connect's redirect back: a page for the driver",
    )
    async def callback(
        code: str | None = None,
        state: str | None = None,
        error: str | None = None,
        error_description: str | None = None,
        user_id: str | None = None,
    ) -> HTMLResponse:
        if error is not None:
            log.info("bridge.connect_declined", error=error)
            return _page(400, "Not linked", error_description or error)
        if not code or not state:
            return _page(400, "Not linked", "The link is missing its code or state.")
        try:
            # §14.1: Connect adds user_id next to code; v3 calls send it as sc-user-id.
            result = await bridge.linker.complete(code, state, user_id)
        except InvalidState as exc:
            log.warning("bridge.connect_refused", reason=str(exc))
            return _page(400, "Not linked", "This link has expired or was tampered with.")
        except LookupError as exc:
            return _page(404, "Not linked", str(exc))
        except MissingUserId:
            log.warning("bridge.connect_refused", reason="no user_id on the redirect")
            return _page(
                502,
                "Not linked",
                "Smartcar did not identify the user: the operator must enable API "
                "Authentication (v3) for this application in the Smartcar Dashboard.",
            )
        except ApiVersionRetired:
            return _page(
                503,
                "Not linked",
                "Smartcar has switched off API v2.0: the operator must switch to v3.",
            )
        except SmartcarError as exc:
            log.warning("bridge.connect_failed", error_type=exc.type, code=exc.code)
            return _page(502, "Not linked", "Smartcar did not complete the link; try again.")
        cars = ", ".join(f"{v['make'] or 'car'} …{v['vin'][-6:]}" for v in result.vehicles)
        return _page(200, "Car linked", f"Linked: {cars or 'no vehicles'}. You can plug in now.")

    @router.post(
        "/smartcar/webhooks",
        response_model=WebhookAnswer,
        responses=errors(400, 401, 503),
        summary="Smartcar webhook deliveries, verified by their SC-Signature",
    )
    async def webhook(request: Request) -> Response:
        return await _webhook(bridge, await request.body(), request.headers.get("sc-signature"))

    @router.post(
        "/api/accounts",
        status_code=201,
        response_model=Account,
        responses=errors(422),
        summary="Create a billing account",
    )
    async def create_account(body: AccountIn) -> JSONResponse:
        account = await store.create_account(
            pool, body.name, body.payment_status, body.tariff_per_kwh, body.currency.upper()
        )
        return JSONResponse(_account(account), status_code=201)

    @router.patch(
        "/api/accounts/{account_id}",
        response_model=Account,
        responses=errors(404, 422),
        summary="Change an account; its cars' idTags follow its payment status",
    )
    async def update_account(account_id: int, body: AccountPatch) -> JSONResponse:
        changes = body.model_dump(exclude_none=True)
        account = await store.update_account(pool, account_id, changes)
        if account is None:
            return _problem(404, "Unknown account", f"account {account_id} does not exist")
        if "payment_status" in changes:
            await bridge.sync_id_tags(account)
        return JSONResponse(_account(account))

    @router.get(
        "/api/accounts",
        response_model=list[AccountRow],
        responses=errors(422),
        summary="Accounts, filtered by payment status or name",
    )
    async def accounts(
        payment_status: str | None = Query(default=None, pattern="^(valid|suspended|none)$"),
        name: str | None = Query(default=None, min_length=1, max_length=200),
    ) -> JSONResponse:
        rows = await listings.accounts(pool, payment_status=payment_status, name=name)
        return JSONResponse(jsonable(rows))

    @router.get(
        "/api/accounts/{account_id}",
        response_model=AccountDetail,
        responses=errors(404, 422),
        summary="One account with its linked cars",
    )
    async def account(account_id: int) -> JSONResponse:
        found = await store.get_account(pool, account_id)
        if found is None:
            return _problem(404, "Unknown account", f"account {account_id} does not exist")
        cars = await listings.vehicles(pool, account_id=account_id)
        return JSONResponse({**_account(found), "vehicles": [_vehicle_row(v) for v in cars]})

    @router.get(
        "/api/vehicles",
        response_model=list[Vehicle],
        responses=errors(422),
        summary="Linked cars (VINs masked)",
    )
    async def vehicles(
        account_id: int | None = None,
        active: bool | None = True,
        vin: str | None = Query(default=None, min_length=1, max_length=32),
        make: str | None = None,
    ) -> JSONResponse:
        rows = await listings.vehicles(
            pool, account_id=account_id, active=active, vin=vin, make=make
        )
        return JSONResponse([_vehicle_row(v) for v in rows])

    @router.delete(
        "/api/vehicles/{vehicle_id}",
        response_model=UnlinkedVehicle,
        responses=errors(404, 409, 422),
        summary="Unlink a car: its idTag is blocked, then Smartcar's grant revoked",
    )
    async def unlink(request: Request, vehicle_id: int) -> JSONResponse:
        return await _unlink(bridge, request, vehicle_id)

    @router.get(
        "/api/sessions",
        response_model=SessionPage,
        responses=errors(422),
        summary="Plug-and-charge sessions, newest first",
    )
    async def sessions(
        account_id: int | None = None,
        vehicle_id: int | None = None,
        charge_point_id: str | None = None,
        state: str | None = None,
        active: bool | None = None,
        limit: int = Query(default=100, ge=1, le=MAX_LIMIT),
        cursor: str | None = None,
    ) -> JSONResponse:
        try:
            before = int(decode_cursor("session", cursor)[0]) if cursor else None
        except (InvalidCursor, IndexError, TypeError, ValueError):
            return problem(422, "Invalid request", "invalid value for cursor", field="cursor")
        rows = await listings.sessions(
            pool,
            account_id=account_id,
            vehicle_id=vehicle_id,
            charge_point_id=charge_point_id,
            state=state,
            active=active,
            before_id=before,
            limit=limit,
        )
        next_cursor = encode_cursor("session", rows[-1]["id"]) if len(rows) == limit else None
        items = [jsonable({**r, "vin": mask_vin(r["vin"])}) for r in rows]
        return JSONResponse({"items": items, "next_cursor": next_cursor})

    @router.patch(
        "/api/vehicles/{vehicle_id}",
        response_model=Vehicle,
        responses=errors(404, 422),
        summary="A car's charging preferences: target SoC, energy cap, departure",
    )
    async def preferences(vehicle_id: int, body: PreferencesPatch) -> JSONResponse:
        vehicle = await store.update_preferences(
            pool, vehicle_id, body.model_dump(exclude_unset=True)
        )
        if vehicle is None:
            return _problem(404, "Unknown vehicle", f"vehicle {vehicle_id} does not exist")
        return JSONResponse(_vehicle(vehicle))

    @router.put(
        "/api/charge-points/{charge_point_id}/location",
        response_model=LocationOut,
        responses=errors(422),
        summary="Where a charger is, to match the car parked at it",
    )
    async def location(charge_point_id: str, body: Location) -> JSONResponse:
        await store.set_charger_location(pool, charge_point_id, body.latitude, body.longitude)
        return JSONResponse({"charge_point_id": charge_point_id, **body.model_dump()})

    @router.get(
        "/api/sessions/{transaction_id}",
        response_model=SessionDetail,
        responses=errors(404, 422),
        summary="The session of a transaction, with its SoC samples",
    )
    async def session(transaction_id: int) -> JSONResponse:
        found = await session_store.by_transaction(pool, transaction_id)
        if found is None:
            return _problem(404, "Unknown session", f"no session for transaction {transaction_id}")
        body = {k: _jsonable(v) for k, v in dataclasses.asdict(found).items()}
        body["vin"] = mask_vin(found.vin)
        body["soc_samples"] = [
            {k: _jsonable(v) for k, v in s.items()}
            for s in await session_store.soc_samples(pool, found.id)
        ]
        return JSONResponse(body)

    return router


async def _unlink(bridge: Bridge, request: Request, vehicle_id: int) -> JSONResponse:
    """Unlink a car: ours first (inactive, idTag Blocked), then Smartcar's grant.

    Our side is done before calling Smartcar so the car stops being charged on this account
    even when Smartcar is down; a repeated DELETE retries only the Smartcar part.
    """
    vehicle = await listings.vehicle(bridge.pool, vehicle_id)
    if vehicle is None:
        return _problem(404, "Unknown vehicle", f"vehicle {vehicle_id} does not exist")
    if await session_store.open_for_vehicle(bridge.pool, vehicle_id) is not None:
        detail = f"vehicle {vehicle_id} is in an open charging session; stop it first"
        return _problem(409, "Vehicle charging", detail)
    if vehicle["active"]:
        await store.deactivate_vehicle(bridge.pool, vehicle_id)
        # The injected core callback: the car's idTag must stop authorising at chargers.
        await bridge._register_id_tag(vehicle["id_tag"], "Blocked")
    smartcar: dict[str, Any] = {"disconnected": True}
    linked = _Linked(vehicle["link_id"], vehicle["smartcar_vehicle_id"])
    # Off the webhook first: after the disconnect the car's subscription can no longer be
    # named with its user (v3) and its deliveries would be for nobody.
    with call_purpose(Purpose.LINK):
        await bridge.access.unsubscribe(linked, log.bind(vehicle_id=vehicle_id))
    try:
        await bridge.access.disconnect(linked)
    except ApiVersionRetired as exc:
        smartcar = {"disconnected": False, "error": exc.type, "code": exc.code}
    except ResourceNotFoundError:
        pass  # Smartcar no longer knows this car for us: already disconnected.
    except (SmartcarError, LookupError) as exc:
        smartcar = {"disconnected": False, "error": getattr(exc, "type", type(exc).__name__)}
        smartcar["code"] = getattr(exc, "code", None)
    log.info(
        "bridge.vehicle_unlinked",
        vehicle_id=vehicle_id,
        vin=mask_vin(vehicle["vin"]),
        smartcar_disconnected=smartcar["disconnected"],
        operator=getattr(request.state, "operator", None),
    )
    found = await listings.vehicle(bridge.pool, vehicle_id)
    assert found is not None
    return JSONResponse({**_vehicle_row(found), "smartcar": smartcar})


async def _webhook(bridge: Bridge, raw: bytes, signature: str | None) -> Response:
    token = bridge.settings.management_token
    if not token:
        return _problem(503, "Webhooks not configured", "SMARTCAR_MANAGEMENT_TOKEN is not set")
    try:
        event = json.loads(raw)
    except ValueError:
        return _problem(400, "Not JSON", "the webhook body is not JSON")
    if event.get("eventType") == "VERIFY" or event.get("eventName") == "verify":
        challenge = (event.get("data") or event.get("payload") or {}).get("challenge", "")
        digest = hmac.new(token.encode(), str(challenge).encode(), hashlib.sha256).hexdigest()
        return JSONResponse({"challenge": digest})
    # Verify before trusting any of it (smartcar-api.md §10), in constant time.
    expected = hmac.new(token.encode(), raw, hashlib.sha256).hexdigest()
    if not signature or not hmac.compare_digest(expected, signature.lower()):
        log.warning("bridge.webhook_refused", reason="bad signature")
        return _problem(401, "Bad signature", "SC-Signature does not match the body")
    bridge.handle_webhook(event)  # answered now; the work follows (§10's 15 s)
    return JSONResponse({"status": "received"})


@dataclasses.dataclass(slots=True, frozen=True)
class _Linked:
    link_id: int
    smartcar_vehicle_id: str


def _page(status: int, title: str, text: str) -> HTMLResponse:
    html = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{escape(title)}</title></head>"
        f"<body><h1>{escape(title)}</h1><p>{escape(text)}</p></body></html>"
    )
    return HTMLResponse(html, status_code=status)
