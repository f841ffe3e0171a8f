"""The load generator: worker processes of lean chargers, driven by commands over a pipe.

The bench's main process stays synchronous and only orchestrates; each worker owns a
slice of the charger identities and an event loop. Commands:

``connect``           open sockets, BootNotification, optionally a StatusNotification per
                      connector
``run``               a closed-loop workload (``heartbeat``, ``meter_values``, ``mixed``)
``prepare_sessions``  give each charger a place in its charging session (see ``run_sessions``)
``run_sessions``      the paced, realistic mix: a MeterValues every ``interval`` s per charger
``close``             drop every socket

Every phase is bounded by a deadline; whatever is still running then is cancelled and
counted as a timeout, never waited for. Failures are counted by kind (``FAILURE_KINDS``):
a CALLERROR answer is a failure as much as a reset socket.
"""

from __future__ import annotations

import asyncio
import gc
import multiprocessing
import multiprocessing.connection
import os
import random
import resource
import time
from array import array
from collections import Counter
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from bench import frames
from bench.wsclient import LeanConnection, open_connection

Latencies = dict[str, array]
Result = dict[str, Any]


# Exception type -> the failure kind a row reports.
FAILURE_KINDS = {
    "ConnectionResetError": "reset",
    "BrokenPipeError": "reset",
    "ConnectionAbortedError": "reset",
    "ConnectionRefusedError": "refused",
    "Timeout": "timed_out",
    "TimeoutError": "timed_out",
    "CallErrorAnswer": "callerror",
    "HandshakeRefused": "handshake_refused",
    "HandshakeDropped": "handshake_dropped",
}


class CallErrorAnswer(Exception):
    """The server answered a CALL with a CALLERROR."""


def _checked(answer: bytes) -> bytes:
    if answer[1:2] == b"4":
        raise CallErrorAnswer(answer[:200].decode(errors="replace"))
    return answer


