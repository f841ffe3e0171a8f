"""A charger's WebSocket: websockets' server connection with a direct path for OCPP messages.

websockets does the opening handshake, control frames (ping, pong, close) and the frame
parser (masking, sizes, the closing handshake) as it always did. What this class changes
is the way data messages reach us and our answers leave: websockets' ``recv()`` queues
each message in an ``Assembler`` and wakes the reader through a future and an async
generator, and ``send()`` goes through an async context manager, a ``Frame`` object and
a protocol buffer; on the Heartbeat path that was about a third of a round trip's CPU.
Here a message is handed to a plain callback as it is parsed (``attach``), and an answer
is one ``transport.write`` of a header and the payload (``send_now``), so a CALL whose
answer needs no I/O is answered inside ``data_received``, without a task switch.

What websockets' message layer did and we still must: decode text as UTF-8 (else close
with 1007), join fragmented messages (the parser bounds their total size), stop writing
data once a close frame is out, and log a handshake that ``open_timeout`` abandons.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Callable, Generator
from typing import Any

import structlog
from websockets.asyncio.server import ServerConnection
from websockets.frames import CloseCode, Frame, Opcode
from websockets.protocol import CLOSED, OPEN

from csms.ocpp16.normalize import identity_from_path

log = structlog.get_logger()

Receiver = Callable[[str | bytes], None]

_TEXT, _CONT = Opcode.TEXT, Opcode.CONT
_DATA_OPCODES = frozenset({Opcode.TEXT, Opcode.BINARY, Opcode.CONT})

# What a released socket's parts point to instead of each other (see ``release``).
_RELEASED = asyncio.Protocol()


def _no_parser() -> Generator[None]:
    while True:  # websockets only ever calls next() on a parser
        yield


_NO_PARSER = _no_parser()
next(_NO_PARSER)


def _nothing() -> None:
    pass


def text_frame(payload: bytes) -> bytes:
    """An unmasked, final text frame (RFC 6455 5.2): what a server sends."""
    length = len(payload)
    if length < 126:
        return bytes((0x81, length)) + payload
    if length < 65536:
        return struct.pack("!BBH", 0x81, 126, length) + payload
    return struct.pack("!BBQ", 0x81, 127, length) + payload


def remote(connection: ServerConnection) -> str | None:
    address = connection.remote_address
    return f"{address[0]}:{address[1]}" if address else None


class OcppSocket(ServerConnection):
    """One charger's socket. ``attach(on_message, on_closed)`` once the handshake is done."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._on_message: Receiver | None = None
        self._on_closed: Callable[[], None] | None = None
        # Messages parsed before ``attach`` (a charger may send right after the 101).
        self._early: list[str | bytes] | None = None
        # A fragmented message being received: its opcode and parts.
        self._fragments: list[bytes] | None = None
        self._fragmented_text = False

    async def handshake(self, *args: Any, **kwargs: Any) -> None:
        started = asyncio.get_running_loop().time()
        try:
            await super().handshake(*args, **kwargs)
        except asyncio.CancelledError:
            # open_timeout (or shutdown) cancelled us: the socket is aborted next, and
            # the charger will retry; an operator must see that it happened.
            path = self.request.path if self.request else None
            log.warning(
                "ocpp.handshake_dropped",
                charge_point_id=identity_from_path(path) if path else None,
                reason="open_timeout",
                stage="awaiting_request" if path is None else "checking_request",
                path=path,
                remote=remote(self),
                waited_s=round(asyncio.get_running_loop().time() - started, 1),
            )
            raise

    def release(self) -> None:
        """Break this closed connection's reference cycles, once websockets is done with it.

        Call when the connection's handler task has finished. A closed connection is
        otherwise ~60 objects in cycles (transport and protocol refer to each other, the
        frame parser to its protocol, the subprotocol selector to the connection, our
        callbacks to us)
        that only the cyclic collector frees: after a fleet of 10,000 dropped, that was a
        1.7 s collection in the middle of the reconnect. Freed by reference counting
        instead, at once. What may still be called on a released socket (``send``,
        ``close``: they raise ``ConnectionClosed``; ``close_code``, ``request``) keeps
        working.
        """
        if self.protocol.state is not CLOSED:  # cancelled before closing (shutdown)
            return
        self._on_message = self._on_closed = None
        self.transport.set_protocol(_RELEASED)
        # Bound to the transport; the queue is closed and was never used (``attach``).
        self.recv_messages.pause = self.recv_messages.resume = _nothing
        self.protocol.parser = _NO_PARSER
        # websockets' per-connection closure over this connection, used in the handshake.
        self.protocol.select_subprotocol = None  # type: ignore[assignment]

    def attach(self, on_message: Receiver, on_closed: Callable[[], None]) -> None:
        """Deliver every data message to ``on_message``, in order; ``on_closed`` at the end."""
        self._on_message, self._on_closed = on_message, on_closed
        early, self._early = self._early, None
        for message in early or ():
            on_message(message)
        if self.connection_lost_waiter.done():
            on_closed()

    @property
    def writable(self) -> bool:
        """Open, and the peer is reading: an answer can be written now without queueing."""
        return self.protocol.state is OPEN and not self.paused

    def send_now(self, text: str) -> bool:
        """Write one text message at once; False if the connection is no longer open.

        Data frames go straight to the transport: websockets flushes its own buffer
        (pongs, a close frame) before it hands over any message, so order is kept.
        """
        if self.protocol.state is not OPEN:
            return False
        self.transport.write(text_frame(text.encode()))
        return True

    # websockets' hooks -------------------------------------------------------------

    def process_event(self, event: Any) -> None:
        if self.request is None or type(event) is not Frame or event.opcode not in _DATA_OPCODES:
            super().process_event(event)  # the handshake request, pings, pongs, close
            return
        opcode = event.opcode
        if opcode is not _CONT and event.fin:
            data = bytes(event.data)  # already bytes: no copy
            text = opcode is _TEXT
        else:
            # Fragmented: the parser has checked the order and bounds the total size.
            if opcode is not _CONT:
                self._fragments, self._fragmented_text = [bytes(event.data)], opcode is _TEXT
                return
            assert self._fragments is not None
            self._fragments.append(bytes(event.data))
            if not event.fin:
                return
            data, text = b"".join(self._fragments), self._fragmented_text
            self._fragments = None
        if text:
            try:
                message: str | bytes = data.decode()
            except UnicodeDecodeError as exc:
                # As websockets' recv() would: close frame, then the TCP connection
                # (a failing server does not wait for the peer, RFC 6455 7.1.7).
                self.protocol.fail(CloseCode.INVALID_DATA, f"{exc.reason} at position {exc.start}")
                self.send_data()
                self.transport.close()
                return
        else:
            message = data
        if self._on_message is not None:
            self._on_message(message)
        elif self._early is None:
            self._early = [message]
        else:
            self._early.append(message)

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        if self._on_closed is not None:
            self._on_closed()
