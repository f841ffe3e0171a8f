"""Read queries for transactions: filtered keyset pages and one transaction in full.

Filters by VIN or account and the plug-and-charge details read the bridge's
``charging_sessions`` when that table exists (its migrations may not have run in a
deployment that never enabled the bridge).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

_TRANSACTION = """
    SELECT t.id, t.charge_point_id, t.connector_id, t.id_tag, t.id_tag_status,
           t.reservation_id, t.meter_start_wh, t.meter_stop_wh, t.start_timestamp,
           t.stop_timestamp, t.stop_reason, t.stop_id_tag, t.meter_anomaly, t.clock_suspect,
           t.closed_by_central_system, t.superseded_by, t.stop_received_at IS NULL AS active,
           last.meter_last_wh
    FROM transactions t
    -- An open transaction's energy so far: its latest energy register reading (the total,
    -- not a phase). Probed only for open ones; a stopped one has meterStop.
    LEFT JOIN LATERAL (
        SELECT m.value AS meter_last_wh FROM meter_values m
        WHERE t.stop_received_at IS NULL AND m.transaction_id = t.id
          AND m.measurand = 'Energy.Active.Import.Register' AND m.phase IS NULL
          AND m.value IS NOT NULL
        ORDER BY m.sampled_at DESC LIMIT 1
    ) last ON true
"""


@dataclass(slots=True, frozen=True)
class TransactionFilter:
    charge_point_id: str | None = None
    id_tag: str | None = None
    vin: str | None = None
    account_id: int | None = None
    active: bool | None = None
    start_from: datetime | None = None
    start_to: datetime | None = None


async def has_bridge_tables(pool: asyncpg.Pool) -> bool:
    return bool(await pool.fetchval("SELECT to_regclass('charging_sessions') IS NOT NULL"))


async def transactions(
    pool: asyncpg.Pool,
    where: TransactionFilter,
    *,
    after: tuple[datetime, int] | None,
    limit: int,
) -> list[dict[str, Any]]:
    """Newest first by (start_timestamp, id); ``after`` is the last row of the previous page."""
    conditions: list[str] = []
    args: list[Any] = []

    def bind(value: Any) -> str:
        args.append(value)
        return f"${len(args)}"

    # Only fixed SQL fragments are joined; every value goes in as a bound parameter.
    if where.charge_point_id is not None:
        conditions.append(f"t.charge_point_id = {bind(where.charge_point_id)}")
    if where.id_tag is not None:
        conditions.append(f"t.id_tag = {bind(where.id_tag)}")
    if where.active is not None:
        conditions.append(f"(t.stop_received_at IS NULL) = {bind(where.active)}")
    if where.start_from is not None:
        conditions.append(f"t.start_timestamp >= {bind(where.start_from)}")
    if where.start_to is not None:
        conditions.append(f"t.start_timestamp < {bind(where.start_to)}")
    if where.vin is not None or where.account_id is not None:
        if not await has_bridge_tables(pool):
            return []
        session = ["s.transaction_id = t.id"]
        if where.vin is not None:
            session.append(f"s.vin = {bind(where.vin.upper())}")
        if where.account_id is not None:
            session.append(f"s.account_id = {bind(where.account_id)}")
        conditions.append(
            f"EXISTS (SELECT 1 FROM charging_sessions s WHERE {' AND '.join(session)})"
        )
    if after is not None:
        conditions.append(f"(t.start_timestamp, t.id) < ({bind(after[0])}, {bind(after[1])})")
    sql = _TRANSACTION
    if conditions:
        sql += " WHERE " + " AND ".join(conditions)
    sql += f" ORDER BY t.start_timestamp DESC, t.id DESC LIMIT {bind(limit)}"
    return [dict(r) for r in await pool.fetch(sql, *args)]


async def transaction(pool: asyncpg.Pool, transaction_id: int) -> dict[str, Any] | None:
    """One transaction with its meter values and, where the bridge ran, its session."""
    row = await pool.fetchrow(_TRANSACTION + " WHERE t.id = $1", transaction_id)
    if row is None:
        return None
    found = dict(row)
    found["meter_values"] = [
        dict(r)
        for r in await pool.fetch(
            """SELECT connector_id, sampled_at, received_at, measurand, phase, location, unit,
                      context, format, value, raw_value, raw_unit, clock_suspect
               FROM meter_values WHERE transaction_id = $1 AND charge_point_id = $2
               ORDER BY sampled_at, measurand, phase NULLS FIRST""",
            transaction_id,
            found["charge_point_id"],
        )
    ]
    found["session"] = await _session(pool, transaction_id)
    return found


async def _session(pool: asyncpg.Pool, transaction_id: int) -> dict[str, Any] | None:
    if not await has_bridge_tables(pool):
        return None
    row = await pool.fetchrow(
        """SELECT id, vehicle_id, account_id, vin, state, target_soc_percent,
                  start_soc_percent, end_soc_percent, battery_capacity_wh, stop_reason,
                  grid_energy_wh, battery_energy_wh, efficiency, reconciliation_flags,
                  bill_energy_wh, bill_basis, bill_amount, tariff_per_kwh, currency,
                  created_at, ended_at
           FROM charging_sessions WHERE transaction_id = $1""",
        transaction_id,
    )
    if row is None:
        return None
    session = dict(row)
    session["soc_samples"] = [
        dict(r)
        for r in await pool.fetch(
            """SELECT sampled_at, soc_percent, charge_state, source FROM soc_samples
               WHERE session_id = $1 ORDER BY sampled_at, id""",
            session["id"],
        )
    ]
    return session
