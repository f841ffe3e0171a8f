"""Pure parsers for v3 JSON:API bodies (smartcar-api.md §8, §14), tolerant of both forms
where sources differ (a ``data`` wrapper or none, epoch seconds or milliseconds).

Parsers raise ``KeyError``/``TypeError``/``ValueError`` on a body that breaks the docs; the
client's single request path turns those into ``SmartcarResponseError``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from smartcar_bridge.errors import SmartcarError, error_from_response
from smartcar_bridge.responses import Battery, Capacity, ChargeStatus, Location, Meta
from smartcar_bridge.v3 import choices

Body = Mapping[str, Any]


def _mapping_or(value: Any, default: Body) -> Body:
    """``value`` when it is an object, else ``default``: tolerates a missing or odd member."""
    return value if isinstance(value, Mapping) else default


def _resource(body: Body) -> Body:
    # §8/§14.3: the docs show single resources both with and without the "data" wrapper.
    data = body.get("data")
    return data if isinstance(data, Mapping) else body


@dataclass(slots=True, frozen=True)
class AppToken:
    """An application token (client credentials, §14.1); ``repr`` never shows it."""

    access_token: str = field(repr=False)
    expires_at: datetime
    issued_at: datetime


def app_token(body: Body, meta: Meta) -> AppToken:
    expires_in = float(body.get("expires_in", 3600))  # §14.1: one hour
    now = meta.received_at
    return AppToken(str(body["access_token"]), now + timedelta(seconds=expires_in), now)


@dataclass(slots=True, frozen=True)
class Signal:
    code: str
    ok: bool
    body: Mapping[str, Any]
    error: Mapping[str, Any] | None
    oem_updated_at: datetime | None
    retrieved_at: datetime | None
    request: Meta | None = None  # the response it came in: request id, when we got it

    @property
    def value(self) -> Any:
        return self.body.get("value")


def signal(raw: Body, request: Meta | None = None) -> Signal:
    raw = _resource(raw)
    attributes = _mapping_or(raw.get("attributes"), raw)
    status = attributes.get("status") or {}
    state = status.get("value", "SUCCESS") if isinstance(status, Mapping) else str(status)
    body = attributes.get("body")
    meta = _mapping_or(raw.get("meta"), {}) or _mapping_or(attributes.get("meta"), {})
    code = attributes.get("code") or raw.get("id")
    return Signal(
        code=str(code),
        ok=state == "SUCCESS" and isinstance(body, Mapping),
        body=body if isinstance(body, Mapping) else {},
        error=status.get("error") if isinstance(status, Mapping) else None,
        oem_updated_at=choices.moment(meta.get("oemUpdatedAt")),
        retrieved_at=choices.moment(meta.get("retrievedAt") or meta.get("fetchedAt")),
        request=request,
    )


def signal_page(body: Body, meta: Meta) -> tuple[list[Signal], Body]:
    """One page of ``GET /signals``: its signals, and the body for ``choices.next_url``."""
    return [signal(item, meta) for item in body["data"]], body


def one_signal(body: Body, meta: Meta) -> Signal:
    return signal(body, meta)


@dataclass(slots=True, frozen=True)
class Connection:
    vehicle_id: str
    user_id: str | None


def _related_id(raw: Body, name: str) -> str | None:
    relation = (raw.get("relationships") or {}).get(name) or {}
    data = relation.get("data") if isinstance(relation, Mapping) else None
    return str(data["id"]) if isinstance(data, Mapping) and data.get("id") else None


def connection_page(body: Body, meta: Meta) -> tuple[list[Connection], Body]:
    """``GET /connections``: details unconfirmed (§14.5); the ids are read from the
    attributes, the relationships, or (for the vehicle) the resource id."""
    found = []
    for raw in body["data"]:
        attributes = raw.get("attributes") or {}
        vehicle = attributes.get("vehicleId") or _related_id(raw, "vehicle") or raw["id"]
        user = attributes.get("userId") or _related_id(raw, "user")
        found.append(Connection(str(vehicle), str(user) if user else None))
    return found, body


@dataclass(slots=True, frozen=True)
class VehicleAttributes:
    id: str
    make: str | None
    model: str | None
    year: int | None


def vehicle(body: Body, meta: Meta) -> VehicleAttributes:
    raw = _resource(body)
    attributes = _mapping_or(raw.get("attributes"), raw)
    year = attributes.get("year")
    return VehicleAttributes(
        str(raw["id"]),
        attributes.get("make"),
        attributes.get("model"),
        int(year) if year not in (None, "") else None,
    )


@dataclass(slots=True, frozen=True)
class CommandExecution:
    """A ``command-execution`` (§14.2): ``state`` is succeeded, failed or running."""

    id: str | None
    command_type: str | None
    status: str
    error: SmartcarError | None
    meta: Meta

    @property
    def state(self) -> str:
        if self.status in choices.SUCCEEDED:
            return "succeeded"
        if self.status in choices.FAILED:
            return "failed"
        return "running"


def execution(body: Body, meta: Meta) -> CommandExecution:
    raw = _resource(body)
    attributes = raw.get("attributes") or {}
    status = attributes.get("status") or {}
    value = status.get("value") if isinstance(status, Mapping) else status
    value = str(value or "PENDING").upper()
    error = None
    if value in choices.FAILED:
        error = _execution_error(status if isinstance(status, Mapping) else {}, meta)
    execution_id = raw.get("id")
    return CommandExecution(
        str(execution_id) if execution_id else None,
        attributes.get("commandType"),
        value,
        error,
        meta,
    )


def _execution_error(status: Mapping[str, Any], meta: Meta) -> SmartcarError:
    """The failure inside a failed execution, as the same error tree the HTTP errors use.

    Its shape is unconfirmed: we read ``status.error`` like a failed signal's error (§10)
    or a v3 error object, and fall back to an UNKNOWN error with the status value."""
    raw = status.get("error") or status.get("errors") or {}
    if isinstance(raw, list):
        raw = raw[0] if raw else {}
    if not isinstance(raw, Mapping) or not raw.get("type"):
        description = str(status.get("detail") or status.get("value") or "command failed")
        return SmartcarError(description, type="COMMAND_FAILED", retryable=False)
    error_status = raw.get("status") or raw.get("statusCode") or 409
    error = error_from_response(int(error_status), {"errors": [dict(raw)]})
    error.request_id = error.request_id or meta.request_id
    return error


# --- signals as the bridge's typed readings (the same types v2.0 gives) ---------------------


def _first_ok(signals: Mapping[str, Signal], *codes: str) -> Signal | None:
    for code in codes:
        found = signals.get(code)
        if found is not None and found.ok:
            return found
    return None


def _meta(meta: Meta, found: Signal | None) -> Meta:
    # The car's own timestamp plays the part of v2.0's SC-Data-Age.
    if found is None:
        return meta
    request = found.request or meta
    return Meta(request.request_id, request.received_at, found.oem_updated_at, found.retrieved_at)


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise TypeError(f"not a number: {value!r}")
    return float(value)


def battery(signals: Mapping[str, Signal], meta: Meta) -> Battery:
    soc = _first_ok(signals, choices.SOC)
    if soc is None:
        raise KeyError(choices.SOC)
    percent = _number(soc.value)
    if not 0.0 <= percent <= 100.0:
        raise ValueError(f"state of charge {percent} is not a percentage")
    reach = _first_ok(signals, choices.RANGE)
    # Battery keeps v2.0's fraction: §14.6, v3 SoC is 0..100.
    range_km = _number(reach.value) if reach is not None and reach.value is not None else None
    return Battery(percent / 100.0, range_km, _meta(meta, soc))


def _limit_percent(signals: Mapping[str, Signal]) -> float | None:
    limits = _first_ok(signals, choices.CHARGE_LIMITS)
    if limits is None:
        return None
    raw = limits.body.get("activeLimit", limits.body.get("value"))
    if isinstance(raw, Mapping):
        raw = raw.get("value", raw.get("limit"))
    try:
        value = _number(raw)
    except TypeError:
        return None
    return value * 100.0 if value <= 1.0 else value  # a fraction, should a car send one


def charge_status(signals: Mapping[str, Signal], meta: Meta) -> ChargeStatus:
    """v2.0's ``{isPluggedIn, state}`` from the charge signals (§14.3)."""
    charging = _first_ok(signals, choices.IS_CHARGING)
    cable = _first_ok(signals, choices.CABLE_CONNECTED)
    if charging is None or not isinstance(charging.value, bool):
        raise KeyError(choices.IS_CHARGING)
    # A car that cannot report the cable: charging proves it is plugged in, else unknown ->
    # not plugged (the matcher then does not pick it, which is the safe side).
    plugged = bool(cable.value) if cable is not None else charging.value
    state = "NOT_CHARGING"
    if charging.value:
        state = "CHARGING"
    else:
        soc, limit = _first_ok(signals, choices.SOC), _limit_percent(signals)
        if plugged and soc is not None and limit is not None and _number(soc.value) >= limit:
            state = "FULLY_CHARGED"
    return ChargeStatus(plugged, state, _meta(meta, charging))


