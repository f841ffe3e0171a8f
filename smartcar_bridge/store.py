"""SQL for the bridge's own tables: accounts, vehicles, charging sessions and their samples."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import asyncpg
from asyncpg.pool import PoolConnectionProxy

PAYMENT_STATUSES = ("valid", "suspended", "none")


@dataclass(slots=True, frozen=True)
class Account:
    id: int
    name: str
    payment_status: str
    tariff_per_kwh: Decimal
    currency: str


@dataclass(slots=True, frozen=True)
class Vehicle:
    id: int
    smartcar_vehicle_id: str
    link_id: int
    account_id: int
    vin: str
    id_tag: str
    battery_capacity_wh: int | None
    target_soc_percent: int
    max_energy_wh: int | None
    departure_at: datetime | None
    latitude: float | None
    longitude: float | None
    unplugged_seen_at: datetime | None
    plugged_seen_at: datetime | None
    plug_data_at: datetime | None
    payment_status: str
    tariff_per_kwh: Decimal
    currency: str
    webhook_seen_at: datetime | None = None
    location_at: datetime | None = None


_VEHICLE_SELECT = """
    SELECT v.id, v.smartcar_vehicle_id, v.link_id, v.account_id, v.vin, v.id_tag,
           v.battery_capacity_wh, v.target_soc_percent, v.max_energy_wh, v.departure_at,
           v.latitude, v.longitude, v.unplugged_seen_at, v.plugged_seen_at, v.plug_data_at,
           a.payment_status, a.tariff_per_kwh, a.currency, v.webhook_seen_at, v.location_at
    FROM vehicles v JOIN accounts a ON a.id = v.account_id
"""


def _vehicle(row: asyncpg.Record) -> Vehicle:
    return Vehicle(**dict(row))


async def create_account(
    pool: asyncpg.Pool, name: str, payment_status: str, tariff_per_kwh: Decimal, currency: str
) -> Account:
    row = await pool.fetchrow(
        """INSERT INTO accounts (name, payment_status, tariff_per_kwh, currency)
           VALUES ($1, $2, $3, $4)
           RETURNING id, name, payment_status, tariff_per_kwh, currency""",
        name,
        payment_status,
        tariff_per_kwh,
        currency,
    )
    assert row is not None  # INSERT ... RETURNING yields the row it inserted
    return Account(**dict(row))


async def get_account(pool: asyncpg.Pool, account_id: int) -> Account | None:
    row = await pool.fetchrow(
        "SELECT id, name, payment_status, tariff_per_kwh, currency FROM accounts WHERE id = $1",
        account_id,
    )
    return Account(**dict(row)) if row else None


async def update_account(
    pool: asyncpg.Pool, account_id: int, changes: dict[str, Any]
) -> Account | None:
    allowed = {"name", "payment_status", "tariff_per_kwh", "currency"}
    columns = [c for c in changes if c in allowed]
    if not columns:
        return await get_account(pool, account_id)
    # Column names come from the allow-list above, never from the caller.
    assignments = ", ".join(f"{c} = ${i + 2}" for i, c in enumerate(columns))
    row = await pool.fetchrow(
        f"""UPDATE accounts SET {assignments}, updated_at = now() WHERE id = $1
            RETURNING id, name, payment_status, tariff_per_kwh, currency""",
        account_id,
        *(changes[c] for c in columns),
    )
    return Account(**dict(row)) if row else None


@dataclass(slots=True, frozen=True)
class LinkedVehicle:
    smartcar_vehicle_id: str
    vin: str
    make: str | None
    model: str | None
    year: int | None
    battery_capacity_wh: int | None
    id_tag: str


async def link_vehicle(
    # Its own connection or one borrowed from the pool (a proxy class to the type checker).
    db: asyncpg.Connection | PoolConnectionProxy,
    account_id: int,
    link_id: int,
    vehicle: LinkedVehicle,
) -> tuple[int, list[int]]:
    """Make ``vehicle`` active on ``account_id``; return its id and the accounts it left.

    A VIN belongs to at most one active account: a newer authorisation (the car was
    sold, or re-linked) takes it over.
    """
    previous = await db.fetch(
        """UPDATE vehicles SET active = false, updated_at = now()
           WHERE active AND (vin = $1 OR smartcar_vehicle_id = $2)
           RETURNING account_id, id_tag, target_soc_percent, max_energy_wh""",
        vehicle.vin,
        vehicle.smartcar_vehicle_id,
    )
    same_account = [r for r in previous if r["account_id"] == account_id]
    keep = same_account[0] if same_account else None
    # The idTag is unique across rows, so the retired row gives up its tag.
    await db.execute(
        "UPDATE vehicles SET id_tag = 'X' || id::text WHERE NOT active AND id_tag = $1",
        vehicle.id_tag,
    )
    vehicle_id = await db.fetchval(
        """INSERT INTO vehicles (smartcar_vehicle_id, link_id, account_id, vin, make, model,
               year, id_tag, battery_capacity_wh, target_soc_percent, max_energy_wh)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id""",
        vehicle.smartcar_vehicle_id,
        link_id,
        account_id,
        vehicle.vin,
        vehicle.make,
        vehicle.model,
        vehicle.year,
        vehicle.id_tag,
        vehicle.battery_capacity_wh,
        keep["target_soc_percent"] if keep else 80,
        keep["max_energy_wh"] if keep else None,
    )
    return vehicle_id, sorted({r["account_id"] for r in previous} - {account_id})


async def list_vehicles(pool: asyncpg.Pool, account_id: int | None = None) -> list[Vehicle]:
    rows = await pool.fetch(
        _VEHICLE_SELECT + " WHERE v.active AND ($1::bigint IS NULL OR v.account_id = $1)"
        " ORDER BY v.id",
        account_id,
    )
    return [_vehicle(r) for r in rows]


async def get_vehicle(pool: asyncpg.Pool, vehicle_id: int) -> Vehicle | None:
    row = await pool.fetchrow(_VEHICLE_SELECT + " WHERE v.id = $1", vehicle_id)
    return _vehicle(row) if row else None


async def vehicle_by_smartcar_id(pool: asyncpg.Pool, smartcar_id: str) -> Vehicle | None:
    row = await pool.fetchrow(
        _VEHICLE_SELECT + " WHERE v.active AND v.smartcar_vehicle_id = $1", smartcar_id
    )
    return _vehicle(row) if row else None


async def match_candidates(pool: asyncpg.Pool) -> list[Vehicle]:
    """Active vehicles not in a session (cars held by a confirmation start are included:
    the matcher treats them as undetermined).

    A car whose link needs the driver to re-authorise cannot be read or started: like an
    unlinked car, it is nobody's candidate (a confirmation start would never see it).
    """
    rows = await pool.fetch(
        _VEHICLE_SELECT
        + """ WHERE v.active
              AND EXISTS (SELECT 1 FROM smartcar_links l
                          WHERE l.id = v.link_id AND l.status = 'active')
              AND NOT EXISTS (
                 SELECT 1 FROM vehicle_claims c WHERE c.vehicle_id = v.id AND c.kind = 'session')
              AND NOT EXISTS (
                 SELECT 1 FROM charging_sessions s
                 WHERE s.vehicle_id = v.id AND s.ended_at IS NULL)
              ORDER BY v.id"""
    )
    return [_vehicle(r) for r in rows]


async def match_vehicles(pool: asyncpg.Pool, vehicle_ids: list[int]) -> list[Vehicle]:
    rows = await pool.fetch(_VEHICLE_SELECT + " WHERE v.id = ANY($1::bigint[])", vehicle_ids)
    return [_vehicle(r) for r in rows]


async def update_preferences(
    pool: asyncpg.Pool, vehicle_id: int, changes: dict[str, Any]
) -> Vehicle | None:
    allowed = {"target_soc_percent", "max_energy_wh", "departure_at"}
    columns = [c for c in changes if c in allowed]
    if columns:
        assignments = ", ".join(f"{c} = ${i + 2}" for i, c in enumerate(columns))
        await pool.execute(
            f"UPDATE vehicles SET {assignments}, updated_at = now() WHERE id = $1 AND active",
            vehicle_id,
            *(changes[c] for c in columns),
        )
    return await get_vehicle(pool, vehicle_id)


async def set_plug_interval(pool: asyncpg.Pool, vehicle_id: int, interval: Any) -> None:
    """Store the car's plug interval (``matcher.PlugInterval``); older data never wins."""
    await pool.execute(
        """UPDATE vehicles SET unplugged_seen_at = $2, plugged_seen_at = $3, plug_data_at = $4,
               last_plugged_in = $3::timestamptz IS NOT NULL
           WHERE id = $1 AND (plug_data_at IS NULL OR plug_data_at <= $4)""",
        vehicle_id,
        interval.unplugged_at,
        interval.plugged_at,
        interval.data_at,
    )


