"""SQL for meter values: one row per sampled value, written with COPY in batches.

A sampled value is stored once however often the charger sends it (a resend after a
lost answer, across restarts and nodes): the unique key ``meter_values_sample_key``
(charger, timestamp and ``sample_hash``, migrations 0006 and 0009). A batch is copied
straight in; one that holds a resend goes through ``copy_new``'s staging detour.
"""

from __future__ import annotations

from datetime import datetime
from hashlib import md5
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


_COLUMNS = [*MeterValueRow._fields, "sample_hash"]
_NONE = "\x1e"  # a missing field (None), unlike an empty one


def sample_hash(row: MeterValueRow) -> int:
    """What identifies the value besides charger and timestamp, as the bigint of 0009."""
    key = "\x1f".join(
        (
            str(row.connector_id),
            row.measurand,
            _NONE if row.phase is None else row.phase,
            _NONE if row.location is None else row.location,
            row.context,
            row.format,
            _NONE if row.unit is None else row.unit,
            row.raw_value,
        )
    )
    return int.from_bytes(md5(key.encode()).digest()[:8], "big", signed=True)


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
    # Hashed here, not kept on the row: a stop's transactionData changes the connector.
    records = [(*row, sample_hash(row)) for row in rows]
    return await copy_new(connection, "meter_values", _COLUMNS, records)
