"""``csms serve --workers N``: N worker processes on one machine sharing the ports.

The parent does what must happen once: the embedded PostgreSQL (no ``CSMS_DATABASE_URL``),
the embedded NATS server (no ``CSMS_NATS_URL``), the migrations. It then starts N
``csms serve`` workers that bind the OCPP and HTTP ports with SO_REUSEPORT (the kernel
spreads connections over them), restarts a worker that dies, and on SIGINT/SIGTERM stops
the workers (each closes its chargers' sockets and flushes), then NATS, then PostgreSQL.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from dataclasses import replace

import structlog

from csms.cluster.nats_server import EmbeddedNats, free_port
from csms.config import Settings

log = structlog.get_logger()

RESTART_DELAY = 1.0
STOP_GRACE = 30.0


async def run_workers(settings: Settings, workers: int) -> int:
    """Run until a signal; return the exit status for ``csms serve``."""
    from csms.app import migrate_database, resolve_database

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    embedded_nats: EmbeddedNats | None = None
    dsn, embedded_pg = await resolve_database(settings)
    try:
        await migrate_database(dsn, settings.plugins)
        nats_url = settings.nats_url
        if nats_url is None:
            embedded_nats = EmbeddedNats(settings.data_dir)
            nats_url = await asyncio.to_thread(embedded_nats.start)
        # Port 0 would give each worker its own port: choose one for all of them.
        shared = replace(
            settings,
            ocpp_port=settings.ocpp_port or free_port(),
            http_port=settings.http_port or free_port(),
        )
        env = {
            **os.environ,
            "CSMS_DATABASE_URL": dsn,
            "CSMS_NATS_URL": nats_url,
            "CSMS_WORKERS": "1",
            "CSMS_REUSE_PORT": "1",
            "CSMS_OCPP_PORT": str(shared.ocpp_port),
            "CSMS_HTTP_PORT": str(shared.http_port),
        }
        log.info(
            "cluster.workers_starting",
            workers=workers,
            nats_url=nats_url,
            ocpp_port=shared.ocpp_port,
            http_port=shared.http_port,
        )
        async with asyncio.TaskGroup() as group:
            for index in range(workers):
                group.create_task(_keep_running(index, env, stop))
    finally:
        if embedded_nats is not None:
            await asyncio.to_thread(embedded_nats.close)
        if embedded_pg is not None:
            await asyncio.to_thread(embedded_pg.close)
    log.info("cluster.workers_stopped", workers=workers)
    return 0


async def _keep_running(index: int, env: dict[str, str], stop: asyncio.Event) -> None:
    """One worker slot: start the worker, restart it if it dies, stop it on ``stop``."""
    while not stop.is_set():
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "csms", "serve", env=env, stdin=asyncio.subprocess.DEVNULL
        )
        log.info("cluster.worker_started", worker=index, pid=process.pid)
        waiter = asyncio.ensure_future(process.wait())
        stopper = asyncio.ensure_future(stop.wait())
        await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if stop.is_set():
            stopper.cancel()
            await _stop(process, waiter)
            return
        stopper.cancel()
        log.error("cluster.worker_exited", worker=index, pid=process.pid, status=waiter.result())
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(RESTART_DELAY):
                await stop.wait()


async def _stop(process: asyncio.subprocess.Process, waiter: asyncio.Future[int]) -> None:
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
    try:
        async with asyncio.timeout(STOP_GRACE):
            await waiter
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await waiter
