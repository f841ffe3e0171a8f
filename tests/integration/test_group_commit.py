"""Group commit against a real PostgreSQL: writes at once when idle, groups while busy."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import asyncpg
import pytest

from csms.app import CentralSystem
from csms.db.batch import BatchWriter, GroupCommit
from csms.db.pool import create_pool
from tests.ocpp_client import raw_charger


@pytest.fixture
async def pool(database_url: str, db: asyncpg.Connection) -> AsyncIterator[asyncpg.Pool]:
    await db.execute("CREATE TABLE IF NOT EXISTS gc_rows (writer text, value int, txid bigint)")
    await db.execute("TRUNCATE gc_rows")
    pool = await create_pool(database_url, min_size=1, max_size=3)
    yield pool
    await pool.close()
    await db.execute("DROP TABLE gc_rows")


def _flusher(name: str, gate: asyncio.Event | None = None, calls: list[list[int]] | None = None):
    async def flush(connection: asyncpg.Connection, rows: list[int]) -> None:
        if calls is not None:
            calls.append(list(rows))
        if gate is not None:
            await gate.wait()
        await connection.executemany(
            "INSERT INTO gc_rows VALUES ($1, $2, txid_current())", [(name, r) for r in rows]
        )

    return flush


async def test_an_idle_writer_commits_one_row_at_once_in_one_transaction(
    pool: asyncpg.Pool, db: asyncpg.Connection
) -> None:
    writer = BatchWriter("a", pool, _flusher("a"))
    writer.start()
    await writer.write([1])
    assert writer.group.commits == 1
    assert await db.fetchval("SELECT count(*) FROM gc_rows") == 1
    await writer.close()


async def test_rows_of_every_writer_arriving_during_a_commit_share_the_next_transaction(
    pool: asyncpg.Pool, db: asyncpg.Connection
) -> None:
    gate = asyncio.Event()
    group = GroupCommit("test", pool)
    first = BatchWriter("first", pool, _flusher("first", gate), group=group)
    second = BatchWriter("second", pool, _flusher("second"), group=group)
    first.start()
    in_flight = asyncio.ensure_future(first.write([0]))
    while not group.in_flight:
        await asyncio.sleep(0)
    # Three callers on two writers while the first commit waits on the gate.
    gate_free = [first.write([1]), second.write([2]), second.write([3])]
    waiting = asyncio.gather(*gate_free)
    await asyncio.sleep(0.05)
    assert not waiting.done()  # not answered before their rows are stored
    gate.set()
    await asyncio.gather(in_flight, waiting)
    assert group.commits == 2
    rows = await db.fetch("SELECT writer, value, txid FROM gc_rows ORDER BY value")
    assert [r["value"] for r in rows] == [0, 1, 2, 3]
    assert len({r["txid"] for r in rows[1:]}) == 1  # one transaction for both writers
    assert rows[0]["txid"] != rows[1]["txid"]
    await first.close()
    await second.close()


async def test_gathering_puts_rows_arriving_within_the_window_in_one_transaction(
    pool: asyncpg.Pool, db: asyncpg.Connection
) -> None:
    group = GroupCommit("test", pool, gather_s=0.2)
    first = BatchWriter("first", pool, _flusher("first"), group=group)
    second = BatchWriter("second", pool, _flusher("second"), group=group)
    first.start()

    async def later(writer: BatchWriter[int], value: int, delay: float) -> None:
        await asyncio.sleep(delay)
        await writer.write([value])

    # Five callers on two writers, spread over 50 ms: without gathering, several commits.
    await asyncio.gather(*(later((first, second)[i % 2], i, i * 0.01) for i in range(5)))
    assert group.commits == 1
    assert await db.fetchval("SELECT count(DISTINCT txid) FROM gc_rows") == 1
    assert await db.fetchval("SELECT count(*) FROM gc_rows") == 5
    await first.close()
    await second.close()


async def _commit_in_flight(
    pool: asyncpg.Pool, *, gather_s: float
) -> tuple[asyncio.Event, GroupCommit, BatchWriter[int], asyncio.Future[None]]:
    """A gathering writer whose first row's commit waits on the returned gate."""
    gate = asyncio.Event()
    group = GroupCommit("test", pool, gather_s=gather_s)
    writer = BatchWriter("a", pool, _flusher("a", gate), group=group)
    writer.start()
    first = asyncio.ensure_future(writer.write([0]))
    while not group.in_flight:
        await asyncio.sleep(0.005)
    return gate, group, writer, first