def location(signals: Mapping[str, Signal], meta: Meta) -> Location:
    found = _first_ok(signals, choices.LOCATION)
    if found is None:
        raise KeyError(choices.LOCATION)
    body = found.body
    value = _mapping_or(body.get("value"), body)
    return Location(_number(value["latitude"]), _number(value["longitude"]), _meta(meta, found))


def capacity(signals: Mapping[str, Signal], meta: Meta) -> Capacity:
    found = _first_ok(signals, *choices.CAPACITY)
    if found is None:
        return Capacity(None, None, (), None, meta)
    value = found.body.get("value", found.body.get("capacity"))
    if isinstance(value, list):
        options = tuple(_number(v.get("capacity", v.get("value"))) for v in value)
        chosen = options[0] if len(options) == 1 else None
        return Capacity(chosen, "SMARTCAR", options, None, _meta(meta, found))
    if isinstance(value, Mapping):
        value = value.get("nominal", value.get("value"))
    kwh = _number(value) if value is not None else None
    return Capacity(kwh, "SMARTCAR", (kwh,) if kwh else (), None, _meta(meta, found))


def vin(signals: Mapping[str, Signal]) -> str:
    found = _first_ok(signals, choices.VIN)
    if found is None or not found.value:
        raise KeyError(choices.VIN)
    return str(found.value)
