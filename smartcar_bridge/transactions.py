"""The bridge's part in the core's transactions API (``csms.plugins.TransactionLink``).

A transaction the bridge started has a plug-and-charge session: the list can be filtered by
its car's VIN or its account, and the detail shows the session (VIN masked) with its state
of charge samples and bill. The core knows neither the filters nor the tables.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from csms.log import mask_vin
from csms.plugins import Bind, TransactionLink, TransactionParameter

VIN_MAX = 32  # a VIN is 17 characters; some makes report longer identifiers


def _vin(text: str) -> str:
    if not 1 <= len(text) <= VIN_MAX:
        raise ValueError(f"give 1 to {VIN_MAX} characters")
    return text.upper()  # stored upper case, as the cars report them


def _account(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError("give a whole number") from None


def _by_vin(vin: str, bind: Bind) -> str:
    return (
        "EXISTS (SELECT 1 FROM charging_sessions s "
        f"WHERE s.transaction_id = t.id AND s.vin = {bind(vin)})"
    )


def _by_account(account_id: int, bind: Bind) -> str:
    return (
        "EXISTS (SELECT 1 FROM charging_sessions s "
        f"WHERE s.transaction_id = t.id AND s.account_id = {bind(account_id)})"
    )


async def session_of(pool: asyncpg.Pool, transaction_id: int) -> dict[str, Any] | None:
    """The plug-and-charge session of one transaction, VIN masked, or None."""
    row = await pool.fetchrow(
        """SELECT id, vehicle_id, account_id, vin, state, target_soc_percent,
                  start_soc_percent, end_soc_percent, battery_capacity_wh, stop_reason,
                  grid_energy_wh, battery_energy_wh, efficiency, reconciliation_flags,
                  bill_energy_wh, bill_basis, bill_amount, tariff_per_kwh, currency,
                  created_at, ended_at
           FROM charging_sessions WHERE transaction_id = $1""",
        transaction_id,
    )
    if row is None:
        return None
    session = dict(row)
    session["vin"] = mask_vin(session["vin"])
    session["soc_samples"] = [
        dict(r)
        for r in await pool.fetch(
            """SELECT sampled_at, soc_percent, charge_state, source FROM soc_samples
               WHERE session_id = $1 ORDER BY sampled_at, id""",
            session["id"],
        )
    ]
    return session


LINK = TransactionLink(
    parameters=(
        TransactionParameter(
            name="vin",
            description="transactions of plug-and-charge sessions of this car (any case)",
            schema={"type": "string", "minLength": 1, "maxLength": VIN_MAX},
            parse=_vin,
            condition=_by_vin,
        ),
        TransactionParameter(
            name="account_id",
            description="transactions of plug-and-charge sessions billed to this account",
            schema={"type": "integer"},
            parse=_account,
            condition=_by_account,
        ),
    ),
    detail=session_of,
)
