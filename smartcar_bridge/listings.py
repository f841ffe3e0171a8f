"""Read queries for the bridge's operator routes: accounts, vehicles and sessions."""

from __future__ import annotations

from typing import Any

import asyncpg


async def accounts(
    pool: asyncpg.Pool, *, payment_status: str | None = None, name: str | None = None
) -> list[dict[str, Any]]:
    """Accounts by id; ``name`` matches a case-insensitive substring."""
    rows = await pool.fetch(
        """SELECT a.id, a.name, a.payment_status, a.tariff_per_kwh, a.currency, a.created_at,
                  (SELECT count(*) FROM vehicles v WHERE v.account_id = a.id AND v.active)
                      AS vehicles
           FROM accounts a
           WHERE ($1::text IS NULL OR a.payment_status = $1)
             AND ($2::text IS NULL OR strpos(lower(a.name), lower($2)) > 0)
           ORDER BY a.id""",
        payment_status,
        name,
    )
    return [dict(r) for r in rows]


_VEHICLE = """
    SELECT v.id, v.smartcar_vehicle_id, v.link_id, v.account_id, v.vin, v.make, v.model,
           v.year, v.id_tag, v.battery_capacity_wh, v.active, v.target_soc_percent,
           v.max_energy_wh, v.departure_at, v.last_plugged_in, v.created_at,
           a.payment_status, l.status AS link_status
    FROM vehicles v
    JOIN accounts a ON a.id = v.account_id
    JOIN smartcar_links l ON l.id = v.link_id
"""


async def vehicles(
    pool: asyncpg.Pool,
    *,
    account_id: int | None = None,
    active: bool | None = True,
    vin: str | None = None,
    make: str | None = None,
) -> list[dict[str, Any]]:
    rows = await pool.fetch(
        _VEHICLE
        + """ WHERE ($1::bigint IS NULL OR v.account_id = $1)
              AND ($2::boolean IS NULL OR v.active = $2)
              AND ($3::text IS NULL OR v.vin = upper($3))
              AND ($4::text IS NULL OR lower(v.make) = lower($4))
            ORDER BY v.id""",
        account_id,
        active,
        vin,
        make,
    )
    return [dict(r) for r in rows]


async def vehicle(pool: asyncpg.Pool, vehicle_id: int) -> dict[str, Any] | None:
    """One vehicle, active or not (an unlinked car is still shown, marked inactive)."""
    row = await pool.fetchrow(_VEHICLE + " WHERE v.id = $1", vehicle_id)
    return dict(row) if row else None


async def sessions(
    pool: asyncpg.Pool,
    *,
    account_id: int | None = None,
    vehicle_id: int | None = None,
    charge_point_id: str | None = None,
    state: str | None = None,
    active: bool | None = None,
    before_id: int | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Plug-and-charge sessions, newest first, paged by id."""
    rows = await pool.fetch(
        """SELECT id, charge_point_id, connector_id, vehicle_id, account_id, vin, id_tag,
                  transaction_id, state, target_soc_percent, start_soc_percent,
                  last_soc_percent, end_soc_percent, stop_reason, grid_energy_wh,
                  battery_energy_wh, reconciliation_flags, bill_energy_wh, bill_basis,
                  bill_amount, currency, last_error, created_at, ended_at
           FROM charging_sessions
           WHERE ($1::bigint IS NULL OR account_id = $1)
             AND ($2::bigint IS NULL OR vehicle_id = $2)
             AND ($3::text IS NULL OR charge_point_id = $3)
             AND ($4::text IS NULL OR state = $4)
             AND ($5::boolean IS NULL OR (ended_at IS NULL) = $5)
             AND ($6::bigint IS NULL OR id < $6)
           ORDER BY id DESC LIMIT $7""",
        account_id,
        vehicle_id,
        charge_point_id,
        state,
        active,
        before_id,
        limit,
    )
    return [dict(r) for r in rows]
