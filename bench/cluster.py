"""Cluster rows: one process vs ``csms serve --workers N``, and command round trips.

``heartbeat``  Heartbeat round trips/s at 1,000 connections (closed loop), one process vs
               ``--workers 2`` (and 4 on a machine with 4+ cores), same database.
``storm``      the 10,000-charger reconnect storm (boot + StatusNotifications), same pair.
``commands``   operator-API command round trip (HTTP → charger → answer): one process, a
               cluster node holding the charger (local), and another node (routed via NATS).

Nothing is pinned here (N workers must share the cores), so these are not comparable with
the pinned single-process tables above, only with each other in the same run.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import asyncpg
import httpx

from bench.common import Options, identities
from bench.load import LoadClient, merge, percentiles_ms
from bench.report import _cell  # the same number formatting as the other tables
from bench.servers import ROOT, _with_database, free_port, terminate

HEARTBEAT_CONNECTIONS = 1000
COMMANDS = 200
LOAD_PROCESSES = 2


class Node:
    """``csms serve`` (``--workers N`` when N > 1) as a subprocess; counts its whole tree's CPU."""

    def __init__(self, options: Options, workers: int, env: dict[str, str] | None = None) -> None:
        self.workers = workers
        self.port = free_port()
        self.http_port = free_port()
        self._data = tempfile.TemporaryDirectory(prefix="csms-bench-cluster-")
        self._env = dict(
            os.environ,
            CSMS_OCPP_HOST="127.0.0.1",
            CSMS_OCPP_PORT=str(self.port),
            CSMS_HTTP_HOST="127.0.0.1",
            CSMS_HTTP_PORT=str(self.http_port),
            CSMS_LOG_LEVEL="warning",
            CSMS_HEARTBEAT_INTERVAL="300",
            CSMS_DATA_DIR=self._data.name,
            **(env or {}),
        )
        if "CSMS_DATABASE_URL" not in self._env:
            assert options.database is not None
            # Its own database: a bench of the other scenarios may recreate csms_bench.
            self._env["CSMS_DATABASE_URL"] = options.database.fresh(
                f"csms_bench_cluster_{os.getpid()}"
            )
        self._log_dir = options.log_dir or Path(tempfile.gettempdir())
        self._log: IO[bytes] | None = None
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def dsn(self) -> str:
        return self._env["CSMS_DATABASE_URL"]

    def start(self, timeout: float = 120.0) -> None:
        argv = [sys.executable, "-m", "csms", "serve", "--workers", str(self.workers)]
        self._log = open(self._log_dir / f"bench-cluster-{self.workers}-{self.port}.log", "wb")
        self._process = subprocess.Popen(
            argv, cwd=ROOT, env=self._env, stdout=self._log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + timeout
        with httpx.Client() as client:
            while time.monotonic() < deadline:
                if self._process.poll() is not None:
                    raise RuntimeError(f"csms serve --workers {self.workers} exited at start-up")
                with contextlib.suppress(httpx.HTTPError):
                    if client.get(f"http://127.0.0.1:{self.http_port}/readyz").status_code == 200:
                        if self._ready_workers() >= self.workers:
                            return
                time.sleep(0.2)
        raise TimeoutError(f"csms serve --workers {self.workers} not ready after {timeout}s")

    def _ready_workers(self) -> int:
        if self.workers == 1:
            return 1

        async def count() -> int:
            connection = await asyncpg.connect(self.dsn)
            try:
                return int(await connection.fetchval("SELECT count(*) FROM cluster_nodes"))
            finally:
                await connection.close()

        return asyncio.run(count())

    def cpu_seconds(self) -> float:
        """User + system CPU of the process and its (live) workers."""
        assert self._process is not None
        pids = [self._process.pid, *_children(self._process.pid)]
        total = 0.0
        for pid in pids:
            with contextlib.suppress(OSError), open(f"/proc/{pid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
                total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        return total

    def stop(self) -> None:
        if self._process is not None:
            terminate(self._process, grace_s=60.0)
        if self._log is not None:
            self._log.close()
        self._data.cleanup()

    def __enter__(self) -> Node:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _children(pid: int) -> list[int]:
    with contextlib.suppress(OSError), open(f"/proc/{pid}/task/{pid}/children") as children:
        return [int(p) for p in children.read().split()]
    return []


def run(options: Options) -> dict[str, Any]:
    quick = options.quick
    sizes = [1, 2] + ([4] if len(os.sched_getaffinity(0)) >= 4 else [])
    results: dict[str, Any] = {"workers": sizes, "cpus": len(os.sched_getaffinity(0))}
    duration = 3.0 if quick else 10.0
    storm_chargers = 2000 if quick else 10_000
    for workers in sizes:
        results[f"heartbeat_{workers}"] = _heartbeat(options, workers, duration)
        results[f"storm_{workers}"] = _storm(options, workers, storm_chargers)
    results["heartbeat_connections"] = HEARTBEAT_CONNECTIONS
    results["storm_chargers"] = storm_chargers
    results["commands"] = _commands(options, 50 if quick else COMMANDS)
    _drop_database(options)
    return results


def _database_name() -> str:
    # Its own database: a bench of the other scenarios may recreate csms_bench meanwhile.
    return f"csms_bench_cluster_{os.getpid()}"


def _drop_database(options: Options) -> None:
    assert options.database is not None
    dsn = options.database.fresh(_database_name())

    async def drop() -> None:
        admin = await asyncpg.connect(_with_database(dsn, "postgres"))
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{_database_name()}" WITH (FORCE)')
        finally:
            await admin.close()

    asyncio.run(drop())


@contextlib.contextmanager
def _node_and_load(
    options: Options, workers: int, names: list[str]
) -> Iterator[tuple[Node, LoadClient]]:
    with (
        Node(options, workers) as node,
        LoadClient("127.0.0.1", node.port, names, processes=LOAD_PROCESSES) as client,
    ):
        yield node, client


def _heartbeat(options: Options, workers: int, duration: float) -> dict[str, Any]:
    with _node_and_load(options, workers, identities("CHB-", HEARTBEAT_CONNECTIONS)) as (
        node,
        client,
    ):
        merge(client.command("connect", 120, with_status=False, timeout=90, concurrency=0))
        client.command("run", 30, workload="heartbeat", duration=1.0, entries=0)  # warm-up
        cpu = node.cpu_seconds()
        phase = merge(
            client.command("run", duration + 60, workload="heartbeat", duration=duration, entries=0)
        )
        latency = percentiles_ms(phase["latencies"].get("Heartbeat", []))
        return {
            "round_trips_per_s": round(latency["count"] / phase["elapsed"]),
            "p99_ms": latency["p99_ms"],
            "server_cpu_share": round((node.cpu_seconds() - cpu) / phase["elapsed"], 2),
            "errors": phase["errors"],
        }


def _storm(options: Options, workers: int, chargers: int) -> dict[str, Any]:
    result: dict[str, Any] = {}
    with _node_and_load(options, workers, identities("CST-", chargers)) as (_node, client):
        for wave in ("first_contact", "reconnect"):
            phase = merge(
                client.command("connect", 150, with_status=True, timeout=120, concurrency=0)
            )
            result[wave] = {
                "seconds": round(phase["elapsed"], 2),
                "answered": phase["ok"],
                "errors": phase["errors"],
            }
            client.command("close", 60)
            time.sleep(2.0)
    return result


def _commands(options: Options, count: int) -> dict[str, Any]:
    from csms.cluster.nats_server import EmbeddedNats

    results: dict[str, Any] = {"count": count}
    with Node(options, 1) as single:
        results["one_process"] = asyncio.run(_round_trips(single, single, count))
    folder = tempfile.TemporaryDirectory(prefix="csms-bench-nats-")
    nats = EmbeddedNats(Path(folder.name))
    try:
        url = nats.start()
        with Node(options, 1, {"CSMS_NATS_URL": url}) as a:
            with Node(options, 1, {"CSMS_NATS_URL": url, "CSMS_DATABASE_URL": a.dsn}) as b:
                results["cluster_local"] = asyncio.run(_round_trips(a, a, count))
                results["cluster_routed"] = asyncio.run(_round_trips(a, b, count))
    finally:
        nats.close()
        folder.cleanup()
    return results


async def _round_trips(holder: Node, asked: Node, count: int) -> dict[str, Any]:
    """``count`` sequential Reset commands asked of ``asked`` for a charger on ``holder``."""
    from websockets.asyncio.client import connect

    token = await _operator_token(holder.dsn)
    url = f"ws://127.0.0.1:{holder.port}/ocpp/CMD-BENCH"
    async with connect(url, subprotocols=["ocpp1.6"]) as ws:  # type: ignore[list-item]
        await ws.send(
            json.dumps(
                [2, "b", "BootNotification", {"chargePointVendor": "V", "chargePointModel": "M"}]
            )
        )
        await ws.recv()

        async def answer() -> None:
            async for raw in ws:
                frame = json.loads(raw)
                if frame[0] == 2:
                    await ws.send(json.dumps([3, frame[1], {"status": "Accepted"}]))

        answering = asyncio.create_task(answer())
        samples: list[float] = []
        headers = {"Authorization": f"Bearer {token}"}
        endpoint = f"http://127.0.0.1:{asked.http_port}/api/charge-points/CMD-BENCH/commands/Reset"
        async with httpx.AsyncClient(timeout=30) as client:
            for n in range(count + 10):
                t0 = time.perf_counter()
                response = await client.post(endpoint, json={"type": "Soft"}, headers=headers)
                response.raise_for_status()
                if n >= 10:  # warm-up
                    samples.append((time.perf_counter() - t0) * 1000)
        answering.cancel()
    samples.sort()
    return {
        "p50_ms": round(statistics.median(samples), 2),
        "p99_ms": round(samples[int(len(samples) * 0.99) - 1], 2),
        "mean_ms": round(statistics.fmean(samples), 2),
    }


async def _operator_token(dsn: str) -> str:
    from csms.db import operator_tokens

    connection = await asyncpg.connect(dsn)
    try:
        return await operator_tokens.create(connection, f"bench-{time.monotonic_ns()}")
    finally:
        await connection.close()


def render(results: dict[str, Any]) -> str:
    sizes = results["workers"]
    header = ["one process" if n == 1 else f"--workers {n}" for n in sizes]
    rows = []

    def row(name: str, values: list[Any]) -> None:
        rows.append((name, dict(zip(header, values, strict=True)), None))

    row("heartbeats/s", [results[f"heartbeat_{n}"]["round_trips_per_s"] for n in sizes])
    row("heartbeat p99 ms", [results[f"heartbeat_{n}"]["p99_ms"] for n in sizes])
    row("server CPU share", [results[f"heartbeat_{n}"]["server_cpu_share"] for n in sizes])
    for wave in ("first_contact", "reconnect"):
        row(f"storm {wave} s", [results[f"storm_{n}"][wave]["seconds"] for n in sizes])
        row(f"storm {wave} answered", [results[f"storm_{n}"][wave]["answered"] for n in sizes])
    text = _table(
        f"cluster: {results['heartbeat_connections']:,} heartbeat connections, "
        f"{results['storm_chargers']:,}-charger storm (unpinned, {results['cpus']} cores)",
        header,
        rows,
    )
    commands = results["commands"]
    kinds = ["one_process", "cluster_local", "cluster_routed"]
    command_rows = [
        (figure, {k: commands[k][figure] for k in kinds}, None)
        for figure in ("p50_ms", "p99_ms", "mean_ms")
    ]
    text += "\n" + _table(
        f"command round trip over the API ({commands['count']} sequential Resets)",
        kinds,
        command_rows,
    )
    return text


def _table(title: str, columns: list[str], rows: list[Any]) -> str:
    """Same layout as ``bench.report.table``, with this scenario's columns."""
    header = ["figure", *columns]
    body = [[name, *(_cell(values.get(c)) for c in columns)] for name, values, _ in rows]
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]
    lines = [f"== {title}", "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    for line in body:
        cells = [line[0].ljust(widths[0])]
        cells += [c.rjust(w) for c, w in zip(line[1:], widths[1:], strict=True)]
        lines.append("  ".join(cells))
    return "\n".join(lines)
