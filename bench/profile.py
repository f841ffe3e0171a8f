"""py-spy around a measured phase, and a plain-text summary of where the time went.

``py-spy record --format raw`` writes collapsed stacks (``frame;frame;frame count``),
which speedscope and flamegraph.pl both read; the summary ranks functions by self
time (leaf frames), by inclusive time, and rolls self time up per package or module.
Idle samples (the loop waiting in epoll) are not recorded, so shares are of busy time.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

PY_SPY = Path(sys.executable).with_name("py-spy")
_FRAME = re.compile(r"^(?P<function>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


class Profiler:
    """``with Profiler(pid, stem):`` records until the block ends (SIGINT makes py-spy write)."""

    def __init__(self, pid: int, stem: Path, rate: int = 200) -> None:
        self.path = stem.with_suffix(".collapsed.txt")
        self._argv = [str(PY_SPY), "record", "--pid", str(pid), "--rate", str(rate)]
        self._argv += ["--format", "raw", "--output", str(self.path)]
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Profiler:
        if not PY_SPY.exists():
            raise FileNotFoundError(f"{PY_SPY} is missing: pip install py-spy (make .venv does)")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._process = subprocess.Popen(
            self._argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._process is not None
        self._process.send_signal(signal.SIGINT)
        try:
            self._process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(timeout=10)

    def summary(self, top: int = 25) -> dict[str, Any]:
        if not self.path.exists():
            return {"error": "py-spy wrote no profile (is ptrace allowed?)"}
        return summarise(self.path.read_text(), top)


def _where(file: str) -> str:
    """A short place name: the package under site-packages, ``csms/...`` or stdlib module."""
    if "site-packages/" in file:
        return file.split("site-packages/", 1)[1].split("/", 1)[0].removesuffix(".py")
    for marker in ("/csms/", "/bench/"):
        if marker in file:
            return marker.strip("/") + "/" + file.split(marker, 1)[1]
    if file.startswith("<"):
        return file  # e.g. fastjsonschema's generated validators
    return "stdlib:" + Path(file).stem if "/lib/python" in file else file


def _function(frame: str) -> tuple[str, str]:
    match = _FRAME.match(frame)
    if match is None:
        return frame, frame
    file = match["file"]
    return f"{match['function']} ({_where(file)})", _where(file)


def summarise(collapsed: str, top: int = 25) -> dict[str, Any]:
    """Rank functions by self and inclusive samples; roll self time up by package."""
    self_time: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    by_place: Counter[str] = Counter()
    total = 0
    for line in collapsed.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = [_function(f) for f in stack.split(";") if not f.startswith("process ")]
        frames = [f for f in frames if not f[0].startswith("thread ")]
        if not frames:
            continue
        leaf, place = frames[-1]
        self_time[leaf] += count
        by_place[place] += count
        for name in {name for name, _ in frames}:
            inclusive[name] += count

    def share(counter: Counter[str]) -> list[tuple[str, float]]:
        return [(name, round(100 * n / total, 1)) for name, n in counter.most_common(top)]

    return {
        "samples": total,
        "self_pct": share(self_time),
        "inclusive_pct": share(inclusive),
        "by_package_pct": share(by_place),
    }


def format_summary(name: str, summary: dict[str, Any], top: int = 15) -> str:
    if "error" in summary:
        return f"profile {name}: {summary['error']}"
    lines = [f"profile {name}: {summary['samples']} busy samples"]
    for title, key in (
        ("self", "self_pct"),
        ("inclusive", "inclusive_pct"),
        ("by package", "by_package_pct"),
    ):
        lines.append(f"  top {title}:")
        lines += [f"    {pct:5.1f}%  {fn}" for fn, pct in summary[key][:top]]
    return "\n".join(lines)
