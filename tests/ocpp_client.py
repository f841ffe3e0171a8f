"""Test chargers: the ``ocpp`` library's ChargePoint over a real WebSocket, and raw frames."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

from ocpp.routing import on
from ocpp.v16 import ChargePoint, call, call_result
from websockets.asyncio.client import ClientConnection, connect

from tests.conftest import TIMEOUT


class TestCharger(ChargePoint):
    """An ``ocpp`` 1.6 charge point that answers commands and records what it got."""

    __test__ = False

    def __init__(self, charge_point_id: str, connection: ClientConnection) -> None:
        super().__init__(charge_point_id, connection, response_timeout=TIMEOUT)
        self.received: list[tuple[str, dict[str, Any]]] = []
        self.answer_delay = 0.0

    async def boot(self, **extra: Any) -> Any:
        return await self.call(
            call.BootNotification(
                charge_point_vendor="TestVendor", charge_point_model="TestModel", **extra
            )
        )

    async def _answer(self, action: str, payload: dict[str, Any], answer: Any) -> Any:
        self.received.append((action, payload))
        if self.answer_delay:
            await asyncio.sleep(self.answer_delay)
        return answer

    @on("Reset")
    async def on_reset(self, **payload: Any) -> Any:
        return await self._answer("Reset", payload, call_result.Reset(status="Accepted"))

    @on("RemoteStartTransaction")
    async def on_remote_start(self, **payload: Any) -> Any:
        answer = call_result.RemoteStartTransaction(status="Accepted")
        return await self._answer("RemoteStartTransaction", payload, answer)

    @on("RemoteStopTransaction")
    async def on_remote_stop(self, **payload: Any) -> Any:
        answer = call_result.RemoteStopTransaction(status="Accepted")
        return await self._answer("RemoteStopTransaction", payload, answer)

    @on("GetConfiguration")
    async def on_get_configuration(self, **payload: Any) -> Any:
        answer = call_result.GetConfiguration(
            configuration_key=[{"key": "HeartbeatInterval", "readonly": False, "value": "300"}]
        )
        return await self._answer("GetConfiguration", payload, answer)

    @on("TriggerMessage")
    async def on_trigger(self, **payload: Any) -> Any:
        answer = call_result.TriggerMessage(status="Accepted")
        return await self._answer("TriggerMessage", payload, answer)


@contextlib.asynccontextmanager
async def ocpp_charger(
    port: int, charge_point_id: str, *, path: str = "/ocpp/"
) -> AsyncIterator[TestCharger]:
    url = f"ws://127.0.0.1:{port}{path}{charge_point_id}"
    async with connect(url, subprotocols=["ocpp1.6"], open_timeout=TIMEOUT) as ws:  # type: ignore[list-item]
        charger = TestCharger(charge_point_id, ws)
        task = asyncio.create_task(charger.start())
        try:
            yield charger
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


class RawCharger:
    """Sends frames as text and reads answers: for malformed and non-conforming input."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self._counter = 0

    async def send_raw(self, text: str) -> list[Any]:
        await self.ws.send(text)
        return await self.receive()

    async def receive(self) -> list[Any]:
        async with asyncio.timeout(TIMEOUT):
            return json.loads(await self.ws.recv())

    async def call(self, action: str, payload: dict[str, Any]) -> list[Any]:
        self._counter += 1
        return await self.send_raw(json.dumps([2, f"m{self._counter}", action, payload]))

    async def call_ok(self, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        frame = await self.call(action, payload)
        assert frame[0] == 3, frame
        return frame[2]

    async def start_transaction(
        self, meter_start: int, timestamp: str, *, connector_id: int = 1, id_tag: str = "T"
    ) -> int:
        """A conforming StartTransaction; the transaction id we answered."""
        answer = await self.call_ok(
            "StartTransaction",
            {
                "connectorId": connector_id,
                "idTag": id_tag,
                "meterStart": meter_start,
                "timestamp": timestamp,
            },
        )
        return int(answer["transactionId"])


@contextlib.asynccontextmanager
async def raw_charger(
    port: int, charge_point_id: str, *, subprotocols: list[str] | None = None
) -> AsyncIterator[RawCharger]:
    url = f"ws://127.0.0.1:{port}/ocpp/{charge_point_id}"
    offered = ["ocpp1.6"] if subprotocols is None else subprotocols
    async with connect(url, subprotocols=offered, open_timeout=TIMEOUT) as ws:  # type: ignore[arg-type]
        yield RawCharger(ws)
