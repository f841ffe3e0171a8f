"""SQL for transactions: idempotent start, stop, orphan stops, active lookups, and the
transactions the central system closes itself (superseded or stale).

StartTransaction and StopTransaction are written by the group commit (``csms.db.batch``)
with the other hot writes: ``flush_starts`` and ``flush_stops`` run inside the shared
transaction and leave each request's outcome on it, read by the handler once the
transaction committed (answer only what is stored). A flush may run more than once for
one request (a retried or split batch): each run starts by forgetting the outcome of
the last, so an outcome never outlives the transaction that produced it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from csms.db import id_tags
from csms.db.meter_values import MeterValueRow, insert_meter_values
from csms.db.pool import Connection
from csms.domain.authorization import id_tag_info

Db = asyncpg.Pool | Connection


@dataclass(slots=True, frozen=True)
class StartRow:
    charge_point_id: str
    connector_id: int
    id_tag: str
    reservation_id: int | None
    meter_start_wh: int
    start_timestamp: datetime
    received_at: datetime
    clock_suspect: bool
    extra: dict[str, Any] | None


async def start(db: Db, row: StartRow, id_tag_status: str) -> tuple[int, bool]:
    """Insert the transaction, or find the one this retransmission already created.

    Returns ``(transaction_id, created)``.
    """
    record = await db.fetchrow(
        """INSERT INTO transactions (charge_point_id, connector_id, id_tag, id_tag_status,
               reservation_id, meter_start_wh, start_timestamp, start_received_at,
               clock_suspect, start_extra)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
           ON CONFLICT ON CONSTRAINT transactions_start_identity
           DO UPDATE SET charge_point_id = EXCLUDED.charge_point_id
           RETURNING id, (xmax = 0) AS created""",
        row.charge_point_id,
        row.connector_id,
        row.id_tag,
        id_tag_status,
        row.reservation_id,
        row.meter_start_wh,
        row.start_timestamp,
        row.received_at,
        row.clock_suspect,
        row.extra,
    )
    # DO UPDATE (not DO NOTHING) so that RETURNING yields the row in both cases.
    assert record is not None
    return record["id"], record["created"]


@dataclass(slots=True, frozen=True)
class StopRow:
    charge_point_id: str
    transaction_id: int
    id_tag: str | None
    meter_stop_wh: int
    stop_timestamp: datetime
    reason: str | None
    received_at: datetime
    clock_suspect: bool
    payload: dict[str, Any]


SUPERSEDED = "Superseded"


@dataclass(slots=True, frozen=True)
class StopTarget:
    """The transaction a StopTransaction names, locked for the stop."""

    connector_id: int
    meter_start_wh: int
    charger_stopped: bool  # its StopTransaction was already applied: this is a resend
    closed_by_central_system: bool


async def lock_for_stop(
    db: Connection, charge_point_id: str, transaction_id: int
) -> StopTarget | None:
    """The transaction row (locked until the caller's database transaction ends), if any."""
    record = await db.fetchrow(
        """SELECT connector_id, meter_start_wh, charger_stop_received_at IS NOT NULL AS stopped,
                  closed_by_central_system
           FROM transactions WHERE id = $1 AND charge_point_id = $2 FOR UPDATE""",
        transaction_id,
        charge_point_id,
    )
    if record is None:
        return None
    return StopTarget(
        record["connector_id"],
        record["meter_start_wh"],
        record["stopped"],
        record["closed_by_central_system"],
    )


async def stop(db: Connection, row: StopRow) -> int | None:
    """Apply the charger's stop; return the meter start, or None if we never issued it.

    A transaction the central system closed keeps that flag and the time it closed it;
    the charger's figures replace the ones we estimated.
    """
    # Only what the README promises is an anomaly: a stop below the start (0 -> 0 is not).
    meter_start: int | None = await db.fetchval(
        """UPDATE transactions SET meter_stop_wh = $3, stop_timestamp = $4,
               stop_received_at = COALESCE(stop_received_at, $5),
               charger_stop_received_at = $5, stop_reason = $6, stop_id_tag = $7,
               meter_anomaly = meter_anomaly OR $3 < meter_start_wh,
               clock_suspect = clock_suspect OR $8, stop_extra = $9
           WHERE id = $1 AND charge_point_id = $2
           RETURNING meter_start_wh""",
        row.transaction_id,
        row.charge_point_id,
        row.meter_stop_wh,
        row.stop_timestamp,
        row.received_at,
        row.reason,
        row.id_tag,
        row.clock_suspect,
        _extra(row.payload),
    )
    return meter_start


def _extra(payload: dict[str, Any]) -> dict[str, Any] | None:
    known = {"idTag", "meterStop", "timestamp", "transactionId", "reason", "transactionData"}
    extra = {k: v for k, v in payload.items() if k not in known}
    return extra or None


async def record_orphan_stop(db: Connection, row: StopRow) -> None:
    """Keep a stop for an id we never issued; a resend of it is stored once (0006)."""
    await db.execute(
        """INSERT INTO orphan_stops (charge_point_id, transaction_id, id_tag, meter_stop_wh,
               stop_timestamp, stop_reason, received_at, payload)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
           ON CONFLICT DO NOTHING""",
        row.charge_point_id,
        row.transaction_id,
        row.id_tag,
        row.meter_stop_wh,
        row.stop_timestamp,
        row.reason,
        row.received_at,
        row.payload,
    )


@dataclass(slots=True, frozen=True)
class ClosedTransaction:
    """A transaction the central system closed, with the meter stop it estimated."""

    transaction_id: int
    connector_id: int
    meter_start_wh: int
    meter_stop_wh: int
    stop_timestamp: datetime


async def close_stale(
    db: Db,
    charge_point_id: str,
    connector_id: int,
    now: datetime,
    *,
    superseded_by: int | None = None,
    started_before: datetime | None = None,
    started_not_after: datetime | None = None,
) -> list[ClosedTransaction]:
    """Close the open transactions on a connector that the charger has given up on.

    Those other than ``superseded_by`` (a new transaction there) that did not start after
    it (``started_not_after``: a late, offline-queued start must not end a running one),
    or those whose start arrived before ``started_before`` (the charger's last boot). The
    meter stop is the last energy register reading known by timestamp, else the start.
    """
    rows = await db.fetch(
        """WITH stale AS (
               SELECT id FROM transactions
               WHERE charge_point_id = $1 AND connector_id = $2 AND stop_received_at IS NULL
                 AND id IS DISTINCT FROM $4
                 AND ($5::timestamptz IS NULL OR start_received_at < $5)
                 AND ($7::timestamptz IS NULL OR start_timestamp <= $7)
               FOR UPDATE),
           last_reading AS (
               SELECT DISTINCT ON (mv.transaction_id) mv.transaction_id, mv.value, mv.sampled_at
               FROM meter_values mv JOIN stale ON mv.transaction_id = stale.id
               WHERE mv.measurand = 'Energy.Active.Import.Register' AND mv.phase IS NULL
                 AND mv.value IS NOT NULL
               ORDER BY mv.transaction_id, mv.sampled_at DESC)
           UPDATE transactions t SET
               meter_stop_wh = COALESCE(round(lr.value)::bigint, t.meter_start_wh),
               stop_timestamp = COALESCE(lr.sampled_at, t.start_timestamp),
               stop_received_at = $3, stop_reason = $6, closed_by_central_system = true,
               superseded_by = $4,
               meter_anomaly = t.meter_anomaly
                   OR COALESCE(round(lr.value)::bigint, t.meter_start_wh) < t.meter_start_wh
           FROM stale LEFT JOIN last_reading lr ON lr.transaction_id = stale.id
           WHERE t.id = stale.id
           RETURNING t.id, t.connector_id, t.meter_start_wh, t.meter_stop_wh, t.stop_timestamp""",
        charge_point_id,
        connector_id,
        now,
        superseded_by,
        started_before,
        SUPERSEDED,
        started_not_after,
    )
    return [
        ClosedTransaction(
            r["id"], r["connector_id"], r["meter_start_wh"], r["meter_stop_wh"], r["stop_timestamp"]
        )
        for r in sorted(rows, key=lambda r: r["id"])
    ]


async def flag_meter_anomaly(pool: asyncpg.Pool, transaction_id: int) -> None:
    await pool.execute("UPDATE transactions SET meter_anomaly = true WHERE id = $1", transaction_id)


async def active_by_connector(pool: asyncpg.Pool, charge_point_id: str) -> dict[int, int]:
    rows = await pool.fetch(
        """SELECT DISTINCT ON (connector_id) connector_id, id FROM transactions
           WHERE charge_point_id = $1 AND stop_received_at IS NULL
           ORDER BY connector_id, start_timestamp DESC""",
        charge_point_id,
    )
    return {r["connector_id"]: r["id"] for r in rows}


async def active_by_connector_of_many(
    pool: asyncpg.Pool, charge_point_ids: list[str]
) -> dict[str, dict[int, int]]:
    """``active_by_connector`` for many chargers in one query (a reconnecting fleet)."""
    rows = await pool.fetch(
        """SELECT DISTINCT ON (charge_point_id, connector_id) charge_point_id, connector_id, id
           FROM transactions
           WHERE charge_point_id = ANY($1::text[]) AND stop_received_at IS NULL
           ORDER BY charge_point_id, connector_id, start_timestamp DESC""",
        charge_point_ids,
    )
    found: dict[str, dict[int, int]] = {charge_point_id: {} for charge_point_id in charge_point_ids}
    for row in rows:
        found[row["charge_point_id"]][row["connector_id"]] = row["id"]
    return found


async def stop_of(pool: asyncpg.Pool, transaction_id: int) -> asyncpg.Record | None:
    """The stop of a transaction (meter_stop_wh, stop_reason, stop_received_at,
    closed_by_central_system, superseded_by), if received or closed by us.

    For consumers resuming after a restart: a stop may have arrived while they were down.
    """
    return await pool.fetchrow(
        "SELECT meter_stop_wh, stop_reason, stop_received_at, closed_by_central_system, "
        "superseded_by FROM transactions WHERE id = $1 AND stop_received_at IS NOT NULL",
        transaction_id,
    )


async def started_with(
    pool: asyncpg.Pool, charge_point_id: str, connector_id: int, id_tag: str, since: datetime
) -> asyncpg.Record | None:
    """The latest transaction started on the connector with ``id_tag`` since ``since``."""
    return await pool.fetchrow(
        """SELECT id, meter_start_wh, stop_received_at FROM transactions
           WHERE charge_point_id = $1 AND connector_id = $2 AND upper(id_tag) = upper($3)
             AND start_received_at >= $4
           ORDER BY start_received_at DESC LIMIT 1""",
        charge_point_id,
        connector_id,
        id_tag,
        since,
    )


@dataclass(slots=True, frozen=True)
class StartOutcome:
    transaction_id: int
    created: bool  # False: a retransmission of a start already stored
    id_tag_info: dict[str, Any]
    superseded: list[ClosedTransaction]  # open ones on the connector this start closed


@dataclass(slots=True)
class StartRequest:
    """A StartTransaction for the group commit; ``outcome`` is set once it is stored."""

    row: StartRow
    outcome: StartOutcome | None = None


async def flush_starts(connection: Connection, requests: list[StartRequest]) -> None:
    """Store StartTransactions (the group commit's flush, inside its transaction).

    Per request: the id tag is judged in the transaction, the start is inserted (or the
    stored one found), and a new one closes what the charger left open on its connector.
    """
    for request in requests:
        request.outcome = None
    for request in requests:
        row = request.row
        info = id_tag_info(await id_tags.find(connection, row.id_tag), row.received_at)
        transaction_id, created = await start(connection, row, info["status"])
        superseded = []
        if created:
            superseded = await close_stale(
                connection,
                row.charge_point_id,
                row.connector_id,
                row.received_at,
                superseded_by=transaction_id,
                # A charger without a clock cannot say which came first: arrival decides.
                started_not_after=None if row.clock_suspect else row.start_timestamp,
            )
        request.outcome = StartOutcome(transaction_id, created, info, superseded)


@dataclass(slots=True, frozen=True)
class StopOutcome:
    connector_id: int | None
    meter_start_wh: int | None  # None: a transaction we never issued, or a resent stop
    already_stopped: bool
    closed_by_central_system: bool
    id_tag_info: dict[str, Any] | None


@dataclass(slots=True)
class StopRequest:
    """A StopTransaction and its transactionData for the group commit."""

    row: StopRow
    sampled: list[MeterValueRow]
    outcome: StopOutcome | None = None


async def flush_stops(connection: Connection, requests: list[StopRequest]) -> None:
    """Store StopTransactions (the group commit's flush, inside its transaction).

    The stop and its transactionData commit together, so a retransmitted stop (answer
    lost) neither loses nor doubles the session's meter values.
    """
    for request in requests:
        request.outcome = None
    for request in requests:
        row = request.row
        info = None
        if row.id_tag:
            info = id_tag_info(await id_tags.find(connection, row.id_tag), row.received_at)
        target = await lock_for_stop(connection, row.charge_point_id, row.transaction_id)
        sampled = request.sampled
        if target is None:
            await record_orphan_stop(connection, row)
            outcome = StopOutcome(None, None, False, False, info)
        elif target.charger_stopped:
            request.outcome = StopOutcome(
                target.connector_id, None, True, target.closed_by_central_system, info
            )
            continue
        else:
            meter_start = await stop(connection, row)
            outcome = StopOutcome(
                target.connector_id, meter_start, False, target.closed_by_central_system, info
            )
            # transactionData belongs to its transaction's connector, whatever came since.
            sampled = [r._replace(connector_id=target.connector_id) for r in sampled]
        if sampled:
            await insert_meter_values(connection, sampled)
        request.outcome = outcome
