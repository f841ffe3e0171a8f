"""Each connection's open transactions, read from the database for many chargers at once.

A connection loads its chargers' open transactions on first need (a StatusNotification
showing a connector free after a boot, a StartTransaction) and keeps them up to date
itself. In a reconnect storm that first need comes for thousands of chargers within
moments: one query each was a tenth of the server's CPU. Here every charger asking in
the same turn of the event loop is answered by one query.
"""

from __future__ import annotations

import asyncio

import asyncpg

from csms.db import transactions


class ActiveTransactions:
    """``await of(charge_point_id)``: ``{connector_id: transaction_id}`` of open transactions."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._waiting: dict[str, list[asyncio.Future[dict[int, int]]]] = {}
        self._scheduled = False
        self._loads: set[asyncio.Task[None]] = set()

    async def of(self, charge_point_id: str) -> dict[int, int]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[dict[int, int]] = loop.create_future()
        self._waiting.setdefault(charge_point_id, []).append(future)
        if not self._scheduled:
            # At the end of this turn: whoever asks before then shares the query.
            self._scheduled = True
            loop.call_soon(self._flush)
        return await future

    def _flush(self) -> None:
        self._scheduled = False
        waiting, self._waiting = self._waiting, {}
        task = asyncio.get_running_loop().create_task(self._load(waiting))
        self._loads.add(task)
        task.add_done_callback(self._loads.discard)

    async def _load(self, waiting: dict[str, list[asyncio.Future[dict[int, int]]]]) -> None:
        try:
            found = await transactions.active_by_connector_of_many(self._pool, list(waiting))
        except Exception as exc:
            # Each asker gets the error, as its own query would have given it.
            for futures in waiting.values():
                for future in futures:
                    if not future.done():
                        future.set_exception(exc)
            return
        except BaseException:  # cancelled (shutdown): so are the askers
            for futures in waiting.values():
                for future in futures:
                    future.cancel()
            raise
        for charge_point_id, futures in waiting.items():
            for future in futures:
                if not future.done():  # its asker may have been cancelled
                    # A dict each: a connection updates its own as transactions come and go.
                    future.set_result(dict(found[charge_point_id]))
