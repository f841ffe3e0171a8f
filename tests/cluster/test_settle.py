"""``subscriptions_settled``: the server has seen every SUB before the call returns.

A proxy between the client and a real NATS server records what the client sends: the
server's PONG answers the last PING, so a PING sent after the SUB proves the server
processed the SUB first (it handles one connection's commands in order)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import nats
import pytest

from csms.cluster.nats_server import EmbeddedNats
from csms.cluster.settle import subscriptions_settled
from tests.conftest import TIMEOUT


class Recorder:
    """A TCP proxy on 127.0.0.1 that keeps every byte its clients send."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.sent = bytearray()
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._proxy, "127.0.0.1", 0)
        return int(self._server.sockets[0].getsockname()[1])

    async def _proxy(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)

        async def pipe(
            source: asyncio.StreamReader, sink: asyncio.StreamWriter, record: bool
        ) -> None:
            with contextlib.suppress(ConnectionError):
                while data := await source.read(65536):
                    if record:
                        self.sent.extend(data)
                    sink.write(data)
                    await sink.drain()
            sink.close()

        for task in (pipe(reader, up_writer, True), pipe(up_reader, writer, False)):
            self._pipes.add(asyncio.create_task(task))

    async def close(self) -> None:
        for task in self._pipes:
            task.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)
        if self._server is not None:
            self._server.close()


@pytest.fixture
async def recorder(nats_server: EmbeddedNats) -> AsyncIterator[Recorder]:
    proxy = Recorder(nats_server.port)
    yield proxy
    await proxy.close()


async def test_the_server_is_asked_for_a_pong_after_it_was_sent_every_subscription(
    recorder: Recorder,
) -> None:
    port = await recorder.start()
    nc = await nats.connect(f"nats://127.0.0.1:{port}")
    try:

        async def ignore(_message: object) -> None:
            return None

        async with asyncio.timeout(TIMEOUT):
            for n in range(5):  # several subscriptions at once, as a node's start makes
                await nc.subscribe(f"settle.{n}", cb=ignore)
            await subscriptions_settled(nc)
        sent = bytes(recorder.sent)
        last_sub = max(sent.rfind(f"SUB settle.{n} ".encode()) for n in range(5))
        assert last_sub > 0
        assert b"PING\r\n" in sent[last_sub:]
    finally:
        await nc.close()


async def test_a_message_published_right_after_is_received(nats_server: EmbeddedNats) -> None:
    publisher = await nats.connect(nats_server.url)
    subscribers = [await nats.connect(nats_server.url) for _ in range(4)]
    received: asyncio.Queue[tuple[int, bytes]] = asyncio.Queue()
    try:
        for n, nc in enumerate(subscribers):

            async def on_message(message: object, n: int = n) -> None:
                received.put_nowait((n, message.data))  # type: ignore[attr-defined]

            await nc.subscribe("settle.wake", cb=on_message)
        await asyncio.gather(*(subscriptions_settled(nc) for nc in subscribers))
        await publisher.publish("settle.wake", b"now")
        async with asyncio.timeout(TIMEOUT):
            got = {await received.get() for _ in subscribers}
        assert got == {(n, b"now") for n in range(len(subscribers))}
    finally:
        for nc in (publisher, *subscribers):
            await nc.close()
