"""Transactions a charger has given up on, closed by the central system.

A charger that forgot a transaction across a reboot starts a new one on the same
connector, or boots and shows the connector free; the old one would otherwise stay
"active" for good (one connector was seen with three at once). Shared by the
StartTransaction and StatusNotification handlers.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from csms.db import transactions
from csms.domain.events import TransactionStopped

if TYPE_CHECKING:
    from csms.ocpp16.connection import ChargePointConnection


async def close_stale_transactions(
    conn: ChargePointConnection,
    connector_id: int,
    now: datetime,
    *,
    superseded_by: int | None = None,
    started_before: datetime | None = None,
    started_not_after: datetime | None = None,
) -> None:
    """Close what the charger gave up on (see ``transactions.close_stale``); log, publish."""
    closed = await transactions.close_stale(
        conn.services.pool,
        conn.charge_point_id,
        connector_id,
        now,
        superseded_by=superseded_by,
        started_before=started_before,
        started_not_after=started_not_after,
    )
    await conn.active_transactions()  # loaded, so that superseded() can update it
    superseded(conn, connector_id, closed, now, superseded_by=superseded_by)


def superseded(
    conn: ChargePointConnection,
    connector_id: int,
    closed: list[transactions.ClosedTransaction],
    now: datetime,
    *,
    superseded_by: int | None,
) -> None:
    """After the commit that closed them: forget, log and publish the closed transactions.

    The StartTransaction handler closes them in its group commit (``flush_starts``) and
    calls this with what that closed.
    """
    active = conn.active_tx or {}
    for stale in closed:
        conn.registers.forget(stale.transaction_id)
        if active.get(connector_id) == stale.transaction_id:
            del active[connector_id]
        conn.log.warning(
            "ocpp.transaction_superseded",
            connector_id=connector_id,
            transaction_id=stale.transaction_id,
            superseded_by=superseded_by,
            cause="new_transaction" if superseded_by is not None else "reboot",
            meter_stop_wh=stale.meter_stop_wh,
            energy_wh=max(stale.meter_stop_wh - stale.meter_start_wh, 0),
        )
        conn.services.events.publish(
            TransactionStopped(
                conn.charge_point_id,
                stale.transaction_id,
                stale.meter_stop_wh,
                transactions.SUPERSEDED,
                now,
                closed_by_central_system=True,
                superseded_by=superseded_by,
            )
        )
