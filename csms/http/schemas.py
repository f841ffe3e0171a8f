"""Response shapes of the operator API, for ``/openapi.json``, and the errors each route
declares.

Routes build their JSON themselves (``JSONResponse``), so these models document the
answer rather than produce it; ``tests/api/test_openapi.py`` checks real answers
against them. Every model allows extra keys: an answer may grow a field without
breaking a client generated from an older document.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


# -- errors --------------------------------------------------------------------------------


class Problem(_Open):
    """RFC 9457 problem details, sent as ``application/problem+json`` for every error."""

    type: str = Field("about:blank", description="always about:blank: the status says it all")
    title: str = Field(description="short, the same for every occurrence of this problem")
    status: int = Field(description="the HTTP status code, repeated")
    detail: str = Field(description="what went wrong this time, for a person to read")
    field: str | None = Field(None, description="the request field at fault, when one is")
    code: str | None = Field(None, description="the OCPP CALLERROR code the charger sent (502)")


class FieldError(BaseModel):
    field: str
    message: str


class ValidationProblem(Problem):
    """A 422 for a request that does not validate, naming every field at fault."""

    errors: list[FieldError] = Field(default_factory=list)


ERROR_DESCRIPTIONS = {
    400: "Bad request",
    401: "No operator token, or one that is unknown, malformed or revoked",
    404: "No such resource",
    409: "Conflict with the resource's current state (e.g. the charger is not connected)",
    422: "The request does not validate; `field` or `errors` name what is wrong",
    502: "The charge point (or Smartcar) answered with an error",
    503: "A dependency (the database, a configuration) is not available",
    504: "The charge point did not answer in time",
}

# What sending a command to a charger can end in (see problems.command_problem).
# 503: the charger's outgoing queue did not drain in time, so the command was never sent.
COMMAND_ERRORS = (409, 422, 502, 503, 504)


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` of a route that can answer these problem statuses."""
    return {
        code: {
            "model": ValidationProblem if code == 422 else Problem,
            "description": ERROR_DESCRIPTIONS[code],
        }
        for code in codes
    }


# -- common --------------------------------------------------------------------------------


class Page(_Open):
    next_cursor: str | None = Field(
        description="pass as ?cursor= for the next page; null on the last page"
    )


class Connector(_Open):
    connector_id: int = Field(description="0 is the charge point itself")
    status: str
    error_code: str
    info: str | None = None
    vendor_id: str | None = None
    vendor_error_code: str | None = None
    reported_at: datetime | None = Field(None, description="the charger's clock")
    updated_at: datetime = Field(description="when we received the report")


class ChargePoint(_Open):
    id: str
    registration_status: Literal["Accepted", "Pending", "Rejected"]
    vendor: str | None
    model: str | None
    serial_number: str | None = None
    firmware_version: str | None = None
    first_seen_at: datetime | None = None
    last_boot_at: datetime | None = None
    last_seen_at: datetime | None = None
    connected: bool
    connectors: list[Connector]


class ChargePointDetail(ChargePoint):
    boot_payload: dict[str, Any] | None = None
    active_transaction_ids: list[int]
    local_list: dict[str, Any] | None = None


class ChargePointPage(Page):
    items: list[ChargePoint]


class StatusReport(_Open):
    id: int
    connector_id: int
    status: str
    error_code: str
    info: str | None = None
    reported_at: datetime | None = None
    received_at: datetime
    clock_suspect: bool


class StatusHistoryPage(Page):
    items: list[StatusReport]


class RegistrationOut(BaseModel):
    charge_point_id: str
    registration_status: Literal["Accepted", "Pending", "Rejected"]


class RegistrationIn(BaseModel):
    status: Literal["Accepted", "Pending", "Rejected"]


class CommandAnswer(_Open):
    """The charger's CALLRESULT payload, as it sent it (e.g. ``{"status": "Accepted"}``)."""