async def test_rows_arriving_during_a_commit_wait_out_the_rest_of_their_window(
    pool: asyncpg.Pool, db: asyncpg.Connection
) -> None:
    # Written at once when the commit returned, the row that arrived during it would
    # commit alone, and the rows behind it start a window of their own: two commits
    # where the window was meant to make one.
    gate, group, writer, first = await _commit_in_flight(pool, gather_s=0.3)
    during = asyncio.ensure_future(writer.write([1]))
    await asyncio.sleep(0)
    gate.set()
    await first
    await asyncio.sleep(0.05)  # well within [1]'s window
    assert not during.done()
    after = asyncio.ensure_future(writer.write([2]))
    async with asyncio.timeout(5):
        await asyncio.gather(during, after)
    txids = dict(await db.fetch("SELECT value, txid FROM gc_rows"))
    assert txids[1] == txids[2] != txids[0]
    assert group.commits == 2
    await writer.close()


async def test_a_row_that_waited_out_its_window_during_a_commit_is_written_next(
    pool: asyncpg.Pool, db: asyncpg.Connection
) -> None:
    gate, group, writer, first = await _commit_in_flight(pool, gather_s=1.0)
    during = asyncio.ensure_future(writer.write([1]))
    await asyncio.sleep(1.1)  # the commit outlasts the window of the row behind it
    gate.set()
    async with asyncio.timeout(0.5):  # not a fresh second of gathering
        await asyncio.gather(first, during)
    assert group.commits == 2
    assert await db.fetchval("SELECT count(*) FROM gc_rows") == 2
    await writer.close()


async def test_gathering_stops_when_a_batch_is_full_and_on_close(
    pool: asyncpg.Pool, db: asyncpg.Connection
) -> None:
    group = GroupCommit("test", pool, gather_s=30.0)  # longer than the test's timeout
    writer = BatchWriter("a", pool, _flusher("a"), group=group, max_rows=3)
    writer.start()
    async with asyncio.timeout(5):
        await asyncio.gather(writer.write([1]), writer.write([2, 3]))  # full: written now
    assert group.commits == 1
    pending = asyncio.ensure_future(writer.write([4]))  # gathering for 30 s...
    await asyncio.sleep(0.05)
    assert not pending.done()
    async with asyncio.timeout(5):
        await writer.close()  # ...cut short by shutdown, the row written, not lost
        await pending
    assert sorted(await db.fetchval("SELECT array_agg(value) FROM gc_rows")) == [1, 2, 3, 4]


async def test_a_deadlocked_batch_is_retried_whole_not_row_by_row(
    pool: asyncpg.Pool, db: asyncpg.Connection
) -> None:
    calls: list[list[int]] = []
    inner = _flusher("a", calls=calls)

    async def deadlock_once(connection: asyncpg.Connection, rows: list[int]) -> None:
        await inner(connection, rows)
        if len(calls) == 1:
            raise asyncpg.DeadlockDetectedError("deadlock detected")

    writer = BatchWriter("a", pool, deadlock_once)
    writer.start()
    await asyncio.gather(writer.write([1]), writer.write([2]), writer.write([3]))
    assert calls == [[1, 2, 3], [1, 2, 3]]
    assert writer.failures == 1
    assert sorted(await db.fetchval("SELECT array_agg(value) FROM gc_rows")) == [1, 2, 3]
    await writer.close()


async def test_a_row_the_database_refuses_is_logged_and_its_neighbours_commit(
    pool: asyncpg.Pool, db: asyncpg.Connection
) -> None:
    gate = asyncio.Event()
    group = GroupCommit("test", pool)
    blocker = BatchWriter("blocker", pool, _flusher("blocker", gate), group=group)

    async def strict(connection: asyncpg.Connection, rows: list[int]) -> None:
        await connection.executemany(
            "INSERT INTO gc_rows VALUES ('strict', $1::int / ($1::int - 13), 0)",
            [(r,) for r in rows],
        )

    checked = BatchWriter("strict", pool, strict, group=group)
    good = BatchWriter("good", pool, _flusher("good"), group=group)
    blocker.start()
    first = asyncio.ensure_future(blocker.write([0]))
    while not group.in_flight:
        await asyncio.sleep(0)
    together = asyncio.gather(checked.write([12, 13, 14]), good.write([99]))
    gate.set()
    await asyncio.gather(first, together)
    values = await db.fetch("SELECT writer, value FROM gc_rows ORDER BY writer, value")
    assert [(r["writer"], r["value"]) for r in values] == [
        ("blocker", 0),
        ("good", 99),
        ("strict", -12),  # 12 / -1; 13 divides by zero and is refused
        ("strict", 14),
    ]
    for writer in (blocker, checked, good):
        await writer.close()


