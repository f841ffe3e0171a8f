"""Each charger's security row, read from the database once and kept until it changes.

The handshake guard needs the row at every upgrade; in a reconnect storm that was one
database round trip per charger before it could even say hello. The row changes only
through our own writes (``CredentialFlows``, the guard's promotions), and each of them
calls ``invalidate(charge_point_id)`` right after its write. ``share(invalidations)``
(wired by ``csms/app.py``) makes every such call reach the other nodes of a cluster as
topic ``security``: theirs ``forget`` the row (or everything, after NATS came back) and
read it again on the charger's next upgrade.

A read that overlapped an invalidation is answered but not kept, so a stale row never
lands in the cache after the write that outdated it.

``preload()`` (at start) reads every charger that has security settings in one query;
from then on a charger missing from the cache is known to have none (a first-contact
storm of unknown chargers then costs no reads at all), and an invalidated one is marked
stale, to be read again on its next upgrade.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

import asyncpg

from csms.cluster.invalidation import Invalidations, channel
from csms.db import security as db
from csms.db.security import SecurityRow

_STALE: Final = object()  # preloaded mode: invalidated, read again on next use
_NOTHING = SecurityRow(None, None, None, None)


class SecurityCache:
    """``await get(id)``: the row (or None for a charger we have no row for), cached."""

    def __init__(self, pool: asyncpg.Pool, max_entries: int = 200_000) -> None:
        self._pool = pool
        # Bounded: identities that were tried once and never again (typos, scanners)
        # must not grow it forever; the oldest entries go first.
        self._max_entries = max_entries
        self._rows: dict[str, SecurityRow | object | None] = {}
        # True after preload(): absent means "no security settings", never "unknown".
        self._complete = False
        self._generation = 0
        self.hits = 0
        self.misses = 0
        self._tell_others: Callable[[str], None] = lambda _charge_point_id: None

    def share(self, invalidations: Invalidations) -> None:
        """Tell the other nodes of every local change, and forget what they change."""
        self._tell_others = channel(invalidations, "security", self.forget)

    def forget(self, charge_point_id: str | None) -> None:
        """Another node changed this charger's row (``None``: maybe any row)."""
        if charge_point_id is None:
            self.invalidate_all()
        else:
            self._drop(charge_point_id)

    async def preload(self) -> None:
        """Cache every charger with security settings; absent ones then need no read."""
        generation = self._generation
        loaded = await db.fetch_all_security(self._pool)
        if generation != self._generation:
            return  # a write raced the load: stay in per-charger mode
        self._rows = dict(loaded)
        self._complete = True

    def cached(self, charge_point_id: str) -> bool:
        row = self._rows.get(charge_point_id, None if self._complete else _STALE)
        return row is not _STALE

    async def get(self, charge_point_id: str) -> SecurityRow | None:
        row = self._rows.get(charge_point_id, None if self._complete else _STALE)
        if row is _STALE:
            return await self.fetch(charge_point_id)
        self.hits += 1
        return row  # type: ignore[return-value]

    async def fetch(self, charge_point_id: str) -> SecurityRow | None:
        """Read the row from the database (bypassing the cache) and keep it."""
        self.misses += 1
        generation = self._generation
        row = await db.fetch_security(self._pool, charge_point_id)
        if generation == self._generation:
            rows = self._rows
            if self._complete:
                # Complete: absent already means "none"; only real settings are kept.
                if row is None or row == _NOTHING:
                    rows.pop(charge_point_id, None)
                else:
                    rows[charge_point_id] = row
                return row
            if len(rows) >= self._max_entries:
                del rows[next(iter(rows))]
            rows[charge_point_id] = row
        return row

    def invalidate(self, charge_point_id: str) -> None:
        """This node wrote the charger's row: drop ours, and the other nodes' copies."""
        self._drop(charge_point_id)
        self._tell_others(charge_point_id)

    def _drop(self, charge_point_id: str) -> None:
        self._generation += 1
        if self._complete:
            self._rows[charge_point_id] = _STALE
        else:
            self._rows.pop(charge_point_id, None)

    def invalidate_all(self) -> None:
        """Forget everything (back to one read per charger until the next preload)."""
        self._generation += 1
        self._rows.clear()
        self._complete = False

    def __len__(self) -> int:
        return len(self._rows)
