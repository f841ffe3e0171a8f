"""One charger's WebSocket: feeds frames to the OCPP-J core and routes calls to 1.6 handlers.

Incoming CALLs are answered one at a time, in order (some firmware sends the
next CALL before our answer; we queue rather than deadlock). A CALL whose handler
needs no I/O (``IMMEDIATE``: Heartbeat) is answered as it arrives, inside the socket's
``data_received``, when nothing is queued before it; every other one is queued for
the connection's task, which awaits its handler (and the database) and answers. Our own CALLs
(commands) go through the core's ``CallChannel``: one in flight, the rest in order
(OCPP-J 1.6 §4.1.1); an answer that comes after its timeout is logged and dropped,
and an answer that breaks the 1.6 response schema is refused as ``InvalidResponse``.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import structlog
from ocpp.exceptions import (
    InternalError,
    NotImplementedError,
    NotSupportedError,
    OCPPError,
    SecurityError,
)
from websockets.exceptions import ConnectionClosed

from csms.domain.meter_register import RegisterReadings
from csms.domain.registration import may_send
from csms.ocpp16 import handlers, security_handlers, transaction_handlers
from csms.ocpp16.commands import CENTRAL_SYSTEM_ACTIONS
from csms.ocpp16.context import Services
from csms.ocpp16.responses import check_response
from csms.ocpp16.validation import validate_request
from csms.ocpp16.wire import OcppSocket
from csms.ocppj.calls import CallChannel
from csms.ocppj.framing import (
    Call,
    CallError,
    CallResult,
    MalformedFrame,
    error_frame,
    parse_frame,
    result_frame,
)

Handler = Callable[["ChargePointConnection", dict[str, Any], datetime], Awaitable[dict[str, Any]]]
ImmediateHandler = Callable[["ChargePointConnection", dict[str, Any], datetime], dict[str, Any]]

# Handlers that store nothing before answering (Heartbeat's last_seen is the connection's
# presence record, written in batches for every message): answered without a task switch.
IMMEDIATE: dict[str, ImmediateHandler] = {
    "Heartbeat": handlers.heartbeat,
}

ROUTES: dict[str, Handler] = {
    "Authorize": handlers.authorize,
    "BootNotification": handlers.boot_notification,
    "DataTransfer": handlers.data_transfer,
    "DiagnosticsStatusNotification": handlers.diagnostics_status,
    "FirmwareStatusNotification": handlers.firmware_status,
    "MeterValues": transaction_handlers.meter_values,
    "StartTransaction": transaction_handlers.start_transaction,
    "StatusNotification": handlers.status_notification,
    "StopTransaction": transaction_handlers.stop_transaction,
    # Security Whitepaper (csms/security).
    "LogStatusNotification": security_handlers.log_status,
    "SecurityEventNotification": security_handlers.security_event_notification,
    "SignCertificate": security_handlers.sign_certificate,
    "SignedFirmwareStatusNotification": security_handlers.signed_firmware_status,
}

# Actions only the central system sends (DataTransfer goes both ways): a charger sending
# one is recognised, so NotSupported rather than NotImplemented (OCPP-J 4.2.3).
KNOWN_OTHER_ACTIONS = CENTRAL_SYSTEM_ACTIONS - {"DataTransfer"}

# Like websockets' own receive queue: stop reading from a charger that has this many
# CALLs waiting (it ignores "one at a time"), resume once it is down to the low mark.
QUEUE_HIGH, QUEUE_LOW = 16, 4

# A queued item: a CALL to answer (with its receive time), or a ready error frame,
# kept in the queue so that answers leave in the order the CALLs came.
Queued = tuple[Call, datetime] | str


class ChargePointConnection:
    """State of one connected charger; kept small because thousands are held at once."""

    __slots__ = (
        "_busy",
        "_calls",
        "_closed",
        "_nonconforming_logged",
        "_paused",
        "_queue",
        "_wake",
        "active_tx",
        "booted_at",
        "charge_point_id",
        "last_rx",
        "log",
        "registers",
        "registration_status",
        "services",
        "ws",
    )

    def __init__(
        self,
        charge_point_id: str,
        ws: OcppSocket,
        services: Services,
        registration_status: str,
    ) -> None:
        self.charge_point_id = charge_point_id
        self.ws = ws
        self.services = services
        self.registration_status = registration_status
        self.log = structlog.get_logger().bind(charge_point_id=charge_point_id)
        self.active_tx: dict[int, int] | None = None
        # Energy register readings per open transaction, to judge each one on its own.
        self.registers = RegisterReadings()
        # When this connection's charger last booted: a transaction begun before it, on a
        # connector it then reports Available, is stale (handlers.status_notification).
        self.booted_at: datetime | None = None
        self.last_rx = asyncio.get_running_loop().time()
        # Made on the first command: most chargers get few, and thousands are held at once.
        self._calls: CallChannel | None = None
        self._nonconforming_logged: set[str] | None = None
        # What arrived while a CALL was being answered; made when first needed.
        self._queue: deque[Queued] | None = None
        self._busy = False  # the task is answering a CALL: later ones queue behind it
        self._paused = False
        self._closed = False
        self._wake: asyncio.Future[None] | None = None

    async def serve(self) -> None:
        """Answer frames until the socket closes."""
        self.ws.attach(self.received, self._socket_closed)
        try:
            while True:
                queue = self._queue
                while queue:
                    item = queue.popleft()
                    if self._paused and len(queue) <= QUEUE_LOW:
                        self._paused = False
                        self.ws.transport.resume_reading()
                    self._busy = True
                    if type(item) is str:
                        await self.ws.send(item)
                    else:
                        await self._answer(*item)
                self._busy = False
                if self._closed:
                    return
                self._wake = asyncio.get_running_loop().create_future()
                await self._wake
        except ConnectionClosed:
            pass
        finally:
            self._busy = True  # nothing more is answered: a late frame is dropped
            # A command after this finds the socket closed: NotConnected, never sent.
            if self._calls is not None:
                self._calls.close()

    def _socket_closed(self) -> None:
        self._closed = True
        self._wake_task()

    def _wake_task(self) -> None:
        wake = self._wake
        if wake is not None and not wake.done():
            wake.set_result(None)
        self._wake = None

    def received(self, raw: str | bytes) -> None:
        """One data message from the socket, in order (called from ``data_received``)."""
        try:
            self._received(raw)
        except Exception:
            # Never into the transport's callback: it would tear the connection down.
            self.log.exception("ocpp.handler_failed", action=None)

    def _received(self, raw: str | bytes) -> None:
        services = self.services
        self.last_rx = self.ws.loop.time()
        now = services.clock()
        services.presence.seen(self.charge_point_id, now)
        idle = not self._busy and not self._queue
        try:
            message = parse_frame(raw)
        except MalformedFrame as exc:
            self.log.warning(
                "ocpp.bad_frame", code=exc.error.code, description=exc.error.description
            )
            services.metrics.call_error(exc.error.code)
            frame = error_frame(exc.message_id, exc.error)
            if not (idle and self.ws.writable and self.ws.send_now(frame)):
                self._enqueue(frame)
            return
        if type(message) is not Call:
            self._resolve(message)  # type: ignore[arg-type]
            return
        if idle and message.action in IMMEDIATE and self.ws.writable:
            self._answer_now(message, now)
        else:
            self._enqueue((message, now))

    def _enqueue(self, item: Queued) -> None:
        queue = self._queue
        if queue is None:
            queue = self._queue = deque()
        queue.append(item)
        if len(queue) >= QUEUE_HIGH and not self._paused:
            self._paused = True
            self.ws.transport.pause_reading()
        self._wake_task()

    def _answer_now(self, call: Call, now: datetime) -> None:
        started = time.perf_counter()
        try:
            payload = self._checked(call)
            response = IMMEDIATE[call.action](self, payload, now)
        except Exception as exc:
            frame = self._error_answer(call, exc)
        else:
            frame = result_frame(call.message_id, response)
        self.ws.send_now(frame)
        self.services.metrics.observe_call(call.action, time.perf_counter() - started)

    def _checked(self, call: Call) -> dict[str, Any]:
        """The CALL's payload, validated; raises the OCPPError to answer with."""
        self.log.debug("ocpp.call_received", action=call.action, message_id=call.message_id)
        if call.action not in ROUTES and call.action not in IMMEDIATE:
            if call.action in KNOWN_OTHER_ACTIONS:
                raise NotSupportedError(description=f"{call.action} is not supported here")
            raise NotImplementedError(description=f"Unknown action {call.action!r}")
        if not may_send(self.registration_status, call.action):
            # 1.6 section 4.2.1: until Accepted a charger may only send BootNotification.
            raise SecurityError(
                description=f"Charge point is {self.registration_status}, not Accepted"
            )
        deviations: list[str] = []
        payload = validate_request(call.action, call.payload, deviations)
        if deviations:
            self.note_deviations(deviations)
        return payload

    def _error_answer(self, call: Call, exc: Exception) -> str:
        if isinstance(exc, OCPPError):
            self.log.warning(
                "ocpp.call_error_sent",
                action=call.action,
                code=exc.code,
                description=exc.description,
                details=exc.details or None,
            )
            self.services.metrics.call_error(exc.code)
            return error_frame(call.message_id, exc)
        # Internal details go to the log, never onto the wire.
        self.log.exception("ocpp.handler_failed", action=call.action)
        self.services.metrics.call_error("InternalError")
        return error_frame(call.message_id, InternalError(description="Internal error"))

    async def _answer(self, call: Call, now: datetime) -> None:
        started = time.perf_counter()
        try:
            payload = self._checked(call)
            immediate = IMMEDIATE.get(call.action)
            if immediate is not None:
                response = immediate(self, payload, now)
            else:
                response = await ROUTES[call.action](self, payload, now)
        except Exception as exc:
            frame = self._error_answer(call, exc)
        else:
            frame = result_frame(call.message_id, response)
        await self.ws.send(frame)
        self.services.metrics.observe_call(call.action, time.perf_counter() - started)

    def _resolve(self, message: CallResult | CallError) -> None:
        if self._calls is None or not self._calls.receive(message):
            self.log.info("ocpp.late_response", message_id=message.message_id)
            return
        if type(message) is CallError:
            self.services.metrics.call_error(message.code, "in")

    @property
    def calls(self) -> CallChannel:
        """Our CALLs to this charger: one in flight, the rest in order."""
        if self._calls is None:
            self._calls = CallChannel(self.charge_point_id, self.ws.send)
        return self._calls

    async def call(self, action: str, payload: dict[str, Any], timeout: float) -> dict[str, Any]:
        """Send a CALL when the charger is free and return its answer, checked and normalised.

        Raises the ``csms.ocppj.errors.CommandError`` family (``NotConnected``,
        ``ChargerBusy``, ``CommandTimeout``, ``ConnectionLost``, ``CallErrorReceived``,
        ``InvalidResponse``).
        """
        answer = await self.calls.call(action, payload, timeout)
        deviations: list[str] = []
        checked = check_response(action, answer, deviations)
        self.note_deviations(deviations)
        return checked

    async def active_transactions(self) -> dict[int, int]:
        """Open transaction per connector, loaded from the database on first use."""
        if self.active_tx is None:
            self.active_tx = await self.services.active_transactions.of(self.charge_point_id)
        return self.active_tx

    def note_deviations(self, deviations: list[str]) -> None:
        """Log each kind of non-conforming payload once per connection."""
        if not deviations:
            return
        if self._nonconforming_logged is None:
            self._nonconforming_logged = set()
        for kind in deviations:
            if kind not in self._nonconforming_logged:
                self._nonconforming_logged.add(kind)
                self.log.info("ocpp.nonconforming", kind=kind)
