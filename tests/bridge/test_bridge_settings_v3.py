"""SMARTCAR_API_VERSION and the v3 settings (smartcar_bridge.settings.BridgeSettings)."""

from __future__ import annotations

import pytest

from csms.config import ConfigError, Settings
from smartcar_bridge.settings import BridgeSettings

BASE = {
    "SMARTCAR_CLIENT_ID": "id",
    "SMARTCAR_CLIENT_SECRET": "secret",
    "SMARTCAR_REDIRECT_URI": "https://csms.example/smartcar/callback",
    "CSMS_SECRET_KEY": "0123456789abcdef0123",
}


def bridge_settings(env: dict[str, str]) -> BridgeSettings | None:
    """Read as `csms serve` reads it: through the core's settings, into the plug-in's."""
    plugins = Settings.from_env(env).plugins
    assert plugins is not None
    bridge = plugins["smartcar"]
    assert bridge is None or isinstance(bridge, BridgeSettings)
    return bridge


def test_v3_is_the_default_with_smartcars_hosts() -> None:
    bridge = bridge_settings(BASE)
    assert bridge is not None and bridge.api_version == "3"
    assert bridge.v3_api_url == "https://vehicle.api.smartcar.com/v3"
    assert bridge.management_api_url == "https://management.api.smartcar.com/v3"
    assert bridge.iam_url == "https://iam.smartcar.com"
    assert (bridge.webhook_id, bridge.command_timeout) == (None, 310.0)


def test_v2_and_the_v3_hosts_can_be_chosen() -> None:
    env = {
        **BASE,
        "SMARTCAR_API_VERSION": "2",
        "SMARTCAR_V3_API_URL": "http://127.0.0.1:8001/v3",
        "SMARTCAR_MANAGEMENT_API_URL": "http://127.0.0.1:8001/management/v3",
        "SMARTCAR_IAM_URL": "http://127.0.0.1:8001",
        "SMARTCAR_WEBHOOK_ID": "wh-1",
        "SMARTCAR_COMMAND_TIMEOUT": "60",
    }
    bridge = bridge_settings(env)
    assert bridge is not None and bridge.api_version == "2"
    assert (bridge.v3_api_url, bridge.iam_url) == (
        "http://127.0.0.1:8001/v3",
        "http://127.0.0.1:8001",
    )
    assert (bridge.webhook_id, bridge.command_timeout) == ("wh-1", 60.0)


@pytest.mark.parametrize("value", ["1", "2.0", "v3", "latest"])
def test_an_unknown_api_version_stops_start_up_naming_the_variable(value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({**BASE, "SMARTCAR_API_VERSION": value})
    assert "SMARTCAR_API_VERSION" in str(caught.value)
