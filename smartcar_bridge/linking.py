"""Linking a driver's cars: the Smartcar Connect redirect and its callback.

Under v3 (the default, smartcar-api.md §14.5) the callback stores the redirect's ``user_id``
with the link (every v3 call sends it as ``sc-user-id``), lists the user's vehicles through
``GET /connections`` and reads each one's VIN from its signals; no code exchange is needed.
Under v2.0 it exchanges the code and stores the token pair encrypted (and the ``user_id``,
when Connect sends one, so a later switch to v3 needs no re-link). Either way every vehicle
is linked to the account (a VIN belongs to at most one active account), its idTag registered
so the charger's Authorize and StartTransaction accept it, and it is subscribed to the
configured webhook.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import structlog

from csms.log import mask_vin
from smartcar_bridge import store
from smartcar_bridge.client import SmartcarClient
from smartcar_bridge.errors import ApiVersionRetired, SmartcarError, SmartcarResponseError
from smartcar_bridge.oauth import make_state, read_state
from smartcar_bridge.ratelimit import Purpose, call_purpose
from smartcar_bridge.store import LinkedVehicle
from smartcar_bridge.v3 import parse as v3_parse
from smartcar_bridge.v3.vehicles import V3Vehicles
from smartcar_bridge.vehicle_access import VehicleAccess

log = structlog.get_logger()

# What plug-and-charge needs (smartcar-api.md §12), plus location for matching.
SCOPES = (
    "required:read_vehicle_info",
    "required:read_vin",
    "required:read_battery",
    "required:read_charge",
    "required:control_charge",
    "read_location",
)

# Registers (or re-statuses) an OCPP idTag in the central system's authorisation list.
RegisterIdTag = Callable[[str, str], Awaitable[None]]


def vehicle_id_tag(vin: str) -> str:
    """A stable idTag for a VIN: 20 characters, no VIN in clear on the charger's screen."""
    return "SC" + hashlib.sha256(vin.upper().encode()).hexdigest()[:18].upper()


def id_tag_status(payment_status: str) -> str:
    return "Accepted" if payment_status == "valid" else "Blocked"


class MissingUserId(ValueError):
    """Connect redirected without ``user_id``: the app is not switched to v3 API
    Authentication in the Smartcar Dashboard (§14.1, "Availability")."""


@dataclass(slots=True, frozen=True)
class _Linked:
    link_id: int
    smartcar_vehicle_id: str


@dataclass(slots=True, frozen=True)
class LinkResult:
    account_id: int
    vehicles: list[dict[str, Any]]


