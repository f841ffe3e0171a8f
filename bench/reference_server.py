"""Minimal reference OCPP 1.6J central system built only from the ``ocpp`` library.

The baseline our benchmarks compare against, so it is the bare, idiomatic library usage:
an ``ocpp.v16.ChargePoint`` subclass with ``@on`` handlers, no persistence, served by
``websockets.asyncio.server.serve``, on uvloop like ours. Run it with
``python -m bench.reference_server --port 9100 [--loop asyncio]`` or in-process::

    async with serve_reference() as port: ...           # bound to 127.0.0.1, ephemeral port
    async with ReferenceServer() as server: server.charge_points["SIM-0001"].call(...)
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

from ocpp.routing import on
from ocpp.v16 import ChargePoint, call_result
from ocpp.v16.enums import Action, AuthorizationStatus, DataTransferStatus, RegistrationStatus
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from bench.raw_server import BACKLOG, OPEN_TIMEOUT_S, run

log = logging.getLogger("bench.reference_server")


def _now() -> str:
    return datetime.now(UTC).isoformat()


class ReferenceChargePoint(ChargePoint):
    """Answers every charge-point-initiated 1.6 core message the simulator sends."""

    def __init__(self, identity: str, connection: ServerConnection, server: ReferenceServer):
        super().__init__(identity, connection)
        self.server = server

    def _record(self, action: str, payload: dict[str, Any]) -> None:
        if self.server.record:
            self.server.received.append((self.id, action, payload))

    @on(Action.boot_notification)
    def on_boot_notification(self, **payload: Any) -> call_result.BootNotification:
        self._record("BootNotification", payload)
        return call_result.BootNotification(
            current_time=_now(),
            interval=self.server.heartbeat_interval,
            status=RegistrationStatus.accepted,
        )

    @on(Action.heartbeat)
    def on_heartbeat(self, **payload: Any) -> call_result.Heartbeat:
        self._record("Heartbeat", payload)
        return call_result.Heartbeat(current_time=_now())

    @on(Action.status_notification)
    def on_status_notification(self, **payload: Any) -> call_result.StatusNotification:
        self._record("StatusNotification", payload)
        return call_result.StatusNotification()

    @on(Action.authorize)
    def on_authorize(self, id_tag: str, **payload: Any) -> call_result.Authorize:
        self._record("Authorize", {"id_tag": id_tag, **payload})
        return call_result.Authorize(id_tag_info={"status": AuthorizationStatus.accepted})

    @on(Action.start_transaction)
    def on_start_transaction(self, **payload: Any) -> call_result.StartTransaction:
        self._record("StartTransaction", payload)
        return call_result.StartTransaction(
            transaction_id=next(self.server.transaction_ids),
            id_tag_info={"status": AuthorizationStatus.accepted},
        )

    @on(Action.stop_transaction)
    def on_stop_transaction(self, **payload: Any) -> call_result.StopTransaction:
        self._record("StopTransaction", payload)
        return call_result.StopTransaction(id_tag_info={"status": AuthorizationStatus.accepted})

    @on(Action.meter_values)
    def on_meter_values(self, **payload: Any) -> call_result.MeterValues:
        self._record("MeterValues", payload)
        return call_result.MeterValues()

    @on(Action.data_transfer)
    def on_data_transfer(self, **payload: Any) -> call_result.DataTransfer:
        self._record("DataTransfer", payload)
        return call_result.DataTransfer(status=DataTransferStatus.unknown_vendor_id)


class ReferenceServer:
    """The reference central system; an async context manager that listens on 127.0.0.1."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        heartbeat_interval: int = 300,
        record: bool = False,
    ) -> None:
        self.host = host
        self.port = port
        self.heartbeat_interval = heartbeat_interval
        # When ``record``: (identity, action, snake_case payload) of every CALL received.
        self.record = record
        self.received: list[tuple[str, str, dict[str, Any]]] = []
        self.charge_points: dict[str, ReferenceChargePoint] = {}
        self.transaction_ids = itertools.count(1)
        self._server: Server | None = None

    @property
    def url(self) -> str:
        """The base URL chargers append their identity to."""
        return f"ws://{self.host}:{self.port}/ocpp"

    async def handle(self, connection: ServerConnection) -> None:
        path = connection.request.path if connection.request else "/"
        identity = unquote(path.rstrip("/").rsplit("/", 1)[-1])
        charge_point = ReferenceChargePoint(identity, connection, self)
        self.charge_points[identity] = charge_point  # the newest connection wins
        try:
            await charge_point.start()
        except ConnectionClosed:
            pass
        finally:
            if self.charge_points.get(identity) is charge_point:
                del self.charge_points[identity]

    async def __aenter__(self) -> ReferenceServer:
        self._server = await serve(
            self.handle,
            self.host,
            self.port,
            subprotocols=["ocpp1.6"],  # type: ignore[list-item]
            # Like with like: the listen queue and handshake timeout ours has for a
            # storm (asyncio's backlog of 100 alone made its storms take 60 s).
            backlog=BACKLOG,
            open_timeout=OPEN_TIMEOUT_S,
        )
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


@asynccontextmanager
async def serve_reference(
    port: int = 0, heartbeat_interval: int = 300, record: bool = False
) -> AsyncIterator[int]:
    """Run the reference server on 127.0.0.1 and yield its port."""
    async with ReferenceServer(
        port=port, heartbeat_interval=heartbeat_interval, record=record
    ) as server:
        yield server.port


async def _main(port: int, heartbeat_interval: int) -> None:
    async with ReferenceServer(port=port, heartbeat_interval=heartbeat_interval) as server:
        print(f"reference central system listening on {server.url}", flush=True)
        await asyncio.Future()  # until interrupted


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=9100)
    parser.add_argument("--heartbeat-interval", type=int, default=300)
    parser.add_argument("--loop", choices=["uvloop", "asyncio"], default="uvloop")
    args = parser.parse_args()
    run(_main(args.port, args.heartbeat_interval), args.loop)
