"""A lean WebSocket client for load generation: an ``asyncio.Protocol`` with hand-rolled framing.

The load generator must cost far less per round trip than the servers it measures, or
it measures itself: the ``websockets`` client spends ~30 µs per message in Python, which
is the whole budget at the raw server's ~30k round trips/s. So this client writes
pre-built, pre-masked frames (RFC 6455 5.3 lets a client pick any masking key; we pick
zero, which leaves the payload bytes as they are) and only finds frame boundaries in
what comes back; payloads stay bytes unless the caller decodes them.

One CALL in flight per connection, as OCPP-J requires of a charger (4.1.1).
"""

from __future__ import annotations

import asyncio
import struct

_HANDSHAKE = (
    "GET {path} HTTP/1.1\r\n"
    "Host: {host}:{port}\r\n"
    "Upgrade: websocket\r\n"
    "Connection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    "Sec-WebSocket-Version: 13\r\n"
    "Sec-WebSocket-Protocol: ocpp1.6\r\n"
    "\r\n"
)
_ZERO_MASK = b"\x00\x00\x00\x00"
_OP_TEXT, _OP_CLOSE, _OP_PING = 0x1, 0x8, 0x9


class HandshakeRefused(Exception):
    """The server did not answer the upgrade with 101 Switching Protocols."""


class HandshakeDropped(ConnectionError):
    """The server closed the socket before answering the upgrade (e.g. its open_timeout)."""


def client_frame(text: str | bytes, opcode: int = _OP_TEXT) -> bytes:
    """A complete, masked (with a zero key), final client frame carrying ``text``."""
    payload = text.encode() if isinstance(text, str) else text
    length = len(payload)
    if length < 126:
        header = struct.pack("!BB", 0x80 | opcode, 0x80 | length)
    elif length < 65536:
        header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, length)
    else:
        header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, length)
    return header + _ZERO_MASK + payload


class LeanConnection(asyncio.Protocol):
    """One charger's socket. ``await opened`` then ``await call(frame)`` → answer payload bytes."""

    __slots__ = ("_buffer", "_request", "_upgraded", "_waiter", "closed", "opened", "transport")

    def __init__(self, host: str, port: int, path: str) -> None:
        loop = asyncio.get_running_loop()
        self.opened: asyncio.Future[None] = loop.create_future()
        self.closed: asyncio.Future[None] = loop.create_future()
        self.transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._upgraded = False
        self._waiter: asyncio.Future[bytes] | None = None
        self._request = _HANDSHAKE.format(path=path, host=host, port=port).encode()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        transport.write(self._request)  # type: ignore[attr-defined]

    def connection_lost(self, exc: Exception | None) -> None:
        error: Exception = exc or ConnectionResetError("connection closed")
        if not self._upgraded and not self.opened.done():
            error = HandshakeDropped(f"closed during the opening handshake: {exc}")
        for future in (self.opened, self._waiter):
            if future is not None and not future.done():
                future.set_exception(error)
                # Whoever waited may have given up (its deadline passed): no
                # "exception was never retrieved" noise; a waiter still gets it.
                future.exception()
        if not self.closed.done():
            self.closed.set_result(None)

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        if not self._upgraded:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            status_line = bytes(buffer[: buffer.find(b"\r\n")])
            del buffer[: end + 4]
            if self.opened.done():  # cancelled: whoever waited has given up
                return
            if b" 101 " not in status_line:
                self.opened.set_exception(HandshakeRefused(status_line.decode(errors="replace")))
                assert self.transport is not None
                self.transport.close()
                return
            self._upgraded = True
            self.opened.set_result(None)
        self._frames(buffer)

    def _frames(self, buffer: bytearray) -> None:
        while len(buffer) >= 2:
            opcode = buffer[0] & 0x0F
            length = buffer[1] & 0x7F
            start = 2
            if length == 126:
                if len(buffer) < 4:
                    return
                length = int.from_bytes(buffer[2:4], "big")
                start = 4
            elif length == 127:
                if len(buffer) < 10:
                    return
                length = int.from_bytes(buffer[2:10], "big")
                start = 10
            end = start + length
            if len(buffer) < end:
                return
            payload = bytes(buffer[start:end])
            del buffer[:end]
            self._frame(opcode, payload)

    def _frame(self, opcode: int, payload: bytes) -> None:
        if opcode == _OP_TEXT or opcode == 0x2:
            # A CALL from the server (``[2, …``) is not an answer to ours: ignore it.
            waiter = self._waiter
            if payload[1:2] != b"2" and waiter is not None and not waiter.done():
                self._waiter = None
                waiter.set_result(payload)
        elif opcode == _OP_PING:
            assert self.transport is not None
            self.transport.write(client_frame(payload, 0xA))
        elif opcode == _OP_CLOSE:
            assert self.transport is not None
            self.transport.write(client_frame(payload[:2], _OP_CLOSE))
            self.transport.close()

    def call(self, frame: bytes) -> asyncio.Future[bytes]:
        """Send a pre-built client frame; the future resolves with the answer's payload."""
        assert self.transport is not None
        waiter = asyncio.get_running_loop().create_future()
        self._waiter = waiter
        self.transport.write(frame)
        return waiter

    def close(self) -> None:
        """Close without the closing handshake: the bench is done with this socket."""
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(client_frame(b"\x03\xe8", _OP_CLOSE))
            self.transport.close()


async def open_connection(host: str, port: int, path: str) -> LeanConnection:
    """Connect and complete the WebSocket upgrade."""
    loop = asyncio.get_running_loop()
    _, connection = await loop.create_connection(
        lambda: LeanConnection(host, port, path), host, port
    )
    await connection.opened
    return connection
