"""SQL for plug-ins (one row per plug cycle of a connector) and for claiming cars."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
from asyncpg.pool import PoolConnectionProxy

# Outcomes: still open ones first, then what an operator reads in the summary.
PENDING = "pending"
CONFIRMING = "confirming"
OPEN_OUTCOMES = (PENDING, CONFIRMING)
MATCHED = "matched"
CONFIRMED = "confirmed"
NO_MATCH = "no_match"
UNPAID = "unpaid"
AT_TARGET = "at_target"
UNCONFIRMED = "unconfirmed"
DROPPED = "dropped"  # the plug cycle ended (or the car was taken) before the start
FAILED = "failed"


@dataclass(slots=True, frozen=True)
class PlugInRow:
    id: int
    charge_point_id: str
    connector_id: int
    plugged_at: datetime
    ended_at: datetime | None
    outcome: str
    reason: str | None
    vehicle_id: int | None
    session_id: int | None
    confirm_id_tag: str | None
    remote_start_at: datetime | None
    decided_at: datetime | None
    latitude: float | None
    longitude: float | None


_SELECT = """
    SELECT p.id, p.charge_point_id, p.connector_id, p.plugged_at, p.ended_at, p.outcome,
           p.reason, p.vehicle_id, p.session_id, p.confirm_id_tag, p.remote_start_at,
           p.decided_at, l.latitude, l.longitude
    FROM plug_ins p LEFT JOIN charger_locations l ON l.charge_point_id = p.charge_point_id
"""


def _row(record: asyncpg.Record | None) -> PlugInRow | None:
    return PlugInRow(**dict(record)) if record else None


async def begin(pool: asyncpg.Pool, charge_point_id: str, connector_id: int, at: datetime) -> int:
    """A new plug cycle on the connector (ending the previous one); its id."""
    async with pool.acquire() as db, db.transaction():
        await db.execute(
            "UPDATE plug_ins SET ended_at = $3 WHERE charge_point_id = $1 AND connector_id = $2 "
            "AND ended_at IS NULL",
            charge_point_id,
            connector_id,
            at,
        )
        return await db.fetchval(
            "INSERT INTO plug_ins (charge_point_id, connector_id, plugged_at) "
            "VALUES ($1, $2, $3) RETURNING id",
            charge_point_id,
            connector_id,
            at,
        )


async def end(pool: asyncpg.Pool, charge_point_id: str, connector_id: int, at: datetime) -> None:
    """The connector's plug cycle is over (Available, Finishing)."""
    await pool.execute(
        "UPDATE plug_ins SET ended_at = $3 WHERE charge_point_id = $1 AND connector_id = $2 "
        "AND ended_at IS NULL",
        charge_point_id,
        connector_id,
        at,
    )


# A connector in one of these states has a car on its cable.
PLUGGED_STATES = ("Preparing", "Charging", "SuspendedEV", "SuspendedEVSE")


@dataclass(slots=True, frozen=True)
class Unrecorded:
    """A connector the central system knows is plugged (its StatusNotification is stored)
    whose plug-in the bridge has not recorded yet: the event is still on its way to us."""

    charge_point_id: str
    connector_id: int
    at: datetime  # when the central system received that status
    latitude: float | None
    longitude: float | None


