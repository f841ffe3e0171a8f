"""SQL for meter values: one row per sampled value, written with COPY in batches.

A sampled value is stored once however often the charger sends it (a resend after a
lost answer, across restarts and nodes): the unique key ``meter_values_sample_key``
(migration 0006) and ``ON CONFLICT DO NOTHING``. COPY cannot skip conflicts, so a batch
is copied into a session-local staging table and moved with one INSERT ... SELECT.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, NamedTuple

import asyncpg

from csms.db.pool import Connection


class MeterValueRow(NamedTuple):
    charge_point_id: str
    connector_id: int
    transaction_id: int | None
    sampled_at: datetime
    received_at: datetime
    measurand: str
    phase: str | None
    location: str | None
    unit: str | None
    context: str
    format: str
    value: float | None
    raw_value: str
    raw_unit: str | None
    source: str
    clock_suspect: bool
    extra: dict[str, Any] | None


_COLUMNS = list(MeterValueRow._fields)
_COLUMN_LIST = ", ".join(_COLUMNS)

# Per connection (pooled connections are never reset, so it is created once per session
# in practice); emptied by every commit. IF NOT EXISTS costs one round trip per batch,
# and cannot go wrong after a reconnect the way remembering "created" could.
_CREATE_STAGE = f"""CREATE TEMP TABLE IF NOT EXISTS meter_values_stage ON COMMIT DELETE ROWS
    AS SELECT {_COLUMN_LIST} FROM meter_values WITH NO DATA"""
# Moving (not copying) the rows keeps a second flush in the same transaction correct.
_MOVE_STAGE = f"""WITH staged AS (DELETE FROM meter_values_stage RETURNING {_COLUMN_LIST})
    INSERT INTO meter_values ({_COLUMN_LIST})
    SELECT {_COLUMN_LIST} FROM staged ON CONFLICT DO NOTHING"""


async def flush_meter_values(connection: Connection, rows: list[MeterValueRow]) -> None:
    """Store a batch of sampled values (the batch writer's flush)."""
    await insert_meter_values(connection, rows)


async def insert_meter_values(connection: Connection, rows: list[MeterValueRow]) -> int:
    """Store ``rows``, skipping sampled values already stored; return how many were new."""
    if not rows:
        return 0
    if not connection.is_in_transaction():
        # ON COMMIT DELETE ROWS would empty the stage between COPY and INSERT.
        async with connection.transaction():
            return await _flush(connection, rows)
    return await _flush(connection, rows)


async def _flush(connection: Connection, rows: list[MeterValueRow]) -> int:
    # Fast path: a batch with no resend in it (nearly all) is copied straight into the
    # table, as before the unique key existed; the staging detour costs about a third
    # more database time per row, and the writer's database time is its throughput.
    try:
        async with connection.transaction():  # a savepoint: a conflict undoes only this
            await connection.copy_records_to_table("meter_values", records=rows, columns=_COLUMNS)
        return len(rows)
    except asyncpg.UniqueViolationError:
        pass
    await connection.execute(_CREATE_STAGE)
    await connection.copy_records_to_table("meter_values_stage", records=rows, columns=_COLUMNS)
    status = await connection.execute(_MOVE_STAGE)
    return int(status.rsplit(" ", 1)[1])
