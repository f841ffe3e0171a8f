"""SQL for id tags (the authorisation list)."""

from __future__ import annotations

from datetime import datetime

import asyncpg

from csms.db.pool import Connection
from csms.domain.authorization import IdTagRecord, canonical_id_tag


async def find(db: asyncpg.Pool | Connection, id_tag: str) -> IdTagRecord | None:
    """The tag's record; on a connection inside a transaction, read in that transaction
    (StartTransaction and StopTransaction look it up in their group commit: no commit of
    its own)."""
    row = await db.fetchrow(
        "SELECT id_tag, status, expiry_date, parent_id_tag FROM id_tags WHERE id_tag_key = $1",
        canonical_id_tag(id_tag),
    )
    if row is None:
        return None
    return IdTagRecord(row["id_tag"], row["status"], row["expiry_date"], row["parent_id_tag"])


async def upsert(
    pool: asyncpg.Pool,
    id_tag: str,
    status: str = "Accepted",
    expiry_date: datetime | None = None,
    parent_id_tag: str | None = None,
) -> None:
    await pool.execute(
        """INSERT INTO id_tags (id_tag, id_tag_key, status, expiry_date, parent_id_tag)
           VALUES ($1, $2, $3, $4, $5)
           ON CONFLICT (id_tag_key) DO UPDATE SET status = EXCLUDED.status,
               expiry_date = EXCLUDED.expiry_date, parent_id_tag = EXCLUDED.parent_id_tag""",
        id_tag,
        canonical_id_tag(id_tag),
        status,
        expiry_date,
        parent_id_tag,
    )
