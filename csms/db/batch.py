"""Group commit for hot writes: rows are written in batches, callers await the commit.

Several writers (boots, statuses, meter values, ...) share one ``GroupCommit``: a
single flusher task that writes at once when it is idle, and while one commit is in
flight lets the next batch accumulate, to write it the moment that commit returns.
Whatever the writers hold at that moment goes into **one** transaction, in the order
the writers were registered, so a charger's boot, statuses and readings that arrive
together cost one commit, not three. No timer: an idle server answers in one commit's
time, a busy one batches more (the batch grows with the commit's latency).

``gather_s`` (``CSMS_COMMIT_GATHER_MS``, off by default) trades latency for commits: a
batch is written once its oldest row has waited that long (or a writer's batch is full).
At a few hundred messages a second a commit takes less time than the gap between
messages, so without it most messages commit alone. The window counts from the oldest
row, not from when the flusher is free: rows that arrived during a commit wait out only
what is left of theirs, instead of being written at once as a small batch that would
halve what the window saves.

A failed batch (database restarted, connection killed, deadlock) is retried whole
with back-off until it commits, so a hiccup delays rows but never drops them; callers
keep waiting meanwhile. A batch the database refuses is split, per writer and then
per row, so one bad row is logged without taking its neighbours down. The final flush
on shutdown is shielded from cancellation, as asyncpg shields ``release()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence
from contextvars import ContextVar
from typing import Any, Generic, TypeVar

import asyncpg
import structlog

from csms.db.pool import Connection

log = structlog.get_logger()

Row = TypeVar("Row")
FlushFn = Callable[[Connection, list[Row]], Awaitable[None]]

_RETRYABLE = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    asyncpg.TooManyConnectionsError,
    # Two transactions locking the same rows in opposite order: PostgreSQL aborts one.
    # The batch as a whole was fine; writing it again (whole, not row by row) succeeds.
    asyncpg.DeadlockDetectedError,
    asyncpg.SerializationError,
)
_REJECTED = (asyncpg.PostgresError, asyncpg.InternalClientError, ValueError, TypeError)


# Inside a group commit's flush: False on a batch's first try, True when the batch is
# written again because a unique key refused it (a resend in it). Writers whose rows may
# be resent (csms/db/copy_new.py) copy plainly on the first try, and take their
# conflict-safe path only after one. None outside a group commit.
after_conflict: ContextVar[bool | None] = ContextVar("after_conflict", default=None)


class RowsLost(Exception):
    """Shutdown gave up on a batch: its callers are told, never answered as if stored."""


# (writer, rows) pairs written in one transaction.
_Batch = list[tuple["BatchWriter[Any]", list[Any]]]


class _Segment:
    """Rows submitted to one writer that commit together, and the futures awaiting them.

    One future per caller, not one shared and ``asyncio.shield``-ed per caller: a caller
    cancelled (its socket closed) cancels only its own future, and shield's extra future
    and callbacks per write were 7-10 % of a reconnect storm's profile.
    """

    __slots__ = ("finished", "rows", "waiters")

    def __init__(self) -> None:
        self.rows: list[Any] = []
        self.waiters: list[asyncio.Future[None]] = []
        self.finished = False

    def committed(self) -> None:
        self.finished = True
        for waiter in self.waiters:
            if not waiter.done():
                waiter.set_result(None)

    def failed(self, exc: BaseException) -> None:
        self.finished = True
        for waiter in self.waiters:
            if not waiter.done():
                waiter.set_exception(exc)
                # Submitters that did not wait must not leave "never retrieved" noise.
                waiter.exception()


class GroupCommit:
    """The one flusher task several ``BatchWriter``s share; see the module docstring."""

    def __init__(
        self,
        name: str,
        pool: asyncpg.Pool,
        *,
        shutdown_timeout: float = 30.0,
        gather_s: float = 0.0,
    ) -> None:
        self.name = name
        self._pool = pool
        self._shutdown_timeout = shutdown_timeout
        self._gather_s = gather_s
        self._writers: list[BatchWriter[Any]] = []
        self._wakeup = asyncio.Event()
        self._write_now = asyncio.Event()  # stops a gather early
        self._turn = asyncio.Event()  # set (and replaced) after every batch
        self._task: asyncio.Task[None] | None = None
        self._oldest_at: float | None = None  # monotonic: the first row not yet taken
        self.commits = 0
        self.in_flight = False

    def register(self, writer: BatchWriter[Any]) -> None:
        self._writers.append(writer)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"group-commit-{self.name}")

    def wake(self) -> None:
        if self._oldest_at is None and self._gather_s > 0:
            self._oldest_at = time.monotonic()
        self._wakeup.set()

    def write_now(self) -> None:
        """A writer holds a full batch or is closing: a flusher gathering writes now."""
        self._write_now.set()

    async def next_turn(self) -> None:
        """Return when the batch being written (or the next one) is done."""
        await self._turn.wait()

    @property
    def closing(self) -> bool:
        return all(w.closing for w in self._writers)

    async def _run(self) -> None:
        while True:
            await self._wakeup.wait()
            if self._gather_s > 0 and not self.closing:
                await self._gather()
            self._wakeup.clear()
            self._oldest_at = None
            taken = [(w, w._take()) for w in self._writers if w._segments]
            if not taken:
                if self.closing:
                    return
                continue
            self.in_flight = True
            try:
                await self._commit([(w, s.rows) for w, s in taken])
            except RowsLost as exc:
                for _, segment in taken:
                    segment.failed(exc)
            except Exception as exc:
                # A bug of ours, not the database: callers get an error (the charger an
                # InternalError, so it retries) instead of waiting forever.
                log.exception("db.writer_failed", writer=self.name, rows=_count(taken))
                for _, segment in taken:
                    segment.failed(exc)
            else:
                for _, segment in taken:
                    segment.committed()
            finally:
                self.in_flight = False
                self._turn.set()
                self._turn = asyncio.Event()
            # Rows that arrived during the commit set the event: written next turn (at
            # once, or when the oldest of them has waited out the window).
            if any(w._segments for w in self._writers):
                self._wakeup.set()

    async def _gather(self) -> None:
        if any(w.full or w.closing for w in self._writers):
            return
        oldest = self._oldest_at if self._oldest_at is not None else time.monotonic()
        left = oldest + self._gather_s - time.monotonic()
        if left <= 0:
            return
        self._write_now.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(left):
                await self._write_now.wait()

    async def _commit(self, batch: _Batch, *, conflicted: bool = False) -> None:
        delay = 0.05
        deadline: float | None = None
        loop = asyncio.get_running_loop()
        while True:
            token = after_conflict.set(conflicted)
            try:
                async with self._pool.acquire() as connection, connection.transaction():
                    for writer, rows in batch:
                        await writer._flush(connection, rows)
            except asyncpg.UniqueViolationError as exc:
                if not conflicted:
                    conflicted = True  # a resend in the batch: again, whole, conflict-safe
                    continue
                await self._isolate(batch, exc)
                return
            except _RETRYABLE as exc:
                for writer, _ in batch:
                    writer.failures += 1
                if self.closing:
                    deadline = deadline or loop.time() + self._shutdown_timeout
                    if loop.time() > deadline:
                        for writer, rows in batch:
                            log.error(
                                "db.rows_lost", writer=writer.name, rows=len(rows), error=str(exc)
                            )
                        raise RowsLost(str(exc)) from exc
                log.warning(
                    "db.write_retry",
                    writer=",".join(w.name for w, _ in batch),
                    rows=sum(len(r) for _, r in batch),
                    error=str(exc),
                    error_type=type(exc).__name__,
                    delay=delay,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            except _REJECTED as exc:
                await self._isolate(batch, exc)
                return
            finally:
                after_conflict.reset(token)
            self.commits += 1
            for writer, rows in batch:
                writer.rows_written += len(rows)
                writer.batches_written += 1
            return

    async def _isolate(self, batch: _Batch, exc: Exception) -> None:
        # A row the database refuses (a bug of ours, not a hiccup) must not take the rest
        # of its batch down with it: one transaction per writer, then one per row.
        if len(batch) > 1:
            for part in batch:
                await self._commit([part], conflicted=True)
            return
        writer, rows = batch[0]
        if len(rows) == 1:
            log.error("db.row_rejected", writer=writer.name, row=repr(rows[0]), error=str(exc))
            return
        log.error("db.batch_rejected", writer=writer.name, rows=len(rows), error=str(exc))
        for row in rows:
            await self._commit([(writer, [row])], conflicted=True)


def _count(taken: list[tuple[BatchWriter[Any], _Segment]]) -> int:
    return sum(len(s.rows) for _, s in taken)


class BatchWriter(Generic[Row]):
    """Buffers rows for ``flush``; its ``GroupCommit`` writes them (shared or its own).

    ``max_rows`` bounds one transaction's share of this writer: rows beyond it wait for
    the next commit, which follows at once.
    """

    def __init__(
        self,
        name: str,
        pool: asyncpg.Pool,
        flush: FlushFn[Row],
        *,
        max_rows: int = 5000,
        group: GroupCommit | None = None,
        shutdown_timeout: float = 30.0,
    ) -> None:
        self.name = name
        self._flush = flush
        self._max_rows = max_rows
        self._group = group or GroupCommit(name, pool, shutdown_timeout=shutdown_timeout)
        self._group.register(self)
        self._segments: list[_Segment] = []
        self._last: _Segment | None = None
        self.closing = False
        self.rows_written = 0
        self.batches_written = 0
        self.failures = 0

    @property
    def group(self) -> GroupCommit:
        return self._group

    def start(self) -> None:
        """Start the group's flusher (once, however many writers share it)."""
        self._group.start()

    def submit(self, rows: Sequence[Row]) -> asyncio.Future[None]:
        """Queue rows; the returned future resolves when they are committed.

        Cancelling the future does not take the rows back: they are written anyway.
        """
        if self.closing:
            raise RuntimeError(f"{self.name} writer is closed")
        segments = self._segments
        if not segments or len(segments[-1].rows) >= self._max_rows:
            segments.append(_Segment())
        segment = segments[-1]
        segment.rows.extend(rows)
        if len(segment.rows) >= self._max_rows:
            self._group.write_now()
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        segment.waiters.append(waiter)
        self._last = segment
        self._group.wake()
        return waiter

    async def write(self, rows: Sequence[Row]) -> None:
        """Queue rows and wait until they are committed."""
        if rows:
            await self.submit(rows)

    @property
    def full(self) -> bool:
        """A whole batch of this writer's is waiting."""
        segments = self._segments
        return bool(segments) and len(segments[0].rows) >= self._max_rows

    @property
    def pending(self) -> int:
        return sum(len(s.rows) for s in self._segments)

    def _take(self) -> _Segment:
        return self._segments.pop(0)

    async def close(self) -> None:
        """Write everything still buffered; the flusher stops when all its writers closed."""
        self.closing = True
        self._group.wake()
        self._group.write_now()
        if self._group._task is None:
            return  # never started: nothing was ever written, nothing can be
        last = self._last
        # Segments of one writer commit in order: the last one finished means all are.
        while last is not None and not last.finished:
            await asyncio.shield(self._group.next_turn())
        if self._group.closing:
            self._group.wake()  # the flusher sees it has nothing left and stops
            await asyncio.shield(self._group._task)
