"""The command port over NATS: deliver on the local socket, or route to the owner.

``ClusterLocator`` stands where the OCPP server's registry stands in one process, so
``CommandService.send`` stays the one entry point and records each command once, on the
node it was asked on. A charger held here is called through the ownership fence; any other
is a NATS request on its command subject, answered by the node that holds it:

- no node subscribed ("no responders") -> ``NotConnected`` at once;
- the owner waits the caller's timeout and says so -> ``TimeoutError`` -> ``CommandTimeout``;
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
from websockets.exceptions import ConnectionClosed

from csms.cluster.errors import Replaced, RoutingUnavailable
from csms.cluster.ownership import ClusterPresence, ConnectionRegistry
from csms.cluster.subjects import charger_from_token, command_subject
from csms.ocpp16.errors import CallErrorReceived, NotConnected

log = structlog.get_logger()

# The owner answers a timeout itself after the caller's timeout; this much more covers the
# trip, after which the owner is taken to have died mid-command.
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
                    command_subject(charge_point_id), request, timeout=timeout + ROUTE_GRACE
                )
            except nats.errors.NoRespondersError:
                raise NotConnected(charge_point_id) from None
            except nats.errors.TimeoutError:
                raise TimeoutError from None
            except (nats.errors.Error, OSError) as exc:
                raise RoutingUnavailable(charge_point_id) from exc
            reply = json.loads(message.data)
            if reply.get("error") == "replaced" and attempt == 0:
                # The node we reached had just been superseded; the new one is subscribing.
                await asyncio.sleep(0.2)
                continue
            return _unwrap(charge_point_id, reply)
        raise NotConnected(charge_point_id)


def _unwrap(charge_point_id: str, reply: dict[str, Any]) -> dict[str, Any]:
    error = reply.get("error")
    if error is None:
        return dict(reply["result"])
    if error == "timeout":
        raise TimeoutError
    if error == "call_error":
        raise CallErrorReceived(reply["code"], reply["description"], reply.get("details") or {})
    raise NotConnected(charge_point_id)


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
        except TimeoutError:
            reply = {"error": "timeout"}
        except Replaced:
            reply = {"error": "replaced"}
        except (NotConnected, ConnectionClosed):
            reply = {"error": "not_connected"}
        except CallErrorReceived as exc:
            reply = {
                "error": "call_error",
                "code": exc.code,
                "description": exc.description,
                "details": exc.details,
            }
        except Exception:  # the task's top: the caller must get an answer, not a wait
            log.exception("cluster.command_failed", charge_point_id=charge_point_id, action=action)
            reply = {"error": "internal"}
        with contextlib.suppress(nats.errors.Error, OSError):
            await message.respond(json.dumps(reply).encode())

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
