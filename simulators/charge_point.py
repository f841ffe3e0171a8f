"""One simulated OCPP 1.6J charge point: the asyncio shell around the pure parts.

One task per charge point (plus websockets' own). The task owns the socket: it sends
queued frames, waits for the next frame or the next deadline, and dispatches. Public
methods (``plug_in``, ``tap`` …) only change state, queue messages and wake the task.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import structlog
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, WebSocketException
from websockets.frames import Frame, Opcode
from websockets.typing import Subprotocol

from simulators.cp_config import ConfigStore
from simulators.cp_connector import EV, Connector, Electrics
from simulators.cp_faults import Faults
from simulators.cp_profiles import ProfileSet
from simulators.cp_runtime import SimClock, Stats, backoff_delay
from simulators.cp_security import ChargerSecurity
from simulators.cp_session import Session

__all__ = ["EV", "ChargePoint", "Faults", "SimClock", "Stats"]

log = structlog.get_logger()


class _DeafConnection(ClientConnection):
    """Fault knob: firmware that never answers WebSocket pings (RFC 6455 5.5.2 ignored)."""

    def __init__(self, protocol: Any, **kwargs: Any) -> None:
        super().__init__(protocol, **kwargs)
        send_frame = protocol.send_frame

        def send_except_pong(frame: Frame) -> None:
            if frame.opcode is not Opcode.PONG:
                send_frame(frame)

        protocol.send_frame = send_except_pong


class ChargePoint(Session):
    """A charge point with ``connectors`` connectors talking OCPP 1.6J to ``csms_url``.

    Durations are simulated seconds (see ``SimClock``) except ``call_timeout_s`` and
    ``open_timeout_s``, which are real: they bound network waits.
    """

    __slots__ = (
        "_task",
        "_url",
        "backoff_base_s",
        "backoff_cap_s",
        "call_timeout_s",
        "open_timeout_s",
        "ping_interval_s",
        "reboot_s",
        "security",
    )

    def __init__(
        self,
        identity: str,
        csms_url: str,
        *,
        connectors: int = 1,
        max_power_w: float = 11_000.0,
        dc: bool = False,
        voltage: float | None = None,
        phases: int = 3,
        vendor: str = "SimVendor",
        model: str = "SimCharger",
        firmware_version: str = "1.0.0",
        config: dict[str, str] | None = None,
        clock: SimClock | None = None,
        faults: Faults | None = None,
        stats: Stats | None = None,
        seed: int | None = None,
        call_timeout_s: float = 30.0,
        open_timeout_s: float = 10.0,
        ping_interval_s: float | None = None,
        backoff_base_s: float = 1.0,
        backoff_cap_s: float = 120.0,
        tick_s: float = 10.0,
        reboot_s: float = 5.0,
        security: ChargerSecurity | None = None,
    ) -> None:
        # Security profile 1-3 credentials (Basic auth, client certificate), if any.
        self.security = security
        overrides = {"NumberOfConnectors": str(connectors), **(config or {})}
        if dc:
            overrides.setdefault("ConnectorPhaseRotation", "0.NotApplicable")
        electrics = Electrics(
            max_power_w=max_power_w,
            voltage=voltage or (400.0 if dc else 230.0),
            phases=1 if dc else phases,
            dc=dc,
        )
        super().__init__(
            identity=identity,
            boot_payload={
                "chargePointVendor": vendor,
                "chargePointModel": model,
                "chargePointSerialNumber": identity[-25:],
                "firmwareVersion": firmware_version,
            },
            connectors=[Connector(i) for i in range(connectors + 1)],
            electrics=electrics,
            config=ConfigStore(overrides),
            profiles=ProfileSet(),
            clock=clock or SimClock(),
            faults=faults or Faults(),
            stats=stats or Stats(),
            # Seeded per identity, so a fleet is reproducible charger by charger.
            rng=random.Random(f"{seed}:{identity}") if seed is not None else random.Random(),
            tick_s=tick_s,
        )
        self._url = f"{csms_url.rstrip('/')}/{quote(identity, safe='')}"
        self._task: asyncio.Task[None] | None = None
        self.call_timeout_s = call_timeout_s
        self.open_timeout_s = open_timeout_s
        self.ping_interval_s = ping_interval_s
        self.backoff_base_s = backoff_base_s
        self.backoff_cap_s = backoff_cap_s
        self.reboot_s = reboot_s

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return self._url

    def start(self) -> None:
        """Start connecting (and reconnecting until ``stop``)."""
        if self._task is None:
            self._stopping = False
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name=f"charge-point-{self.identity}"
            )

    async def stop(self) -> None:
        """Close the socket and end the task."""
        self._stopping = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass

    async def __aenter__(self) -> ChargePoint:
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        """Wait (real seconds) until ``predicate()`` holds; TimeoutError otherwise."""
        async with asyncio.timeout(timeout):
            while not predicate():
                if self._changed is None:
                    self._changed = asyncio.Event()
                self._changed.clear()
                await self._changed.wait()

    async def wait_accepted(self, timeout: float = 5.0) -> None:
        await self.wait_for(lambda: self.registration == "Accepted", timeout)

    def drop_connection(self) -> None:
        """Fault knob: lose the network now (no close handshake)."""
        if self._ws is not None:
            self._ws.transport.abort()

    # -- the task ----------------------------------------------------------------------------

    async def _run(self) -> None:
        attempt = 0
        connected_before = False
        while not self._stopping:
            try:
                ws = await connect(
                    self._url,
                    subprotocols=[Subprotocol("ocpp1.6")],
                    compression=None,  # chargers do not deflate; zlib costs ~300 KB/socket
                    open_timeout=self.open_timeout_s,
                    ping_interval=self.ping_interval_s,
                    ping_timeout=None,
                    max_queue=4,
                    create_connection=None if self.faults.answer_pings else _DeafConnection,
                    **(self.security.connect_kwargs() if self.security else {}),
                )
            except (OSError, TimeoutError, WebSocketException) as exc:
                self.stats.connect_failures += 1
                log.debug("sim.connect_failed", identity=self.identity, error=repr(exc))
                await self._backoff(attempt)
                attempt += 1
                continue
            attempt = 0
            self.stats.connections += 1
            if connected_before:
                self.stats.reconnects += 1
            connected_before = True
            try:
                await self._serve(ws)
            except ConnectionClosed:
                log.debug("sim.connection_lost", identity=self.identity)
            except Exception:
                log.exception("sim.session_crashed", identity=self.identity)
                ws.transport.abort()
            finally:
                self._disconnected()
                await ws.close()
            if self._stopping:
                return
            if self._rebooting is not None:
                self._finish_reboot()
                await self._offline(self.clock.real_delay(self.reboot_s))
                continue
            await self._backoff(0)
            attempt = 1

    async def _backoff(self, attempt: int) -> None:
        delay = backoff_delay(attempt, self.backoff_base_s, self.backoff_cap_s, self.rng)
        await self._offline(self.clock.real_delay(delay))

    async def _offline(self, seconds: float) -> None:
        """Wait ``seconds`` without a socket; the meter and the clock keep running meanwhile."""
        loop = asyncio.get_running_loop()
        end = loop.time() + seconds
        while (now := loop.time()) < end:
            deadline = min(end, self._next_deadline(online=False) or end)
            try:
                async with asyncio.timeout_at(deadline) as waker:
                    self._waker = waker
                    await loop.create_future()
            except TimeoutError:
                pass
            finally:
                self._waker = None
            self._run_due(max(now, loop.time()))

    async def _serve(self, ws: ClientConnection) -> None:
        loop = asyncio.get_running_loop()
        self._connected(ws)
        while True:
            await self._flush(ws)
            if self._rebooting is not None and self._reboot_ready():
                return
            try:
                async with asyncio.timeout_at(self._next_deadline()) as waker:
                    self._waker = waker
                    raw: str | bytes | None = await ws.recv()
            except TimeoutError:
                raw = None
            finally:
                self._waker = None
            if raw is not None:
                self._on_text(raw)
            self._run_due(loop.time())

    async def _flush(self, ws: ClientConnection) -> None:
        while True:
            while self._wire:
                await ws.send(self._wire.popleft())
                self._sent_on_connection += 1
                limit = self.faults.drop_after_messages
                if limit is not None and self._sent_on_connection >= limit:
                    # One-shot: the charger loses its network once after N frames.
                    self.faults.drop_after_messages = None
                    ws.transport.abort()
                    await ws.wait_closed()
                    raise ConnectionClosed(None, None)
            item = self._next_item() if self._outstanding is None else None
            if item is None:
                return
            self._send_item(item, self.call_timeout_s)
