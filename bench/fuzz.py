"""Hostile input at scale (issue 14): seeded mutated 1.6 frames from several connections.

``python -m bench fuzz`` runs 100,000+ frames (``--quick``: 20,000) against ``csms serve``
and prints frames/s, answers by code, closes by code and the server's RSS before and
after. The same driver (``drive``) and checks (``check_answers``, ``check_database``)
back the suite's fuzz test (tests/fuzz/test_hostile_frames.py), on fewer frames.

What is checked: every frame that must be answered gets exactly one answer to its id,
CALLRESULT or a 1.6 error code; no InternalError; no close except 1007 (invalid UTF-8)
and 1009 (frame over the size limit), each after exactly the frame that earned it; every
acknowledged sampled value, status report, start and orphan stop is stored exactly once;
every line the server writes on stderr is one JSON object.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from bench.fuzz_frames import Frame, HostileCharger

CALL_ERROR_CODES = frozenset(
    {
        "NotImplemented",
        "NotSupported",
        "InternalError",
        "ProtocolError",
        "SecurityError",
        "FormationViolation",
        "PropertyConstraintViolation",
        "OccurenceConstraintViolation",
        "TypeConstraintViolation",
        "GenericError",
    }
)
EXPECTED_CLOSES = {"invalid_utf8": 1007, "oversized": 1009}
ANSWER_TIMEOUT = 30.0


@dataclass
class ChargerRun:
    """What one hostile charger sent and got back."""

    charge_point_id: str
    frames: int = 0
    answers: Counter[str] = field(default_factory=Counter)  # "CALLRESULT" or the error code
    closes: Counter[int] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)
    acknowledged: list[tuple[str, dict[str, Any], dict[str, Any]]] = field(default_factory=list)


async def drive(url: str, charge_point_id: str, seed: int, index: int, count: int) -> ChargerRun:
    """Send ``count`` hostile frames as one charger, reconnecting after each expected close."""
    charger = HostileCharger(seed, index)
    run = ChargerRun(charge_point_id)
    transaction_id: int | None = None
    ws = await _connect(url, charge_point_id)
    try:
        for frame in [charger.boot(), charger.status(0), charger.status(1), charger.status(2)]:
            await _exchange(ws, frame, run)
        while run.frames < count:
            frame = charger.next_frame(transaction_id)
            run.frames += 1
            answer = await _exchange(ws, frame, run)
            if frame.expect == "close":
                await ws.close()
                ws = await _connect(url, charge_point_id)
            elif answer is not None and answer[0] == 3 and frame.action == "StartTransaction":
                transaction_id = answer[2].get("transactionId", transaction_id)
    finally:
        await ws.close()
    return run


async def _connect(url: str, charge_point_id: str) -> ClientConnection:
    return await connect(
        f"{url}/{charge_point_id}",
        subprotocols=["ocpp1.6"],  # type: ignore[list-item]
        open_timeout=ANSWER_TIMEOUT,
        max_size=None,
        ping_interval=None,
        compression=None,
    )


async def _exchange(ws: ClientConnection, frame: Frame, run: ChargerRun) -> list[Any] | None:
    """Send one frame and read what it must (or must not) bring back."""
    try:
        if isinstance(frame.data, bytes):
            await ws.send(frame.data, text=True)
        else:
            await ws.send(frame.data)
        if frame.expect == "close":
            await asyncio.wait_for(ws.recv(), ANSWER_TIMEOUT)
            run.problems.append(f"{frame.mutation}: answered instead of closed")
            return None
        if frame.expect == "none":
            return None
        answer = json.loads(await asyncio.wait_for(ws.recv(), ANSWER_TIMEOUT))
    except ConnectionClosed as closed:
        code = closed.rcvd.code if closed.rcvd is not None else -1
        run.closes[code] += 1
        if EXPECTED_CLOSES.get(frame.mutation) != code:
            run.problems.append(f"{frame.mutation}: connection closed with {code}")
        return None
    except TimeoutError:
        run.problems.append(f"{frame.mutation}: no answer to {frame.message_id}")
        return None
    _check_answer(frame, answer, run)
    return answer


def _check_answer(frame: Frame, answer: Any, run: ChargerRun) -> None:
    ids = {frame.message_id, "-1"} if frame.fuzzy_id else {frame.message_id}
    if not isinstance(answer, list) or len(answer) < 3 or answer[1] not in ids:
        # Also catches an extra answer to an earlier frame: it arrives here, out of turn.
        run.problems.append(f"{frame.mutation}: answer {str(answer)[:120]} is not for {ids}")
        return
    if answer[0] == 3:
        run.answers["CALLRESULT"] += 1
        if frame.action is not None and frame.payload is not None and frame.message_id != "-1":
            run.acknowledged.append((frame.action, frame.payload, answer[2]))
    elif answer[0] == 4 and answer[2] in CALL_ERROR_CODES:
        run.answers[answer[2]] += 1
        if answer[2] == "InternalError":
            run.problems.append(f"{frame.mutation}: InternalError for {frame.action}")
    else:
        run.problems.append(f"{frame.mutation}: not a 1.6 answer: {str(answer)[:120]}")


def check_answers(runs: list[ChargerRun]) -> list[str]:
    """Every problem the chargers saw on the wire."""
    return [f"{run.charge_point_id}: {p}" for run in runs for p in run.problems]


async def check_database(db: asyncpg.Connection, runs: list[ChargerRun]) -> list[str]:
    """What was acknowledged is stored, once."""
    problems: list[str] = []
    for run in runs:
        problems += [f"{run.charge_point_id}: {p}" for p in await _check_charger(db, run)]
    return problems


async def _check_charger(db: asyncpg.Connection, run: ChargerRun) -> list[str]:
    cp = run.charge_point_id
    problems: list[str] = []
    samples: set[tuple[datetime, str]] = set()
    statuses: set[datetime] = set()
    untimed_statuses = 0
    started: set[int] = set()
    stopped: set[int] = set()
    for action, payload, answer in run.acknowledged:
        if action == "MeterValues":
            samples |= _samples(payload.get("meterValue"))
        elif action == "StopTransaction":
            transaction_id = _integer(payload.get("transactionId"))
            # A later, different stop for a stopped transaction changes nothing (it is
            # answered as a retransmission), its transactionData included. Stops for ids
            # we never issued are each kept (orphan stops), with their data.
            if transaction_id not in started or transaction_id not in stopped:
                samples |= _samples(payload.get("transactionData"))
            if transaction_id in started:
                stopped.add(transaction_id)
        elif action == "StatusNotification":
            stamp = _timestamp(payload.get("timestamp"))
            if stamp is None:
                untimed_statuses += 1
            else:
                statuses.add(stamp)
        elif action == "StartTransaction":
            started.add(answer["transactionId"])
    rows = Counter(
        (r["sampled_at"], r["raw_value"])
        for r in await db.fetch(
            "SELECT sampled_at, raw_value FROM meter_values WHERE charge_point_id = $1", cp
        )
    )
    problems += [f"sampled value {k} stored {n} times" for k, n in rows.items() if n > 1]
    problems += [f"acknowledged sampled value {k} not stored" for k in samples - set(rows)]
    problems += [f"sampled value {k} stored, never acknowledged" for k in set(rows) - samples]
    history = Counter(
        r["reported_at"]
        for r in await db.fetch(
            "SELECT reported_at FROM status_history WHERE charge_point_id = $1", cp
        )
    )
    problems += [f"status at {k} stored {n} times" for k, n in history.items() if k and n > 1]
    problems += [f"acknowledged status at {k} not stored" for k in statuses - set(history)]
    if history[None] != untimed_statuses:
        problems.append(f"{history[None]} untimed statuses stored, {untimed_statuses} acked")
    stored_tx = Counter(
        r["id"]
        for r in await db.fetch("SELECT id FROM transactions WHERE charge_point_id = $1", cp)
    )
    if set(stored_tx) != started:
        problems.append(f"transactions {sorted(stored_tx)} stored, {sorted(started)} answered")
    orphans = Counter(
        (r["transaction_id"], r["stop_timestamp"], r["meter_stop_wh"])
        for r in await db.fetch(
            "SELECT transaction_id, stop_timestamp, meter_stop_wh FROM orphan_stops "
            "WHERE charge_point_id = $1",
            cp,
        )
    )
    problems += [f"orphan stop {k} stored {n} times" for k, n in orphans.items() if n > 1]
    return problems


def _samples(entries: Any) -> set[tuple[datetime, str]]:
    found: set[tuple[datetime, str]] = set()
    for entry in entries or []:
        stamp = _timestamp(entry.get("timestamp"))
        for sampled in entry.get("sampledValue") or []:
            value = sampled.get("value")
            if stamp is not None and not isinstance(value, bool):
                found.add((stamp, value if isinstance(value, str) else _number_text(value)))
    return found


def _integer(value: Any) -> Any:
    # As validation coerces an integer field sent as 3.5 or "12".
    try:
        return round(float(value))
    except (TypeError, ValueError, OverflowError):
        return value


def _number_text(value: Any) -> str:
    # As the central system keeps a number sent where a string belongs (string_as_number).
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return repr(value)


def _timestamp(text: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (AttributeError, ValueError):
        return None


def stderr_problems(lines: list[str]) -> list[str]:
    """Lines on stderr that are not one JSON object each."""
    bad = []
    for line in lines:
        try:
            if not isinstance(json.loads(line), dict):
                bad.append(line[:200])
        except ValueError:
            bad.append(line[:200])
    return bad


async def fuzz(url: str, *, seed: int, chargers: int, frames: int, prefix: str) -> list[ChargerRun]:
    """``frames`` hostile frames in all, from ``chargers`` connections at once."""
    per_charger = max(frames // chargers, 1)
    return list(
        await asyncio.gather(
            *(drive(url, f"{prefix}{i}", seed, i, per_charger) for i in range(chargers))
        )
    )


def summary(runs: list[ChargerRun], elapsed: float) -> dict[str, Any]:
    answers: Counter[str] = Counter()
    closes: Counter[int] = Counter()
    for run in runs:
        answers.update(run.answers)
        closes.update(run.closes)
    frames = sum(r.frames for r in runs)
    return {
        "frames": frames,
        "frames_per_s": round(frames / elapsed) if elapsed else None,
        "answers": dict(answers.most_common()),
        "closes": {str(k): v for k, v in sorted(closes.items())},
        "internal_errors": answers.get("InternalError", 0),
    }


# --- the bench scenario ----------------------------------------------------------------------


def run(options: Any) -> dict[str, Any]:
    """``python -m bench fuzz``: 100,000+ frames from 20 connections (20,000 with --quick)."""
    from bench.servers import ServerProcess, read_status_kb

    frames = 20_000 if options.quick else 102_000
    chargers = 20
    results: dict[str, Any] = {"connections": chargers, "seed": 14}
    with ServerProcess(
        "ours", database=options.database, cpus=options.server_cpus, log_dir=options.log_dir
    ) as server:
        assert server.dsn is not None
        rss_before = read_status_kb(server.pid, "VmRSS")
        started = time.monotonic()
        runs = asyncio.run(
            fuzz(server.url, seed=14, chargers=chargers, frames=frames, prefix="FUZZ-")
        )
        elapsed = time.monotonic() - started
        rss_after = read_status_kb(server.pid, "VmRSS")
        database = asyncio.run(_check_in_database(server.dsn, runs))
        log = server.log_tail(lines=10**9).splitlines()
    results.update(summary(runs, elapsed))
    results.update(
        elapsed_s=round(elapsed, 1),
        rss_before_mb=round(rss_before / 1024, 1),
        rss_after_mb=round(rss_after / 1024, 1),
        wire_problems=len(check_answers(runs)),
        database_problems=len(database),
        non_json_log_lines=len(stderr_problems(log)),
        examples=(check_answers(runs) + database + stderr_problems(log))[:5],
    )
    return results


async def _check_in_database(dsn: str, runs: list[ChargerRun]) -> list[str]:
    # Acknowledged means committed, but give a last batch its moment anyway.
    await asyncio.sleep(0.5)
    db = await asyncpg.connect(dsn)
    try:
        return await check_database(db, runs)
    finally:
        with contextlib.suppress(Exception):
            await db.close()


def render(results: dict[str, Any]) -> str:
    """The fuzz run as lines of text (``python -m bench fuzz``)."""
    lines = [
        f"== fuzz: {results['frames']:,} hostile frames from {results['connections']} "
        f"connections (seed {results['seed']}), ours only",
        f"frames/s                {results['frames_per_s']:,}",
        f"elapsed s               {results['elapsed_s']}",
        f"RSS MB before / after   {results['rss_before_mb']} / {results['rss_after_mb']}",
        f"InternalError answers   {results['internal_errors']}",
        f"closes by code          {results['closes']}",
        f"wire problems           {results['wire_problems']}",
        f"database problems       {results['database_problems']}",
        f"non-JSON log lines      {results['non_json_log_lines']}",
        "answers by code:",
    ]
    lines += [f"  {code:<28} {count:,}" for code, count in results["answers"].items()]
    lines += [f"  example problem: {p}" for p in results["examples"]]
    return "\n".join(lines)
