"""Each charger's security row, read from the database once and kept until it changes.

The handshake guard needs the row at every upgrade; in a reconnect storm that was one
database round trip per charger before it could even say hello. The row changes only
through our own writes (``CredentialFlows``, the guard's promotions), and each of them
calls ``invalidate(charge_point_id)`` right after its write. A cluster has to forward
those calls to its other nodes (the ``Invalidations`` protocol is the seam for that).

A read that overlapped an invalidation is answered but not kept, so a stale row never
lands in the cache after the write that outdated it.
"""

from __future__ import annotations

from typing import Protocol

import asyncpg

from csms.db import security as db
from csms.db.security import SecurityRow


class Invalidations(Protocol):
    """Who must hear that a charger's security row changed."""

    def invalidate(self, charge_point_id: str) -> None: ...

    def invalidate_all(self) -> None: ...


class SecurityCache:
    """``await get(id)``: the row (or None for a charger we have no row for), cached."""

    def __init__(self, pool: asyncpg.Pool, max_entries: int = 200_000) -> None:
        self._pool = pool
        # Bounded: identities that were tried once and never again (typos, scanners)
        # must not grow it forever; the oldest entries go first.
        self._max_entries = max_entries
        self._rows: dict[str, SecurityRow | None] = {}
        self._generation = 0
        self.hits = 0
        self.misses = 0

    def cached(self, charge_point_id: str) -> bool:
        return charge_point_id in self._rows

    async def get(self, charge_point_id: str) -> SecurityRow | None:
        rows = self._rows
        if charge_point_id in rows:
            self.hits += 1
            return rows[charge_point_id]
        return await self.fetch(charge_point_id)

    async def fetch(self, charge_point_id: str) -> SecurityRow | None:
        """Read the row from the database (bypassing the cache) and keep it."""
        self.misses += 1
        generation = self._generation
        row = await db.fetch_security(self._pool, charge_point_id)
        if generation == self._generation:
            rows = self._rows
            if len(rows) >= self._max_entries:
                del rows[next(iter(rows))]
            rows[charge_point_id] = row
        return row

    def invalidate(self, charge_point_id: str) -> None:
        self._generation += 1
        self._rows.pop(charge_point_id, None)

    def invalidate_all(self) -> None:
        self._generation += 1
        self._rows.clear()

    def __len__(self) -> int:
        return len(self._rows)
