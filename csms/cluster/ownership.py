"""The presence/ownership port over NATS: who holds each charger, fenced by an epoch.

On connect a node claims the charger: ``charger_ownership.epoch`` is bumped atomically in
PostgreSQL (claims are batched, so a reconnect storm costs one statement per few
milliseconds, not one per charger), the node subscribes to the charger's command subject
and announces ``(node, epoch)`` on its owner subject. A node holding the charger with an
older epoch closes its socket with 4000 (``ocpp.connection_replaced``). Every command is
checked against the epoch in PostgreSQL before it is sent, so a node that missed the
announcement (NATS away) refuses rather than talk on a stale socket; a periodic check of
all held epochs closes such sockets too.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import asyncpg
import structlog
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from csms.cluster.errors import Replaced
from csms.cluster.settle import subscriptions_settled
from csms.cluster.subjects import OWNERS, charger_from_token, command_subject, owner_subject
from csms.db.charge_points import Presence
from csms.ocpp16.errors import NotConnected

log = structlog.get_logger()

REPLACED_CODE = 4000
REPLACED_REASON = "replaced by a newer connection"
CLAIM_GATHER = 0.005  # seconds claims wait for company before one statement takes them all
RECHECK_INTERVAL = 5.0  # seconds between checks of every held epoch against PostgreSQL
DbErrors = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError)


class LocalConnection(Protocol):
    ws: Any

    async def call(
        self, action: str, payload: dict[str, Any], timeout: float
    ) -> dict[str, Any]: ...


class ConnectionRegistry(Protocol):
    def find(self, charge_point_id: str) -> Any: ...


@dataclass(slots=True)
class Holding:
    connection: Any
    epoch: int
    subscription: Subscription | None = None


_CLAIM = """
INSERT INTO charger_ownership (charge_point_id, epoch, node_id, claimed_at)
SELECT id, 1, $2, now() FROM unnest($1::text[]) AS u(id) ORDER BY id
ON CONFLICT (charge_point_id) DO UPDATE
    SET epoch = charger_ownership.epoch + 1, node_id = EXCLUDED.node_id, claimed_at = now()
