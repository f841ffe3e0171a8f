"""The README describes what the code does: every log event and setting is documented."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from csms.config import Settings

ROOT = Path(__file__).resolve().parent.parent


def _readme() -> str:
    return (ROOT / "README.md").read_text(encoding="utf-8")


def test_every_log_event_in_the_code_is_listed_in_the_readme() -> None:
    names: set[str] = set()
    for package in ("csms", "smartcar_bridge"):
        for path in (ROOT / package).rglob("*.py"):
            names |= set(
                re.findall(
                    r'\.(?:debug|info|warning|error|exception)\(\s*"([a-z_]+\.[a-z_]+)"',
                    path.read_text(encoding="utf-8"),
                )
            )
    assert names, "found no log events: the pattern is broken"
    missing = sorted(n for n in names if f"`{n}`" not in _readme())
    assert not missing, f"log events missing from the README: {missing}"


def test_every_environment_variable_is_in_the_readme_table() -> None:
    # The core's settings, and the bridge's (read by its plug-in through the same reader).
    source = "".join(
        (ROOT / path).read_text(encoding="utf-8")
        for path in ("csms/config.py", "smartcar_bridge/settings.py")
    )
    variables = set(re.findall(r"\"((?:CSMS|SMARTCAR)_[A-Z_]+)\"", source))
    assert len(variables) >= len(dataclasses.fields(Settings)) - 3
    missing = sorted(v for v in variables if f"`{v}`" not in _readme())
    assert not missing, f"settings missing from the README: {missing}"
