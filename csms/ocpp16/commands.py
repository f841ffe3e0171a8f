"""Send any central-system-initiated OCPP 1.6 action to a charger and get its answer.

``CommandService.send`` is the one entry point used by the operator API, the
CLI and the Smartcar bridge: it checks the command, records it and its outcome,
logs and counts it. Delivery is ``deliver_local``: the connection in this process,
found through a ``Locator``, which queues the CALL behind the charger's others
(one in flight, OCPP-J 1.6 §4.1.1) and checks the answer against the 1.6 schema.
A cluster replaces only that step: its locator (``csms.cluster.routing``) gives
the local connection behind the ownership fence, or one that forwards the CALL over
NATS to the node holding the socket, which delivers it on its own connection.

Raises the ``csms.ocpp16.errors.CommandError`` family.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from functools import cache
from typing import Any, Protocol

import asyncpg
import fastjsonschema
import structlog

from csms.db import messages
from csms.metrics import Metrics
from csms.ocpp16.errors import CommandError, InvalidCommand, InvalidResponse, NotConnected
from csms.ocpp16.validation import load_schema

log = structlog.get_logger()

CENTRAL_SYSTEM_ACTIONS = frozenset(
    {
        "CancelReservation",
        "ChangeAvailability",
        "ChangeConfiguration",
        "ClearCache",
        "ClearChargingProfile",
        "DataTransfer",
        "GetCompositeSchedule",
        "GetConfiguration",
        "GetDiagnostics",
        "GetLocalListVersion",
        "RemoteStartTransaction",
        "RemoteStopTransaction",
        "ReserveNow",
        "Reset",
        "SendLocalList",
        "SetChargingProfile",
        "TriggerMessage",
        "UnlockConnector",
        "UpdateFirmware",
        # Security Whitepaper.
        "CertificateSigned",
        "DeleteCertificate",
        "ExtendedTriggerMessage",
        "GetInstalledCertificateIds",
        "GetLog",
        "InstallCertificate",
        "SignedUpdateFirmware",
    }
)


class Connection(Protocol):
    async def call(self, action: str, payload: dict[str, Any], timeout: float) -> dict[str, Any]:
        """Queue, send, await and check; raises the ``CommandError`` family."""
        ...


class Locator(Protocol):
    def find(self, charge_point_id: str) -> Connection | None: ...


@cache
def _strict_validator(action: str) -> Callable[[Any], Any]:
    # What we send must be exactly right: the unrelaxed schema, formats included.
    return fastjsonschema.compile(load_schema(action))


def check_command(action: str, payload: dict[str, Any]) -> None:
    """Raise ``InvalidCommand`` unless ``action`` with ``payload`` is a valid 1.6 request."""
    if action not in CENTRAL_SYSTEM_ACTIONS:
        raise InvalidCommand(f"{action!r} is not a central-system-initiated OCPP 1.6 action")
    try:
        _strict_validator(action)(payload)
    except fastjsonschema.JsonSchemaValueException as exc:
        field = ".".join(str(p) for p in (exc.path or [])[1:]) or None
        raise InvalidCommand(exc.message.replace("data.", "", 1), field) from None


def _recordable(action: str, payload: dict[str, Any]) -> dict[str, Any]:
    # The AuthorizationKey is the charger's password: it never reaches the commands table.
    key = str(payload.get("key", "")).lower()
    if action == "ChangeConfiguration" and key == "authorizationkey":
        return {**payload, "value": "[redacted]"}
    return payload


class CommandService:
    def __init__(
        self,
        locator: Locator,
        pool: asyncpg.Pool,
        clock: Callable[[], datetime],
        default_timeout: float,
        metrics: Metrics | None = None,
    ) -> None:
        self._metrics = metrics if metrics is not None else Metrics()
        self._locator = locator
        self._pool = pool
        self._clock = clock
        self._default_timeout = default_timeout
        # Per charger: the lock its commands are recorded under, and how many hold or await it.
        self._recording: dict[str, tuple[asyncio.Lock, list[int]]] = {}

    async def send(
        self,
        charge_point_id: str,
        action: str,
        payload: dict[str, Any],
        *,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """Send ``action`` to the charger and return its answer payload, checked.

        ``timeout`` bounds both the wait for the charger's earlier commands to finish
        (``ChargerBusy`` past it, nothing sent) and, from the moment it is sent, the wait
        for the answer (``CommandTimeout``).
        """
        check_command(action, payload)
        timeout = timeout or self._default_timeout
        bound = log.bind(charge_point_id=charge_point_id, action=action)
        async with self._in_order(charge_point_id):
            command_id = await messages.record_command(
                self._pool, charge_point_id, action, _recordable(action, payload), self._clock()
            )
        try:
            # No await between the lock's release and the CALL taking its place in the
            # charger's queue, so commands go out in the order they were asked for.
            response = await self.deliver_local(charge_point_id, action, payload, timeout)
        except CommandError as exc:
            outcome = exc.outcome
            bound.warning("ocpp.command_failed", outcome=outcome, error=str(exc))
            self._metrics.command_sent(action, outcome)
            answer = exc.response if isinstance(exc, InvalidResponse) else None
            await messages.record_command_outcome(
                self._pool, command_id, outcome, answer, str(exc), self._clock()
            )
            raise
        bound.info("ocpp.command_completed", response=response)
        self._metrics.command_sent(action, "answered")
        await messages.record_command_outcome(
            self._pool, command_id, "answered", response, None, self._clock()
        )
        return response

    @contextlib.asynccontextmanager
    async def _in_order(self, charge_point_id: str) -> AsyncIterator[None]:
        # Two commands asked for at once would otherwise race their INSERTs and could reach
        # the charger's queue in either order (asyncio.Lock wakes its waiters first come,
        # first served).
        lock, users = self._recording.setdefault(charge_point_id, (asyncio.Lock(), [0]))
        users[0] += 1
        try:
            async with lock:
                yield
        finally:
            users[0] -= 1
            if users[0] == 0:
                del self._recording[charge_point_id]

    async def deliver_local(
        self, charge_point_id: str, action: str, payload: dict[str, Any], timeout: float
    ) -> dict[str, Any]:
        """Deliver to the charger's connection in this process; no recording, no logging."""
        connection = self._locator.find(charge_point_id)
        if connection is None:
            raise NotConnected(charge_point_id)
        return await connection.call(action, payload, timeout)
