"""Which nodes are alive: a heartbeat row per node in PostgreSQL, on PostgreSQL's clock.

Every node beats every second and reaps the others: a node silent for ``node_timeout``
(a kill -9, a lost machine) is deleted, its chargers are shown disconnected and its
ownerships released, so nothing stays "connected" to a node that is gone. Using the
database's ``now()`` keeps machines with skewed clocks from reaping each other.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import asyncpg
import structlog

log = structlog.get_logger()

DbErrors = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError)

_BEAT = """
INSERT INTO cluster_nodes (node_id, started_at, last_seen_at) VALUES ($1, now(), now())
ON CONFLICT (node_id) DO UPDATE SET last_seen_at = now()
RETURNING (xmax = 0) AS inserted
"""

_REAP = """
WITH dead AS (
    DELETE FROM cluster_nodes WHERE last_seen_at < now() - make_interval(secs => $1)
    RETURNING node_id
), lapsed AS (
    UPDATE charge_points SET connected = false, connected_node = NULL
    WHERE connected_node IS NOT NULL
      AND connected_node NOT IN (SELECT node_id FROM cluster_nodes EXCEPT SELECT node_id FROM dead)
    RETURNING id
), released AS (
    UPDATE charger_ownership SET node_id = NULL
    WHERE node_id IS NOT NULL
      AND node_id NOT IN (SELECT node_id FROM cluster_nodes EXCEPT SELECT node_id FROM dead)
    RETURNING charge_point_id
)
SELECT (SELECT array_agg(node_id) FROM dead) AS dead, (SELECT count(*) FROM lapsed) AS lapsed
"""


class Membership:
    """This node's heartbeat, the reaping of dead nodes, and the count of live ones."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        node_id: str,
        node_timeout: float,
        interval: float = 1.0,
        on_rejoin: Callable[[], None] | None = None,
    ) -> None:
        self._pool = pool
        self._on_rejoin = on_rejoin
        self._node_id = node_id
        self._timeout = node_timeout
        self._interval = min(interval, node_timeout / 3)
        self._task: asyncio.Task[None] | None = None
        self.live_nodes = 1
        self.live: set[str] | None = None  # ids of the nodes alive at the last reap

    async def join(self) -> None:
        """Beat once before any charger is taken, then keep beating."""
        await self._pool.execute(_BEAT, self._node_id)
        await self.reap()
        self._task = asyncio.create_task(self._run(), name="cluster-membership")

    async def _run(self) -> None:
        beats = 0
        while True:
            await asyncio.sleep(self._interval)
            beats += 1
            try:
                if await self._pool.fetchval(_BEAT, self._node_id):
                    # Reaped while alive (a stall longer than the node timeout): the others
                    # showed our chargers disconnected, so say again that we hold them.
                    log.warning("cluster.node_rejoined")
                    if self._on_rejoin is not None:
                        self._on_rejoin()
                if beats % 2 == 0:
                    await self.reap()
            except DbErrors as exc:
                log.warning("cluster.heartbeat_failed", error=str(exc))

    async def reap(self) -> None:
        row = await self._pool.fetchrow(_REAP, self._timeout)
        assert row is not None
        if row["dead"] or row["lapsed"]:
            log.warning("cluster.nodes_lapsed", nodes=row["dead"] or [], chargers=row["lapsed"])
        rows = await self._pool.fetch(
            """SELECT node_id FROM cluster_nodes
               WHERE last_seen_at >= now() - make_interval(secs => $1)""",
            self._timeout,
        )
        self.live = {r["node_id"] for r in rows}
        self.live_nodes = len(self.live)

    async def leave(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(*DbErrors):
            await self._pool.execute("DELETE FROM cluster_nodes WHERE node_id = $1", self._node_id)
