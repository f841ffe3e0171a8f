"""SQL for meter values: one row per sampled value, written with COPY in batches."""

from __future__ import annotations

from datetime import datetime
from typing import Any, NamedTuple

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
    await connection.copy_records_to_table("meter_values", records=rows, columns=_COLUMNS)
