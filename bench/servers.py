"""The servers under test, each a subprocess on a free 127.0.0.1 port, and their database.

``ours``       ``python -m csms serve`` on a freshly created database (uvloop)
``reference``  ``bench/reference_server.py``: the bare ``ocpp`` library, no persistence
``raw``        ``bench/raw_server.py``: ``websockets`` + ``json``, the ceiling for Python

Like with like: the reference and raw servers run on uvloop, as ours does, with the
same listen backlog and opening-handshake timeout; ``reference-asyncio`` and
``raw-asyncio`` are the same servers on asyncio's default loop, for a second column.
``CSMS_BENCH_OURS_ROOT`` runs ``ours`` from another checkout (a before/after profile).

The database is a PostgreSQL given by ``--pg`` / ``CSMS_BENCH_PG``, else the local one on
127.0.0.1:5432 if it answers, else an embedded server (``csms.db.embedded``) under a
temporary directory. Our server gets its own database there, dropped and recreated per run.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO

import asyncpg

ROOT = Path(__file__).resolve().parent.parent
SERVERS = ("ours", "ours-gather", "reference", "raw", "reference-asyncio", "raw-asyncio")
DEFAULT_SERVERS = ("ours", "reference", "raw")
# ``ours-gather``: ours with CSMS_COMMIT_GATHER_MS at this value (the mix shows what
# fewer commits cost in latency; off by default).
GATHER_MS = 20

LOCAL_PG = "postgresql://postgres@127.0.0.1:5432/postgres"
# One name per bench run: two runs on one PostgreSQL (a shared CI host) must not drop
# each other's database.
BENCH_DATABASE = f"csms_bench_{os.getpid()}"


def kind_of(server: str) -> str:
    """The implementation a server name runs: ``ours``, ``reference`` or ``raw``."""
    return server.partition("-")[0]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def listen_overflows() -> int | None:
    """The kernel's count of connections dropped because an accept queue was full.

    Machine-wide (``TcpExtListenOverflows`` in ``/proc/net/netstat``): a storm's SYNs
    beyond the listen backlog, capped by ``net.core.somaxconn``, wait on the client's
    SYN retransmit timer (1 s, then 3 s, 7 s ...). None where it cannot be read.
    """
    try:
        with open("/proc/net/netstat") as netstat:
            lines = netstat.read().splitlines()
    except OSError:
        return None
    for names, values in zip(lines[::2], lines[1::2], strict=False):
        if names.startswith("TcpExt:"):
            fields = dict(zip(names.split()[1:], values.split()[1:], strict=False))
            value = fields.get("ListenOverflows")
            return int(value) if value is not None else None
    return None


def read_status_kb(pid: int, field: str) -> int:
    """A ``/proc/<pid>/status`` memory field (``VmRSS``, ``VmHWM``) in KiB."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise LookupError(f"{field} not in /proc/{pid}/status")


class Database:
    """The PostgreSQL our server writes to; ``fresh()`` gives a clean database's DSN."""

    def __init__(self, admin_dsn: str | None, force_embedded: bool = False) -> None:
        self._admin_dsn = admin_dsn
        self._force_embedded = force_embedded
        self._embedded: object | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self.kind = "configured"
        self._created = False

    def open(self) -> None:
        if self._admin_dsn is None and not self._force_embedded and _answers(LOCAL_PG):
            self._admin_dsn, self.kind = LOCAL_PG, "local"
        if self._admin_dsn is None:
            from csms.db.embedded import EmbeddedPostgres

            self._tmp = tempfile.TemporaryDirectory(prefix="csms-bench-pg-")
            embedded = EmbeddedPostgres(Path(self._tmp.name))
            self._admin_dsn = embedded.start()
            self._embedded, self.kind = embedded, "embedded"

    def fresh(self, name: str = BENCH_DATABASE) -> str:
        """Drop and recreate the bench database (or ``name``); return its DSN."""
        assert self._admin_dsn is not None
        asyncio.run(_recreate(self._admin_dsn, name))
        if name == BENCH_DATABASE:
            self._created = True  # dropped by close(); other names are their owner's
        if self._embedded is not None:
            return str(self._embedded.dsn_for(name))  # type: ignore[attr-defined]
        return _with_database(self._admin_dsn, name)

    def close(self) -> None:
        if self._admin_dsn is not None and self._embedded is None and self._created:
            with contextlib.suppress(OSError, asyncpg.PostgresError, TimeoutError):
                asyncio.run(_drop(self._admin_dsn, BENCH_DATABASE))
        if self._embedded is not None:
            self._embedded.close()  # type: ignore[attr-defined]
            self._embedded = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None


def _answers(dsn: str) -> bool:
    async def probe() -> bool:
        try:
            connection = await asyncpg.connect(dsn, timeout=3)
        except (OSError, asyncpg.PostgresError, TimeoutError):
            return False
        await connection.close()
        return True

    return asyncio.run(probe())


async def _recreate(admin_dsn: str, name: str) -> None:
    connection = await asyncpg.connect(admin_dsn, timeout=10)
    try:
        # Identifiers cannot be bound parameters; ``name`` is our constant.
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()


async def _drop(admin_dsn: str, name: str) -> None:
    connection = await asyncpg.connect(admin_dsn, timeout=10)
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()


