"""Serving the fake: an in-process context manager for tests and ``serve()`` for the CLI."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Literal

import uvicorn
from starlette.types import ASGIApp

from simulators.smartcar_fake.app import create_app
from simulators.smartcar_fake.state import FakeConfig, FakeSmartcar
from simulators.smartcar_fake.tokens import Clock
from simulators.world import World

STARTUP_TIMEOUT_S = 10.0


@dataclass(slots=True, frozen=True)
class RunningFake:
    """A fake listening on 127.0.0.1. Point a Smartcar client's three origins at it."""

    base_url: str
    fake: FakeSmartcar

    @property
    def api_url(self) -> str:
        """Vehicles API base, like ``https://api.smartcar.com/v2.0``."""
        return f"{self.base_url}/v2.0"

    @property
    def v3_api_url(self) -> str:
        """Vehicles API v3 base, like ``https://vehicle.api.smartcar.com/v3``."""
        return f"{self.base_url}/v3"

    @property
    def management_url(self) -> str:
        """Management API v3 base, like ``https://management.api.smartcar.com/v3``."""
        return f"{self.base_url}/management/v3"

    @property
    def iam_url(self) -> str:
        """App-token origin, like ``https://iam.smartcar.com`` (+ ``/oauth2/token``)."""
        return self.base_url

    @property
    def auth_url(self) -> str:
        """Token endpoint origin, like ``https://auth.smartcar.com`` (+ ``/oauth/token``)."""
        return self.base_url

    @property
    def connect_url(self) -> str:
        """Connect origin, like ``https://connect.smartcar.com`` (+ ``/oauth/authorize``)."""
        return self.base_url


def bind_localhost(port: int = 0) -> socket.socket:
    """A listening-ready socket on 127.0.0.1 (port 0: the OS picks a free one)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted sockets inherit this; without it uvicorn's split header/body writes meet
    # Nagle plus delayed ACK and every response costs 40 ms on loopback.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind(("127.0.0.1", port))
    return sock


# uvicorn's values: run the app's startup/shutdown ("on"), skip it ("off"), or try ("auto").
Lifespan = Literal["auto", "on", "off"]


def _server(app: ASGIApp, lifespan: Lifespan = "on") -> uvicorn.Server:
    config = uvicorn.Config(app, log_level="warning", lifespan=lifespan, access_log=False)
    return uvicorn.Server(config)


@asynccontextmanager
async def serve_on_localhost(
    app: ASGIApp, port: int = 0, lifespan: Lifespan = "on"
) -> AsyncIterator[str]:
    """Serve any ASGI app with uvicorn on 127.0.0.1 for the block; yields its base URL."""
    sock = bind_localhost(port)
    server = _server(app, lifespan)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        async with asyncio.timeout(STARTUP_TIMEOUT_S):
            while not server.started:
                if task.done():
                    task.result()  # re-raise why the server could not start
                    raise RuntimeError("server exited during start-up")
                await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        await task
        sock.close()


@asynccontextmanager
async def run_smartcar_fake(
    world: World | None = None,
    *,
    config: FakeConfig | None = None,
    clock: Clock | None = None,
    port: int = 0,
) -> AsyncIterator[RunningFake]:
    """Serve a fake Smartcar on 127.0.0.1 (ephemeral port by default) for the block's duration.

    Without a ``world`` a small seeded one is generated; ``running.fake.world`` holds it.
    """
    fake = FakeSmartcar(world or World.generate(chargers=4, vehicles=10, seed=0), config, clock)
    async with serve_on_localhost(create_app(fake), port) as base_url:
        yield RunningFake(base_url, fake)


async def serve(fake: FakeSmartcar, sock: socket.socket) -> None:
    """Serve on a socket from ``bind_localhost`` until cancelled (the CLI's main loop)."""
    try:
        await _server(create_app(fake)).serve(sockets=[sock])
    finally:
        sock.close()
