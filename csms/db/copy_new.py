"""COPY a batch into a table with a unique key, skipping rows it already holds.

Shared by the hot writers (meter values, status history). A batch with no resend in it
(nearly all) is copied straight into the table under a savepoint; only a batch that hits
the unique key takes the detour through a per-connection temporary table and
``INSERT ... ON CONFLICT DO NOTHING``, which costs about a third more database time per row.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Any

import asyncpg

from csms.db.pool import Connection


@cache
def _stage_sql(table: str, columns: tuple[str, ...]) -> tuple[str, str]:
    listed = ", ".join(columns)
    # Per connection, emptied by every commit. IF NOT EXISTS costs one round trip per
    # batch, and cannot go wrong after a reconnect the way remembering "created" could.
    create = f"""CREATE TEMP TABLE IF NOT EXISTS {table}_stage ON COMMIT DELETE ROWS
    AS SELECT {listed} FROM {table} WITH NO DATA"""
    # Moving (not copying) the rows keeps a second flush in the same transaction correct.
    move = f"""WITH staged AS (DELETE FROM {table}_stage RETURNING {listed})
    INSERT INTO {table} ({listed})
    SELECT {listed} FROM staged ON CONFLICT DO NOTHING"""
    return create, move


async def copy_new(
    connection: Connection, table: str, columns: Sequence[str], rows: Sequence[Any]
) -> int:
    """Store ``rows`` (inside the caller's transaction); return how many were new."""
    try:
        async with connection.transaction():  # a savepoint: a conflict undoes only this
            await connection.copy_records_to_table(table, records=rows, columns=list(columns))
        return len(rows)
    except asyncpg.UniqueViolationError:
        pass
    create, move = _stage_sql(table, tuple(columns))
    await connection.execute(create)
    await connection.copy_records_to_table(f"{table}_stage", records=rows, columns=list(columns))
    status = await connection.execute(move)
    return int(status.rsplit(" ", 1)[1])
