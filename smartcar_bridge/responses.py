"""Typed Smartcar results (smartcar-api.md §3, §5): frozen dataclasses and their parsers.

Parsers raise ``KeyError``/``TypeError``/``ValueError`` on a body that does not match the
docs; the client turns those into ``SmartcarResponseError`` in one place.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from smartcar_bridge.errors import SmartcarError, error_from_response

Body = Mapping[str, Any]
# §3: the token response has no field for it; the SDKs compute now + 60 days too.
REFRESH_TOKEN_TTL = timedelta(days=60)


@dataclass(slots=True, frozen=True)
class Meta:
    """Response facts: Smartcar's request id, when the car recorded the data, when we got it."""

    request_id: str | None
    received_at: datetime
    data_age: datetime | None = None  # SC-Data-Age: when the vehicle recorded the data
    fetched_at: datetime | None = None  # SC-Fetched-At: when Smartcar got it from the OEM


def parse_time(value: str | None) -> datetime | None:
    """An ISO-8601 header value (``2019-10-24T00:43:46.000Z``) as aware UTC, else None."""
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def meta_from_headers(
    headers: Mapping[str, Any], received_at: datetime, request_id: str | None = None
) -> Meta:
    lower = {str(k).lower(): str(v) for k, v in headers.items()}
    return Meta(
        request_id=request_id or lower.get("sc-request-id"),
        received_at=received_at,
        data_age=parse_time(lower.get("sc-data-age")),
        fetched_at=parse_time(lower.get("sc-fetched-at")),
    )


@dataclass(slots=True, frozen=True)
class TokenSet:
    """One access/refresh pair; ``repr`` never shows the tokens."""

    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    access_expires_at: datetime
    refresh_expires_at: datetime
    scopes: tuple[str, ...] = ()
    meta: Meta | None = None


def token_set(body: Body, meta: Meta, scopes: tuple[str, ...] = ()) -> TokenSet:
    now = meta.received_at
    expires_in = float(body["expires_in"])
    return TokenSet(
        access_token=str(body["access_token"]),
        refresh_token=str(body["refresh_token"]),
        access_expires_at=now + timedelta(seconds=expires_in),
        refresh_expires_at=now + REFRESH_TOKEN_TTL,
        scopes=scopes,
        meta=meta,
    )


@dataclass(slots=True, frozen=True)
class User:
    id: str
    meta: Meta


@dataclass(slots=True, frozen=True)
class VehiclePage:
    ids: tuple[str, ...]
    count: int  # the total across pages, not this page's size (§5)
    offset: int
    meta: Meta


@dataclass(slots=True, frozen=True)
class VehicleInfo:
    id: str
    make: str
    model: str
    year: int
    meta: Meta


@dataclass(slots=True, frozen=True)
class Vin:
    vin: str
    meta: Meta


@dataclass(slots=True, frozen=True)
class Battery:
    percent_remaining: float  # a fraction 0..1, not a percentage (§5, §13)
    range_km: float | None
    meta: Meta

    @property
    def soc_percent(self) -> float:
        return self.percent_remaining * 100.0


@dataclass(slots=True, frozen=True)
class Capacity:
    """Battery capacity; ``capacity_kwh`` is None when Smartcar cannot tell (see ``url``)."""

    capacity_kwh: float | None
    source: str | None  # SMARTCAR, USER_SELECTED, or "capacity" for the legacy endpoint
    available_kwh: tuple[float, ...]
    url: str | None
    meta: Meta


@dataclass(slots=True, frozen=True)
class ChargeStatus:
    is_plugged_in: bool
    state: str  # CHARGING, FULLY_CHARGED, NOT_CHARGING
    meta: Meta


@dataclass(slots=True, frozen=True)
class ChargeLimit:
    limit: float  # a fraction 0.5..1
    meta: Meta


@dataclass(slots=True, frozen=True)
class Location:
    latitude: float
    longitude: float
    meta: Meta


@dataclass(slots=True, frozen=True)
class CommandResult:
    status: str
    message: str | None
    meta: Meta


@dataclass(slots=True, frozen=True)
class Permissions:
    permissions: tuple[str, ...]
    meta: Meta


def user(body: Body, meta: Meta) -> User:
    return User(str(body["id"]), meta)


