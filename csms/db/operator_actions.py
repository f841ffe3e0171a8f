"""Writes only an operator makes: the id-tag lifecycle, Local Authorization List versions,
and forgetting a charger. The OCPP side's own writes stay with their aggregates."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg

from csms.domain.authorization import canonical_id_tag


class IdTagExists(Exception):
    """An id tag with the same canonical form is already on the list."""


async def create_id_tag(
    pool: asyncpg.Pool,
    id_tag: str,
    status: str,
    expiry_date: datetime | None,
    parent_id_tag: str | None,
) -> dict[str, Any]:
    try:
        row = await pool.fetchrow(
            """INSERT INTO id_tags (id_tag, id_tag_key, status, expiry_date, parent_id_tag)
               VALUES ($1, $2, $3, $4, $5)
               RETURNING id_tag, id_tag_key, status, expiry_date, parent_id_tag, created_at""",
            id_tag,
            canonical_id_tag(id_tag),
            status,
            expiry_date,
            parent_id_tag,
        )
    except asyncpg.UniqueViolationError:
        raise IdTagExists(id_tag) from None
    assert row is not None  # INSERT ... RETURNING yields the row it inserted
    return dict(row)


async def set_id_tag_status(pool: asyncpg.Pool, id_tag: str, status: str) -> dict[str, Any] | None:
    row = await pool.fetchrow(
        """UPDATE id_tags SET status = $2 WHERE id_tag_key = $1
           RETURNING id_tag, id_tag_key, status, expiry_date, parent_id_tag, created_at""",
        canonical_id_tag(id_tag),
        status,
    )
    return dict(row) if row else None


async def set_id_tag_expiry(
    pool: asyncpg.Pool, id_tag: str, expiry_date: datetime
) -> dict[str, Any] | None:
    row = await pool.fetchrow(
        """UPDATE id_tags SET expiry_date = $2 WHERE id_tag_key = $1
           RETURNING id_tag, id_tag_key, status, expiry_date, parent_id_tag, created_at""",
        canonical_id_tag(id_tag),
        expiry_date,
    )
    return dict(row) if row else None


async def delete_id_tag(pool: asyncpg.Pool, id_tag: str) -> bool:
    result: str = await pool.execute(
        "DELETE FROM id_tags WHERE id_tag_key = $1", canonical_id_tag(id_tag)
    )
    return result != "DELETE 0"


async def local_list_entries(pool: asyncpg.Pool) -> list[dict[str, Any]]:
    """Every id tag, for a Full SendLocalList."""
    rows = await pool.fetch(
        "SELECT id_tag, status, expiry_date, parent_id_tag FROM id_tags ORDER BY id_tag_key"
    )
    return [dict(r) for r in rows]


async def next_local_list_version(
    pool: asyncpg.Pool, charge_point_id: str, charger_version: int | None
) -> int:
    """The version for the next list pushed to this charger: above both the version the
    charger reports (GetLocalListVersion; a list from elsewhere, or one we pushed before a
    database reset) and the last one we pushed there, so it never goes backwards."""
    last = await pool.fetchval(
        "SELECT list_version FROM local_list_pushes WHERE charge_point_id = $1", charge_point_id
    )
    return max(charger_version or 0, last or 0, 0) + 1


async def record_local_list_push(
    pool: asyncpg.Pool,
    charge_point_id: str,
    list_version: int,
    entries: int,
    status: str,
    at: datetime,
) -> None:
    await pool.execute(
        """INSERT INTO local_list_pushes (charge_point_id, list_version, entries, status, sent_at)
           VALUES ($1, $2, $3, $4, $5)
           ON CONFLICT (charge_point_id) DO UPDATE SET list_version = EXCLUDED.list_version,
               entries = EXCLUDED.entries, status = EXCLUDED.status, sent_at = EXCLUDED.sent_at""",
        charge_point_id,
        list_version,
        entries,
        status,
        at,
    )


async def delete_charge_point(
    pool: asyncpg.Pool, charge_point_id: str, *, node_id: str, live: Sequence[str]
) -> str:
    """Forget a disconnected charger (its connectors go with it; history stays).

    Returns ``"deleted"``, ``"connected"`` or ``"unknown"``. The check and the delete are
    one statement; a charger held by this process is judged by the live registry ``live``
    (the database flag lags up to a second), one held elsewhere by the database flag.
    """
    row = await pool.fetchrow(
        """WITH target AS (SELECT cp.id, CASE WHEN cp.connected_node = $2 OR cp.id = ANY($3::text[])
                                              THEN cp.id = ANY($3::text[]) ELSE cp.connected END
                                         AS connected
                           FROM charge_points cp WHERE cp.id = $1 FOR UPDATE),
                gone AS (DELETE FROM charge_points cp USING target
                         WHERE cp.id = target.id AND NOT target.connected RETURNING cp.id),
                -- No cascade: connectors have no foreign key (migration 0004).
                gone_connectors AS (DELETE FROM connectors c USING gone
                                    WHERE c.charge_point_id = gone.id)
           SELECT (SELECT connected FROM target) AS connected,
                  (SELECT count(*) FROM gone) AS deleted""",
        charge_point_id,
        node_id,
        list(live),
    )
    assert row is not None  # a SELECT of scalar subqueries yields one row
    if row["connected"] is None:
        return "unknown"
    return "deleted" if row["deleted"] else "connected"
