"""The command port over NATS: deliver on the local socket, or route to the owner.

``ClusterLocator`` stands where the OCPP server's registry stands in one process, so
``CommandService.send`` stays the one entry point and records each command once, on the
node it was asked on. A charger held here is called through the ownership fence; any other
is a NATS request on its command subject, answered by the node that holds it:

- no node subscribed ("no responders") -> ``NotConnected`` at once;
- the owner applies the caller's timeout (queue wait, then answer wait) and sends back
  whatever ``CommandError`` it got, rebuilt here (``encode_error`` / ``decode_error``);
- the owner silent past that (it died mid-command) -> ``CommandTimeout``: outcome unknown;
- NATS itself unreachable -> ``RoutingUnavailable`` (HTTP 503), never a silent wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import nats.errors
import structlog
from nats.aio.client import Client
from nats.aio.msg import Msg

from csms.cluster.errors import Replaced, RoutingUnavailable
from csms.cluster.ownership import ClusterPresence, ConnectionRegistry
from csms.cluster.subjects import charger_from_token, command_subject
from csms.ocpp16.errors import (
    CallErrorReceived,
    ChargerBusy,
    CommandError,
    CommandTimeout,
    ConnectionLost,
    InvalidResponse,
    NotConnected,
)

log = structlog.get_logger()

# The owner answers within twice the caller's timeout (queue wait, then answer wait); this
# much more covers the trip, after which the owner is taken to have died mid-command.
ROUTE_GRACE = 2.0


class _Local:
    __slots__ = ("_charge_point_id", "_presence")

    def __init__(self, presence: ClusterPresence, charge_point_id: str) -> None:
        self._presence = presence
        self._charge_point_id = charge_point_id

    async def call(self, action: str, payload: dict[str, Any], timeout: float) -> dict[str, Any]:
        return await self._presence.fenced_call(self._charge_point_id, action, payload, timeout)


class _Routed:
    __slots__ = ("_charge_point_id", "_nc")

    def __init__(self, nc: Client, charge_point_id: str) -> None:
        self._nc = nc
        self._charge_point_id = charge_point_id

    async def call(self, action: str, payload: dict[str, Any], timeout: float) -> dict[str, Any]:
        charge_point_id = self._charge_point_id
        if not self._nc.is_connected:
            raise RoutingUnavailable(charge_point_id)
        request = json.dumps({"action": action, "payload": payload, "timeout": timeout}).encode()
        for attempt in range(2):
            try:
                message = await self._nc.request(
                    command_subject(charge_point_id), request, timeout=2 * timeout + ROUTE_GRACE
                )
            except nats.errors.NoRespondersError:
                raise NotConnected(charge_point_id) from None
            except nats.errors.TimeoutError:
                raise CommandTimeout(charge_point_id, action, timeout) from None
            except (nats.errors.Error, OSError) as exc:
                raise RoutingUnavailable(charge_point_id) from exc
            reply = json.loads(message.data)
            if reply.get("error") == "replaced" and attempt == 0:
                # The node we reached had just been superseded; the new one is subscribing.
                await asyncio.sleep(0.2)
                continue
            if "result" in reply:
                return dict(reply["result"])
            raise decode_error(charge_point_id, action, timeout, reply)
        raise NotConnected(charge_point_id)


def encode_error(exc: CommandError) -> dict[str, Any]:
    """A ``CommandError`` as a reply body: its outcome and what rebuilding it needs."""
    body: dict[str, Any] = {"error": "replaced" if isinstance(exc, Replaced) else exc.outcome}
    if isinstance(exc, ChargerBusy):
        body["ahead"] = exc.ahead
    elif isinstance(exc, CallErrorReceived):
        body.update(code=exc.code, description=exc.description, details=exc.details)
    elif isinstance(exc, InvalidResponse):
        description = str(exc).rsplit(": ", 1)[-1]
        body.update(description=description, field=exc.field, response=exc.response)
    return body


def decode_error(
    charge_point_id: str, action: str, timeout: float, reply: dict[str, Any]
) -> CommandError:
    """The owner's error, rebuilt as the same class the caller would get locally."""
    error = reply.get("error")
    if error == "queue_timeout":
        return ChargerBusy(charge_point_id, action, timeout, int(reply.get("ahead", 0)))
    if error == "timeout":
        return CommandTimeout(charge_point_id, action, timeout)
    if error == "connection_lost":
        return ConnectionLost(charge_point_id, action)
    if error == "call_error":
        return CallErrorReceived(reply["code"], reply["description"], reply.get("details") or {})
    if error == "invalid_response":
        return InvalidResponse(action, reply["description"], reply.get("field"), reply["response"])
    return NotConnected(charge_point_id)  # not_connected, replaced, internal


class ClusterLocator:
    """``commands.Locator`` for a cluster node; also answers requests for chargers held here."""

    def __init__(self, registry: ConnectionRegistry, presence: ClusterPresence, nc: Client):
        self._registry = registry
        self._presence = presence
        self._nc = nc
        self._tasks: set[asyncio.Task[None]] = set()

    def find(self, charge_point_id: str) -> _Local | _Routed:
        if self._registry.find(charge_point_id) is not None:
            return _Local(self._presence, charge_point_id)
        return _Routed(self._nc, charge_point_id)

    async def on_command(self, message: Msg) -> None:
        # Subscription callbacks run one after another; a command may take its full
        # timeout, so each is answered in its own task.
        task = asyncio.get_running_loop().create_task(self._answer(message))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _answer(self, message: Msg) -> None:
        charge_point_id = charger_from_token(message.subject.split(".", 2)[2])
        try:
            request = json.loads(message.data)
            action, payload = str(request["action"]), dict(request["payload"])
            timeout = float(request["timeout"])
        except (ValueError, KeyError, TypeError):
            log.warning("cluster.bad_command_request", charge_point_id=charge_point_id)
            return
        reply: dict[str, Any]
        try:
            result = await self._presence.fenced_call(charge_point_id, action, payload, timeout)
            reply = {"result": result, "epoch": self._presence.epoch_of(charge_point_id)}
        except CommandError as exc:
            reply = encode_error(exc)
        except Exception:  # the task's top: the caller must get an answer, not a wait
            log.exception("cluster.command_failed", charge_point_id=charge_point_id, action=action)
            reply = {"error": "internal"}
        with contextlib.suppress(nats.errors.Error, OSError):
            await message.respond(json.dumps(reply).encode())

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
