"""Cluster settings are read once and refused with the variable's name when wrong."""

from __future__ import annotations

import pytest

from csms.config import ConfigError, Settings


def test_defaults_are_one_process_without_nats() -> None:
    settings = Settings.from_env({})
    assert (settings.workers, settings.nats_url, settings.reuse_port) == (1, None, False)


def test_a_nats_cluster_is_a_list_of_servers() -> None:
    env = {"CSMS_NATS_URL": "nats://a:4222, nats://b:4222", "CSMS_WORKERS": "4"}
    settings = Settings.from_env(env)
    assert settings.nats_url == env["CSMS_NATS_URL"] and settings.workers == 4


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("CSMS_NATS_URL", "http://a:4222"),
        ("CSMS_NATS_URL", "nats://"),
        ("CSMS_WORKERS", "0"),
        ("CSMS_WORKERS", "two"),
        ("CSMS_REUSE_PORT", "maybe"),
        ("CSMS_NODE_TIMEOUT", "-1"),
    ],
)
def test_bad_cluster_settings_name_their_variable(variable: str, value: str) -> None:
    with pytest.raises(ConfigError) as raised:
        Settings.from_env({variable: value})
    assert raised.value.variable == variable
