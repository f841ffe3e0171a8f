"""Response shapes of the bridge's routes, for ``/openapi.json`` (see csms/http/schemas.py).

VINs are always masked to their last 6 characters; money is a decimal string.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class Account(_Open):
    id: int
    name: str
    payment_status: str = Field(description="valid, suspended or none: only valid charges")
    tariff_per_kwh: str = Field(description="decimal string, per kWh billed")
    currency: str


class AccountRow(Account):
    created_at: datetime
    vehicles: int = Field(description="active linked vehicles")


class Vehicle(_Open):
    id: int
    vin: str = Field(description="masked: only the last 6 characters are shown")
    account_id: int
    id_tag: str = Field(description="the idTag the bridge starts this car's sessions with")
    make: str | None = None
    model: str | None = None
    year: int | None = None
    active: bool | None = None
    battery_capacity_wh: int | None
    target_soc_percent: int | None
    max_energy_wh: int | None = None
    departure_at: datetime | None = None


class AccountDetail(Account):
    vehicles: list[Vehicle]


class SmartcarDisconnect(_Open):
    disconnected: bool
    error: str | None = None
    code: str | None = None


class UnlinkedVehicle(Vehicle):
    smartcar: SmartcarDisconnect


class LocationOut(BaseModel):
    charge_point_id: str
    latitude: float
    longitude: float


class SocSample(_Open):
    sampled_at: datetime
    soc_percent: float
    charge_state: str | None
    source: str


class Session(_Open):
    """A plug-and-charge session: its state, reconciliation and bill."""

    id: int
    charge_point_id: str
    connector_id: int
    vehicle_id: int
    account_id: int
    vin: str = Field(description="masked")
    transaction_id: int | None
    state: str
    target_soc_percent: int
    start_soc_percent: float | None
    end_soc_percent: float | None
    stop_reason: str | None
    grid_energy_wh: int | None = Field(description="what the charger metered")
    battery_energy_wh: int | None = Field(description="what the battery gained, from SoC")
    reconciliation_flags: list[str]
    bill_energy_wh: int | None
    bill_basis: str | None = Field(description="charger or battery")
    bill_amount: str | None
    currency: str | None
    created_at: datetime
    ended_at: datetime | None


class SessionDetail(Session):
    soc_samples: list[SocSample]


class SessionPage(_Open):
    items: list[Session]
    next_cursor: str | None


class WebhookAnswer(_Open):
    status: str | None = Field(None, description="received")
    challenge: str | None = Field(None, description="the answer to a VERIFY event")
