"""The CALL channel's asyncio shell (csms.ocppj.calls) with an in-memory writer, no sockets."""

from __future__ import annotations

import asyncio
import json

import pytest
from websockets.exceptions import ConnectionClosed

from csms.ocppj.calls import CallChannel
from csms.ocppj.errors import ConnectionLost, NotConnected
from csms.ocppj.framing import CallResult


class Wire:
    """Records written frames; can refuse writes like a closed socket."""

    def __init__(self) -> None:
        self.frames: list[list[object]] = []
        self.refuse = False
        self.written = asyncio.Event()

    async def write(self, text: str) -> None:
        if self.refuse:
            raise ConnectionClosed(None, None)
        self.frames.append(json.loads(text))
        self.written.set()

    async def next_frame(self) -> list[object]:
        async with asyncio.timeout(2):
            while not self.frames:
                self.written.clear()
                await self.written.wait()
        return self.frames.pop(0)


async def test_a_cancelled_waiting_caller_hands_its_turn_on() -> None:
    wire = Wire()
    channel = CallChannel("CP", wire.write)
    first = asyncio.create_task(channel.call("Reset", {"type": "Soft"}, 5))
    frame = await wire.next_frame()
    second = asyncio.create_task(channel.call("ClearCache", {}, 5))
    third = asyncio.create_task(channel.call("Heartbeat", {}, 5))
    await asyncio.sleep(0)
    second.cancel()
    assert channel.receive(CallResult(str(frame[1]), {"status": "Accepted"}))
    assert await first == {"status": "Accepted"}
    frame = await wire.next_frame()
    assert frame[2] == "Heartbeat"
    assert channel.receive(CallResult(str(frame[1]), {}))
    assert await third == {}
    assert second.cancelled() and len(channel) == 0


async def test_closing_loses_the_call_in_flight_and_never_sends_the_waiting_ones() -> None:
    wire = Wire()
    channel = CallChannel("CP", wire.write)
    in_flight = asyncio.create_task(channel.call("RemoteStartTransaction", {"idTag": "T"}, 5))
    await wire.next_frame()
    waiting = asyncio.create_task(channel.call("Reset", {"type": "Hard"}, 5))
    await asyncio.sleep(0)
    channel.close()
    with pytest.raises(ConnectionLost):
        await in_flight
    with pytest.raises(NotConnected):
        await waiting
    with pytest.raises(NotConnected):
        await channel.call("ClearCache", {}, 5)
    assert wire.frames == []


async def test_a_refused_write_is_not_sent_and_the_next_call_still_goes() -> None:
    wire = Wire()
    channel = CallChannel("CP", wire.write)
    wire.refuse = True
    with pytest.raises(NotConnected):
        await channel.call("ClearCache", {}, 5)
    wire.refuse = False
    later = asyncio.create_task(channel.call("ClearCache", {}, 5))
    frame = await wire.next_frame()
    assert not channel.receive(CallResult("someone-else", {}))  # not the CALL in flight
    assert channel.receive(CallResult(str(frame[1]), {"status": "Accepted"}))
    assert await later == {"status": "Accepted"}