class Linker:
    def __init__(
        self,
        pool: asyncpg.Pool,
        client: SmartcarClient,
        tokens: Any,
        register_id_tag: RegisterIdTag,
        secret_key: str,
        clock: Callable[[], datetime],
        mode: str | None = None,
        *,
        access: VehicleAccess | None = None,
    ) -> None:
        self._pool = pool
        self._client = client
        self._tokens = tokens
        self._register_id_tag = register_id_tag
        self._secret = secret_key
        self._clock = clock
        self._mode = mode
        self._access = access

    def connect_url(self, account_id: int) -> str:
        state = make_state(account_id, self._secret, self._clock())
        mode = self._mode if self._mode and self._mode != "live" else None
        return self._client.authorize_url(state, list(SCOPES), mode=mode)

    async def complete(self, code: str, state: str, user_id: str | None = None) -> LinkResult:
        """Finish Connect: every Smartcar call made for it counts as ``link``."""
        with call_purpose(Purpose.LINK):
            return await self._complete(code, state, user_id)

    async def _complete(self, code: str, state: str, user_id: str | None) -> LinkResult:
        """Finish a Connect flow. Raises ``InvalidState``, ``MissingUserId`` (v3 without
        ``user_id``) or ``SmartcarError`` (``ApiVersionRetired`` when v2.0 is gone)."""
        account_id = read_state(state, self._secret, self._clock())
        account = await store.get_account(self._pool, account_id)
        if account is None:
            raise LookupError(f"account {account_id} does not exist")
        api = self._access.api if self._access is not None else None
        try:
            if isinstance(api, V3Vehicles):
                link_id, vehicles = await self._link_v3(api, account_id, user_id)
            else:
                link_id, vehicles = await self._link_v2(account_id, code, user_id)
        except ApiVersionRetired as exc:
            if self._access is not None:
                self._access.retired.report(exc)
            raise
        linked: list[dict[str, Any]] = []
        for vehicle in vehicles:
            async with self._pool.acquire() as db, db.transaction():
                row_id, left = await store.link_vehicle(db, account_id, link_id, vehicle)
            await self._register_id_tag(vehicle.id_tag, id_tag_status(account.payment_status))
            log.info(
                "bridge.vehicle_linked",
                account_id=account_id,
                vin=mask_vin(vehicle.vin),
                vehicle_id=row_id,
                moved_from_accounts=left or None,
            )
            if self._access is not None:
                bound = log.bind(vin=mask_vin(vehicle.vin), vehicle_id=row_id)
                await self._access.subscribe(_Linked(link_id, vehicle.smartcar_vehicle_id), bound)
            linked.append({"id": row_id, "vin": mask_vin(vehicle.vin), "make": vehicle.make})
        return LinkResult(account_id, linked)

    async def _link_v2(
        self, account_id: int, code: str, user_id: str | None
    ) -> tuple[int, list[LinkedVehicle]]:
        tokens = await self._client.exchange_code(code, SCOPES)
        user = await self._client.user(tokens.access_token)
        link_id = await self._tokens.save_link(
            account_id, user.id, tokens, list(tokens.scopes), sc_user_id=user_id
        )
        vehicles = [
            await self._read_vehicle(tokens.access_token, vehicle_id)
            for vehicle_id in await self._client.all_vehicle_ids(tokens.access_token)
        ]
        return link_id, vehicles

    async def _link_v3(
        self, api: V3Vehicles, account_id: int, user_id: str | None
    ) -> tuple[int, list[LinkedVehicle]]:
        if not user_id:
            raise MissingUserId("Connect did not return user_id")
        # §14.5: the code is not needed for v3 calls; the user id is the link.
        connections = await api.tokens.with_token(
            lambda token: api.client.connections(token, user_id=user_id)
        )
        link_id = await self._tokens.save_link(
            account_id, user_id, None, list(SCOPES), sc_user_id=user_id
        )
        vehicles = []
        for vehicle_id in dict.fromkeys(c.vehicle_id for c in connections):
            attributes, signals = await api.describe(user_id, vehicle_id)
            try:
                vin = v3_parse.vin(signals)
            except KeyError as exc:
                raise SmartcarResponseError(
                    f"vehicle reports no {exc.args[0]} signal", status=200
                ) from exc
            capacity = api.capacity(signals).capacity_kwh
            vehicles.append(
                LinkedVehicle(
                    smartcar_vehicle_id=vehicle_id,
                    vin=vin,
                    make=attributes.make,
                    model=attributes.model,
                    year=attributes.year,
                    battery_capacity_wh=round(capacity * 1000) if capacity else None,
                    id_tag=vehicle_id_tag(vin),
                )
            )
        return link_id, vehicles

    async def _read_vehicle(self, token: str, vehicle_id: str) -> LinkedVehicle:
        vin = (await self._client.vin(token, vehicle_id)).vin
        info = await self._client.vehicle_info(token, vehicle_id)
        try:
            capacity = await self._client.battery_capacity(token, vehicle_id)
            capacity_wh = round(capacity.capacity_kwh * 1000) if capacity.capacity_kwh else None
        except SmartcarError as exc:
            # Billing falls back to the charger's meter; the capacity only cross-checks it.
            log.info("bridge.capacity_unknown", vin=mask_vin(vin), error_type=exc.type)
            capacity_wh = None
        return LinkedVehicle(
            smartcar_vehicle_id=vehicle_id,
            vin=vin,
            make=info.make,
            model=info.model,
            year=info.year,
            battery_capacity_wh=capacity_wh,
            id_tag=vehicle_id_tag(vin),
        )
