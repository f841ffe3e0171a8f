"""The core does not know the bridge: it finds it as a plug-in, never by import."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from csms import plugins
from csms.config import ConfigError, Settings

CORE = Path(__file__).resolve().parents[2] / "csms"


def _imported_modules(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module is not None and node.level == 0:
            found.add(node.module)
    return found


def test_no_module_of_the_core_imports_the_bridge() -> None:
    offenders = {
        str(path.relative_to(CORE.parent)): sorted(
            m for m in _imported_modules(path) if m.split(".")[0] == "smartcar_bridge"
        )
        for path in sorted(CORE.rglob("*.py"))
    }
    assert {path: mods for path, mods in offenders.items() if mods} == {}


def test_the_core_has_no_bridge_setting_route_or_table() -> None:
    # Its settings are read by the bridge (smartcar_bridge/settings.py), its routes, also
    # those answering "off", are mounted from smartcar_bridge/plugin.py, and its tables are
    # read by its own transaction link (smartcar_bridge/transactions.py).
    for path in sorted(CORE.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        for word in ("SMARTCAR_CLIENT_ID", "BridgeSettings", "/api/accounts", "charging_sessions"):
            assert word not in text, f"{path.relative_to(CORE.parent)} names {word}"


def test_the_bridge_is_found_through_its_entry_point() -> None:
    assert set(plugins.installed()) == {"smartcar"}
    assert Settings.from_env({}).plugins is None  # the default: installed, none configured
    assert plugins.configured(None) == {"smartcar": (plugins.installed()["smartcar"], None)}
    assert Settings.from_env({"CSMS_PLUGINS": "none"}).plugins == {}
    assert plugins.migration_packages({}) == []
    assert plugins.migration_packages(None) == [("smartcar_bridge", "bridge/")]


def test_a_plugin_that_is_not_installed_is_a_configuration_error() -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"CSMS_PLUGINS": "smartcar,billing"})
    assert caught.value.variable == "CSMS_PLUGINS"
    assert "billing" in caught.value.problem and "smartcar" in caught.value.problem
