"""Target 1: Heartbeat round trips per second at 100 concurrent connections.

Each connection boots, then sends a Heartbeat CALL and awaits its CALLRESULT, over and
over, for a fixed time (closed loop). Throughput is answers / wall time of the phase.
"""

from __future__ import annotations

from typing import Any

from bench.common import Options, identities, maybe_profile, ratio, server_and_client
from bench.load import merge, percentiles_ms

CONNECTIONS = 100


def run(options: Options) -> dict[str, Any]:
    duration = 3.0 if options.quick else 15.0
    results: dict[str, Any] = {"connections": CONNECTIONS, "duration_s": duration}
    for kind in options.servers:
        with server_and_client(options, kind, identities("HB-", CONNECTIONS)) as (server, client):
            merge(client.command("connect", 60, with_status=False, timeout=30, concurrency=0))
            client.command("run", 30, workload="heartbeat", duration=1.0, entries=0)  # warm-up
            cpu = server.cpu_seconds()
            with maybe_profile(options, server, "heartbeat") as profile:
                phase = merge(
                    client.command(
                        "run", duration + 30, workload="heartbeat", duration=duration, entries=0
                    )
                )
            latency = percentiles_ms(phase["latencies"].get("Heartbeat", []))
            results[kind] = {
                "round_trips_per_s": round(latency["count"] / phase["elapsed"]),
                "p50_ms": latency["p50_ms"],
                "p99_ms": latency["p99_ms"],
                "errors": phase["errors"],
                "server_cpu_share": round((server.cpu_seconds() - cpu) / phase["elapsed"], 2),
                # Robust to other load on the machine: server CPU per answered round trip.
                "server_cpu_us_per_rt": round(
                    (server.cpu_seconds() - cpu) / max(latency["count"], 1) * 1e6, 1
                ),
                "client_cpu_share": round(phase["client_cpu_s"] / phase["elapsed"], 2),
                **({"profile": profile} if profile else {}),
            }
    for other in ("raw", "reference"):
        results[f"ours_vs_{other}"] = ratio(
            results.get("ours", {}).get("round_trips_per_s"),
            results.get(other, {}).get("round_trips_per_s"),
        )
    return results
