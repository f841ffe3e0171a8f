"""Target 4: meter values persisted per second.

100 connections each send MeterValues with 5 meterValue entries of 10 sampled values
(50 rows per message) in a closed loop. For ours the figure is rows that landed in the
``meter_values`` table (count before and after, waiting until every acknowledged row is
there) per second of wall time from the first send to the last row visible. The other
servers persist nothing; their figure is sampled values acknowledged per second. For
ours also PostgreSQL's CPU per value (the backends serving our database, from ``/proc``)
and its commits per message, steadier than rates on a shared machine.
"""

from __future__ import annotations

import time
from typing import Any

from bench.common import Options, identities, maybe_profile, ratio, server_and_client
from bench.frames import SAMPLES_PER_ENTRY
from bench.load import merge, percentiles_ms
from bench.mix import STATS_SETTLE_S
from bench.servers import count_rows, postgres_sample

CONNECTIONS = 100
ENTRIES = 5
ROWS_WAIT_S = 30.0


def run(options: Options) -> dict[str, Any]:
    duration = 3.0 if options.quick else 10.0
    results: dict[str, Any] = {
        "connections": CONNECTIONS,
        "sampled_values_per_message": ENTRIES * SAMPLES_PER_ENTRY,
        "duration_s": duration,
    }
    for kind in options.servers:
        results[kind] = _measure(options, kind, duration)
    results["ours_vs_reference"] = ratio(
        results.get("ours", {}).get("values_per_s"),
        results.get("reference", {}).get("values_per_s"),
    )
    return results


def _measure(options: Options, kind: str, duration: float) -> dict[str, Any]:
    per_message = ENTRIES * SAMPLES_PER_ENTRY
    with server_and_client(options, kind, identities("MV-", CONNECTIONS)) as (server, client):
        merge(client.command("connect", 60, with_status=True, timeout=30, concurrency=0))
        client.command("run", 30, workload="meter_values", duration=0.5, entries=ENTRIES)
        before = count_rows(server.dsn, "meter_values") if server.dsn else 0
        if server.dsn:
            time.sleep(STATS_SETTLE_S)
        pg_before = postgres_sample(server.dsn) if server.dsn else None
        started, cpu = time.monotonic(), server.cpu_seconds()
        with maybe_profile(options, server, "meter_values") as profile:
            phase = merge(
                client.command(
                    "run",
                    duration + 30,
                    workload="meter_values",
                    duration=duration,
                    entries=ENTRIES,
                )
            )
        latency = percentiles_ms(phase["latencies"].get("MeterValues", []))
        acknowledged = latency["count"] * per_message
        result: dict[str, Any] = {
            "messages_per_s": round(latency["count"] / phase["elapsed"]),
            "p50_ms": latency["p50_ms"],
            "p99_ms": latency["p99_ms"],
            "errors": phase["errors"],
            "server_cpu_us_per_value": round(
                (server.cpu_seconds() - cpu) / max(acknowledged, 1) * 1e6, 2
            ),
        }
        if server.dsn is None:
            result["values_per_s"] = round(acknowledged / phase["elapsed"])
            result["persisted"] = False
        else:
            rows = _wait_for_rows(server.dsn, before + acknowledged) - before
            elapsed = time.monotonic() - started if rows < acknowledged else phase["elapsed"]
            time.sleep(STATS_SETTLE_S)
            assert pg_before is not None
            pg_after = postgres_sample(server.dsn)
            result.update(
                values_per_s=round(rows / elapsed),
                persisted=True,
                rows_written=rows,
                rows_acknowledged=acknowledged,
                pg_cpu_us_per_value=round(
                    (pg_after["cpu_s"] - pg_before["cpu_s"]) / max(rows, 1) * 1e6, 2
                ),
                pg_commits_per_message=round(
                    (pg_after["commits"] - pg_before["commits"]) / max(latency["count"], 1), 3
                ),
            )
        if profile:
            result["profile"] = profile
        return result


def _wait_for_rows(dsn: str, expected: int) -> int:
    deadline = time.monotonic() + ROWS_WAIT_S
    rows = count_rows(dsn, "meter_values")
    while rows < expected and time.monotonic() < deadline:
        time.sleep(0.2)
        rows = count_rows(dsn, "meter_values")
    return rows
