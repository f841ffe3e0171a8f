"""Wiring and lifecycle: database, writers, ports, OCPP listener, plug-ins, HTTP, shutdown.

README "How it is wired" draws this; ``csms/ports.py`` lists each port's two sides.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import uuid
from collections.abc import Callable, Coroutine, Iterator, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import asyncpg
import structlog
import uvicorn
from fastapi import APIRouter

from csms import plugins
from csms.config import Settings
from csms.db import charge_points, id_tags
from csms.db.batch import BatchWriter, GroupCommit
from csms.db.charge_points import Presence, flush_boots, flush_new_charge_points
from csms.db.connectors import flush_statuses
from csms.db.embedded import EmbeddedPostgres
from csms.db.meter_values import flush_meter_values
from csms.db.migrate import migrate
from csms.db.pool import create_pool
from csms.db.transactions import flush_starts, flush_stops
from csms.domain.events import EventBus, EventPort
from csms.http.app import HttpServices, create_app
from csms.http.dashboard import DashboardFeed
from csms.log import bind_process
from csms.metrics import Metrics
from csms.ocpp16.commands import CommandService
from csms.ocpp16.context import Services
from csms.ocpp16.errors import CommandError
from csms.ocpp16.server import OcppServer
from csms.plugins import DashboardPanel, PluginContext, RunningPlugin
from csms.ports import LocalPresence, PresencePort, Registrations
from csms.registrations import RegistrationBook
from csms.security.service import SecurityService

if TYPE_CHECKING:
    from csms.cluster.invalidation import Invalidations
    from csms.cluster.node import ClusterNode

log = structlog.get_logger()

EMBEDDED_DATABASE = "csms"


def utc_now() -> datetime:
    return datetime.now(UTC)


class _EmbeddedUvicorn(uvicorn.Server):
    # We own the process's signals (``csms serve``); uvicorn must not replace them.
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def listening_socket(host: str, port: int, reuse_port: bool) -> socket.socket:
    """A bound TCP socket; with ``reuse_port`` the workers of ``--workers N`` share it
    (SO_REUSEPORT: the kernel spreads new connections over them)."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        # Name the address, as asyncio does for the OCPP listener: "[Errno 98]
        # Address already in use" alone does not say which port.
        raise OSError(
            exc.errno,
            f"error while attempting to bind on address {(host, port)!r}: "
            f"{(exc.strerror or '').lower()}",
        ) from exc
    return sock


async def resolve_database(settings: Settings) -> tuple[str, EmbeddedPostgres | None]:
    """The DSN to use: the configured one, or a database on an embedded server."""
    if settings.database_url:
        return settings.database_url, None
    embedded = EmbeddedPostgres(settings.data_dir)
    admin_dsn = await asyncio.to_thread(embedded.start)
    connection = await asyncpg.connect(admin_dsn)
    try:
        exists = await connection.fetchval(
            "SELECT 1 FROM pg_database WHERE datname = $1", EMBEDDED_DATABASE
        )
        if not exists:
            await connection.execute(f'CREATE DATABASE "{EMBEDDED_DATABASE}"')
    finally:
        await connection.close()
    return embedded.dsn_for(EMBEDDED_DATABASE), embedded


async def migrate_database(
    dsn: str, plugin_settings: Mapping[str, object | None] | None = None
) -> list[str]:
    """The core's migrations, then those of the plug-ins (default: every installed one)."""
    connection = await asyncpg.connect(dsn)
    try:
        return await migrate(connection, plugins.migration_packages(plugin_settings))
    finally:
        await connection.close()


def _cluster_node(settings: Settings, node_id: str) -> ClusterNode | None:
    if settings.nats_url is None:
        return None
    # Imported only in cluster mode: one process does not load the NATS client at all.
    from csms.cluster.node import ClusterNode

    return ClusterNode(settings.nats_url, node_id, settings.node_timeout)


def _invalidations(cluster: ClusterNode | None) -> Invalidations:
    from csms.cluster.invalidation import LocalInvalidations

    return LocalInvalidations() if cluster is None else cluster.invalidations


