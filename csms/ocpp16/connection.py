"""One charger's WebSocket: feeds frames to the OCPP-J core and routes calls to 1.6 handlers.

Incoming CALLs are answered one at a time, in order (some firmware sends the
next CALL before our answer; we queue rather than deadlock). Our own CALLs
(commands) go through the core's ``CallChannel``: one in flight, the rest in order
(OCPP-J 1.6 §4.1.1); an answer that comes after its timeout is logged and dropped,
and an answer that breaks the 1.6 response schema is refused as ``InvalidResponse``.
"""

from __future__ import annotations

import asyncio
import time
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
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from csms.db import transactions
from csms.domain.meter_register import RegisterReadings
from csms.domain.registration import may_send
from csms.ocpp16 import handlers, security_handlers, transaction_handlers
from csms.ocpp16.commands import CENTRAL_SYSTEM_ACTIONS
from csms.ocpp16.context import Services
from csms.ocpp16.responses import check_response
from csms.ocpp16.validation import validate_request
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

ROUTES: dict[str, Handler] = {
    "Authorize": handlers.authorize,
    "BootNotification": handlers.boot_notification,
    "DataTransfer": handlers.data_transfer,
    "DiagnosticsStatusNotification": handlers.diagnostics_status,
    "FirmwareStatusNotification": handlers.firmware_status,
    "Heartbeat": handlers.heartbeat,
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


class ChargePointConnection:
    """State of one connected charger; kept small because thousands are held at once."""

    __slots__ = (
        "_calls",
        "_nonconforming_logged",
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
        ws: ServerConnection,
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

    async def serve(self) -> None:
        """Answer frames until the socket closes."""
        loop = asyncio.get_running_loop()
        try:
            async for raw in self.ws:
                self.last_rx = loop.time()
                await self.handle_frame(raw)
        except ConnectionClosed:
            pass
        finally:
            # A command after this finds the socket closed: NotConnected, never sent.
            if self._calls is not None:
                self._calls.close()

    async def handle_frame(self, raw: str | bytes) -> None:
        now = self.services.clock()
        self.services.presence.seen(self.charge_point_id, now)
        try:
            message = parse_frame(raw)
        except MalformedFrame as exc:
            self.log.warning(
                "ocpp.bad_frame", code=exc.error.code, description=exc.error.description
            )
            self.services.metrics.call_error(exc.error.code)
            await self.ws.send(error_frame(exc.message_id, exc.error))
            return
        if type(message) is Call:
            await self._answer(message, now)
        else:
            self._resolve(message)  # type: ignore[arg-type]

    async def _answer(self, call: Call, now: datetime) -> None:
        started = time.perf_counter()
        self.log.debug("ocpp.call_received", action=call.action, message_id=call.message_id)
        try:
            handler = ROUTES.get(call.action)
            if handler is None:
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
            response = await handler(self, payload, now)
        except OCPPError as exc:
            self.log.warning(
                "ocpp.call_error_sent",
                action=call.action,
                code=exc.code,
                description=exc.description,
                details=exc.details or None,
            )
            self.services.metrics.call_error(exc.code)
            frame = error_frame(call.message_id, exc)
        except Exception:
            # Internal details go to the log, never onto the wire.
            self.log.exception("ocpp.handler_failed", action=call.action)
            self.services.metrics.call_error("InternalError")
            frame = error_frame(call.message_id, InternalError(description="Internal error"))
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
            self.active_tx = await transactions.active_by_connector(
                self.services.pool, self.charge_point_id
            )
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
