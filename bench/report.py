"""Readable tables of the figures: one row per figure, one column per server measured.

The headline ratio is ours/raw (the same ``websockets`` on the same loop, doing nothing
but answering); ours/ref is against the bare ``ocpp`` library. Every table ends with a
``failures`` row (resets, refused, timed out, CALLERROR, handshakes refused or dropped,
summed per server) and its title says FAILURES when that row is not all zero.
"""

from __future__ import annotations

from typing import Any

from bench.profile import format_summary
from bench.servers import SERVERS


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.2f}" if abs(value) < 100 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _ratio(values: dict[str, Any], other: str) -> float | None:
    ours, theirs = values.get("ours"), values.get(other)
    if not isinstance(ours, int | float) or not isinstance(theirs, int | float) or not theirs:
        return None
    return round(ours / theirs, 2)


def table(title: str, columns: list[str], rows: list[tuple[str, dict[str, Any]]]) -> str:
    """``rows``: (figure, {server: value}); ratio columns ours/raw and ours/ref added."""
    ratios = ("raw", "reference")
    header = ("figure", *columns, "ours/raw", "ours/ref")
    body = [
        (name, *(_cell(v.get(c)) for c in columns), *(_cell(_ratio(v, o)) for o in ratios))
        for name, v in rows
    ]
    widths = [max(len(str(line[i])) for line in [header, *body]) for i in range(len(header))]
    lines = [f"== {title}", "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    for line in body:
        cells = [line[0].ljust(widths[0])]
        cells += [c.rjust(w) for c, w in zip(line[1:], widths[1:], strict=True)]
        lines.append("  ".join(cells))
    return "\n".join(lines)


def _columns(results: dict[str, Any]) -> list[str]:
    return [s for s in SERVERS if isinstance(results.get(s), dict)]


def _pick(results: dict[str, Any], columns: list[str], path: tuple[str, ...]) -> dict[str, Any]:
    values = {}
    for server in columns:
        node: Any = results.get(server)
        for key in path:
            node = node.get(key) if isinstance(node, dict) else None
        values[server] = node
    return values


def failures(node: Any) -> dict[str, int]:
    """Every ``errors`` / ``errors_*`` dict under ``node``, summed by kind."""
    found: dict[str, int] = {}
    if not isinstance(node, dict):
        return found
    for key, value in node.items():
        if key.startswith("errors") and isinstance(value, dict):
            for kind, count in value.items():
                found[kind] = found.get(kind, 0) + int(count)
        elif isinstance(value, dict):
            for kind, count in failures(value).items():
                found[kind] = found.get(kind, 0) + count
    return found


def _table(title: str, results: dict[str, Any], figures: list[tuple[str, tuple[str, ...]]]) -> str:
    columns = _columns(results)
    rows = [(name, _pick(results, columns, path)) for name, path in figures]
    by_server = {s: failures(results[s]) for s in columns}
    rows.append(("failures", {s: sum(f.values()) for s, f in by_server.items()}))
    failed = {s: f for s, f in by_server.items() if f}
    if failed:
        title += "  -- FAILURES"
    text = table(title, columns, rows)
    if failed:
        text += "\n  failures by kind: " + "; ".join(
            f"{s}: " + ", ".join(f"{k} {n:,}" for k, n in sorted(f.items()))
            for s, f in failed.items()
        )
    return text


def render(name: str, results: dict[str, Any]) -> str:
    """The table (and any profile summaries) of one scenario's results."""
    if "error" in results:
        return f"== {name}: FAILED: {results['error']}"
    if name == "heartbeat":
        title = f"heartbeat: {results['connections']} connections, {results['duration_s']} s"
        figures = [
            ("round trips/s", ("round_trips_per_s",)),
            ("p50 ms", ("p50_ms",)),
            ("p99 ms", ("p99_ms",)),
            ("server CPU us/round trip", ("server_cpu_us_per_rt",)),
            ("server CPU share", ("server_cpu_share",)),
            ("client CPU share", ("client_cpu_share",)),
        ]
    elif name == "memory":
        title = "memory per connected charger (booted + 3 StatusNotifications, idle)"
        figures = [("baseline RSS MB", ("baseline_rss_mb",))]
        for n in results["steps"]:
            figures += [
                (f"KB/charger @{n:,}", (f"kb_per_charger_{n}",)),
                (f"connected @{n:,}", (f"connected_{n}",)),
                (f"RSS MB @{n:,}", (f"rss_mb_{n}",)),
            ]
        figures.append(("peak RSS MB", ("peak_rss_mb",)))
    elif name == "storm":
        title = f"storm: {results['chargers']:,} chargers at once, boot + 3 StatusNotifications"
        figures = []
        for wave in ("first_contact", "reconnect"):
            figures += [
                (f"{wave} s", (wave, "seconds")),
                (f"{wave} server CPU s", (wave, "server_cpu_s")),
                (f"{wave} client CPU s", (wave, "client_cpu_s")),
                (f"{wave} answered", (wave, "answered")),
                (f"{wave} SYNs dropped (accept queue)", (wave, "listen_overflows")),
                (f"{wave} connect p99 ms", (wave, "connect_p99_ms")),
                (f"{wave} handshakes dropped (log)", (wave, "handshakes_dropped_logged")),
            ]
        figures.append(("peak RSS MB", ("peak_rss_mb",)))
    elif name == "meter_values":
        title = (
            f"meter values: {results['connections']} connections, "
            f"{results['sampled_values_per_message']} sampled values/message"
        )
        figures = [
            ("values/s (ours: rows in DB)", ("values_per_s",)),
            ("messages/s", ("messages_per_s",)),
            ("p50 ms", ("p50_ms",)),
            ("p99 ms", ("p99_ms",)),
            ("server CPU us/value", ("server_cpu_us_per_value",)),
            ("PostgreSQL CPU us/value", ("pg_cpu_us_per_value",)),
            ("PostgreSQL commits/message", ("pg_commits_per_message",)),
        ]
    elif name == "mix":
        return _render_sized(results, _mix_figures, _mix_title)
    elif name == "scale":
        return _render_sized(results, _scale_figures, _scale_title)
    elif name == "fuzz":
        from bench.fuzz import render as render_fuzz

        return render_fuzz(results)
    elif name == "cluster":
        from bench.cluster import render as render_cluster

        return render_cluster(results)
    elif name == "fleet":
        from bench.fleet import render as render_fleet

        return render_fleet(results)
    else:
        return f"== {name}: {results}"
    return _table(title, results, figures) + _profiles(name, results)


def _actions(by_server: dict[str, Any]) -> list[str]:
    actions: set[str] = set()
    for node in by_server.values():
        if isinstance(node, dict):
            actions.update(node.get("latency_ms", {}))
    return sorted(actions)


def _mix_title(results: dict[str, Any], n: int) -> str:
    return (
        f"mix: {n:,} chargers charging, MeterValues (10 values) every "
        f"{results['interval_s']:.0f} s, sessions of {results['session_values']}, "
        f"{results['duration_s']} s"
    )


def _mix_figures(by_server: dict[str, Any]) -> list[tuple[str, tuple[str, ...]]]:
    figures = [
        ("messages/s", ("messages_per_s",)),
        ("p50 ms (all)", ("p50_ms",)),
        ("p99 ms (all)", ("p99_ms",)),
        ("our CPU us/message", ("server_cpu_us_per_message",)),
        ("PostgreSQL CPU us/message", ("pg_cpu_us_per_message",)),
        ("PostgreSQL commits/message", ("pg_commits_per_message",)),
    ]
    for action in _actions(by_server):
        figures += [
            (f"{action} n", ("latency_ms", action, "count")),
            (f"{action} p50 ms", ("latency_ms", action, "p50_ms")),
            (f"{action} p99 ms", ("latency_ms", action, "p99_ms")),
        ]
    return figures


def _scale_title(results: dict[str, Any], n: int) -> str:
    return f"scale: {n:,} charge points, closed-loop sessions for {results['duration_s']} s"


def _scale_figures(by_server: dict[str, Any]) -> list[tuple[str, tuple[str, ...]]]:
    figures = [
        ("ramp s", ("ramp_s",)),
        ("messages/s", ("messages_per_s",)),
        ("peak KB/charge point", ("peak_kb_per_charge_point",)),
        ("meter rows/s persisted", ("meter_rows_per_s",)),
    ]
    for action in _actions(by_server):
        figures += [
            (f"{action} p50 ms", ("latency_ms", action, "p50_ms")),
            (f"{action} p99 ms", ("latency_ms", action, "p99_ms")),
        ]
    return figures


def _render_sized(results: dict[str, Any], figures_of: Any, title_of: Any) -> str:
    parts = []
    for n in results["sizes"]:
        by_server = results[str(n)]
        parts.append(_table(title_of(results, n), by_server, figures_of(by_server)))
        parts.append(_profiles(f"{n}", by_server).lstrip("\n"))
    return "\n".join(p for p in parts if p)


def _profiles(name: str, results: dict[str, Any]) -> str:
    text = ""
    for server in SERVERS:
        node = results.get(server)
        if not isinstance(node, dict):
            continue
        if "profile" in node:
            text += "\n" + format_summary(f"{name}/{server}", node["profile"])
        for key, value in node.items():
            if isinstance(value, dict) and "profile" in value:
                text += "\n" + format_summary(f"{name}/{server}/{key}", value["profile"])
    return text