class CentralSystem:
    """The whole central system in one process: ``start``, then ``stop``.

    The wiring, in the order ``start`` does it: database and migrations (the core's, then
    the plug-ins'); the hot writers; the ports, each in-process or NATS (``csms/ports.py``
    has the table); the OCPP server; the security service; the plug-ins, each handed a
    ``PluginContext`` of ports; the HTTP app, each router handed the ports it uses.
    """

    def __init__(self, settings: Settings, clock: Callable[[], datetime] = utc_now) -> None:
        self.settings = settings
        self.clock = clock
        self.node_id = f"{socket.gethostname()}-{uuid.uuid4().hex[:8]}"
        bind_process(node_id=self.node_id)
        # Ports with two implementations: in-process, or NATS when CSMS_NATS_URL is set.
        self.cluster = _cluster_node(settings, self.node_id)
        self.events: EventPort = EventBus() if self.cluster is None else self.cluster.events
        self.invalidations: Invalidations = _invalidations(self.cluster)
        # Built here, not at start, so the OCPP side and the plug-ins can be handed it.
        self.metrics = Metrics()
        self.dashboard_feed: DashboardFeed | None = None
        # Started plug-ins by entry-point name; see csms/plugins.py.
        self.plugins: dict[str, RunningPlugin] = {}
        self._embedded: EmbeddedPostgres | None = None
        self._http: _EmbeddedUvicorn | None = None
        self._http_task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(
        self,
        *,
        ocpp_sock: socket.socket | None = None,
        http_sock: socket.socket | None = None,
    ) -> None:
        settings = self.settings
        self._plugins = plugins.configured(settings.plugins)
        self.dsn, self._embedded = await resolve_database(settings)
        await migrate_database(self.dsn, settings.plugins)
        self.pool = await create_pool(self.dsn)
        if self.cluster is not None:
            await self.cluster.connect()
            await self.cluster.join(self.pool)
            self.presence: Presence = self.cluster.make_presence(self.pool)
        else:
            self.presence = Presence(self.pool, self.node_id)
        # One group commit for all hot writers: what arrives together commits together.
        group = GroupCommit("hot_writes", self.pool, gather_s=settings.commit_gather_ms / 1000)
        self.new_charge_points = BatchWriter(
            "new_charge_points", self.pool, flush_new_charge_points, max_rows=5000, group=group
        )
        self.boots = BatchWriter("boots", self.pool, flush_boots, max_rows=1000, group=group)
        rows = settings.write_batch_rows
        self.statuses = BatchWriter(
            "statuses", self.pool, flush_statuses, max_rows=rows, group=group
        )
        self.meter_values = BatchWriter(
            "meter_values", self.pool, flush_meter_values, max_rows=rows, group=group
        )
        # After the meter values: a start closing a stale transaction sees its last reading.
        self.starts = BatchWriter("starts", self.pool, flush_starts, max_rows=500, group=group)
        self.stops = BatchWriter("stops", self.pool, flush_stops, max_rows=500, group=group)
        for writer in self._writers:
            writer.start()
        self.presence.start()
        if self.cluster is None:
            await self._mark_all_disconnected()  # in a cluster, dead nodes' chargers lapse
        self.services = Services(
            settings=settings,
            pool=self.pool,
            clock=self.clock,
            events=self.events,
            presence=self.presence,
            boots=self.boots,
            statuses=self.statuses,
            meter_values=self.meter_values,
            new_charge_points=self.new_charge_points,
            starts=self.starts,
            stops=self.stops,
            registrations=await charge_points.load_registrations(self.pool),
            metrics=self.metrics,
            connector_statuses=await charge_points.load_connector_statuses(self.pool),
        )
        self.ocpp = OcppServer(self.services)
        # The handshake's security rows: a change on any node reaches every node's cache.
        self.ocpp.guard.cache.share(self.invalidations)
        self.metrics.watch_system(self.pool, lambda: len(self.ocpp.connections))
        self._wire_cluster_metrics()
        self.dashboard_feed = DashboardFeed(self.events)  # before the listener: miss nothing
        self.dashboard_feed.start()
        # The command port: this process's registry, or "local socket, else route".
        locator = self.ocpp if self.cluster is None else await self.cluster.start(self.ocpp)
        self.commands = CommandService(
            locator, self.pool, self.clock, settings.command_timeout, metrics=self.metrics
        )
        # The presence port: who holds which charger, here or (in a cluster) anywhere.
        self.ownership: PresencePort = self._presence_port()
        self.registrations: Registrations = RegistrationBook(
            self.pool,
            self.services.registrations,
            self.invalidations,
            held_here=lambda charge_point_id: self.ocpp.find(charge_point_id) is not None,
            accepted=lambda charge_point_id: self._spawn(self._trigger_boot(charge_point_id)),
        )
        self.security = SecurityService(
            settings,
            self.pool,
            self.events,
            self.commands,
            self.ocpp.guard,
            self.ownership.connected_anywhere,
            self.clock,
        )
        self.security.start()
        await self._start_plugins()
        if ocpp_sock is None and settings.reuse_port:
            ocpp_sock = listening_socket(settings.ocpp_host, settings.ocpp_port, True)
        await self.ocpp.start(settings.ocpp_host, settings.ocpp_port, sock=ocpp_sock)
        await self._start_http(http_sock)
        log.info(
            "csms.started", node_id=self.node_id, ocpp_port=self.ocpp.port, http_port=self.http_port
        )

    def _presence_port(self) -> PresencePort:
        if self.cluster is None:
            return LocalPresence(self.node_id, self.ocpp)
        from csms.cluster.node import ClusterPresenceView

        return ClusterPresenceView(self.cluster, self.ocpp)

    async def _start_plugins(self) -> None:
        async def register_id_tag(id_tag: str, status: str) -> None:
            await id_tags.upsert(self.pool, id_tag, status=status)

        context = PluginContext(
            pool=self.pool,
            events=self.events,
            commands=self.commands,
            presence=self.ownership,
            register_id_tag=register_id_tag,
            clock=self.clock,
            metrics=self.metrics,
            cluster=self.cluster,
        )
        for name, (plugin, plugin_settings) in self._plugins.items():
            if plugin_settings is not None:
                self.plugins[name] = await plugin.start(plugin_settings, context)
                log.info("plugin.started", plugin=name)

    @property
    def _writers(self) -> tuple[BatchWriter[Any], ...]:
        return (
            self.new_charge_points,
            self.boots,
            self.statuses,
            self.meter_values,
            self.starts,
            self.stops,
        )

    async def _mark_all_disconnected(self) -> None:
        # Sockets do not survive a restart; whatever was "connected" is not any more.
        await self.pool.execute(
            "UPDATE charge_points SET connected = false, connected_node = NULL WHERE connected"
        )

    async def _start_http(self, sock: socket.socket | None) -> None:
        if sock is None:
            sock = listening_socket(
                self.settings.http_host, self.settings.http_port, self.settings.reuse_port
            )
        services = HttpServices(
            pool=self.pool,
            clock=self.clock,
            metrics=self.metrics,
            health=self.health,
            commands=self.commands,
            presence=self.ownership,
            registrations=self.registrations,
            security=self.security,
            unknown_chargers=self.settings.unknown_chargers,
            dashboard_feed=self.dashboard_feed,
            transaction_links=[
                plugin.transaction_link
                for plugin, _ in self._plugins.values()
                if plugin.transaction_link is not None
            ],
        )
        routers: list[APIRouter] = []
        panels: dict[str, DashboardPanel] = {}
        tags: list[dict[str, str]] = []
        for name, (plugin, _) in self._plugins.items():
            tags += plugin.openapi_tags
            running = self.plugins.get(name)
            if running is None:
                routers += plugin.routes_when_off()  # off: its routes say how to turn it on
                continue
            routers += running.routers()
            panels.update(running.dashboard_panels())
        config = uvicorn.Config(
            create_app(services, routers, panels, tags),
            log_config=None,
            access_log=False,
            lifespan="off",
        )
        self._http = _EmbeddedUvicorn(config)
        self._http_sock = sock
        self._http_task = asyncio.create_task(self._http.serve(sockets=[sock]), name="http")
        while not self._http.started:
            if self._http_task.done():
                await self._http_task  # raises what stopped it
                raise RuntimeError("HTTP server stopped during start-up")
            await asyncio.sleep(0.01)

    @property
    def http_port(self) -> int:
        return self._http_sock.getsockname()[1]

    async def health(self) -> dict[str, bool]:
        try:
            database = await self.pool.fetchval("SELECT 1", timeout=2) == 1
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError):
            database = False
        checks = {"database": database, "ocpp_listener": self.ocpp.listening}
        if self.cluster is not None:
            checks["nats"] = self.cluster.connected
        return checks

    async def set_registration(self, charge_point_id: str, status: str) -> bool:
        """Operator decision on a charger's registration (the registration port's)."""
        return await self.registrations.set(charge_point_id, status)

    def connected_anywhere(self, charge_point_id: str) -> bool:
        """Connected to this process, or (in a cluster) to any live node."""
        return self.ownership.connected_anywhere(charge_point_id)

    def _wire_cluster_metrics(self) -> None:
        from csms.cluster.node import register_metrics

        cluster = self.cluster
        register_metrics(
            self.metrics.registry, lambda: 1 if cluster is None else cluster.live_nodes()
        )

    async def _trigger_boot(self, charge_point_id: str) -> None:
        try:
            await self.commands.send(
                charge_point_id, "TriggerMessage", {"requestedMessage": "BootNotification"}
            )
        except CommandError:
            pass  # logged by the command service; the charger will boot on its own schedule

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("csms.task_failed", exc_info=task.exception())

    async def stop(self) -> None:
        if self._http is not None:
            self._http.should_exit = True
            if self._http_task is not None:
                await self._http_task
        if hasattr(self, "ocpp"):
            await self.ocpp.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.dashboard_feed is not None:
            await self.dashboard_feed.close()
        for name, running in reversed(self.plugins.items()):
            try:
                await running.close()
            except Exception:  # one plug-in failing to stop must not keep the rest running
                log.exception("plugin.close_failed", plugin=name)
        self.plugins.clear()
        if hasattr(self, "security"):
            await self.security.close()
        if hasattr(self, "pool"):
            for writer in self._writers:
                await writer.close()
            await self.presence.close()
            if self.cluster is not None:
                await self.cluster.close()
            await self.pool.close()
        elif self.cluster is not None:
            await self.cluster.close()
        if self._embedded is not None:
            await asyncio.to_thread(self._embedded.close)
        log.info("csms.stopped")
