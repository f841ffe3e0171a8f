"""scripts/ensure-chromium where Chromium cannot be installed: one line saying why, status 1."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "ensure-chromium"


def _bin(tmp_path: Path, fakes: dict[str, str]) -> Path:
    """A PATH with the basic tools the script uses, plus fake programs."""
    folder = tmp_path / "bin"
    folder.mkdir()
    for tool in ("bash", "mktemp", "rm", "cat"):
        found = shutil.which(tool)
        assert found is not None
        (folder / tool).symlink_to(found)
    for name, body in fakes.items():
        (folder / name).write_text(f"#!{shutil.which('bash')}\n{body}\n")
        (folder / name).chmod(0o755)
    return folder


def _run(tmp_path: Path, fakes: dict[str, str]) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": str(_bin(tmp_path, fakes)),
        "CHROMIUM": str(tmp_path / "no-chromium"),
        "TMPDIR": str(tmp_path),
    }
    return subprocess.run(
        ["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=30
    )


@pytest.mark.parametrize(
    ("fakes", "says"),
    [
        ({"id": "echo 0"}, "apt-get is not available"),
        ({"id": "echo 1000", "apt-get": "exit 0"}, "needs root"),
        ({"id": "echo 0", "apt-get": "echo 'E: no network'; exit 100"}, "could not install"),
    ],
)
def test_no_way_to_install_chromium_is_one_clear_line(
    tmp_path: Path, fakes: dict[str, str], says: str
) -> None:
    result = _run(tmp_path, fakes)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    # An install attempt announces itself first; the verdict is one line, the last.
    assert len(lines) <= 2 and lines[-1].startswith("ensure-chromium: "), result.stderr
    assert says in lines[-1] and "apt-get install chromium" in lines[-1]
    assert "E: no network" not in result.stderr  # apt-get's output went to the log


def test_present_chromium_is_silent(tmp_path: Path) -> None:
    chromium = tmp_path / "chromium"
    chromium.write_text("#!/bin/sh\n")
    chromium.chmod(0o755)
    env = {**os.environ, "CHROMIUM": str(chromium)}
    result = subprocess.run(
        ["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=30
    )
    assert (result.returncode, result.stderr) == (0, "")
