"""Issue #4 (``make bench``): figures at 100, 1,000 and 5,000 connected charge points.

Per fleet size, on a fresh server: the connection ramp (connect, boot, one
StatusNotification per connector, at most 500 in progress at once), then every charge
point runs charging sessions in a closed loop for a fixed time — Heartbeat,
StatusNotification, Authorize, StartTransaction, 2 x MeterValues (10 sampled values),
StopTransaction, StatusNotification, Heartbeat — while we take messages per second,
p50/p99 round trip per action, peak RSS per charge point (VmHWM - RSS before the ramp)
and, for ours, meter-value rows persisted per second.
"""

from __future__ import annotations

from typing import Any

from bench.common import Options, identities, ratio, server_and_client
from bench.load import merge, percentiles_ms
from bench.servers import count_rows

ENTRIES = 1  # meterValue entries per MeterValues: 10 sampled values


def run(options: Options) -> dict[str, Any]:
    sizes = [100, 1000] if options.quick else [100, 1000, 5000]
    duration = 3.0 if options.quick else 10.0
    servers = [s for s in options.servers if s != "raw"] or list(options.servers)
    results: dict[str, Any] = {"sizes": sizes, "duration_s": duration}
    for n in sizes:
        by_server = {kind: _measure(options, kind, n, duration) for kind in servers}
        ours, reference = by_server.get("ours", {}), by_server.get("reference", {})
        by_server["ours_vs_reference"] = {
            key: ratio(ours.get(key), reference.get(key))
            for key in ("ramp_s", "messages_per_s", "peak_kb_per_charge_point")
        }
        results[str(n)] = by_server
    return results


def _measure(options: Options, kind: str, chargers: int, duration: float) -> dict[str, Any]:
    with server_and_client(options, kind, identities("CP-", chargers)) as (server, client):
        before_kb = server.rss_kb()
        ramp = merge(client.command("connect", 300, with_status=True, timeout=240, concurrency=500))
        rows_before = count_rows(server.dsn, "meter_values") if server.dsn else 0
        phase = merge(
            client.command(
                "run", duration + 60, workload="mixed", duration=duration, entries=ENTRIES
            )
        )
        messages = sum(len(s) for s in phase["latencies"].values())
        result: dict[str, Any] = {
            "connected": ramp["ok"],
            "ramp_s": round(ramp["elapsed"], 2),
            "messages_per_s": round(messages / phase["elapsed"]),
            "latency_ms": {
                action: {k: v for k, v in percentiles_ms(s).items() if k != "count"}
                for action, s in sorted(phase["latencies"].items())
            },
            "peak_kb_per_charge_point": round(
                (server.peak_rss_kb() - before_kb) / max(ramp["ok"], 1), 1
            ),
            "errors": {**ramp["errors"], **phase["errors"]},
        }
        if server.dsn is not None:
            rows = count_rows(server.dsn, "meter_values") - rows_before
            # Ours answers MeterValues after the commit: what was answered is in the table.
            result["meter_rows_per_s"] = round(rows / phase["elapsed"])
        return result
