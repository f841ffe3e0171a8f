"""The Smartcar application's rate limit as one token bucket for the whole cluster.

Each node asks the bucket row in PostgreSQL before a Smartcar call; one UPDATE refills it
for the time elapsed (on the database clock) and takes a token if there is one. The
answer is how long to wait for the next token, so nodes share the rate instead of each
spending it all. Not yet called by ``client.py`` (see README, Cluster mode).
"""

from __future__ import annotations

import asyncio

import asyncpg


class SharedRateLimit:
    """``await acquire()`` returns when this node may make one call (``rate`` per second)."""

    def __init__(self, pool: asyncpg.Pool, name: str, rate: float, burst: float) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self._pool = pool
        self._name = name
        self._rate = rate
        self._burst = burst

    async def try_acquire(self) -> float:
        """Take a token if one is there (0.0), else the seconds until the next one."""
        async with self._pool.acquire() as connection, connection.transaction():
            # The row lock makes refill-and-take one step for all nodes.
            row = await connection.fetchrow(
                """SELECT least($2, tokens + $3 * extract(epoch FROM now() - updated_at))
                          AS available
                   FROM bridge_rate_buckets WHERE name = $1 FOR UPDATE""",
                self._name,
                self._burst,
                self._rate,
            )
            if row is None:
                created = await connection.fetchval(
                    """INSERT INTO bridge_rate_buckets (name, tokens, updated_at)
                       VALUES ($1, $2, now()) ON CONFLICT (name) DO NOTHING RETURNING 1""",
                    self._name,
                    self._burst - 1,
                )
                return 0.0 if created else await self.try_acquire()  # another node made it
            available = float(row["available"])
            taken = 1.0 if available >= 1 else 0.0
            await connection.execute(
                "UPDATE bridge_rate_buckets SET tokens = $2, updated_at = now() WHERE name = $1",
                self._name,
                available - taken,
            )
        return 0.0 if taken else (1 - available) / self._rate

    async def acquire(self) -> None:
        # Polls the shared row: another node's call, not an event here, frees the token.
        wait = await self.try_acquire()
        while wait > 0:
            await asyncio.sleep(wait)
            wait = await self.try_acquire()
