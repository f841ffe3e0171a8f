"""Read queries for the operator API: charge points, their connectors and status history,
and the id tags. Writes live with their aggregates; nothing here changes a row."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg

from csms.domain.authorization import canonical_id_tag

# Live connection state wins for chargers this process holds (the database flag is flushed
# once a second); for chargers held by another process, the database flag is all we know.
_CONNECTED = """CASE WHEN cp.connected_node = $1 OR cp.id = ANY($2::text[])
                     THEN cp.id = ANY($2::text[]) ELSE cp.connected END"""


def _select(extra: str = "") -> str:
    return f"""
    SELECT {extra} cp.id, cp.registration_status, cp.vendor, cp.model, cp.serial_number,
           cp.charge_box_serial_number, cp.firmware_version, cp.iccid, cp.imsi,
           cp.meter_type, cp.meter_serial_number, cp.first_seen_at, cp.last_boot_at,
           cp.last_seen_at, {_CONNECTED} AS connected, cp.firmware_status,
           cp.diagnostics_status,
           coalesce((SELECT jsonb_agg(jsonb_build_object(
                        'connector_id', c.connector_id, 'status', c.status,
                        'error_code', c.error_code, 'info', c.info,
                        'vendor_id', c.vendor_id, 'vendor_error_code', c.vendor_error_code,
                        'reported_at', c.reported_at, 'updated_at', c.updated_at)
                        ORDER BY c.connector_id)
                     FROM connectors c WHERE c.charge_point_id = cp.id), '[]') AS connectors
    FROM charge_points cp
"""


async def charge_points(
    pool: asyncpg.Pool,
    *,
    node_id: str,
    live: Sequence[str],
    connected: bool | None = None,
    status: str | None = None,
    vendor: str | None = None,
    after_id: str | None = None,
    limit: int = 500,
) -> list[dict[str, Any]]:
    """Chargers ordered by id; ``status`` matches the registration or any connector's status."""
    rows = await pool.fetch(
        _select()
        + f""" WHERE ($3::boolean IS NULL OR ({_CONNECTED}) = $3)
              AND ($4::text IS NULL OR cp.registration_status = $4 OR EXISTS (
                   SELECT 1 FROM connectors c WHERE c.charge_point_id = cp.id AND c.status = $4))
              AND ($5::text IS NULL OR lower(cp.vendor) = lower($5))
              AND ($6::text IS NULL OR cp.id > $6)
            ORDER BY cp.id LIMIT $7""",
        node_id,
        list(live),
        connected,
        status,
        vendor,
        after_id,
        limit,
    )
    return [dict(r) for r in rows]


async def charge_point(
    pool: asyncpg.Pool, charge_point_id: str, *, node_id: str, live: Sequence[str]
) -> dict[str, Any] | None:
    """One charger with its boot details, presence, connectors and open transactions."""
    row = await pool.fetchrow(
        _select("cp.boot_payload,") + " WHERE cp.id = $3",
        node_id,
        list(live),
        charge_point_id,
    )
    if row is None:
        return None
    found = dict(row)
    found["active_transaction_ids"] = [
        r["id"]
        for r in await pool.fetch(
            """SELECT id FROM transactions WHERE charge_point_id = $1
               AND stop_received_at IS NULL ORDER BY id""",
            charge_point_id,
        )
    ]
    found["local_list"] = await local_list_push(pool, charge_point_id)
    return found


async def local_list_push(pool: asyncpg.Pool, charge_point_id: str) -> dict[str, Any] | None:
    row = await pool.fetchrow(
        """SELECT list_version, entries, status, sent_at FROM local_list_pushes
           WHERE charge_point_id = $1""",
        charge_point_id,
    )
    return dict(row) if row else None


async def status_history(
    pool: asyncpg.Pool,
    charge_point_id: str,
    *,
    connector_id: int | None = None,
    before_id: int | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Status notifications, newest first, paged by id (ids grow with arrival order)."""
    rows = await pool.fetch(
        """SELECT id, connector_id, status, error_code, info, vendor_id, vendor_error_code,
                  reported_at, received_at, clock_suspect
           FROM status_history
           WHERE charge_point_id = $1
             AND ($2::integer IS NULL OR connector_id = $2)
             AND ($3::bigint IS NULL OR id < $3)
           ORDER BY id DESC LIMIT $4""",
        charge_point_id,
        connector_id,
        before_id,
        limit,
    )
    return [dict(r) for r in rows]


async def id_tags(
    pool: asyncpg.Pool,
    *,
    status: str | None = None,
    after_key: str | None = None,
    limit: int = 500,
) -> list[dict[str, Any]]:
    """The authorisation list ordered by canonical key (stable for paging)."""
    rows = await pool.fetch(
        """SELECT id_tag, id_tag_key, status, expiry_date, parent_id_tag, created_at
           FROM id_tags
           WHERE ($1::text IS NULL OR status = $1)
             AND ($2::text IS NULL OR id_tag_key > $2)
           ORDER BY id_tag_key LIMIT $3""",
        status,
        after_key,
        limit,
    )
    return [dict(r) for r in rows]


async def id_tag(pool: asyncpg.Pool, id_tag: str) -> dict[str, Any] | None:
    row = await pool.fetchrow(
        """SELECT id_tag, id_tag_key, status, expiry_date, parent_id_tag, created_at
           FROM id_tags WHERE id_tag_key = $1""",
        canonical_id_tag(id_tag),
    )
    return dict(row) if row else None
