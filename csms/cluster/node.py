"""One cluster node's NATS side, wired by ``csms.app`` when ``CSMS_NATS_URL`` is set.

Order matters and is kept here: connect to NATS (fail start-up with one line if it is
unreachable), join the membership before taking any charger, then own chargers, answer
commands, publish and consume events, and forget caches when told.
"""

from __future__ import annotations

import contextlib
from collections.abc import Collection
from typing import Any, Protocol

import asyncpg
import nats
import nats.errors
import structlog
from nats.aio.client import Client
from prometheus_client import CollectorRegistry, Gauge

from csms.cluster import codec
from csms.cluster.events import NatsEventBus
from csms.cluster.invalidation import NatsInvalidations
from csms.cluster.membership import Membership
from csms.cluster.ownership import ClusterPresence, ConnectionRegistry
from csms.cluster.routing import ClusterLocator
from csms.cluster.settle import subscriptions_settled
from csms.security.events import CertificateSigningRequested

log = structlog.get_logger()

# Certificate signing is a service consuming events too: its request travels like the rest.
codec.register(CertificateSigningRequested)


class NatsUnreachable(OSError):
    """NATS did not answer at start-up (``csms serve`` exits 1 with one line)."""


class ClusterNode:
    def __init__(self, nats_url: str, node_id: str, node_timeout: float) -> None:
        self.nats_url = nats_url
        self.node_id = node_id
        self.node_timeout = node_timeout
        self.events = NatsEventBus(node_id)
        self.invalidations = NatsInvalidations(node_id)
        self.nc: Client | None = None
        self.membership: Membership | None = None
        self.presence: ClusterPresence | None = None
        self.locator: ClusterLocator | None = None
        self._quiet = False

    async def connect(self) -> None:
        servers = [s.strip() for s in self.nats_url.split(",")]
        try:
            self.nc = await nats.connect(
                servers=servers,
                name=self.node_id,
                connect_timeout=3,
                allow_reconnect=True,
                max_reconnect_attempts=-1,
                reconnect_time_wait=0.5,
                error_cb=self._error,
                disconnected_cb=self._disconnected,
                reconnected_cb=self._reconnected,
            )
        except (nats.errors.Error, OSError) as exc:
            raise NatsUnreachable(f"NATS at {self.nats_url} is unreachable ({exc})") from None
        log.info("cluster.nats_connected", url=self._server_url())

    def make_presence(self, pool: asyncpg.Pool) -> ClusterPresence:
        self.presence = ClusterPresence(pool, self.node_id)
        return self.presence

    async def join(self, pool: asyncpg.Pool) -> None:
        self.membership = Membership(
            pool, self.node_id, self.node_timeout, on_rejoin=self._rejoined
        )
        await self.membership.join()

    async def start(self, registry: ConnectionRegistry) -> ClusterLocator:
        """Own chargers connecting to ``registry``; return the command locator."""
        assert self.nc is not None and self.presence is not None
        self.locator = ClusterLocator(registry, self.presence, self.nc)
        membership = self.membership
        await self.presence.attach(
            self.nc,
            registry,
            self.locator.on_command,
            lambda: membership.live if membership is not None else None,
        )
        await self.invalidations.start(self.nc)
        await self.events.start(self.nc)
        # Every subscription is on the server before chargers arrive.
        await subscriptions_settled(self.nc)
        return self.locator

    def connected_anywhere(self, charge_point_id: str) -> bool:
        return self.presence is not None and self.presence.connected_anywhere(charge_point_id)

    @property
    def connected(self) -> bool:
        return self.nc is not None and self.nc.is_connected

    def live_nodes(self) -> int:
        return self.membership.live_nodes if self.membership is not None else 0

    async def close(self) -> None:
        if self.locator is not None:
            await self.locator.close()
        await self.events.close()
        await self.invalidations.close()
        if self.membership is not None:
            await self.membership.leave()
        if self.nc is not None and not self.nc.is_closed:
            # Not drain(): our tasks are already stopped, and a pull subscription's drain
            # waits out its whole timeout. What we published is flushed by close().
            with contextlib.suppress(nats.errors.Error, OSError):
                await self.nc.flush(timeout=2)
            await self.nc.close()

    def _server_url(self) -> str:
        url = self.nc.connected_url if self.nc is not None else None
        return url.geturl() if url is not None else self.nats_url

    def _rejoined(self) -> None:
        if self.presence is not None:
            self.presence.reassert()

    async def _error(self, exc: Exception) -> None:
        # While NATS is away every reconnect attempt fails the same way: say it once.
        if self._quiet:
            return
        self._quiet = self.nc is not None and self.nc.is_reconnecting
        log.warning("cluster.nats_error", error=str(exc) or type(exc).__name__)

    async def _disconnected(self) -> None:
        log.warning("cluster.nats_disconnected")

    async def _reconnected(self) -> None:
        assert self.nc is not None
        self._quiet = False
        log.info("cluster.nats_reconnected", url=self._server_url())
        # What other nodes broadcast while we were away never came: forget everything.
        self.invalidations.forget_everything()


def register_metrics(registry: CollectorRegistry, live_nodes: Any) -> None:
    """``csms_cluster_nodes``: live nodes as this node sees them (1 for a single process)."""
    gauge = Gauge(
        "csms_cluster_nodes", "Nodes of the cluster whose heartbeat is current", registry=registry
    )
    gauge.set_function(live_nodes)


class _Registry(Protocol):
    @property
    def connections(self) -> Collection[str]: ...


class ClusterPresenceView:
    """The presence port in a cluster (``csms.ports.PresencePort``): this node's sockets,
    and whether any live node holds a charger (its ownership, seen through NATS)."""

    def __init__(self, node: ClusterNode, registry: _Registry) -> None:
        self._node = node
        self._registry = registry

    @property
    def node_id(self) -> str:
        return self._node.node_id

    def held_here(self) -> list[str]:
        return list(self._registry.connections)

    def connected_anywhere(self, charge_point_id: str) -> bool:
        return self._node.connected_anywhere(charge_point_id)