def _with_database(dsn: str, name: str) -> str:
    base, _, query = dsn.partition("?")
    base = base.rsplit("/", 1)[0] if base.count("/") > 2 else base
    return f"{base}/{name}" + (f"?{query}" if query else "")


def count_rows(dsn: str, table: str) -> int:
    async def count() -> int:
        connection = await asyncpg.connect(dsn, timeout=10)
        try:
            # ``table`` is one of our constants, never input.
            return int(await connection.fetchval(f"SELECT count(*) FROM {table}"))
        finally:
            await connection.close()

    return asyncio.run(count())


def terminate(process: subprocess.Popen[bytes], grace_s: float = 30.0) -> None:
    """Stop a server as an operator would (SIGTERM), killing it if it is not gone in time."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


class ServerProcess:
    """One server under test as a subprocess; a context manager that always kills it."""

    def __init__(
        self,
        kind: str,
        *,
        database: Database | None = None,
        cpus: set[int] | None = None,
        log_dir: Path | None = None,
    ) -> None:
        if kind not in SERVERS:
            raise ValueError(f"unknown server {kind!r}")
        self.kind = kind
        self.port = free_port()
        self.dsn: str | None = None
        self._database = database
        self._cpus = cpus
        self._log_dir = log_dir or Path(tempfile.gettempdir())
        self._log: IO[bytes] | None = None
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ocpp"

    def rss_kb(self) -> int:
        return read_status_kb(self.pid, "VmRSS")

    def peak_rss_kb(self) -> int:
        return read_status_kb(self.pid, "VmHWM")

    def cpu_seconds(self) -> float:
        """User + system CPU time the server process has used so far."""
        with open(f"/proc/{self.pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def _command(self) -> tuple[list[str], dict[str, str]]:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        kind, _, loop = self.kind.partition("-")
        if kind in ("reference", "raw"):
            module = f"bench.{kind}_server"
            argv = [sys.executable, "-m", module, "--port", str(self.port)]
            return [*argv, "--loop", loop or "uvloop"], env
        assert self._database is not None
        self.dsn = self._database.fresh()
        env.update(
            CSMS_DATABASE_URL=self.dsn,
            CSMS_OCPP_HOST="127.0.0.1",
            CSMS_OCPP_PORT=str(self.port),
            CSMS_HTTP_HOST="127.0.0.1",
            CSMS_HTTP_PORT=str(free_port()),
            CSMS_LOG_LEVEL="warning",
            CSMS_HEARTBEAT_INTERVAL="300",
        )
        if loop == "gather":
            env["CSMS_COMMIT_GATHER_MS"] = str(GATHER_MS)
        return [sys.executable, "-m", "csms", "serve"], env

    def start(self, timeout: float = 60.0) -> None:
        argv, env = self._command()
        self._log = open(self._log_dir / f"bench-{self.kind}-{self.port}.log", "wb")
        cpus = self._cpus
        root = ROOT
        if kind_of(self.kind) == "ours":
            root = Path(os.environ.get("CSMS_BENCH_OURS_ROOT", ROOT))
        self._process = subprocess.Popen(
            argv,
            cwd=root,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"{self.kind} server exited at start-up:\n{self.log_tail()}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port)):
                return
            time.sleep(0.05)
        raise TimeoutError(f"{self.kind} server not listening after {timeout}s")

    def count_log_events(self, event: str) -> int:
        """How many JSON log lines of ours name ``event`` (e.g. dropped handshakes)."""
        if self._log is None:
            return 0
        self._log.flush()
        needle = f'"event": "{event}"'.encode()
        compact = f'"event":"{event}"'.encode()
        data = Path(self._log.name).read_bytes()
        return data.count(needle) + data.count(compact)

    def log_tail(self, lines: int = 20) -> str:
        if self._log is None:
            return ""
        self._log.flush()
        text = Path(self._log.name).read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def stop(self) -> None:
        if self._process is not None:
            terminate(self._process)
        if self._log is not None:
            self._log.close()

    def __enter__(self) -> ServerProcess:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _process_cpu_seconds(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:  # ended between listing and reading
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def postgres_sample(dsn: str) -> dict[str, float]:
    """What PostgreSQL did for our database so far: its transactions and backends' CPU.

    ``xact_commit`` counts every transaction PostgreSQL committed in the database,
    read-only ones included; CPU is user + system time of the backends serving it
    (from ``/proc``, so PostgreSQL must run on this machine), not the shared WAL writer
    and checkpointer. Our own sampling connection is left out of the CPU.
    """

    async def sample() -> dict[str, float]:
        connection = await asyncpg.connect(dsn, timeout=10)
        try:
            own = await connection.fetchval("SELECT pg_backend_pid()")
            pids = await connection.fetchval(
                "SELECT array_agg(pid) FROM pg_stat_activity WHERE datname = current_database()"
            )
            commits = await connection.fetchval(
                "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"
            )
        finally:
            await connection.close()
        cpu = sum(_process_cpu_seconds(pid) for pid in pids or [] if pid != own)
        # Our three statements are transactions too; leave them out.
        return {"commits": float(commits) - 3, "cpu_s": cpu}

    return asyncio.run(sample())