async def set_location(
    pool: asyncpg.Pool,
    vehicle_id: int,
    latitude: float,
    longitude: float,
    at: datetime | None = None,
) -> None:
    """The car's position as of ``at`` (its data time); an older position never wins."""
    await pool.execute(
        """UPDATE vehicles SET latitude = $2, longitude = $3, location_at = coalesce($4, now())
           WHERE id = $1 AND (location_at IS NULL OR location_at <= coalesce($4, now()))""",
        vehicle_id,
        latitude,
        longitude,
        at,
    )


async def note_webhook(pool: asyncpg.Pool, vehicle_id: int, at: datetime) -> None:
    """A webhook delivery for this car arrived: it is watched by webhooks, not by reads."""
    await pool.execute(
        """UPDATE vehicles SET webhook_seen_at = greatest(webhook_seen_at, $2) WHERE id = $1""",
        vehicle_id,
        at,
    )


async def deactivate_vehicle(pool: asyncpg.Pool, vehicle_id: int) -> None:
    await pool.execute(
        "UPDATE vehicles SET active = false, updated_at = now() WHERE id = $1", vehicle_id
    )


async def set_charger_location(
    pool: asyncpg.Pool, charge_point_id: str, latitude: float, longitude: float
) -> None:
    await pool.execute(
        """INSERT INTO charger_locations (charge_point_id, latitude, longitude)
           VALUES ($1, $2, $3)
           ON CONFLICT (charge_point_id) DO UPDATE
           SET latitude = EXCLUDED.latitude, longitude = EXCLUDED.longitude""",
        charge_point_id,
        latitude,
        longitude,
    )


async def charger_location(pool: asyncpg.Pool, charge_point_id: str) -> tuple[float, float] | None:
    row = await pool.fetchrow(
        "SELECT latitude, longitude FROM charger_locations WHERE charge_point_id = $1",
        charge_point_id,
    )
    return (row["latitude"], row["longitude"]) if row else None