RETURNING charge_point_id, epoch
"""

_RELEASE = """
UPDATE charger_ownership AS o SET node_id = NULL
FROM unnest($1::text[], $2::bigint[]) AS u(id, epoch)
WHERE o.charge_point_id = u.id AND o.epoch = u.epoch AND o.node_id = $3
"""

_SUPERSEDED = """
SELECT o.charge_point_id, o.node_id FROM charger_ownership AS o
JOIN unnest($1::text[], $2::bigint[]) AS u(id, epoch) ON o.charge_point_id = u.id
WHERE o.epoch > u.epoch
"""


class ClusterPresence(Presence):
    """``Presence`` plus ownership: the port the OCPP server calls on connect/disconnect."""

    def __init__(self, pool: asyncpg.Pool, node_id: str, interval: float = 1.0) -> None:
        super().__init__(pool, node_id, interval)
        self.node_id = node_id
        self.held: dict[str, Holding] = {}
        # Chargers other nodes announced holding: (node, epoch), for "connected anywhere".
        self.elsewhere: dict[str, tuple[str, int]] = {}
        self._live_nodes: Any = lambda: None
        self._claims: dict[str, list[asyncio.Future[int]]] = {}
        self._releases: list[tuple[str, int]] = []
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._owned: list[asyncio.Task[None]] = []
        self._nc: Client | None = None
        self._registry: ConnectionRegistry | None = None
        self._on_command: Any = None

    async def attach(
        self, nc: Client, registry: ConnectionRegistry, on_command: Any, live_nodes: Any
    ) -> None:
        """Start owning: ``on_command(msg)`` answers requests on held chargers' subjects;
        ``live_nodes()`` is the set of nodes alive (None: not known yet)."""
        self._nc, self._registry, self._on_command = nc, registry, on_command
        self._live_nodes = live_nodes
        await nc.subscribe(f"{OWNERS}.>", cb=self._announced)
        # Only then the record: an announcement is either read below or received.
        await subscriptions_settled(nc)
        # What was announced before we subscribed: the ownerships on record.
        for row in await self._pool.fetch(
            "SELECT charge_point_id, node_id, epoch FROM charger_ownership WHERE node_id <> $1",
            self.node_id,
        ):
            self.elsewhere.setdefault(row["charge_point_id"], (row["node_id"], row["epoch"]))
        self._owned.append(asyncio.create_task(self._claim_loop(), name="cluster-claims"))
        self._owned.append(asyncio.create_task(self._recheck_loop(), name="cluster-recheck"))

    # -- Presence port -----------------------------------------------------------------

    def connected(self, charge_point_id: str, at: Any) -> None:
        super().connected(charge_point_id, at)
        if self._registry is None:
            return
        connection = self._registry.find(charge_point_id)
        self._spawn(self._take(charge_point_id, connection))

    def disconnected(self, charge_point_id: str, at: Any) -> None:
        super().disconnected(charge_point_id, at)
        holding = self.held.pop(charge_point_id, None)
        if holding is not None:
            self._let_go(charge_point_id, holding)

    def reassert(self) -> None:
        """After this node was reaped alive: mark held chargers connected and ours again."""
        now = datetime.now(UTC)
        for charge_point_id, holding in self.held.items():
            Presence.connected(self, charge_point_id, now)
            self._spawn(self._reclaim(charge_point_id, holding.epoch))

    async def _reclaim(self, charge_point_id: str, epoch: int) -> None:
        await self._pool.execute(
            """UPDATE charger_ownership SET node_id = $3
               WHERE charge_point_id = $1 AND epoch = $2 AND node_id IS NULL""",
            charge_point_id,
            epoch,
            self.node_id,
        )

    def connected_anywhere(self, charge_point_id: str) -> bool:
        """Held here, or announced by a node that is alive and has not let it go."""
        if self._registry is not None and self._registry.find(charge_point_id) is not None:
            return True
        owner = self.elsewhere.get(charge_point_id)
        if owner is None:
            return False
        live = self._live_nodes()
        return live is None or owner[0] in live

    # -- fencing -----------------------------------------------------------------------

    async def fenced_call(
        self, charge_point_id: str, action: str, payload: dict[str, Any], timeout: float
    ) -> dict[str, Any]:
        """Send on the local socket, unless PostgreSQL says a newer connection holds it."""
        connection = self._registry.find(charge_point_id) if self._registry else None
        if connection is None:
            raise NotConnected(charge_point_id)
        holding = self.held.get(charge_point_id)
        if holding is not None and holding.connection is connection:
            current = await self._pool.fetchval(
                "SELECT epoch FROM charger_ownership WHERE charge_point_id = $1", charge_point_id
            )
            if current is not None and current > holding.epoch:
                self._replace(charge_point_id, holding, None)
                raise Replaced(charge_point_id)
        return await connection.call(action, payload, timeout)

    def epoch_of(self, charge_point_id: str) -> int | None:
        holding = self.held.get(charge_point_id)
        return None if holding is None else holding.epoch

    # -- internals ---------------------------------------------------------------------

    async def _take(self, charge_point_id: str, connection: Any) -> None:
        assert self._nc is not None and self._registry is not None
        epoch = await self._claim(charge_point_id)
        if self._registry.find(charge_point_id) is not connection:
            self._releases.append((charge_point_id, epoch))  # gone before the claim came back
            return
        previous = self.held.get(charge_point_id)
        subscription = previous.subscription if previous is not None else None
        holding = Holding(connection, epoch, subscription)
        self.held[charge_point_id] = holding
        if subscription is None:
            holding.subscription = await self._nc.subscribe(
                command_subject(charge_point_id), cb=self._on_command
            )
            if self.held.get(charge_point_id) is not holding:  # let go while subscribing
                await _unsubscribe(holding.subscription)
                return
        body = json.dumps({"node": self.node_id, "epoch": epoch}).encode()
        await self._nc.publish(owner_subject(charge_point_id), body)

    def _let_go(self, charge_point_id: str, holding: Holding) -> None:
        self._releases.append((charge_point_id, holding.epoch))
        self._wake.set()
        if self._nc is not None:
            body = {"node": self.node_id, "epoch": holding.epoch, "released": True}
            self._spawn(self._nc.publish(owner_subject(charge_point_id), json.dumps(body).encode()))
        if holding.subscription is not None:
            self._spawn(_unsubscribe(holding.subscription))

    def _replace(self, charge_point_id: str, holding: Holding, node: str | None) -> None:
        if self.held.get(charge_point_id) is holding:
            del self.held[charge_point_id]
        if holding.subscription is not None:
            self._spawn(_unsubscribe(holding.subscription))
            holding.subscription = None
        log.info(
            "ocpp.connection_replaced",
            charge_point_id=charge_point_id,
            epoch=holding.epoch,
            by_node=node,
        )
        self._spawn(holding.connection.ws.close(REPLACED_CODE, REPLACED_REASON))

    async def _announced(self, message: Msg) -> None:
        try:
            body = json.loads(message.data)
            node, epoch = str(body["node"]), int(body["epoch"])
        except (ValueError, KeyError, TypeError):
            return
        charge_point_id = charger_from_token(message.subject.split(".", 2)[2])
        if node == self.node_id:
            self.elsewhere.pop(charge_point_id, None)
            return
        known = self.elsewhere.get(charge_point_id)
        if body.get("released"):
            if known == (node, epoch):
                del self.elsewhere[charge_point_id]
            return
        if known is None or known[1] < epoch:
            self.elsewhere[charge_point_id] = (node, epoch)
        holding = self.held.get(charge_point_id)
        if holding is not None and holding.epoch < epoch:
            self._replace(charge_point_id, holding, node)

    async def _claim(self, charge_point_id: str) -> int:
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._claims.setdefault(charge_point_id, []).append(future)
        self._wake.set()
        return await future

    async def _claim_loop(self) -> None:
        while True:
            await self._wake.wait()
            await asyncio.sleep(CLAIM_GATHER)
            self._wake.clear()
            claims, self._claims = self._claims, {}
            releases, self._releases = self._releases, []
            try:
                await self._write(claims, releases)
            except DbErrors as exc:
                log.warning("cluster.claim_failed", error=str(exc), claims=len(claims))
                for key, futures in claims.items():
                    self._claims.setdefault(key, []).extend(futures)
                self._releases.extend(releases)
                await asyncio.sleep(0.5)
                self._wake.set()

    async def _write(
        self, claims: dict[str, list[asyncio.Future[int]]], releases: list[tuple[str, int]]
    ) -> None:
        async with self._pool.acquire() as connection:
            if claims:
                rows = await connection.fetch(_CLAIM, sorted(claims), self.node_id)
                for row in rows:
                    for future in claims[row["charge_point_id"]]:
                        if not future.done():
                            future.set_result(row["epoch"])
            if releases:
                await connection.execute(
                    _RELEASE, [r[0] for r in releases], [r[1] for r in releases], self.node_id
                )

    async def _recheck_loop(self) -> None:
        while True:
            await asyncio.sleep(RECHECK_INTERVAL)
            held = dict(self.held)
            if not held:
                continue
            try:
                rows = await self._pool.fetch(
                    _SUPERSEDED, list(held), [h.epoch for h in held.values()]
                )
            except DbErrors as exc:
                log.warning("cluster.recheck_failed", error=str(exc))
                continue
            for row in rows:
                holding = held[row["charge_point_id"]]
                self._replace(row["charge_point_id"], holding, row["node_id"])

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("cluster.ownership_task_failed", exc_info=task.exception())

    async def close(self) -> None:
        for task in self._owned:
            task.cancel()
        await asyncio.gather(*self._owned, return_exceptions=True)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        releases = self._releases + [(cp, h.epoch) for cp, h in self.held.items()]
        self.held.clear()
        if releases:
            with contextlib.suppress(*DbErrors):
                await self._pool.execute(
                    _RELEASE, [r[0] for r in releases], [r[1] for r in releases], self.node_id
                )
        await super().close()


async def _unsubscribe(subscription: Subscription) -> None:
    with contextlib.suppress(Exception):  # a closed connection has no subscription to drop
        await subscription.unsubscribe()
