"""SQL for the message logs: data transfers and central-system commands."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg


async def record_data_transfer(
    pool: asyncpg.Pool,
    *,
    charge_point_id: str,
    direction: str,
    vendor_id: str,
    message_id: str | None,
    data: str | None,
    status: str,
    response_data: str | None,
    at: datetime,
) -> None:
    await pool.execute(
        """INSERT INTO data_transfers (charge_point_id, direction, vendor_id, message_id, data,
               status, response_data, received_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8)""",
        charge_point_id,
        direction,
        vendor_id,
        message_id,
        data,
        status,
        response_data,
        at,
    )


async def record_command(
    pool: asyncpg.Pool, charge_point_id: str, action: str, payload: dict[str, Any], at: datetime
) -> int:
    return await pool.fetchval(
        """INSERT INTO commands (charge_point_id, action, payload, requested_at)
           VALUES ($1, $2, $3, $4) RETURNING id""",
        charge_point_id,
        action,
        payload,
        at,
    )


async def record_command_outcome(
    pool: asyncpg.Pool,
    command_id: int,
    outcome: str,
    response: dict[str, Any] | None,
    error: str | None,
    at: datetime,
) -> None:
    await pool.execute(
        """UPDATE commands SET outcome = $2, response = $3, error = $4, completed_at = $5
           WHERE id = $1""",
        command_id,
        outcome,
        response,
        error,
        at,
    )
