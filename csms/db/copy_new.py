"""COPY a batch into a table with a unique key, skipping rows it already holds.

Shared by the hot writers (meter values, status history). A batch with no resend in it
(nearly all) is copied straight into the table; only a batch that hits the unique key
takes the detour through a per-connection temporary table and
``INSERT ... ON CONFLICT DO NOTHING``, which costs about a third more database time per row.

In a group commit the straight copy takes no savepoint: a conflict aborts the group's
transaction, which writes the batch again with every writer on its conflict-safe path
(``csms.db.batch.after_conflict``). The savepoint's two statements per writer and commit
were about a sixth of PostgreSQL's time per message in the mix (bench/mix.py). Elsewhere
(a caller's own transaction) the copy is tried under a savepoint.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Any

import asyncpg

from csms.db.batch import after_conflict
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
    conflicted = after_conflict.get()
    if conflicted is False:
        # A conflict raises, aborting the group's transaction; see the module docstring.
        await connection.copy_records_to_table(table, records=rows, columns=list(columns))
        return len(rows)
    if conflicted is None:
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
