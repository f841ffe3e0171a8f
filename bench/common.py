"""What every scenario shares: run options, the CPU arrangement, one server + its load client.

CPU arrangement (2 cores): the server under test is pinned to core 0 and every load
worker to core 1, so a server never competes with its own load generator; PostgreSQL
(ours only) is not pinned and takes what it needs from either core. The same
arrangement is applied to every server measured. ``--no-pin`` turns it off.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.load import LoadClient
from bench.profile import Profiler
from bench.servers import DEFAULT_SERVERS, Database, ServerProcess


@dataclass
class Options:
    quick: bool = False
    pin: bool = True
    servers: tuple[str, ...] = DEFAULT_SERVERS
    database: Database | None = None
    profile_dir: Path | None = None
    log_dir: Path | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def server_cpus(self) -> set[int] | None:
        return {0} if self._pinnable else None

    @property
    def client_cpus(self) -> set[int] | None:
        return {1} if self._pinnable else None

    @property
    def _pinnable(self) -> bool:
        return self.pin and len(os.sched_getaffinity(0)) >= 2


@contextlib.contextmanager
def server_and_client(
    options: Options,
    kind: str,
    identities: list[str],
    *,
    connectors: int = 2,
    processes: int = 1,
) -> Iterator[tuple[ServerProcess, LoadClient]]:
    """A fresh server of ``kind`` and a load client for ``identities``; both stopped on exit."""
    with (
        ServerProcess(
            kind, database=options.database, cpus=options.server_cpus, log_dir=options.log_dir
        ) as server,
        LoadClient(
            "127.0.0.1",
            server.port,
            identities,
            connectors=connectors,
            processes=processes,
            cpus=options.client_cpus,
        ) as client,
    ):
        yield server, client


@contextlib.contextmanager
def maybe_profile(options: Options, server: ServerProcess, name: str) -> Iterator[dict[str, Any]]:
    """Record the server with py-spy while the block runs, when ``--profile`` asked for it.

    Every server is recorded, not only ours: where raw ``websockets`` spends its time is
    the yardstick for where ours does. Yields a dict that receives the profile summary
    (and stays empty otherwise).
    """
    summary: dict[str, Any] = {}
    if options.profile_dir is None:
        yield summary
        return
    with Profiler(server.pid, options.profile_dir / f"{name}-{server.kind}") as profiler:
        yield summary
    summary.update(profiler.summary())


def identities(prefix: str, count: int) -> list[str]:
    return [f"{prefix}{n:05d}" for n in range(1, count + 1)]


def ratio(ours: float | None, reference: float | None) -> float | None:
    if not ours or not reference:
        return None
    return round(ours / reference, 2)
