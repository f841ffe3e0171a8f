"""SQL for charger security: profile and password state, security events, certificates."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg


@dataclass(slots=True, frozen=True)
class SecurityRow:
    security_profile: int | None
    pending_security_profile: int | None
    password_hash: str | None
    pending_password_hash: str | None


async def fetch_security(pool: asyncpg.Pool, charge_point_id: str) -> SecurityRow | None:
    row = await pool.fetchrow(
        """SELECT security_profile, pending_security_profile, password_hash,
                  pending_password_hash
           FROM charge_points WHERE id = $1""",
        charge_point_id,
    )
    return None if row is None else SecurityRow(*row.values())


async def fetch_all_security(pool: asyncpg.Pool) -> list[tuple[str, SecurityRow]]:
    """Every charger that has any security setting (the handshake cache's preload)."""
    rows = await pool.fetch(
        """SELECT id, security_profile, pending_security_profile, password_hash,
                  pending_password_hash
           FROM charge_points
           WHERE security_profile IS NOT NULL OR pending_security_profile IS NOT NULL
              OR password_hash IS NOT NULL OR pending_password_hash IS NOT NULL"""
    )
    return [(r["id"], SecurityRow(*list(r.values())[1:])) for r in rows]


async def ensure_charger(
    pool: asyncpg.Pool, charge_point_id: str, registration_status: str, at: datetime
) -> str:
    """Register a charger the operator provisions before it ever connected."""
    return await pool.fetchval(
        """INSERT INTO charge_points (id, registration_status, first_seen_at)
           VALUES ($1, $2, $3)
           ON CONFLICT (id) DO UPDATE SET id = EXCLUDED.id
           RETURNING registration_status""",
        charge_point_id,
        registration_status,
        at,
    )


async def set_password_hash(
    pool: asyncpg.Pool, charge_point_id: str, password_hash: str, at: datetime
) -> bool:
    result = await pool.execute(
        """UPDATE charge_points SET password_hash = $2, pending_password_hash = NULL,
               password_changed_at = $3
           WHERE id = $1""",
        charge_point_id,
        password_hash,
        at,
    )
    return result != "UPDATE 0"


async def set_pending_password(
    pool: asyncpg.Pool, charge_point_id: str, password_hash: str | None
) -> None:
    await pool.execute(
        "UPDATE charge_points SET pending_password_hash = $2 WHERE id = $1",
        charge_point_id,
        password_hash,
    )


async def promote_pending_password(
    pool: asyncpg.Pool, charge_point_id: str, expected_hash: str, at: datetime
) -> None:
    """The charger accepted (or logged in with) the pending password: it becomes current."""
    await pool.execute(
        """UPDATE charge_points SET password_hash = pending_password_hash,
               pending_password_hash = NULL, password_changed_at = $3
           WHERE id = $1 AND pending_password_hash = $2""",
        charge_point_id,
        expected_hash,
        at,
    )


async def set_profile(pool: asyncpg.Pool, charge_point_id: str, profile: int) -> None:
    await pool.execute(
        """UPDATE charge_points SET security_profile = $2,
               pending_security_profile = CASE WHEN pending_security_profile <= $2 THEN NULL
                                               ELSE pending_security_profile END
           WHERE id = $1""",
        charge_point_id,
        profile,
    )


async def set_pending_profile(
    pool: asyncpg.Pool, charge_point_id: str, profile: int | None
) -> None:
    await pool.execute(
        "UPDATE charge_points SET pending_security_profile = $2 WHERE id = $1",
        charge_point_id,
        profile,
    )


async def promote_pending_profile(pool: asyncpg.Pool, charge_point_id: str, profile: int) -> None:
    """The charger connected with its pending profile: that is now the least it may use."""
    await pool.execute(
        """UPDATE charge_points SET security_profile = $2, pending_security_profile = NULL
           WHERE id = $1 AND pending_security_profile = $2""",
        charge_point_id,
        profile,
    )


async def insert_security_event(
    pool: asyncpg.Pool,
    charge_point_id: str,
    event_type: str,
    tech_info: str | None,
    reported_at: datetime | None,
    received_at: datetime,
    *,
    clock_suspect: bool = False,
) -> bool:
    """Store one event; False when it is a resend of one already stored."""
    stored = await pool.fetchval(
        """INSERT INTO security_events (charge_point_id, type, tech_info, reported_at,
               received_at, clock_suspect)
           VALUES ($1, $2, $3, $4, $5, $6)
           ON CONFLICT DO NOTHING RETURNING true""",
        charge_point_id,
        event_type,
        tech_info,
        reported_at,
        received_at,
        clock_suspect,
    )
    return bool(stored)


async def fetch_security_events(
    pool: asyncpg.Pool, charge_point_id: str, limit: int
) -> list[dict[str, Any]]:
    rows = await pool.fetch(
        """SELECT type, tech_info, reported_at, received_at FROM security_events
           WHERE charge_point_id = $1 ORDER BY received_at DESC, id DESC LIMIT $2""",
        charge_point_id,
        limit,
    )
    return [dict(r) for r in rows]


async def insert_security_notification(
    pool: asyncpg.Pool,
    charge_point_id: str,
    kind: str,
    status: str,
    request_id: int | None,
    at: datetime,
) -> None:
    await pool.execute(
        """INSERT INTO security_notifications (charge_point_id, kind, status, request_id,
               received_at)
           VALUES ($1, $2, $3, $4, $5)""",
        charge_point_id,
        kind,
        status,
        request_id,
        at,
    )


async def insert_certificate(
    pool: asyncpg.Pool,
    charge_point_id: str,
    *,
    serial_number: str,
    subject: str,
    not_before: datetime,
    not_after: datetime,
    pem: str,
    at: datetime,
) -> int:
    return await pool.fetchval(
        """INSERT INTO charger_certificates (charge_point_id, serial_number, subject,
               not_before, not_after, certificate_pem, status, issued_at)
           VALUES ($1, $2, $3, $4, $5, $6, 'issued', $7) RETURNING id""",
        charge_point_id,
        serial_number,
        subject,
        not_before,
        not_after,
        pem,
        at,
    )


async def set_certificate_status(
    pool: asyncpg.Pool, certificate_id: int, status: str, at: datetime
) -> None:
    await pool.execute(
        "UPDATE charger_certificates SET status = $2, answered_at = $3 WHERE id = $1",
        certificate_id,
        status,
        at,
    )
