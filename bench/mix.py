"""The realistic mix: a fleet charging, each charger on its own clock (open loop).

At 1,000 and 5,000 connected chargers, every charger sends a MeterValues of ten sampled
values every 10 s while it charges; sessions last ``SESSION_VALUES`` readings, then it
stops (StopTransaction, StatusNotification) and plugs in again at its next tick
(StatusNotification, StartTransaction, StatusNotification). Before the window opens
every charger is placed at a random point of its session, as a real fleet is at any
moment, and the ticks are spread evenly over the interval.

``ours-gather`` is ours with ``CSMS_COMMIT_GATHER_MS`` (``bench.servers.GATHER_MS``): at
this rate a commit is shorter than the gap between messages, so without a window most
commit alone; the column shows the commits a window saves and the latency it costs.

Figures: messages/s, p50/p99 per action, our CPU per message and, for ours, PostgreSQL's:
transactions per message (``pg_stat_database.xact_commit``, read-only ones included) and
CPU of the backends serving our database per message.
"""

from __future__ import annotations

import time
from typing import Any

from bench.common import Options, identities, maybe_profile, ratio, server_and_client
from bench.load import merge, percentiles_ms
from bench.servers import postgres_sample

INTERVAL_S = 10.0
SESSION_VALUES = 30  # five minutes of readings per session
ENTRIES = 1  # one meterValue entry of ten sampled values
# A PostgreSQL backend publishes its statistics (xact_commit) at most once a second, and
# one that went idle within a second of its last report only 10 s later
# (PGSTAT_IDLE_INTERVAL): read sooner, one window's commits are counted in the next.
STATS_SETTLE_S = 11.0


def run(options: Options) -> dict[str, Any]:
    sizes = [1000] if options.quick else [1000, 5000]
    duration = 10.0 if options.quick else 20.0
    results: dict[str, Any] = {
        "sizes": sizes,
        "duration_s": duration,
        "interval_s": INTERVAL_S,
        "session_values": SESSION_VALUES,
    }
    # Ours a second time with commits gathered: the commits/message a window buys, and
    # what it costs in latency, side by side with the default (no window).
    kinds = [*options.servers, *(["ours-gather"] if "ours" in options.servers else [])]
    for n in sizes:
        by_server = {kind: _measure(options, kind, n, duration) for kind in kinds}
        by_server["ours_vs_raw"] = {
            key: ratio(by_server.get("ours", {}).get(key), by_server.get("raw", {}).get(key))
            for key in ("messages_per_s", "server_cpu_us_per_message")
        }
        results[str(n)] = by_server
    return results


def _measure(options: Options, kind: str, chargers: int, duration: float) -> dict[str, Any]:
    names = identities("MIX-", chargers)
    with server_and_client(options, kind, names, connectors=1) as (server, client):
        ramp = merge(client.command("connect", 300, with_status=True, timeout=240, concurrency=500))
        prepared = client.command("prepare_sessions", 180, session_values=SESSION_VALUES, seed=7)
        time.sleep(STATS_SETTLE_S)
        pg_before = postgres_sample(server.dsn) if server.dsn else None
        cpu = server.cpu_seconds()
        with maybe_profile(options, server, f"mix-{chargers}") as profile:
            phase = merge(
                client.command(
                    "run_sessions",
                    duration + 60,
                    duration=duration,
                    interval=INTERVAL_S,
                    session_values=SESSION_VALUES,
                    entries=ENTRIES,
                    seed=11,
                )
            )
        server_cpu = server.cpu_seconds() - cpu
        messages = sum(len(s) for s in phase["latencies"].values())
        every = [x for samples in phase["latencies"].values() for x in samples]
        overall = percentiles_ms(every)  # type: ignore[arg-type]
        errors: dict[str, int] = {}
        for part in (ramp["errors"], *(p["errors"] for p in prepared), phase["errors"]):
            for key, count in part.items():
                errors[key] = errors.get(key, 0) + count
        result: dict[str, Any] = {
            "connected": ramp["ok"],
            "messages": messages,
            "messages_per_s": round(messages / duration),
            "p50_ms": overall["p50_ms"],
            "p99_ms": overall["p99_ms"],
            "latency_ms": {
                action: {k: v for k, v in percentiles_ms(s).items()}
                for action, s in sorted(phase["latencies"].items())
            },
            "server_cpu_us_per_message": round(server_cpu / max(messages, 1) * 1e6, 1),
            "errors": errors,
            **({"profile": profile} if profile else {}),
        }
        if pg_before is not None and server.dsn is not None:
            time.sleep(STATS_SETTLE_S)
            pg_after = postgres_sample(server.dsn)
            result["pg_commits_per_message"] = round(
                (pg_after["commits"] - pg_before["commits"]) / max(messages, 1), 3
            )
            result["pg_cpu_us_per_message"] = round(
                (pg_after["cpu_s"] - pg_before["cpu_s"]) / max(messages, 1) * 1e6, 1
            )
        return result
