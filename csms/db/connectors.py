"""SQL for connector status: current status per connector plus the full history.

A report resent after a lost answer is stored once (``status_history_report_key``,
migration 0006): COPY into a session-local stage, then INSERT ... ON CONFLICT DO NOTHING.
A connector id no charger could have (``csms.domain.connectors``) is kept in the history
but creates no connector.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, NamedTuple

from csms.db.copy_new import copy_new
from csms.db.pool import Connection
from csms.domain.connectors import is_plausible


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
    """Store a batch of status reports (inside the caller's transaction)."""
    await insert_statuses(connection, rows)


async def insert_statuses(connection: Connection, rows: list[StatusRow]) -> int:
    """Store ``rows`` in a transaction; return how many history rows were new."""
    if not rows:
        return 0
    if not connection.is_in_transaction():
        async with connection.transaction():
            return await _insert(connection, rows)
    return await _insert(connection, rows)


async def _insert(connection: Connection, rows: list[StatusRow]) -> int:
    inserted = await _insert_history(connection, rows)
    # Within one batch the last report per connector is the current one.
    latest = {(r.charge_point_id, r.connector_id): r for r in rows if is_plausible(r.connector_id)}
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
    return inserted


async def _insert_history(connection: Connection, rows: list[StatusRow]) -> int:
    # Straight COPY unless the batch holds a resend: the staging detour would cost the
    # reconnect storm, which is all StatusNotifications.
    return await copy_new(connection, "status_history", _HISTORY_COLUMNS, rows)
