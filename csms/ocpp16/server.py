"""The OCPP WebSocket listener: handshake, identity, subprotocol, connection registry.

Keepalive is one sweeper task for all connections rather than websockets' task
per connection: it pings chargers that have been quiet for ``ws_ping_interval``
and drops only those silent (no frame, no pong) for ``ws_ping_timeout``, since
some firmware never answers pings yet is perfectly alive (ocpp-field-notes.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Sequence
from typing import Any, cast

import structlog
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed, NegotiationError
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol

from csms.db.charge_points import NewChargePoint
from csms.domain import registration
from csms.domain.events import ChargePointConnected, ChargePointDisconnected
from csms.ocpp16.connection import ChargePointConnection
from csms.ocpp16.context import Services
from csms.ocpp16.normalize import identity_from_path
from csms.ocpp16.wire import OcppSocket, remote
from csms.security.handshake import HandshakeGuard
from csms.security.tls import server_context

log = structlog.get_logger()

OCPP16 = "ocpp1.6"
# A larger frame closes the connection with 1009 (RFC 6455 7.4.1): the largest 1.6
# messages (a full local list, a CSR, a long MeterValues) are tens of kilobytes.
MAX_FRAME_BYTES = 1 << 20


def select_subprotocol(
    connection: ServerConnection, subprotocols: Sequence[Subprotocol]
) -> Subprotocol:
    # Old firmware offers "OCPP1.6" or "ocpp1.6, ocpp1.5": match case-insensitively
    # and answer with the charger's own spelling, which is what it will accept.
    for offered in subprotocols:
        if offered.strip().lower() == OCPP16:
            return offered
    log.warning(
        "ocpp.handshake_refused",
        reason="no_ocpp16_subprotocol",
        offered=list(subprotocols),
        path=connection.request.path if connection.request else None,
        remote=remote(connection),
    )
    raise NegotiationError("the ocpp1.6 subprotocol is required")


def process_request(connection: ServerConnection, request: Request) -> Response | None:
    if identity_from_path(request.path) is None:
        log.warning("ocpp.handshake_refused", reason="no_identity", path=request.path)
        return connection.respond(404, "The URL must end with the charge point identity\n")
    return None


LISTEN_BACKLOG = 16384
OPEN_TIMEOUT_S = 60.0
_SOMAXCONN = "/proc/sys/net/core/somaxconn"


def _warn_if_backlog_capped() -> None:
    # The kernel silently caps listen(2)'s backlog at net.core.somaxconn.
    with contextlib.suppress(OSError, ValueError):
        with open(_SOMAXCONN) as limit:
            somaxconn = int(limit.read())
        if somaxconn < LISTEN_BACKLOG:
            log.debug("csms.listen_backlog_capped", backlog=somaxconn, wanted=LISTEN_BACKLOG)


class OcppServer:
    """Accepts charger connections and keeps the registry of who is connected here."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.connections: dict[str, ChargePointConnection] = {}
        self._server: Server | None = None
        self._tls_server: Server | None = None
        # Security profiles 1-3: checked at the upgrade, before any OCPP message.
        metrics = services.metrics
        self.guard = HandshakeGuard(
            services.pool,
            services.settings.security_profile,
            on_refused=lambda reason: metrics.auth_failed("ocpp", reason),
        )
        self._sweeper: asyncio.Task[None] | None = None
        self._closers: set[asyncio.Task[None]] = set()

    def find(self, charge_point_id: str) -> ChargePointConnection | None:
        return self.connections.get(charge_point_id)

    @property
    def port(self) -> int:
        assert self._server is not None
        return self._server.sockets[0].getsockname()[1]

    @property
    def listening(self) -> bool:
        return self._server is not None and self._server.is_serving()

    async def start(self, host: str, port: int, sock: socket.socket | None = None) -> None:
        # Before the first upgrade: a reconnecting fleet is then checked from memory.
        await self.guard.cache.preload()
        options: dict[str, Any] = {
            "subprotocols": [Subprotocol(OCPP16)],
            "select_subprotocol": select_subprotocol,
            "process_request": self._process_request,
            # Our own sweeper does keepalive (see module docstring).
            "ping_interval": None,
            # permessage-deflate costs ~100 KB of zlib state per connection.
            "compression": None,
            "max_size": MAX_FRAME_BYTES,
            # asyncio's default backlog of 100 overflows when a fleet reconnects at once
            # (measured: 10,000 chargers took 56 s instead of seconds); the kernel then
            # drops SYNs and chargers wait on 1, 2, 4, 8 s retransmit timers.
            "backlog": LISTEN_BACKLOG,
            # websockets' default of 10 s silently aborts handshakes still queued behind
            # a storm (measured: 5 of 16 waves of 10,000 lost 495-1,680 chargers);
            # OcppSocket logs every one that is dropped all the same.
            "open_timeout": OPEN_TIMEOUT_S,
            "create_connection": OcppSocket,
            "server_header": None,
        }
        _warn_if_backlog_capped()
        if sock is not None:
            self._server = await serve(self._handle, sock=sock, **options)
        else:
            self._server = await serve(self._handle, host, port, **options)
        _enable_tcp_keepalive(self._server)
        self._sweeper = asyncio.create_task(self._sweep(), name="ocpp-keepalive")
        log.info("ocpp.listening", host=host, port=self.port)
        settings = self.services.settings
        if settings.tls_cert is not None and settings.tls_key is not None:
            # Profiles 2 and 3 (wss); runs beside the ws listener.
            ssl = server_context(settings.tls_cert, settings.tls_key, settings.tls_client_ca)
            self._tls_server = await serve(
                self._handle,
                host,
                settings.tls_port,
                ssl=ssl,
                reuse_port=settings.reuse_port,  # csms serve --workers N share it
                **options,
            )
            _enable_tcp_keepalive(self._tls_server)
            log.info("ocpp.listening", host=host, port=self.tls_port, tls=True)

    @property
    def tls_port(self) -> int | None:
        if self._tls_server is None:
            return None
        return self._tls_server.sockets[0].getsockname()[1]

    async def _process_request(
        self, connection: ServerConnection, request: Request
    ) -> Response | None:
        try:
            refused = process_request(connection, request)
            if refused is not None:
                return refused
            identity = identity_from_path(request.path)
            assert identity is not None
            return await self.guard.check(connection, request, identity)
        except Exception:
            # Ours to log as one JSON event, not websockets' (a multi-line traceback).
            log.exception("ocpp.handshake_failed", path=request.path, remote=remote(connection))
            return connection.respond(503, "The central system could not check this charger\n")

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        for server in (self._server, self._tls_server):
            if server is not None:
                server.close()
                await server.wait_closed()
        for task in list(self._closers):
            task.cancel()
        await asyncio.gather(*self._closers, return_exceptions=True)

    async def _handle(self, ws: ServerConnection) -> None:
        socket = cast(OcppSocket, ws)  # create_connection=OcppSocket
        # This task is websockets' for the whole connection: when it is done, so is
        # websockets, and the socket's cycles can go (OcppSocket.release).
        task = asyncio.current_task()
        if task is not None:
            task.add_done_callback(lambda _: socket.release())
        # No exception may reach websockets' handler wrapper: it would log a multi-line
        # traceback on stderr and close with 1011 without a word in our log.
        try:
            await self._serve_charger(socket)
        except Exception:
            log.exception(
                "ocpp.connection_failed",
                path=ws.request.path if ws.request else None,
                remote=remote(ws),
            )
            with contextlib.suppress(Exception):
                await ws.close(1011, "internal error")

    async def _serve_charger(self, ws: OcppSocket) -> None:
        assert ws.request is not None
        charge_point_id = identity_from_path(ws.request.path)
        assert charge_point_id is not None  # process_request refused the others
        services = self.services
        now = services.clock()
        status = services.registrations.get(charge_point_id)
        if status is None:
            # First contact: decide from the policy now and register in the next batch,
            # rather than a round trip per new charger before it may talk.
            status = registration.initial_status(services.settings.unknown_chargers)
            services.registrations[charge_point_id] = status
            services.new_charge_points.submit([NewChargePoint(charge_point_id, status, now)])
        connection = ChargePointConnection(charge_point_id, ws, services, status)
        previous = self.connections.get(charge_point_id)
        self.connections[charge_point_id] = connection
        bound = connection.log
        if previous is not None:
            # Half-open sockets: the charger reconnected before we noticed the old one died.
            bound.info("ocpp.connection_replaced", previous_remote=remote(previous.ws))
            self._close_later(previous.ws, 4000, "replaced by a newer connection")
        bound.info(
            "ocpp.connected",
            remote=remote(ws),
            subprotocol=ws.subprotocol,
            registration_status=status,
            path=ws.request.path,
        )
        services.presence.connected(charge_point_id, now)
        services.events.publish(ChargePointConnected(charge_point_id, now))
        try:
            await connection.serve()
        finally:
            if self.connections.get(charge_point_id) is connection:
                del self.connections[charge_point_id]
                at = services.clock()
                services.presence.disconnected(charge_point_id, at)
                services.events.publish(ChargePointDisconnected(charge_point_id, at))
            bound.info("ocpp.disconnected", code=ws.close_code, reason=ws.close_reason or None)

    def _close_later(self, ws: ServerConnection, code: int, reason: str) -> None:
        task = asyncio.create_task(ws.close(code, reason))
        self._closers.add(task)
        task.add_done_callback(self._closers.discard)

    async def _sweep(self) -> None:
        settings = self.services.settings
        loop = asyncio.get_running_loop()
        period = min(settings.ws_ping_interval, settings.ws_ping_timeout) / 2
        while True:
            await asyncio.sleep(period)
            now = loop.time()
            for connection in list(self.connections.values()):
                quiet = now - connection.last_rx
                if quiet >= settings.ws_ping_timeout:
                    connection.log.warning("ocpp.connection_dead", silent_seconds=round(quiet))
                    # No closing handshake: a peer that answers nothing will not answer
                    # a close frame either, and would hold its identity for close_timeout.
                    connection.ws.transport.abort()
                elif quiet >= settings.ws_ping_interval:
                    await _ping(connection, loop)


async def _ping(connection: ChargePointConnection, loop: asyncio.AbstractEventLoop) -> None:
    def pong(_waiter: object) -> None:
        connection.last_rx = loop.time()

    try:
        waiter = await connection.ws.ping()
    except ConnectionClosed:
        return
    # websockets types ping() as Awaitable; it is a Future, which ensure_future returns as is.
    asyncio.ensure_future(waiter).add_done_callback(pong)


def _enable_tcp_keepalive(server: Server) -> None:
    # Lets the kernel notice a peer that vanished without a FIN, independently of pings.
    # Set on the listening sockets: Linux copies SO_KEEPALIVE to every accepted one,
    # which spares a system call and a socket wrapper per connection in a storm.
    for sock in server.sockets:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
