"""Smartcar's limits shared by every node of a cluster, in PostgreSQL.

- ``SharedRateLimit``: the application's rate limit as one token bucket. Each node asks
  the bucket row before a Smartcar call; one locked read-and-update refills it for the
  time elapsed (on the database clock) and takes a token if more than the caller's
  reserve is left. The answer is how long to wait for the next token, so nodes share the
  rate instead of each spending it all.
- ``SharedHolds``: per-vehicle holds (``Retry-After``, an OEM's limit, the monthly cap).
  A 429 seen on one node holds that vehicle on every node until the same moment.

Used by ``ratelimit.RateLimiter`` when the bridge runs in a cluster; one process keeps
its bucket and holds in memory.
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
        self.size = burst

    async def try_acquire(self, reserve: float = 0.0) -> float:
        """Take a token if more than ``reserve`` stay (0.0), else the seconds until then."""
        async with self._pool.acquire() as connection, connection.transaction():
            # The row lock makes refill-and-take one step for all nodes.
            row = await connection.fetchrow(
                """SELECT least($2, tokens + $3 * extract(epoch FROM now() - updated_at))
                          AS available
                   FROM bridge_rate_buckets WHERE name = $1 FOR UPDATE""",
                self._name,
                self.size,
                self._rate,
            )
            if row is None:
                created = await connection.fetchval(
                    """INSERT INTO bridge_rate_buckets (name, tokens, updated_at)
                       VALUES ($1, $2, now()) ON CONFLICT (name) DO NOTHING RETURNING 1""",
                    self._name,
                    self.size - 1,
                )
                if created:
                    return 0.0
                available = None  # another node made it: read it again below
            else:
                available = float(row["available"])
                taken = 1.0 if available - 1.0 >= reserve else 0.0
                await connection.execute(
                    "UPDATE bridge_rate_buckets SET tokens = $2, updated_at = now() "
                    "WHERE name = $1",
                    self._name,
                    available - taken,
                )
        if available is None:
            return await self.try_acquire(reserve)
        return 0.0 if taken else (reserve + 1.0 - available) / self._rate

    async def acquire(self, reserve: float = 0.0) -> None:
        # Polls the shared row: another node's call, not an event here, frees the token.
        wait = await self.try_acquire(reserve)
        while wait > 0:
            await asyncio.sleep(wait)
            wait = await self.try_acquire(reserve)

    async def drain(self) -> None:
        """The service said the application's bucket is empty: empty it for every node."""
        await self._pool.execute(
            """INSERT INTO bridge_rate_buckets (name, tokens, updated_at) VALUES ($1, 0, now())
               ON CONFLICT (name) DO UPDATE SET tokens = 0, updated_at = now()""",
            self._name,
        )


class SharedHolds:
    """No call to a held vehicle from any node before its hold has passed."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def hold(self, vehicle_id: str, seconds: float, reason: str) -> None:
        """Hold ``vehicle_id`` for ``seconds`` from now (a longer hold already there stays)."""
        await self._pool.execute(
            """INSERT INTO bridge_vehicle_holds AS h (vehicle_id, until, reason)
               VALUES ($1, now() + make_interval(secs => $2), $3)
               ON CONFLICT (vehicle_id) DO UPDATE
                   SET until = EXCLUDED.until, reason = EXCLUDED.reason
                   WHERE h.until < EXCLUDED.until""",
            vehicle_id,
            seconds,
            reason,
        )

    async def held(self, vehicle_id: str) -> tuple[float, str] | None:
        """(seconds left, reason) while the vehicle is held, else None."""
        row = await self._pool.fetchrow(
            """SELECT extract(epoch FROM until - now()) AS left_s, reason
               FROM bridge_vehicle_holds WHERE vehicle_id = $1 AND until > now()""",
            vehicle_id,
        )
        return (float(row["left_s"]), row["reason"]) if row else None
