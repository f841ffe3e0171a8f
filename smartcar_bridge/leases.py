"""Work leases in PostgreSQL: which node works on a session (or a plug-in) now.

A node takes a lease before acting on a piece of work (``kind`` is ``session`` or
``plug_in``), renews the leases it holds well before they expire, and releases them when
the work ends or the node stops. A lease that was not renewed (its node died) expires and
any other node may take it, then resumes the work from its persisted state. Times are the
database's ``now()``, so the machines' clocks do not matter. Called by ``ownership.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

SESSION = "session"
PLUG_IN = "plug_in"

_TAKE = """
INSERT INTO bridge_leases AS l (kind, work_id, node_id, expires_at)
VALUES ($1, $2, $3, now() + make_interval(secs => $4))
ON CONFLICT (kind, work_id) DO UPDATE
    SET node_id = EXCLUDED.node_id, expires_at = EXCLUDED.expires_at
    WHERE l.node_id = EXCLUDED.node_id OR l.expires_at < now()
RETURNING work_id
"""

_RENEW = """
UPDATE bridge_leases SET expires_at = now() + make_interval(secs => $3)
WHERE node_id = $1 AND expires_at >= now()
  AND (kind, work_id) IN (SELECT * FROM unnest($2::text[], $4::bigint[]))
RETURNING kind, work_id
"""


@dataclass(frozen=True, slots=True)
class Holder:
    node_id: str
    live: bool  # False: the lease lapsed, anyone may take it


async def take(pool: asyncpg.Pool, kind: str, work_id: int, node_id: str, ttl: float) -> bool:
    """Take (or keep) the lease; False while another node's lease is live."""
    return await pool.fetchval(_TAKE, kind, work_id, node_id, ttl) is not None


async def renew(
    pool: asyncpg.Pool, held: list[tuple[str, int]], node_id: str, ttl: float
) -> set[tuple[str, int]]:
    """Extend the live leases this node holds; those returned are still ours."""
    if not held:
        return set()
    rows = await pool.fetch(_RENEW, node_id, [k for k, _ in held], ttl, [w for _, w in held])
    return {(r["kind"], r["work_id"]) for r in rows}


async def release(pool: asyncpg.Pool, kind: str, work_id: int, node_id: str) -> None:
    await pool.execute(
        "DELETE FROM bridge_leases WHERE kind = $1 AND work_id = $2 AND node_id = $3",
        kind,
        work_id,
        node_id,
    )


async def release_all(pool: asyncpg.Pool, node_id: str) -> None:
    """A node stopping cleanly: others take its work at once instead of after the TTL."""
    await pool.execute("DELETE FROM bridge_leases WHERE node_id = $1", node_id)


async def holder(pool: asyncpg.Pool, kind: str, work_id: int) -> Holder | None:
    """Who holds the work; a session just opened, not leased yet, is its plug-in's node's."""
    row = await pool.fetchrow(
        """SELECT node_id, live FROM (
               SELECT 1 AS rank, node_id, expires_at >= now() AS live FROM bridge_leases
               WHERE kind = $1 AND work_id = $2
               UNION ALL
               SELECT 2, l.node_id, l.expires_at >= now() FROM charging_sessions s
               JOIN bridge_leases l ON l.kind = 'plug_in' AND l.work_id = s.plug_in_id
               WHERE $1 = 'session' AND s.id = $2) AS held
           ORDER BY rank LIMIT 1""",
        kind,
        work_id,
    )
    return Holder(row["node_id"], row["live"]) if row else None


async def orphaned(
    pool: asyncpg.Pool, grace: float, *, leased_too: bool = False
) -> list[tuple[str, int]]:
    """Open work nobody holds: its lease lapsed (its node died), or it never had one
    although it is older than ``grace`` (its node died between recording it and leasing).
    ``leased_too``: every piece of open work (one process, after a restart).
    """
    rows = await pool.fetch(
        """SELECT 'session' AS kind, s.id AS work_id FROM charging_sessions s
           LEFT JOIN bridge_leases l ON l.kind = 'session' AND l.work_id = s.id
           WHERE s.ended_at IS NULL AND ($2
               OR l.expires_at < now()
               OR (l.work_id IS NULL AND s.created_at < now() - make_interval(secs => $1)))
           UNION ALL
           SELECT 'plug_in', p.id FROM plug_ins p
           LEFT JOIN bridge_leases l ON l.kind = 'plug_in' AND l.work_id = p.id
           WHERE p.outcome IN ('pending', 'confirming') AND ($2
               OR l.expires_at < now()
               OR (l.work_id IS NULL AND p.created_at < now() - make_interval(secs => $1)))
           ORDER BY 1, 2""",
        grace,
        leased_too,
    )
    return [(r["kind"], r["work_id"]) for r in rows]


async def expired(pool: asyncpg.Pool) -> list[tuple[str, int]]:
    """Leases that lapsed: their node is gone, another may take the work over."""
    rows = await pool.fetch(
        "SELECT kind, work_id FROM bridge_leases WHERE expires_at < now() ORDER BY 1, 2"
    )
    return [(r["kind"], r["work_id"]) for r in rows]


async def finished(pool: asyncpg.Pool, held: list[tuple[str, int]]) -> list[tuple[str, int]]:
    """Of ``held``, the work that is over (a session ended, a plug-in decided)."""
    sessions = [w for k, w in held if k == SESSION]
    plug_ins = [w for k, w in held if k == PLUG_IN]
    rows = await pool.fetch(
        """SELECT 'session' AS kind, id AS work_id FROM charging_sessions
           WHERE id = ANY($1::bigint[]) AND ended_at IS NOT NULL
           UNION ALL
           SELECT 'plug_in', p.id FROM plug_ins p
           WHERE p.id = ANY($2::bigint[]) AND p.outcome NOT IN ('pending', 'confirming')
             -- its session, once opened, is led by this node until it has its own lease
             AND (p.session_id IS NULL OR EXISTS (
                 SELECT 1 FROM bridge_leases l
                 WHERE l.kind = 'session' AND l.work_id = p.session_id)
               OR EXISTS (SELECT 1 FROM charging_sessions s
                   WHERE s.id = p.session_id AND s.ended_at IS NOT NULL))""",
        sessions,
        plug_ins,
    )
    return [(r["kind"], r["work_id"]) for r in rows]


async def forget_lapsed(pool: asyncpg.Pool, older_than: float) -> None:
    """Drop leases lapsed long ago (finished work of a dead node). Safe for open work too:
    work with no lease is taken over like work whose lease lapsed (``orphaned``)."""
    await pool.execute(
        "DELETE FROM bridge_leases WHERE expires_at < now() - make_interval(secs => $1)",
        older_than,
    )
