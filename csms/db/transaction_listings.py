"""Read queries for transactions: filtered keyset pages and one transaction in full.

A plug-in's filters (``csms.plugins.TransactionParameter``) come in as SQL conditions on
``t`` that bind their own values; this module knows none of them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
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
    active: bool | None = None
    start_from: datetime | None = None
    start_to: datetime | None = None
    # Plug-ins' conditions: each gets the binder and returns a condition on ``t``.
    extra: Sequence[Callable[[Callable[[Any], str]], str]] = ()


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
    conditions.extend(condition(bind) for condition in where.extra)
    if after is not None:
        conditions.append(f"(t.start_timestamp, t.id) < ({bind(after[0])}, {bind(after[1])})")
    sql = _TRANSACTION
    if conditions:
        sql += " WHERE " + " AND ".join(conditions)
    sql += f" ORDER BY t.start_timestamp DESC, t.id DESC LIMIT {bind(limit)}"
    return [dict(r) for r in await pool.fetch(sql, *args)]


async def transaction(pool: asyncpg.Pool, transaction_id: int) -> dict[str, Any] | None:
    """One transaction with its meter values (a plug-in's record of it is added by the route)."""
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
    return found
