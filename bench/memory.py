"""Target 2: memory per connected charger.

Each charger connects, boots and sends one StatusNotification per connector (0, 1, 2),
then stays idle. Per charger = (VmRSS after the fleet is connected and settled - VmRSS
before) / N, at 10,000 chargers (1,000 with ``--quick``). "Before" is taken
after a small warm-up fleet has come and gone, so lazily imported code and first-use
caches are not billed to the chargers.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

from bench.common import Options, identities, ratio, server_and_client
from bench.load import LoadClient, merge

WARM_UP = 20
SETTLE_S = 1.5  # batch writers flush, the allocator settles


def run(options: Options) -> dict[str, Any]:
    steps = [1000] if options.quick else [10_000]
    results: dict[str, Any] = {"steps": steps}
    for kind in options.servers:
        results[kind] = _measure(options, kind, steps)
    for n in steps:
        key = f"kb_per_charger_{n}"
        for other in ("raw", "reference"):
            results[f"ours_vs_{other}_{n}"] = ratio(
                results.get("ours", {}).get(key), results.get(other, {}).get(key)
            )
    return results


def _measure(options: Options, kind: str, steps: list[int]) -> dict[str, Any]:
    # The warm-up chargers are the first identities; they disconnect before the baseline.
    names = identities("MEM-", WARM_UP + steps[-1])
    with (
        server_and_client(options, kind, names[:WARM_UP]) as (server, warm_client),
        contextlib.ExitStack() as stack,
    ):
        merge(warm_client.command("connect", 60, with_status=True, timeout=30, concurrency=0))
        warm_client.command("close", 30)
        time.sleep(SETTLE_S)
        baseline = server.rss_kb()
        result: dict[str, Any] = {"baseline_rss_mb": round(baseline / 1024, 1)}
        connected, previous = 0, 0
        for n in steps:
            # One client per step, owning the identities that step adds.
            client = stack.enter_context(
                LoadClient(
                    "127.0.0.1",
                    server.port,
                    names[WARM_UP + previous : WARM_UP + n],
                    cpus=options.client_cpus,
                )
            )
            previous = n
            phase = merge(
                client.command("connect", 180, with_status=True, timeout=120, concurrency=500)
            )
            connected += phase["ok"]
            time.sleep(SETTLE_S)
            rss = server.rss_kb()
            result[f"rss_mb_{n}"] = round(rss / 1024, 1)
            result[f"kb_per_charger_{n}"] = round((rss - baseline) / max(connected, 1), 1)
            result[f"connected_{n}"] = connected
            if phase["errors"]:
                result[f"errors_{n}"] = phase["errors"]
        result["peak_rss_mb"] = round(server.peak_rss_kb() / 1024, 1)
        return result