async def unrecorded(pool: asyncpg.Pool, since: datetime) -> list[Unrecorded]:
    """Plugged connectors (status received at or after ``since``) whose current plug cycle
    the bridge has no plug-in or session for yet, with the cycle's start. The core stores a
    status before it publishes the event, so under load (the bridge's event queue behind)
    this is a neighbour's Preparing we have not seen yet.

    The cycle began after the connector's last free status (``status_history``), so the
    previous car's plug-in, still open because its Available is queued behind too, does
    not hide the new car's: only a plug-in or session begun after that free status does.
    """
    rows = await pool.fetch(
        """SELECT c.charge_point_id, c.connector_id, cycle.at, l.latitude, l.longitude
           FROM connectors c
           LEFT JOIN charger_locations l ON l.charge_point_id = c.charge_point_id
           CROSS JOIN LATERAL (
               SELECT coalesce(max(h.received_at), '-infinity'::timestamptz) AS at
               FROM (SELECT h.received_at FROM status_history h
                     WHERE h.charge_point_id = c.charge_point_id
                       AND h.connector_id = c.connector_id
                       AND h.received_at <= c.updated_at AND NOT (h.status = ANY($1::text[]))
                     ORDER BY h.received_at DESC LIMIT 1) h
           ) freed
           CROSS JOIN LATERAL (
               SELECT coalesce(min(h.received_at), c.updated_at) AS at
               FROM (SELECT h.received_at FROM status_history h
                     WHERE h.charge_point_id = c.charge_point_id
                       AND h.connector_id = c.connector_id AND h.received_at > freed.at
                     ORDER BY h.received_at LIMIT 1) h
           ) cycle
           WHERE c.connector_id > 0 AND c.status = ANY($1::text[]) AND c.updated_at >= $2
             AND NOT EXISTS (
                 SELECT 1 FROM plug_ins p
                 WHERE p.charge_point_id = c.charge_point_id AND p.connector_id = c.connector_id
                   AND p.plugged_at > freed.at)
             AND NOT EXISTS (
                 SELECT 1 FROM charging_sessions s
                 WHERE s.charge_point_id = c.charge_point_id AND s.connector_id = c.connector_id
                   AND s.ended_at IS NULL AND s.created_at > freed.at)
           ORDER BY cycle.at""",
        list(PLUGGED_STATES),
        since,
    )
    return [Unrecorded(**dict(r)) for r in rows]


async def open_on_connector(
    pool: asyncpg.Pool, charge_point_id: str, connector_id: int
) -> PlugInRow | None:
    return _row(
        await pool.fetchrow(
            _SELECT + " WHERE p.charge_point_id = $1 AND p.connector_id = $2 "
            "AND p.ended_at IS NULL",
            charge_point_id,
            connector_id,
        )
    )


async def get(pool: asyncpg.Pool, plug_in_id: int) -> PlugInRow | None:
    return _row(await pool.fetchrow(_SELECT + " WHERE p.id = $1", plug_in_id))


async def undecided(pool: asyncpg.Pool) -> list[PlugInRow]:
    """Plug-ins still waiting for a decision (the set the matcher decides together)."""
    rows = await pool.fetch(_SELECT + " WHERE p.outcome = 'pending' ORDER BY p.plugged_at, p.id")
    return [PlugInRow(**dict(r)) for r in rows]


async def ended_since(pool: asyncpg.Pool, since: datetime) -> list[PlugInRow]:
    """Plug cycles that ended at or after ``since``, whatever their outcome."""
    rows = await pool.fetch(_SELECT + " WHERE p.ended_at >= $1 ORDER BY p.plugged_at, p.id", since)
    return [PlugInRow(**dict(r)) for r in rows]


async def confirming(pool: asyncpg.Pool) -> list[PlugInRow]:
    rows = await pool.fetch(_SELECT + " WHERE p.outcome = 'confirming' ORDER BY p.id")
    return [PlugInRow(**dict(r)) for r in rows]


async def decide(
    pool: asyncpg.Pool,
    plug_in_id: int,
    outcome: str,
    reason: str,
    at: datetime,
    *,
    vehicle_id: int | None = None,
    session_id: int | None = None,
    expected: tuple[str, ...] = OPEN_OUTCOMES,
) -> bool:
    """Record the plug-in's outcome once: only from one of the ``expected`` outcomes."""
    result = await pool.execute(
        """UPDATE plug_ins SET outcome = $2, reason = $3, decided_at = $4,
               vehicle_id = coalesce($5, vehicle_id), session_id = coalesce($6, session_id)
           WHERE id = $1 AND outcome = ANY($7::text[])""",
        plug_in_id,
        outcome,
        reason,
        at,
        vehicle_id,
        session_id,
        list(expected),
    )
    return result == "UPDATE 1"


async def set_confirm_tag(pool: asyncpg.Pool, plug_in_id: int, id_tag: str) -> None:
    await pool.execute(
        "UPDATE plug_ins SET confirm_id_tag = $2, outcome = 'confirming' WHERE id = $1",
        plug_in_id,
        id_tag,
    )


