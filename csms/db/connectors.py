"""SQL for connector status: current status per connector plus the full history."""

from __future__ import annotations

from datetime import datetime
from typing import Any, NamedTuple

from csms.db.pool import Connection


class StatusRow(NamedTuple):
    charge_point_id: str
    connector_id: int
    status: str
    error_code: str
    info: str | None
    vendor_id: str | None
    vendor_error_code: str | None
    reported_at: datetime | None
    received_at: datetime
    clock_suspect: bool
    extra: dict[str, Any] | None


_HISTORY_COLUMNS = list(StatusRow._fields)


async def flush_statuses(connection: Connection, rows: list[StatusRow]) -> None:
    await connection.copy_records_to_table("status_history", records=rows, columns=_HISTORY_COLUMNS)
    # Within one batch the last report per connector is the current one.
    latest = {(r.charge_point_id, r.connector_id): r for r in rows}
    await connection.executemany(
        """INSERT INTO connectors (charge_point_id, connector_id, status, error_code, info,
                                   vendor_id, vendor_error_code, reported_at, updated_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
           ON CONFLICT (charge_point_id, connector_id) DO UPDATE SET
               status = EXCLUDED.status, error_code = EXCLUDED.error_code, info = EXCLUDED.info,
               vendor_id = EXCLUDED.vendor_id, vendor_error_code = EXCLUDED.vendor_error_code,
               reported_at = EXCLUDED.reported_at, updated_at = EXCLUDED.updated_at""",
        [r[:9] for r in latest.values()],
    )
