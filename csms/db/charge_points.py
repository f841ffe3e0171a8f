"""SQL for the charge point aggregate: registration, boot details, presence, notifications."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import structlog

from csms.db.pool import Connection

log = structlog.get_logger()

_BOOT_FIELDS = {
    "vendor": "chargePointVendor",
    "model": "chargePointModel",
    "serial_number": "chargePointSerialNumber",
    "charge_box_serial_number": "chargeBoxSerialNumber",
    "firmware_version": "firmwareVersion",
    "iccid": "iccid",
    "imsi": "imsi",
    "meter_type": "meterType",
    "meter_serial_number": "meterSerialNumber",
}


async def load_connector_statuses(pool: asyncpg.Pool) -> dict[str, dict[int, str]]:
    """Current status of every connector, loaded once at start (one query, not one per
    charger as a reconnecting fleet reports in)."""
    statuses: dict[str, dict[int, str]] = {}
    for row in await pool.fetch("SELECT charge_point_id, connector_id, status FROM connectors"):
        statuses.setdefault(row["charge_point_id"], {})[row["connector_id"]] = row["status"]
    return statuses


async def load_registrations(pool: asyncpg.Pool) -> dict[str, str]:
    rows = await pool.fetch("SELECT id, registration_status FROM charge_points")
    return {r["id"]: r["registration_status"] for r in rows}


async def fetch_registration(pool: asyncpg.Pool, charge_point_id: str) -> str | None:
    return await pool.fetchval(
        "SELECT registration_status FROM charge_points WHERE id = $1", charge_point_id
    )


@dataclass(slots=True, frozen=True)
class NewChargePoint:
    charge_point_id: str
    registration_status: str
    at: datetime


async def flush_new_charge_points(connection: Connection, rows: list[NewChargePoint]) -> None:
    # Keys in sorted order in every writer that inserts charge points: two batches
    # touching the same new chargers then queue behind each other instead of deadlocking.
    rows = sorted(rows, key=lambda r: r.charge_point_id)
    await connection.execute(
        """INSERT INTO charge_points (id, registration_status, first_seen_at, last_seen_at)
           SELECT id, status, at, at FROM unnest($1::text[], $2::text[], $3::timestamptz[])
                AS u(id, status, at)
           ORDER BY id
           ON CONFLICT (id) DO NOTHING""",
        [r.charge_point_id for r in rows],
        [r.registration_status for r in rows],
        [r.at for r in rows],
    )


async def set_registration(pool: asyncpg.Pool, charge_point_id: str, status: str) -> bool:
    result = await pool.execute(
        "UPDATE charge_points SET registration_status = $2 WHERE id = $1", charge_point_id, status
    )
    return result != "UPDATE 0"


@dataclass(slots=True, frozen=True)
class BootRow:
    charge_point_id: str
    payload: dict[str, Any]
    at: datetime
    registration_status: str


async def flush_boots(connection: Connection, rows: list[BootRow]) -> None:
    # An upsert: the charger's first-contact row may still be in another writer's batch.
    await connection.executemany(
        """INSERT INTO charge_points (id, registration_status, vendor, model, serial_number,
               charge_box_serial_number, firmware_version, iccid, imsi, meter_type,
               meter_serial_number, boot_payload, last_boot_at, first_seen_at, last_seen_at)
           VALUES ($1, $13, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12, $12)
           ON CONFLICT (id) DO UPDATE SET vendor = $2, model = $3, serial_number = $4,
               charge_box_serial_number = $5, firmware_version = $6, iccid = $7, imsi = $8,
               meter_type = $9, meter_serial_number = $10, boot_payload = $11,
               last_boot_at = $12,
               last_seen_at = greatest(charge_points.last_seen_at, $12)""",
        [
            (
                row.charge_point_id,
                *(_text(row.payload.get(key)) for key in _BOOT_FIELDS.values()),
                row.payload,
                row.at,
                row.registration_status,
            )
            for row in sorted(rows, key=lambda r: r.charge_point_id)
        ],
    )


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


async def record_notification(
    pool: asyncpg.Pool, charge_point_id: str, kind: str, status: str, at: datetime
) -> None:
    """Firmware or diagnostics status: current value on the charger, plus history."""
    column = {"firmware": "firmware_status", "diagnostics": "diagnostics_status"}[kind]
    async with pool.acquire() as connection, connection.transaction():
        await connection.execute(
            f"UPDATE charge_points SET {column} = $2, {column}_at = $3 WHERE id = $1",
            charge_point_id,
            status,
            at,
        )
        await connection.execute(
            """INSERT INTO charge_point_notifications (charge_point_id, kind, status, received_at)
               VALUES ($1, $2, $3, $4)""",
            charge_point_id,
            kind,
            status,
            at,
        )


class Presence:
    """Who is connected and when each charger was last heard, written once a second.

    Heartbeats are the hottest message; one UPDATE per heartbeat would cap us at
    the database's write rate, so the latest state per charger is kept here and
    flushed in one statement.
    """

    def __init__(self, pool: asyncpg.Pool, node_id: str, interval: float = 1.0) -> None:
        self._pool = pool
        self._node_id = node_id
        self._interval = interval
        self._seen: dict[str, datetime] = {}
        self._connected: dict[str, bool] = {}
        self._task: asyncio.Task[None] | None = None

    def seen(self, charge_point_id: str, at: datetime) -> None:
        self._seen[charge_point_id] = at

    def connected(self, charge_point_id: str, at: datetime) -> None:
        self._seen[charge_point_id] = at
        self._connected[charge_point_id] = True

    def disconnected(self, charge_point_id: str, at: datetime) -> None:
        self._seen[charge_point_id] = at
        self._connected[charge_point_id] = False

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="presence-writer")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        await asyncio.shield(self.flush())

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.flush()
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("db.presence_flush_failed", error=str(exc))

    async def flush(self) -> None:
        if not self._seen:
            return
        seen, connected = self._seen, self._connected
        self._seen, self._connected = {}, {}
        # Sorted, and locked in that order before the update (a join may visit rows in
        # any order): every writer of charge_points rows locks them in id order, so two
        # flushes touching the same chargers queue instead of deadlocking.
        ids = sorted(seen)
        try:
            await self._pool.execute(
                """WITH locked AS (
                       SELECT id FROM charge_points WHERE id = ANY($1::text[])
                       ORDER BY id FOR UPDATE
                   )
                   UPDATE charge_points AS cp
                   SET last_seen_at = greatest(cp.last_seen_at, u.seen),
                       connected = coalesce(u.connected, cp.connected),
                       connected_node = CASE WHEN u.connected IS NULL THEN cp.connected_node
                                             WHEN u.connected THEN $4
                                             ELSE NULL END
                   FROM unnest($1::text[], $2::timestamptz[], $3::boolean[])
                        AS u(id, seen, connected)
                   WHERE cp.id = u.id AND cp.id IN (SELECT id FROM locked)""",
                ids,
                [seen[i] for i in ids],
                [connected.get(i) for i in ids],
                self._node_id,
            )
        except BaseException:
            # Put the state back (newer values win) so the next flush retries it.
            for key, value in seen.items():
                self._seen.setdefault(key, value)
            for key, flag in connected.items():
                self._connected.setdefault(key, flag)
            raise
