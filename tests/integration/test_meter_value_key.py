"""The sampled-value key of migration 0009: the writer's hash is the migration's, it tells
apart what is distinct and recognises what is resent, alone or in a group commit."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import Any

import asyncpg

from csms.db.batch import BatchWriter, GroupCommit
from csms.db.connectors import StatusRow, flush_statuses
from csms.db.meter_values import MeterValueRow, flush_meter_values, insert_meter_values
from csms.db.pool import create_pool

AT = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _row(**changes: Any) -> MeterValueRow:
    row = MeterValueRow(
        "KEY-1", 1, 7, AT, AT, "Energy.Active.Import.Register", None, "Outlet", "Wh",
        "Sample.Periodic", "Raw", 1000.0, "1000", "Wh", "MeterValues", False, None,
    )  # fmt: skip
    return row._replace(**changes)


def _migration_hash_sql() -> str:
    sql = resources.files("csms.db") / "migrations" / "0009_meter_values_sample_hash.sql"
    found = re.search(r"SET sample_hash = (.*?);", sql.read_text(), re.S)
    assert found is not None
    return found.group(1)


async def test_the_writers_hash_is_the_one_the_migration_computes_for_stored_rows(
    database_url: str, db: asyncpg.Connection
) -> None:
    rows = [
        _row(),
        _row(phase="L1"),
        _row(unit=""),  # empty, not missing
        _row(unit=None, raw_unit=None),
        _row(location=None),
        _row(connector_id=2),
        _row(measurand="SoC", unit="Percent", raw_value="81.5"),
        _row(format="SignedData", value=None, raw_value="ünïcødé/" + "A" * 3000),
        _row(context="Transaction.End"),
    ]
    pool = await create_pool(database_url, min_size=1, max_size=1)
    try:
        async with pool.acquire() as connection:
            assert await insert_meter_values(connection, rows) == len(rows)
    finally:
        await pool.close()
    differing = await db.fetchval(
        f"SELECT count(*) FROM meter_values WHERE sample_hash <> {_migration_hash_sql()}"
    )
    assert differing == 0
    assert await db.fetchval("SELECT count(DISTINCT sample_hash) FROM meter_values") == len(rows)


async def test_a_resent_batch_stores_nothing_and_a_new_value_beside_it_is_stored(
    database_url: str, db: asyncpg.Connection
) -> None:
    first = [_row(), _row(phase="L2"), _row(clock_suspect=True)]
    resend = [
        *first[:2],
        _row(raw_value="1001", value=1001.0),
        # No trustworthy clock: a later arrival is a new reading, not the same one.
        _row(clock_suspect=True, received_at=AT + timedelta(seconds=10)),
    ]
    pool = await create_pool(database_url, min_size=1, max_size=1)
    try:
        async with pool.acquire() as connection:
            assert await insert_meter_values(connection, first) == 3
            assert await insert_meter_values(connection, resend) == 2
            assert await insert_meter_values(connection, resend) == 0
    finally:
        await pool.close()
    assert await db.fetchval("SELECT count(*) FROM meter_values") == 5


async def test_a_group_batch_holding_a_resend_is_written_again_whole_and_stores_each_row_once(
    database_url: str, db: asyncpg.Connection
) -> None:
    pool = await create_pool(database_url, min_size=1, max_size=2)
    group = GroupCommit("test", pool)
    statuses = BatchWriter("statuses", pool, flush_statuses, group=group)
    meter_values = BatchWriter("meter_values", pool, flush_meter_values, group=group)
    status = StatusRow("KEY-1", 1, "Charging", "NoError", None, None, None, AT, AT, False, None)
    try:
        statuses.start()
        await meter_values.write([_row()])
        # While nothing is in flight all three land in one batch: the copy of the meter
        # values meets the stored reading, aborting the batch, which is written again.
        written = asyncio.gather(
            statuses.write([status]),
            meter_values.write([_row(), _row(phase="L1")]),
            meter_values.write([_row(phase="L2")]),
        )
        await written
        await statuses.close()
        await meter_values.close()
    finally:
        await pool.close()
    assert group.commits == 2
    assert await db.fetchval("SELECT count(*) FROM meter_values") == 3
    assert await db.fetchval("SELECT count(*) FROM status_history") == 1
    assert await db.fetchval("SELECT status FROM connectors WHERE charge_point_id = 'KEY-1'") == (
        "Charging"
    )
