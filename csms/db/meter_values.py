"""SQL for meter values: one row per sampled value, written with COPY in batches.

A sampled value is stored once however often the charger sends it (a resend after a
lost answer, across restarts and nodes): the unique key ``meter_values_sample_key``
(migration 0006) and ``ON CONFLICT DO NOTHING``. COPY cannot skip conflicts, so a batch
is copied into a session-local staging table and moved with one INSERT ... SELECT.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, NamedTuple

from csms.db.copy_new import copy_new
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
    return await copy_new(connection, "meter_values", _COLUMNS, rows)