def vehicle_page(body: Body, meta: Meta) -> VehiclePage:
    paging = body["paging"]
    ids = tuple(str(v) for v in body["vehicles"])
    return VehiclePage(ids, int(paging["count"]), int(paging["offset"]), meta)


def vehicle_info(body: Body, meta: Meta) -> VehicleInfo:
    # §5: documented as an integer, but the docs' own example sends "2014".
    year = int(body["year"])
    return VehicleInfo(str(body["id"]), str(body["make"]), str(body["model"]), year, meta)


def vin(body: Body, meta: Meta) -> Vin:
    return Vin(str(body["vin"]), meta)


def battery(body: Body, meta: Meta) -> Battery:
    fraction = float(body["percentRemaining"])
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"percentRemaining {fraction} is not a fraction 0..1")
    raw_range = body.get("range")
    return Battery(fraction, None if raw_range is None else float(raw_range), meta)


def nominal_capacity(body: Body, meta: Meta) -> Capacity:
    chosen = body.get("capacity")
    available = tuple(float(c["capacity"]) for c in body.get("availableCapacities") or ())
    return Capacity(
        capacity_kwh=float(chosen["nominal"]) if chosen else None,
        source=str(chosen["source"]) if chosen and chosen.get("source") else None,
        available_kwh=available,
        url=body.get("url"),
        meta=meta,
    )


def legacy_capacity(body: Body, meta: Meta) -> Capacity:
    return Capacity(float(body["capacity"]), "capacity", (), None, meta)


def charge_status(body: Body, meta: Meta) -> ChargeStatus:
    plugged = body["isPluggedIn"]
    if not isinstance(plugged, bool):
        raise TypeError("isPluggedIn is not a boolean")
    return ChargeStatus(plugged, str(body["state"]), meta)


def charge_limit(body: Body, meta: Meta) -> ChargeLimit:
    return ChargeLimit(float(body["limit"]), meta)


def location(body: Body, meta: Meta) -> Location:
    return Location(float(body["latitude"]), float(body["longitude"]), meta)


def command_result(body: Body, meta: Meta) -> CommandResult:
    message = body.get("message")
    return CommandResult(str(body["status"]), None if message is None else str(message), meta)


# What a batch path parses into; "/" is the vehicle attributes (§5).
BATCH_PARSERS: dict[str, Callable[[Body, Meta], Any]] = {
    "/": vehicle_info,
    "/vin": vin,
    "/battery": battery,
    "/battery/capacity": legacy_capacity,
    "/battery/nominal_capacity": nominal_capacity,
    "/charge": charge_status,
    "/charge/limit": charge_limit,
    "/location": location,
}


@dataclass(slots=True, frozen=True)
class BatchItem:
    """One path of a batch: its own status, body and headers; ``error`` when it failed."""

    path: str
    code: int
    body: Body
    headers: Mapping[str, Any]
    error: SmartcarError | None
    meta: Meta


@dataclass(slots=True, frozen=True)
class BatchResult:
    items: tuple[BatchItem, ...]
    meta: Meta

    def item(self, path: str) -> BatchItem:
        for entry in self.items:
            if entry.path == path:
                return entry
        raise KeyError(path)

    def raise_for_item(self, path: str) -> Body:
        """The body for ``path``, or raise the ``SmartcarError`` that item failed with."""
        entry = self.item(path)
        if entry.error is not None:
            raise entry.error
        return entry.body

    def result(self, path: str) -> Any:
        """The typed result for a known ``path`` (``Battery`` for ``/battery``...), or raise."""
        body = self.raise_for_item(path)
        return BATCH_PARSERS[path](body, self.item(path).meta)


def batch_result(body: Body, meta: Meta) -> BatchResult:
    items = []
    for raw in body["responses"]:
        code, item_body = int(raw["code"]), raw.get("body") or {}
        headers = raw.get("headers") or {}
        # SC-Request-Id is only on the outer response (§5); an error body has its own.
        item_meta = meta_from_headers(headers, meta.received_at, meta.request_id)
        error = None if 200 <= code < 300 else error_from_response(code, item_body, headers)
        items.append(BatchItem(str(raw["path"]), code, item_body, headers, error, item_meta))
    return BatchResult(tuple(items), meta)