async def by_confirm_tag(pool: asyncpg.Pool, id_tag: str) -> PlugInRow | None:
    return _row(await pool.fetchrow(_SELECT + " WHERE upper(p.confirm_id_tag) = upper($1)", id_tag))


async def remote_start_sent(pool: asyncpg.Pool, plug_in_id: int, at: datetime) -> None:
    await pool.execute(
        "UPDATE plug_ins SET remote_start_at = coalesce(remote_start_at, $2) WHERE id = $1",
        plug_in_id,
        at,
    )


async def recent(pool: asyncpg.Pool, limit: int = 1000) -> list[dict[str, Any]]:
    rows = await pool.fetch(
        """SELECT p.id, p.charge_point_id, p.connector_id, p.plugged_at, p.ended_at, p.outcome,
                  p.reason, v.vin, p.session_id, s.transaction_id, p.remote_start_at,
                  p.decided_at
           FROM plug_ins p LEFT JOIN vehicles v ON v.id = p.vehicle_id
           LEFT JOIN charging_sessions s ON s.id = p.session_id
           ORDER BY p.id DESC LIMIT $1""",
        limit,
    )
    return [dict(r) for r in rows]


# --- claims ----------------------------------------------------------------------------------


async def claim(
    db: asyncpg.Connection | PoolConnectionProxy, plug_in_id: int, vehicle_ids: list[int], kind: str
) -> None:
    """Claim every car for the plug-in, all or none (the primary key is the guard).

    Raises ClaimLost (rolling back the claims made here) when a car is claimed already.
    """
    if not vehicle_ids:
        return
    async with db.transaction():
        inserted = await db.fetch(
            """INSERT INTO vehicle_claims (vehicle_id, plug_in_id, kind)
               SELECT unnest($1::bigint[]), $2, $3 ON CONFLICT DO NOTHING RETURNING vehicle_id""",
            vehicle_ids,
            plug_in_id,
            kind,
        )
        if len(inserted) != len(set(vehicle_ids)):
            raise ClaimLost


class ClaimLost(Exception):
    """Raised inside the claim's transaction to roll back a partial claim."""


async def try_claim(pool: asyncpg.Pool, plug_in_id: int, vehicle_ids: list[int], kind: str) -> bool:
    try:
        async with pool.acquire() as db:
            await claim(db, plug_in_id, vehicle_ids, kind)
    except ClaimLost:
        return False
    return True


async def release(pool: asyncpg.Pool, plug_in_id: int, keep: int | None = None) -> None:
    """Give back the plug-in's claims (all but ``keep``, the car it confirmed)."""
    await pool.execute(
        "DELETE FROM vehicle_claims WHERE plug_in_id = $1 AND vehicle_id IS DISTINCT FROM $2",
        plug_in_id,
        keep,
    )


async def release_vehicle(pool: asyncpg.Pool, vehicle_id: int) -> None:
    await pool.execute("DELETE FROM vehicle_claims WHERE vehicle_id = $1", vehicle_id)


async def claimed_vehicles(pool: asyncpg.Pool) -> dict[int, str]:
    """Every claimed car and what holds it (``session`` or ``confirmation``)."""
    rows = await pool.fetch("SELECT vehicle_id, kind FROM vehicle_claims")
    return {r["vehicle_id"]: r["kind"] for r in rows}


async def release_stale(pool: asyncpg.Pool, plug_in_id: int | None = None) -> int:
    """After a restart: claims whose car has no open session (a confirmation cut short);
    only ``plug_in_id``'s when given (a cluster node taking over one plug-in)."""
    result = await pool.execute(
        """DELETE FROM vehicle_claims c WHERE ($1::bigint IS NULL OR c.plug_in_id = $1)
           AND NOT EXISTS (
               SELECT 1 FROM charging_sessions s
               WHERE s.vehicle_id = c.vehicle_id AND s.ended_at IS NULL)""",
        plug_in_id,
    )
    return int(result.split()[-1])
