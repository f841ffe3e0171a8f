"""Group commit for hot writes: rows are written in batches, callers await the commit.

One flusher task per writer writes batches in order. A failed batch (database
restarted, connection killed) is retried with back-off until it commits, so a
hiccup delays rows but never drops them; callers keep waiting meanwhile. The
final flush on shutdown is shielded from cancellation, as asyncpg shields
``release()``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

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
)


class BatchWriter(Generic[Row]):
    """Buffers rows and writes them with ``flush`` in one transaction per batch."""

    def __init__(
        self,
        name: str,
        pool: asyncpg.Pool,
        flush: FlushFn[Row],
        *,
        max_rows: int = 5000,
        max_delay: float = 0.02,
        shutdown_timeout: float = 30.0,
    ) -> None:
        self.name = name
        self._pool = pool
        self._flush = flush
        self._max_rows = max_rows
        self._max_delay = max_delay
        self._shutdown_timeout = shutdown_timeout
        self._rows: list[Row] = []
        self._committed: asyncio.Future[None] | None = None
        self._wakeup = asyncio.Event()
        self._full = asyncio.Event()
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        self.rows_written = 0
        self.batches_written = 0
        self.failures = 0

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"batch-writer-{self.name}")

    def submit(self, rows: Sequence[Row]) -> asyncio.Future[None]:
        """Queue rows; the returned future resolves when they are committed."""
        if self._closing:
            raise RuntimeError(f"{self.name} writer is closed")
        if self._committed is None:
            self._committed = asyncio.get_running_loop().create_future()
        self._rows.extend(rows)
        self._wakeup.set()
        if len(self._rows) >= self._max_rows:
            self._full.set()
        return self._committed

    async def write(self, rows: Sequence[Row]) -> None:
        """Queue rows and wait until they are committed."""
        if rows:
            # Shielded: a caller that goes away (socket closed) must not cancel the batch.
            await asyncio.shield(self.submit(rows))

    @property
    def pending(self) -> int:
        return len(self._rows)

    async def close(self) -> None:
        """Write everything still buffered, then stop."""
        self._closing = True
        self._wakeup.set()
        self._full.set()
        if self._task is not None:
            await asyncio.shield(self._task)

    async def _run(self) -> None:
        while True:
            await self._wakeup.wait()
            if not self._rows and self._closing:
                return
            if not self._closing and len(self._rows) < self._max_rows:
                try:
                    await asyncio.wait_for(self._full.wait(), self._max_delay)
                except TimeoutError:
                    pass
            rows, committed = self._rows, self._committed
            self._rows, self._committed = [], None
            self._wakeup.clear()
            self._full.clear()
            try:
                if rows:
                    await self._write_until_committed(rows)
            except Exception as exc:
                # A bug of ours, not the database: callers get an error (the charger an
                # InternalError, so it retries) instead of waiting forever.
                log.exception("db.writer_failed", writer=self.name, rows=len(rows))
                if committed is not None and not committed.done():
                    committed.set_exception(exc)
                    # Submitters that did not wait must not leave "never retrieved" noise.
                    committed.exception()
                continue
            if committed is not None and not committed.done():
                committed.set_result(None)

    async def _write_until_committed(self, rows: list[Row]) -> None:
        delay = 0.05
        deadline: float | None = None
        loop = asyncio.get_running_loop()
        while True:
            try:
                async with self._pool.acquire() as connection, connection.transaction():
                    await self._flush(connection, rows)
            except _RETRYABLE as exc:
                self.failures += 1
                if self._closing:
                    deadline = deadline or loop.time() + self._shutdown_timeout
                    if loop.time() > deadline:
                        log.error("db.rows_lost", writer=self.name, rows=len(rows), error=str(exc))
                        return
                log.warning(
                    "db.write_retry", writer=self.name, rows=len(rows), error=str(exc), delay=delay
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            except (
                asyncpg.PostgresError,
                asyncpg.InternalClientError,
                ValueError,
                TypeError,
            ) as exc:
                # A row the database refuses (a bug of ours, not a hiccup) must not take
                # the rest of its batch down with it: retry one by one, log the rejects.
                if len(rows) == 1:
                    log.error(
                        "db.row_rejected", writer=self.name, row=repr(rows[0]), error=str(exc)
                    )
                    return
                log.error("db.batch_rejected", writer=self.name, rows=len(rows), error=str(exc))
                for row in rows:
                    await self._write_until_committed([row])
                return
            self.rows_written += len(rows)
            self.batches_written += 1
            return
