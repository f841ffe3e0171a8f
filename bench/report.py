"""Readable tables of the figures: one row per figure, one column per server."""

from __future__ import annotations

from typing import Any

from bench.profile import format_summary

COLUMNS = ("ours", "reference", "raw")


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.2f}" if abs(value) < 100 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def table(title: str, rows: list[tuple[str, dict[str, Any], Any]]) -> str:
    """``rows``: (figure, {server: value}, ours/reference ratio)."""
    header = ("figure", *COLUMNS, "ours/ref")
    body = [(name, *(_cell(values.get(c)) for c in COLUMNS), _cell(r)) for name, values, r in rows]
    widths = [max(len(str(line[i])) for line in [header, *body]) for i in range(len(header))]
    lines = [f"== {title}", "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    for line in body:
        cells = [line[0].ljust(widths[0])]
        cells += [c.rjust(w) for c, w in zip(line[1:], widths[1:], strict=True)]
        lines.append("  ".join(cells))
    return "\n".join(lines)


def _pick(results: dict[str, Any], *path: str) -> dict[str, Any]:
    values = {}
    for server in COLUMNS:
        node: Any = results.get(server)
        for key in path:
            node = node.get(key) if isinstance(node, dict) else None
        values[server] = node
    return values


def _ratio(values: dict[str, Any]) -> float | None:
    ours, reference = values.get("ours"), values.get("reference")
    if not isinstance(ours, int | float) or not isinstance(reference, int | float) or not reference:
        return None
    return round(ours / reference, 2)


def _rows(results: dict[str, Any], figures: list[tuple[str, tuple[str, ...]]]) -> list[Any]:
    rows = []
    for name, path in figures:
        values = _pick(results, *path)
        rows.append((name, values, _ratio(values)))
    return rows


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
                (f"KB/charger @{n}", (f"kb_per_charger_{n}",)),
                (f"RSS MB @{n}", (f"rss_mb_{n}",)),
            ]
        figures.append(("peak RSS MB", ("peak_rss_mb",)))
    elif name == "storm":
        title = f"storm: {results['chargers']:,} chargers at once, boot + 3 StatusNotifications"
        figures = []
        for wave in ("first_contact", "reconnect"):
            figures += [
                (f"{wave} s", (wave, "seconds")),
                (f"{wave} answered", (wave, "answered")),
                (f"{wave} connect p99 ms", (wave, "connect_p99_ms")),
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
        ]
    elif name == "scale":
        return _render_scale(results)
    elif name == "fuzz":
        from bench.fuzz import render as render_fuzz

        return render_fuzz(results)
    else:
        return f"== {name}: {results}"
    text = table(title, _rows(results, figures))
    errors = {s: results[s].get("errors") for s in COLUMNS if isinstance(results.get(s), dict)}
    if any(errors.values()):
        text += f"\n  errors: {errors}"
    return text + _profiles(name, results)


def _render_scale(results: dict[str, Any]) -> str:
    parts = []
    for n in results["sizes"]:
        by_server = results[str(n)]
        figures = [
            ("ramp s", ("ramp_s",)),
            ("messages/s", ("messages_per_s",)),
            ("peak KB/charge point", ("peak_kb_per_charge_point",)),
            ("meter rows/s persisted", ("meter_rows_per_s",)),
        ]
        actions = sorted(
            by_server.get("reference", by_server.get("ours", {})).get("latency_ms", {})
        )
        for action in actions:
            figures += [
                (f"{action} p50 ms", ("latency_ms", action, "p50_ms")),
                (f"{action} p99 ms", ("latency_ms", action, "p99_ms")),
            ]
        title = f"scale: {n:,} charge points, mixed sessions for {results['duration_s']} s"
        parts.append(table(title, _rows(by_server, figures)))
        errors = {s: by_server[s].get("errors") for s in COLUMNS if s in by_server}
        if any(errors.values()):
            parts.append(f"  errors: {errors}")
    return "\n".join(parts)


def _profiles(name: str, results: dict[str, Any]) -> str:
    text = ""
    for server in COLUMNS:
        node = results.get(server)
        if not isinstance(node, dict):
            continue
        if "profile" in node:
            text += "\n" + format_summary(f"{name}/{server}", node["profile"])
        for key, value in node.items():
            if isinstance(value, dict) and "profile" in value:
                text += "\n" + format_summary(f"{name}/{server}/{key}", value["profile"])
    return text