class Transaction(_Open):
    id: int
    charge_point_id: str
    connector_id: int
    id_tag: str
    meter_start_wh: int
    meter_stop_wh: int | None
    start_timestamp: datetime
    stop_timestamp: datetime | None
    stop_reason: str | None
    active: bool
    energy_wh: int | None = Field(
        description="stop minus start; null while running or on an anomaly"
    )


class TransactionPage(Page):
    items: list[Transaction]


class MeterValue(_Open):
    connector_id: int
    sampled_at: datetime
    measurand: str
    phase: str | None
    unit: str | None
    value: float | None = Field(description="normalised to Wh, W or A; null if not numeric")
    raw_value: str


class TransactionDetail(Transaction):
    meter_values: list[MeterValue]
    session: dict[str, Any] | None = Field(
        description="a plug-in's record of this transaction (the Smartcar bridge: its "
        "plug-and-charge session, VIN masked), when there is one"
    )


class IdTag(_Open):
    id_tag: str
    id_tag_key: str = Field(description="the canonical form tags are matched by")
    status: str
    effective_status: str = Field(description="what a charger would be told now")
    expiry_date: datetime | None
    parent_id_tag: str | None
    created_at: datetime


class IdTagPage(Page):
    items: list[IdTag]


class LocalListOut(_Open):
    charge_point_id: str
    list_version: int
    entries: int
    skipped_id_tags: list[str]
    status: str
    answer: dict[str, Any]


class SecurityStatus(_Open):
    charge_point_id: str
    security_profile: int
    pending_security_profile: int | None
    has_password: bool
    connected: bool


class PasswordOut(_Open):
    charge_point_id: str
    password: str = Field(description="shown once, stored only as a hash")
    applied: str


class ProfileOut(_Open):
    charge_point_id: str
    security_profile: int
    pending_security_profile: int | None
    password: str | None = None


class SecurityEvent(_Open):
    type: str
    tech_info: str | None
    reported_at: datetime | None
    received_at: datetime


class SecurityEvents(_Open):
    charge_point_id: str
    events: list[SecurityEvent]


class Health(_Open):
    """``status`` plus one boolean per check (database, ocpp, …)."""

    status: Literal["ok", "unavailable"]


class Readiness(_Open):
    status: Literal["ready", "unavailable"]
    checks: dict[str, bool]
    failed: list[str]


# -- dashboard -----------------------------------------------------------------------------


class FleetCounts(_Open):
    total: int
    online: int
    offline: int
    pending: int
    rejected: int
    faulted: int = Field(description="connected chargers with a Faulted connector")
    charging: int = Field(description="connected chargers with a Charging connector")


class TransactionCounts(_Open):
    open: int
    on_offline_chargers: int = Field(description="open, but the charger is not connected")
    started_since: int
    energy_since_wh: int


class OpenTransaction(_Open):
    id: int
    charge_point_id: str
    connector_id: int
    id_tag: str
    start_timestamp: datetime
    charger_connected: bool = Field(description="false: open in our books, state unknown")


class DashboardCard(_Open):
    id: str
    label: str
    value: str
    note: str | None = None


class DashboardSummary(_Open):
    generated_at: datetime
    since: datetime
    node_id: str
    chargers: FleetCounts
    connectors: dict[str, int] = Field(
        description="connectors by status; those of offline chargers count as Offline"
    )
    transactions: TransactionCounts
    open_transactions: list[OpenTransaction] = Field(description="the newest 20, newest first")
    cards: list[DashboardCard] = Field(
        description="cards the plug-ins add to the page; each plug-in's own section is "
        "under its name (`bridge`: plug-and-charge outcomes since `since`, when it runs)"
    )
    events: list[dict[str, Any]] = Field(description="the latest domain events, newest first")


class FleetCharger(_Open):
    id: str
    state: Literal["offline", "rejected", "pending", "faulted", "charging", "online"]
    registration_status: str
    connected: bool
    vendor: str | None
    model: str | None
    last_seen_at: datetime | None
    connectors: list[dict[str, Any]]
    open_transactions: int


class FleetPage(Page):
    total: int = Field(description="how many chargers match the filter")
    items: list[FleetCharger]