def raise_fd_limit() -> int:
    """Raise this process's open-file soft limit to its hard limit; return the new limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


class Worker:
    """The chargers of one worker process."""

    def __init__(self, host: str, port: int, identities: list[str], connectors: int) -> None:
        self.host = host
        self.port = port
        self.identities = identities
        self.connectors = connectors
        self.connections: dict[str, LeanConnection] = {}
        self.sessions: dict[str, Session] = {}

    async def connect(self, with_status: bool, timeout: float, concurrency: int) -> Result:
        latencies: Latencies = {}
        errors: Counter[str] = Counter()
        limit = asyncio.Semaphore(concurrency or len(self.identities) or 1)

        async def one(identity: str) -> None:
            async with limit:
                t0 = time.perf_counter()
                connection = await open_connection(self.host, self.port, f"/ocpp/{identity}")
                _record(latencies, "Connect", t0)
                self.connections[identity] = connection
                t0 = time.perf_counter()
                answer = _checked(await connection.call(frames.boot(identity)))
                _record(latencies, "BootNotification", t0)
                if b'"Accepted"' not in answer:
                    raise RuntimeError("boot not accepted")
                if with_status:
                    for connector_id in range(self.connectors + 1):
                        t0 = time.perf_counter()
                        _checked(await connection.call(frames.status(connector_id)))
                        _record(latencies, "StatusNotification", t0)

        started, cpu = time.monotonic(), time.process_time()
        ok = await _bounded([one(i) for i in self.identities], timeout, errors)
        return {
            "ok": ok,
            "cpu_s": time.process_time() - cpu,
            "errors": dict(errors),
            "started": started,
            "finished": time.monotonic(),
            "latencies": latencies,
        }

    async def run(self, workload: str, duration: float, entries: int) -> Result:
        latencies: Latencies = {}
        errors: Counter[str] = Counter()
        deadline = time.monotonic() + duration
        body = _WORKLOADS[workload]
        started, cpu = time.monotonic(), time.process_time()
        tasks = [
            body(connection, deadline, latencies, entries)
            for connection in self.connections.values()
        ]
        await _bounded(tasks, duration + 15.0, errors)
        return {
            "cpu_s": time.process_time() - cpu,
            "errors": dict(errors),
            "started": started,
            "finished": time.monotonic(),
            "latencies": latencies,
        }

    async def prepare_sessions(self, session_values: int, seed: int) -> Result:
        """Place each charger somewhere in a session of ``session_values`` MeterValues.

        Like a real fleet at any moment: most are charging (their StartTransaction is
        sent now, before the measured window), a few are between sessions.
        """
        rng = random.Random(seed)
        errors: Counter[str] = Counter()
        self.sessions = {}

        async def one(identity: str, connection: LeanConnection) -> None:
            position = rng.randrange(session_values + 1)
            session = Session(position=position)
            if position < session_values:
                answer = _checked(await connection.call(frames.start_transaction(1, TAG, 0)))
                session.transaction_id = frames.transaction_id_of(answer)
            self.sessions[identity] = session

        ok = await _bounded(
            [one(i, c) for i, c in self.connections.items()], 120.0, errors, limit=500
        )
        return {"ok": ok, "errors": dict(errors)}

    async def run_sessions(
        self, duration: float, interval: float, session_values: int, entries: int, seed: int
    ) -> Result:
        """The paced mix for ``duration`` s; latencies per action."""
        latencies: Latencies = {}
        errors: Counter[str] = Counter()
        rng = random.Random(seed)
        loop = asyncio.get_running_loop()
        started, cpu = time.monotonic(), time.process_time()
        deadline = loop.time() + duration
        tasks = [
            _session_loop(
                connection,
                self.sessions[identity],
                latencies,
                first_at=loop.time() + rng.uniform(0, interval),
                deadline=deadline,
                interval=interval,
                session_values=session_values,
                entries=entries,
            )
            for identity, connection in self.connections.items()
            if identity in self.sessions
        ]
        await _bounded(tasks, duration + 15.0, errors)
        return {
            "cpu_s": time.process_time() - cpu,
            "errors": dict(errors),
            "started": started,
            "finished": time.monotonic(),
            "latencies": latencies,
        }

    async def close(self) -> Result:
        for connection in self.connections.values():
            connection.close()
        closed = [c.closed for c in self.connections.values()]
        self.connections.clear()
        if closed:
            await asyncio.wait(closed, timeout=10.0)
        return {}


def _record(latencies: Latencies, action: str, t0: float) -> None:
    samples = latencies.get(action)
    if samples is None:
        samples = latencies[action] = array("d")
    samples.append(time.perf_counter() - t0)


async def _bounded(
    coroutines: list[Coroutine[Any, Any, None]],
    timeout: float,
    errors: Counter[str],
    limit: int = 0,
) -> int:
    """Run all (at most ``limit`` at once); cancel what outlives ``timeout``.

    Returns how many finished without error; counts the others in ``errors`` by kind.
    """
    if not coroutines:
        return 0
    if limit:
        semaphore = asyncio.Semaphore(limit)

        async def limited(coroutine: Coroutine[Any, Any, None]) -> None:
            async with semaphore:
                await coroutine

        coroutines = [limited(c) for c in coroutines]
    tasks = [asyncio.ensure_future(c) for c in coroutines]
    done, pending = await asyncio.wait(tasks, timeout=timeout)
    for task in pending:
        task.cancel()
    if pending:
        errors["timed_out"] += len(pending)
        await asyncio.wait(pending)
    ok = 0
    for task in done:
        exc = task.exception()
        if exc is None:
            ok += 1
        else:
            name = type(exc).__name__
            errors[FAILURE_KINDS.get(name, name)] += 1
    return ok


async def _heartbeats(
    connection: LeanConnection, deadline: float, latencies: Latencies, _entries: int
) -> None:
    frame = frames.HEARTBEAT
    samples = latencies.setdefault("Heartbeat", array("d"))
    clock, call, append = time.perf_counter, connection.call, samples.append
    while time.monotonic() < deadline:
        for _ in range(8):  # check the deadline every 8 calls, not every call
            t0 = clock()
            answer = await call(frame)
            append(clock() - t0)
            if answer[1] == 52:  # b"4": a CALLERROR
                _checked(answer)


async def _meter_values(
    connection: LeanConnection, deadline: float, latencies: Latencies, entries: int
) -> None:
    # Every frame is new readings (its own timestamps), built outside the timed call: a
    # repeated frame is a retransmission, stored once by the database's unique key, and
    # would not add rows.
    samples = latencies.setdefault("MeterValues", array("d"))
    clock, call, append = time.perf_counter, connection.call, samples.append
    while time.monotonic() < deadline:
        frame = frames.meter_values(1, entries)
        t0 = clock()
        answer = await call(frame)
        append(clock() - t0)
        _checked(answer)


async def _mixed(
    connection: LeanConnection, deadline: float, latencies: Latencies, entries: int
) -> None:
    """A charging session per cycle: ten messages, two of them MeterValues."""
    tag = "BENCH0001"
    meter = 1000
    preparing, charging, available = (
        frames.status(1, s) for s in ("Preparing", "Charging", "Available")
    )
    authorize = frames.authorize(tag)

    async def timed(action: str, frame: bytes) -> bytes:
        t0 = time.perf_counter()
        answer = await connection.call(frame)
        _record(latencies, action, t0)
        return _checked(answer)

    while time.monotonic() < deadline:
        await timed("Heartbeat", frames.HEARTBEAT)
        await timed("StatusNotification", preparing)
        await timed("Authorize", authorize)
        answer = await timed("StartTransaction", frames.start_transaction(1, tag, meter))
        transaction_id = frames.transaction_id_of(answer)
        await timed("StatusNotification", charging)
        await timed("MeterValues", frames.meter_values(1, entries, transaction_id))
        await timed("MeterValues", frames.meter_values(1, entries, transaction_id))
        meter += 500
        await timed("StopTransaction", frames.stop_transaction(transaction_id, tag, meter))
        await timed("StatusNotification", available)
        await timed("Heartbeat", frames.HEARTBEAT)


TAG = "BENCH0001"


@dataclass(slots=True)
class Session:
    """Where one charger is in its charging session: MeterValues sent so far."""

    position: int
    transaction_id: int | None = None
    meter_wh: int = 0


async def _session_loop(
    connection: LeanConnection,
    session: Session,
    latencies: Latencies,
    *,
    first_at: float,
    deadline: float,
    interval: float,
    session_values: int,
    entries: int,
) -> None:
    """One charger of the realistic mix, on its own clock (open loop, not closed).

    Each tick (every ``interval`` s, desynchronised across chargers): a charger between
    sessions plugs in (StatusNotification Preparing, StartTransaction, Charging); a
    charging one sends MeterValues of ``entries`` x 10 sampled values; after
    ``session_values`` of them it stops (StopTransaction, StatusNotification Available).
    """
    loop = asyncio.get_running_loop()
    clock = time.perf_counter

    async def timed(action: str, frame: bytes) -> bytes:
        t0 = clock()
        answer = await connection.call(frame)
        _record(latencies, action, t0)
        return _checked(answer)

    at = first_at
    while True:
        await asyncio.sleep(max(at - loop.time(), 0.0))
        if loop.time() >= deadline:
            return
        if session.transaction_id is None:
            await timed("StatusNotification", frames.status(1, "Preparing"))
            answer = await timed(
                "StartTransaction", frames.start_transaction(1, TAG, session.meter_wh)
            )
            session.transaction_id = frames.transaction_id_of(answer)
            session.position = 0
            await timed("StatusNotification", frames.status(1, "Charging"))
        else:
            session.meter_wh += 200
            await timed("MeterValues", frames.meter_values(1, entries, session.transaction_id))
            session.position += 1
            if session.position >= session_values:
                stop = frames.stop_transaction(session.transaction_id, TAG, session.meter_wh)
                await timed("StopTransaction", stop)
                session.transaction_id = None
                await timed("StatusNotification", frames.status(1, "Available"))
        at += interval


_WORKLOADS: dict[str, Callable[..., Coroutine[Any, Any, None]]] = {
    "heartbeat": _heartbeats,
    "meter_values": _meter_values,
    "mixed": _mixed,
}


def worker_main(pipe: Connection, host: str, port: int, identities: list[str], spec: dict) -> None:
    """Entry point of a worker process: pin, raise the fd limit, obey commands until ``exit``.

    The load generator must not be what a figure measures, so it never collects
    garbage during a phase (measured: a 10,000-charger storm spent 2-3 s of the client's
    core in full collections, pauses of up to 0.34 s in which no charger sent anything);
    it collects between phases instead.
    """
    if spec.get("cpus"):
        os.sched_setaffinity(0, spec["cpus"])
    raise_fd_limit()
    gc.disable()
    asyncio.run(_obey(pipe, Worker(host, port, identities, spec["connectors"])))


async def _obey(pipe: Connection, worker: Worker) -> None:
    loop = asyncio.get_running_loop()
    while True:
        command, args = await loop.run_in_executor(None, pipe.recv)
        if command == "exit":
            await worker.close()
            return
        try:
            result = await getattr(worker, command)(**args)
        except Exception as exc:  # report, keep obeying: the main process decides
            result = {"exception": f"{type(exc).__name__}: {exc}"}
        gc.collect()  # between phases, never during one
        pipe.send(result)


class LoadClient:
    """The main process's handle on the worker processes; a context manager."""

    def __init__(
        self,
        host: str,
        port: int,
        identities: list[str],
        *,
        connectors: int = 2,
        processes: int = 1,
        cpus: set[int] | None = None,
    ) -> None:
        context = multiprocessing.get_context("spawn")
        self._pipes: list[Connection] = []
        self._processes: list[multiprocessing.process.BaseProcess] = []
        spec = {"connectors": connectors, "cpus": cpus}
        for n in range(processes):
            ours, theirs = context.Pipe()
            share = identities[n::processes]
            process = context.Process(
                target=worker_main, args=(theirs, host, port, share, spec), daemon=True
            )
            process.start()
            self._pipes.append(ours)
            self._processes.append(process)

    def command(self, command: str, wait: float, **args: Any) -> list[Result]:
        """Send a command to every worker at once; collect their results within ``wait`` s."""
        for pipe in self._pipes:
            pipe.send((command, args))
        results = []
        deadline = time.monotonic() + wait
        for pipe, process in zip(self._pipes, self._processes, strict=True):
            remaining = max(deadline - time.monotonic(), 0.0)
            if not multiprocessing.connection.wait([pipe, process.sentinel], remaining):
                raise TimeoutError(f"load worker did not finish {command!r} in {wait}s")
            if not pipe.poll():
                raise RuntimeError(f"load worker died during {command!r}")
            result = pipe.recv()
            if "exception" in result:
                raise RuntimeError(f"load worker failed in {command!r}: {result['exception']}")
            results.append(result)
        return results

    def close(self) -> None:
        for pipe in self._pipes:
            try:
                pipe.send(("exit", {}))
            except OSError:
                pass
        for process in self._processes:
            process.join(timeout=15)
            if process.is_alive():
                process.kill()
                process.join(timeout=5)

    def __enter__(self) -> LoadClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def merge(results: list[Result]) -> Result:
    """Combine per-worker results: sums, the union of latencies, the overall wall time."""
    latencies: Latencies = {}
    errors: Counter[str] = Counter()
    for result in results:
        errors.update(result.get("errors", {}))
        for action, samples in result.get("latencies", {}).items():
            latencies.setdefault(action, array("d")).extend(samples)
    return {
        "ok": sum(r.get("ok", 0) for r in results),
        "client_cpu_s": sum(r.get("cpu_s", 0.0) for r in results),
        "errors": dict(errors),
        "elapsed": max(r["finished"] for r in results) - min(r["started"] for r in results),
        "latencies": latencies,
    }


def percentiles_ms(samples: array) -> dict[str, float]:
    """Count, p50 and p99 of a latency sample, in milliseconds."""
    if not samples:
        return {"count": 0, "p50_ms": 0.0, "p99_ms": 0.0}
    ordered = sorted(samples)
    last = len(ordered) - 1
    return {
        "count": len(ordered),
        "p50_ms": round(ordered[last // 2] * 1000, 3),
        "p99_ms": round(ordered[int(last * 0.99)] * 1000, 3),
    }
