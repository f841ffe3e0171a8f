"""SQL for plug-and-charge sessions, their SoC samples and the charger's energy samples."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from decimal import Decimal
from typing import Any

import asyncpg

from smartcar_bridge import plug_in_store
from smartcar_bridge.session_machine import (
    CHARGING,
    COMPLETED,
    FAILED,
    FINAL,
    MATCHED,
    RECONCILING,
    STARTING,
    STOPPING,
    next_state,
    sources,
)

__all__ = ["CHARGING", "COMPLETED", "FAILED", "MATCHED", "RECONCILING", "STARTING", "STOPPING"]


@dataclass(slots=True)
class Session:
    id: int
    charge_point_id: str
    connector_id: int
    vehicle_id: int
    account_id: int
    vin: str
    id_tag: str
    transaction_id: int | None
    state: str
    target_soc_percent: int
    max_energy_wh: int | None
    departure_at: datetime | None
    start_soc_percent: float | None
    last_soc_percent: float | None
    end_soc_percent: float | None
    battery_capacity_wh: int | None
    meter_start_wh: int | None
    meter_stop_wh: int | None
    stop_reason: str | None
    grid_energy_wh: int | None
    battery_energy_wh: int | None
    efficiency: Decimal | None
    reconciliation_flags: list[str]
    bill_energy_wh: int | None
    bill_basis: str | None
    bill_amount: Decimal | None
    tariff_per_kwh: Decimal | None
    currency: str | None
    last_error: str | None
    created_at: datetime
    ended_at: datetime | None
    plug_in_id: int | None


_COLUMNS = ", ".join(f.name for f in fields(Session))
_UPDATABLE = frozenset(f.name for f in fields(Session)) - {"id", "created_at", "plug_in_id"}


def _session(row: asyncpg.Record | None) -> Session | None:
    return Session(**dict(row)) if row else None


async def open_session(
    pool: asyncpg.Pool,
    *,
    plug_in_id: int,
    charge_point_id: str,
    connector_id: int,
    vehicle_id: int,
    account_id: int,
    vin: str,
    id_tag: str,
    target_soc_percent: int,
    max_energy_wh: int | None,
    departure_at: datetime | None,
    battery_capacity_wh: int | None,
    tariff_per_kwh: Decimal,
    currency: str,
    state: str = MATCHED,
    transaction_id: int | None = None,
    meter_start_wh: int | None = None,
    claimed: bool = False,
) -> Session | None:
    """Claim the car and the connector; None if either is already taken.

    The car's claim (``vehicle_claims``) and the session are written in one transaction; with
    ``claimed`` the plug-in already holds the car's claim (a confirmation) and keeps it.
    """
    try:
        async with pool.acquire() as db, db.transaction():
            if not claimed:
                await plug_in_store.claim(db, plug_in_id, [vehicle_id], "session")
            else:
                await db.execute(
                    "UPDATE vehicle_claims SET kind = 'session' WHERE vehicle_id = $1 "
                    "AND plug_in_id = $2",
                    vehicle_id,
                    plug_in_id,
                )
            row = await db.fetchrow(
                f"""INSERT INTO charging_sessions (charge_point_id, connector_id, vehicle_id,
                        account_id, vin, id_tag, state, target_soc_percent, max_energy_wh,
                        departure_at, battery_capacity_wh, tariff_per_kwh, currency,
                        plug_in_id, transaction_id, meter_start_wh)
                    VALUES ($1, $2, $3, $4, $5, $6, $13, $7, $8, $9, $10, $11, $12, $14, $15,
                        $16)
                    RETURNING {_COLUMNS}""",
                charge_point_id,
                connector_id,
                vehicle_id,
                account_id,
                vin,
                id_tag,
                target_soc_percent,
                max_energy_wh,
                departure_at,
                battery_capacity_wh,
                tariff_per_kwh,
                currency,
                state,
                plug_in_id,
                transaction_id,
                meter_start_wh,
            )
    except (asyncpg.UniqueViolationError, plug_in_store.ClaimLost):
        return None
    return _session(row)


async def transition(
    pool: asyncpg.Pool, session_id: int, trigger: str, **changes: Any
) -> Session | None:
    """Apply ``trigger`` with a compare-and-set on the state it leaves (session_machine).

    None when the session is not in a state the trigger applies to (a late or duplicate
    event, or another task moved it first): nothing is written then. A final state
    releases the car's claim in the same transaction.
    """
    allowed = sorted(sources(trigger))
    targets = {next_state(state, trigger) for state in allowed}
    if len(targets) != 1:
        raise ValueError(f"{trigger} leads to several states: {sorted(targets)}")
    (target,) = targets
    columns = [c for c in changes if c in _UPDATABLE and c != "state"]
    unknown = set(changes) - _UPDATABLE
    if unknown:
        raise ValueError(f"not session columns: {sorted(unknown)}")
    assignments = "".join(f", {c} = ${i + 4}" for i, c in enumerate(columns))
    async with pool.acquire() as db, db.transaction():
        row = await db.fetchrow(
            f"""UPDATE charging_sessions SET state = $2, updated_at = now(){assignments}
                WHERE id = $1 AND state = ANY($3::text[]) RETURNING {_COLUMNS}""",
            session_id,
            target,
            allowed,
            *(changes[c] for c in columns),
        )
        if row is not None and target in FINAL:
            await db.execute("DELETE FROM vehicle_claims WHERE vehicle_id = $1", row["vehicle_id"])
    return _session(row)


async def update(pool: asyncpg.Pool, session_id: int, **changes: Any) -> Session:
    """Write facts about a session (SoC, energy); never its state (use ``transition``)."""
    if "state" in changes:
        raise ValueError("a session's state changes only through transition()")
    columns = [c for c in changes if c in _UPDATABLE]
    unknown = set(changes) - _UPDATABLE
    if unknown:
        raise ValueError(f"not session columns: {sorted(unknown)}")
    assignments = ", ".join(f"{c} = ${i + 2}" for i, c in enumerate(columns))
    row = await pool.fetchrow(
        f"""UPDATE charging_sessions SET {assignments}, updated_at = now()
            WHERE id = $1 RETURNING {_COLUMNS}""",
        session_id,
        *(changes[c] for c in columns),
    )
    session = _session(row)
    assert session is not None
    return session


async def open_sessions(pool: asyncpg.Pool) -> list[Session]:
    rows = await pool.fetch(
        f"SELECT {_COLUMNS} FROM charging_sessions WHERE ended_at IS NULL ORDER BY id"
    )
    return [Session(**dict(r)) for r in rows]


async def by_transaction(pool: asyncpg.Pool, transaction_id: int) -> Session | None:
    return _session(
        await pool.fetchrow(
            f"SELECT {_COLUMNS} FROM charging_sessions WHERE transaction_id = $1",
            transaction_id,
        )
    )


async def open_on_connector(
    pool: asyncpg.Pool, charge_point_id: str, connector_id: int
) -> Session | None:
    return _session(
        await pool.fetchrow(
            f"""SELECT {_COLUMNS} FROM charging_sessions
                WHERE charge_point_id = $1 AND connector_id = $2 AND ended_at IS NULL""",
            charge_point_id,
            connector_id,
        )
    )


async def add_soc_sample(
    pool: asyncpg.Pool,
    session_id: int,
    sampled_at: datetime,
    soc_percent: float,
    charge_state: str | None,
    source: str,
    data_age: datetime | None,
) -> None:
    await pool.execute(
        """INSERT INTO soc_samples (session_id, sampled_at, soc_percent, charge_state, source,
               data_age) VALUES ($1, $2, $3, $4, $5, $6)""",
        session_id,
        sampled_at,
        soc_percent,
        charge_state,
        source,
        data_age,
    )


async def add_energy_sample(
    pool: asyncpg.Pool, session_id: int, sampled_at: datetime, energy_wh: float
) -> None:
    await pool.execute(
        "INSERT INTO session_energy_samples (session_id, sampled_at, energy_wh) "
        "VALUES ($1, $2, $3)",
        session_id,
        sampled_at,
        energy_wh,
    )


async def energy_samples(pool: asyncpg.Pool, session_id: int) -> list[tuple[datetime, float]]:
    rows = await pool.fetch(
        "SELECT sampled_at, energy_wh FROM session_energy_samples WHERE session_id = $1 "
        "ORDER BY sampled_at",
        session_id,
    )
    return [(r["sampled_at"], r["energy_wh"]) for r in rows]


async def soc_samples(pool: asyncpg.Pool, session_id: int) -> list[dict[str, Any]]:
    rows = await pool.fetch(
        "SELECT sampled_at, soc_percent, charge_state, source, data_age FROM soc_samples "
        "WHERE session_id = $1 ORDER BY sampled_at, id",
        session_id,
    )
    return [dict(r) for r in rows]


async def open_for_vehicle(pool: asyncpg.Pool, vehicle_id: int) -> Session | None:
    return _session(
        await pool.fetchrow(
            f"SELECT {_COLUMNS} FROM charging_sessions WHERE vehicle_id = $1 AND ended_at IS NULL",
            vehicle_id,
        )
    )


async def first_delivery(
    pool: asyncpg.Pool, event_id: str, event_type: str, vehicle: str | None
) -> bool:
    """Record a webhook event id; False when it was already processed (at-least-once)."""
    result = await pool.execute(
        "INSERT INTO smartcar_webhook_events (event_id, event_type, vehicle_id) "
        "VALUES ($1, $2, $3) ON CONFLICT (event_id) DO NOTHING",
        event_id,
        event_type,
        vehicle,
    )
    return result == "INSERT 0 1"


async def by_id(pool: asyncpg.Pool, session_id: int) -> Session | None:
    return _session(
        await pool.fetchrow(f"SELECT {_COLUMNS} FROM charging_sessions WHERE id = $1", session_id)
    )


async def latest_on_connector(
    pool: asyncpg.Pool, charge_point_id: str, connector_id: int
) -> Session | None:
    """The connector's most recent session, open or not."""
    return _session(
        await pool.fetchrow(
            f"""SELECT {_COLUMNS} FROM charging_sessions
                WHERE charge_point_id = $1 AND connector_id = $2 ORDER BY id DESC LIMIT 1""",
            charge_point_id,
            connector_id,
        )
    )
