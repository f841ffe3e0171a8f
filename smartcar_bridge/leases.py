"""Session leases in PostgreSQL: which node works on a plug-and-charge session now.

A node takes a session's lease before acting on it, renews the leases it holds well before
they expire, and releases them when the session ends or the node stops. A lease that was
not renewed (its node died) expires and any other node may take it, then resumes the
session from its persisted state. Times are the database's ``now()``, so the machines'
clocks do not matter. Not yet called by ``sessions.py`` (see README, Cluster mode).
"""

from __future__ import annotations

import asyncpg

_TAKE = """
INSERT INTO bridge_session_leases AS l (session_id, node_id, expires_at)
VALUES ($1, $2, now() + make_interval(secs => $3))
ON CONFLICT (session_id) DO UPDATE
    SET node_id = EXCLUDED.node_id, expires_at = EXCLUDED.expires_at
    WHERE l.node_id = EXCLUDED.node_id OR l.expires_at < now()
RETURNING session_id
"""

_RENEW = """
UPDATE bridge_session_leases SET expires_at = now() + make_interval(secs => $3)
WHERE session_id = ANY($1::bigint[]) AND node_id = $2 AND expires_at >= now()
RETURNING session_id
"""


async def take(pool: asyncpg.Pool, session_id: int, node_id: str, ttl: float) -> bool:
    """Take (or keep) the session's lease; False while another node's lease is live."""
    return await pool.fetchval(_TAKE, session_id, node_id, ttl) is not None


async def renew(pool: asyncpg.Pool, session_ids: list[int], node_id: str, ttl: float) -> set[int]:
    """Extend the live leases this node holds; the ids returned are still ours."""
    rows = await pool.fetch(_RENEW, session_ids, node_id, ttl)
    return {r["session_id"] for r in rows}


async def release(pool: asyncpg.Pool, session_id: int, node_id: str) -> None:
    await pool.execute(
        "DELETE FROM bridge_session_leases WHERE session_id = $1 AND node_id = $2",
        session_id,
        node_id,
    )


async def expired(pool: asyncpg.Pool) -> list[int]:
    """Sessions whose lease lapsed: their node is gone, another may take them over."""
    rows = await pool.fetch(
        "SELECT session_id FROM bridge_session_leases WHERE expires_at < now() ORDER BY 1"
    )
    return [r["session_id"] for r in rows]