async def test_close_writes_what_is_still_buffered(
    pool: asyncpg.Pool, db: asyncpg.Connection
) -> None:
    writer = BatchWriter("a", pool, _flusher("a"))
    writer.start()
    writer.submit([1, 2])
    writer.submit([3])
    await writer.close()
    assert await db.fetchval("SELECT count(*) FROM gc_rows") == 3
    with pytest.raises(RuntimeError):
        writer.submit([4])


async def test_a_caller_that_goes_away_neither_cancels_its_rows_nor_its_neighbours(
    pool: asyncpg.Pool, db: asyncpg.Connection
) -> None:
    gate = asyncio.Event()
    writer = BatchWriter("a", pool, _flusher("a", gate))
    writer.start()
    gone = asyncio.ensure_future(writer.write([1]))
    stays = asyncio.ensure_future(writer.write([2]))
    while not writer.group.in_flight:
        await asyncio.sleep(0)
    gone.cancel()  # its charger disconnected while the commit was in flight
    gate.set()
    await stays
    assert gone.cancelled()
    assert sorted(await db.fetchval("SELECT array_agg(value) FROM gc_rows")) == [1, 2]
    await writer.close()


async def _until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(30):
        while not condition():
            await asyncio.sleep(0.01)


async def test_starts_stops_and_statuses_arriving_during_a_commit_share_the_next_transaction(
    system: CentralSystem, db: asyncpg.Connection, database_url: str
) -> None:
    boot = {"chargePointVendor": "V", "chargePointModel": "M"}
    port = system.ocpp.port
    async with (
        raw_charger(port, "GC-A") as a,
        raw_charger(port, "GC-B") as b,
        raw_charger(port, "GC-C") as c,
        raw_charger(port, "GC-D") as d,
    ):
        for charger in (a, b, c, d):
            await charger.call_ok("BootNotification", boot)
        stopping = await c.start_transaction(100, "2026-11-25T10:00:00Z")
        group = system.meter_values.group
        # A lock the meter values' COPY waits for keeps one commit in flight.
        blocker = await asyncpg.connect(database_url)
        locked = blocker.transaction()
        await locked.start()
        await blocker.execute("LOCK TABLE meter_values IN SHARE MODE")
        reading = {"timestamp": "2026-11-25T10:05:00Z", "sampledValue": [{"value": "150"}]}
        first = asyncio.ensure_future(
            a.call_ok("MeterValues", {"connectorId": 1, "meterValue": [reading]})
        )
        await _until(lambda: group.in_flight)
        calls = [
            b.start_transaction(0, "2026-11-25T10:06:00Z"),
            c.call_ok(
                "StopTransaction",
                {"transactionId": stopping, "meterStop": 900, "timestamp": "2026-11-25T10:07:00Z"},
            ),
            d.call_ok("StatusNotification", {"connectorId": 1, "errorCode": "NoError",
                                             "status": "Preparing"}),
        ]  # fmt: skip
        answers = asyncio.gather(*calls)
        await _until(
            lambda: system.starts.pending + system.stops.pending + system.statuses.pending == 3
        )
        commits = group.commits
        await locked.rollback()
        await blocker.close()
        await first
        started, _, _ = await answers
    assert group.commits == commits + 2  # the meter value's, then one for all three
    # The connector's row, not the history's: that one is copied under a savepoint, which
    # has an id of its own.
    xids = await db.fetch(
        """SELECT xmin::text AS xid FROM transactions WHERE id = ANY($1::int[])
           UNION ALL SELECT xmin::text FROM connectors WHERE charge_point_id = 'GC-D'""",
        [started, stopping],
    )
    assert len(xids) == 3 and len({r["xid"] for r in xids}) == 1
    stopped = await db.fetchrow("SELECT meter_stop_wh FROM transactions WHERE id = $1", stopping)
    assert stopped["meter_stop_wh"] == 900
