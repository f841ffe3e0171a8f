"""The ceiling: ``websockets`` + ``json`` answering each CALL with a canned CALLRESULT.

No schema validation, no routing library, no persistence: what any Python OCPP server
on ``websockets`` pays at least. ``python -m bench.raw_server --port 9200``.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
from collections.abc import Coroutine
from datetime import UTC, datetime
from typing import Any

from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

# Ours: csms/ocpp16/server.py. Every server in the bench gets the same storm settings.
BACKLOG = 16384
OPEN_TIMEOUT_S = 60.0

_dumps = json.JSONEncoder(separators=(",", ":")).encode
_transaction_ids = itertools.count(1)
_ACCEPTED = {"status": "Accepted"}


def _answer(action: str) -> dict[str, Any]:
    if action == "Heartbeat":
        return {"currentTime": datetime.now(UTC).isoformat()}
    if action == "BootNotification":
        now = datetime.now(UTC).isoformat()
        return {"status": "Accepted", "currentTime": now, "interval": 300}
    if action in ("Authorize", "StopTransaction"):
        return {"idTagInfo": _ACCEPTED}
    if action == "StartTransaction":
        return {"transactionId": next(_transaction_ids), "idTagInfo": _ACCEPTED}
    return {}


async def _handle(connection: ServerConnection) -> None:
    try:
        async for raw in connection:
            message = json.loads(raw)
            if message[0] == 2:
                await connection.send(_dumps([3, message[1], _answer(message[2])]))
    except ConnectionClosed:
        pass


async def _main(port: int, backlog: int) -> None:
    async with serve(
        _handle,
        "127.0.0.1",
        port,
        subprotocols=["ocpp1.6"],  # type: ignore[list-item]
        compression=None,
        ping_interval=None,
        open_timeout=OPEN_TIMEOUT_S,
        backlog=backlog,  # passed through to loop.create_server
    ):
        await asyncio.Future()


def run(main: Coroutine[Any, Any, None], loop: str) -> None:
    """Run ``main`` on ``loop`` ("uvloop", as ``csms serve`` does, or "asyncio")."""
    factory = None
    if loop == "uvloop":
        import uvloop

        factory = uvloop.new_event_loop
    try:
        with asyncio.Runner(loop_factory=factory) as runner:
            runner.run(main)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=9200)
    # A ceiling needs the listen queue a storm needs (asyncio defaults to 100).
    parser.add_argument("--backlog", type=int, default=BACKLOG)
    parser.add_argument("--loop", choices=["uvloop", "asyncio"], default="uvloop")
    args = parser.parse_args()
    run(_main(args.port, args.backlog), args.loop)
