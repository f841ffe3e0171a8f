"""The operator's registration decisions, and every node's cache of them (a port).

Each node keeps every charger's registration in memory (``Services.registrations``), so a
connect or a boot costs no query. A decision taken here updates our copy and is broadcast
(topic ``registration``); a node told of one reads the charger's row again and, if it
holds that charger and it is now accepted, asks it to boot at once.
"""

from __future__ import annotations

from collections.abc import Callable

import asyncpg
import structlog

from csms.cluster.invalidation import Invalidations, channel
from csms.db import charge_points
from csms.domain import registration

log = structlog.get_logger()


class RegistrationBook:
    """``csms.ports.Registrations`` over the database and this node's cache."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        cache: dict[str, str],
        invalidations: Invalidations,
        held_here: Callable[[str], bool],
        accepted: Callable[[str], None],
    ) -> None:
        self._pool = pool
        self._cache = cache
        self._held_here = held_here
        # Called for a charger this node holds that was just accepted (here or elsewhere).
        self._accepted = accepted
        self._tell_others = channel(invalidations, "registration", self._changed_elsewhere)

    def cached(self, charge_point_id: str) -> str | None:
        return self._cache.get(charge_point_id)

    async def set(self, charge_point_id: str, status: str) -> bool:
        """Operator decision on a charger's registration; an accepted charger reboots now."""
        if not await charge_points.set_registration(self._pool, charge_point_id, status):
            return False
        self._cache[charge_point_id] = status
        self._tell_others(charge_point_id)
        log.info("ocpp.registration_changed", charge_point_id=charge_point_id, status=status)
        if status == registration.ACCEPTED and self._held_here(charge_point_id):
            # Ask it to boot again rather than wait up to its boot retry interval.
            self._accepted(charge_point_id)
        return True

    def forget(self, charge_point_id: str) -> None:
        """The charger was deleted: if it comes back it is an unknown charger again."""
        self._cache.pop(charge_point_id, None)
        self._tell_others(charge_point_id)

    async def _changed_elsewhere(self, charge_point_id: str | None) -> None:
        if charge_point_id is None:  # maybe anything changed (NATS was away): reload all
            self._cache.update(await charge_points.load_registrations(self._pool))
            return
        status = await charge_points.fetch_registration(self._pool, charge_point_id)
        if status is None:
            self._cache.pop(charge_point_id, None)
            return
        self._cache[charge_point_id] = status
        if status == registration.ACCEPTED and self._held_here(charge_point_id):
            self._accepted(charge_point_id)
