"""SQL for transactions: idempotent start, stop, orphan stops, active lookups."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg


@dataclass(slots=True, frozen=True)
class StartRow:
    charge_point_id: str
    connector_id: int
    id_tag: str
    id_tag_status: str
    reservation_id: int | None
    meter_start_wh: int
    start_timestamp: datetime
    received_at: datetime
    clock_suspect: bool
    extra: dict[str, Any] | None


async def start(pool: asyncpg.Pool, row: StartRow) -> tuple[int, bool]:
    """Insert the transaction, or find the one this retransmission already created.

    Returns ``(transaction_id, created)``.
    """
    record = await pool.fetchrow(
        """INSERT INTO transactions (charge_point_id, connector_id, id_tag, id_tag_status,
               reservation_id, meter_start_wh, start_timestamp, start_received_at,
               clock_suspect, start_extra)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
           ON CONFLICT ON CONSTRAINT transactions_start_identity
           DO UPDATE SET charge_point_id = EXCLUDED.charge_point_id
           RETURNING id, (xmax = 0) AS created""",
        row.charge_point_id,
        row.connector_id,
        row.id_tag,
        row.id_tag_status,
        row.reservation_id,
        row.meter_start_wh,
        row.start_timestamp,
        row.received_at,
        row.clock_suspect,
        row.extra,
    )
    return record["id"], record["created"]


@dataclass(slots=True, frozen=True)
class StopRow:
    charge_point_id: str
    transaction_id: int
    id_tag: str | None
    meter_stop_wh: int
    stop_timestamp: datetime
    reason: str | None
    received_at: datetime
    clock_suspect: bool
    payload: dict[str, Any]


async def stop(db: asyncpg.Connection, row: StopRow) -> int | None:
    """Close the transaction; return its meter start, or None if we never issued it."""
    return await db.fetchval(
        """UPDATE transactions SET meter_stop_wh = $3, stop_timestamp = $4,
               stop_received_at = $5, stop_reason = $6, stop_id_tag = $7,
               meter_anomaly = meter_anomaly OR $3 < meter_start_wh OR $3 = 0,
               clock_suspect = clock_suspect OR $8, stop_extra = $9
           WHERE id = $1 AND charge_point_id = $2
           RETURNING meter_start_wh""",
        row.transaction_id,
        row.charge_point_id,
        row.meter_stop_wh,
        row.stop_timestamp,
        row.received_at,
        row.reason,
        row.id_tag,
        row.clock_suspect,
        _extra(row.payload),
    )


def _extra(payload: dict[str, Any]) -> dict[str, Any] | None:
    known = {"idTag", "meterStop", "timestamp", "transactionId", "reason", "transactionData"}
    extra = {k: v for k, v in payload.items() if k not in known}
    return extra or None


async def record_orphan_stop(db: asyncpg.Connection, row: StopRow) -> None:
    await db.execute(
        """INSERT INTO orphan_stops (charge_point_id, transaction_id, id_tag, meter_stop_wh,
               stop_timestamp, stop_reason, received_at, payload)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8)""",
        row.charge_point_id,
        row.transaction_id,
        row.id_tag,
        row.meter_stop_wh,
        row.stop_timestamp,
        row.reason,
        row.received_at,
        row.payload,
    )


async def flag_meter_anomaly(pool: asyncpg.Pool, transaction_id: int) -> None:
    await pool.execute("UPDATE transactions SET meter_anomaly = true WHERE id = $1", transaction_id)


async def active_by_connector(pool: asyncpg.Pool, charge_point_id: str) -> dict[int, int]:
    rows = await pool.fetch(
        """SELECT DISTINCT ON (connector_id) connector_id, id FROM transactions
           WHERE charge_point_id = $1 AND stop_received_at IS NULL
           ORDER BY connector_id, start_timestamp DESC""",
        charge_point_id,
    )
    return {r["connector_id"]: r["id"] for r in rows}


async def stop_of(pool: asyncpg.Pool, transaction_id: int) -> asyncpg.Record | None:
    """The stop of a transaction (meter_stop_wh, stop_reason, stop_received_at), if received.

    For consumers resuming after a restart: a stop may have arrived while they were down.
    """
    return await pool.fetchrow(
        "SELECT meter_stop_wh, stop_reason, stop_received_at FROM transactions "
        "WHERE id = $1 AND stop_received_at IS NOT NULL",
        transaction_id,
    )


async def started_with(
    pool: asyncpg.Pool, charge_point_id: str, connector_id: int, id_tag: str, since: datetime
) -> asyncpg.Record | None:
    """The latest transaction started on the connector with ``id_tag`` since ``since``."""
    return await pool.fetchrow(
        """SELECT id, meter_start_wh, stop_received_at FROM transactions
           WHERE charge_point_id = $1 AND connector_id = $2 AND upper(id_tag) = upper($3)
             AND start_received_at >= $4
           ORDER BY start_received_at DESC LIMIT 1""",
        charge_point_id,
        connector_id,
        id_tag,
        since,
    )
