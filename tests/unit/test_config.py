"""Settings from the environment (csms.config)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from csms.config import ConfigError, Settings


def test_empty_environment_gives_the_defaults() -> None:
    settings = Settings.from_env({})

    assert settings == Settings()
    assert settings.database_url is None
    assert settings.data_dir == Path(".csms")
    assert (settings.ocpp_host, settings.ocpp_port) == ("0.0.0.0", 9000)
    assert (settings.http_host, settings.http_port) == ("0.0.0.0", 8080)
    assert settings.heartbeat_interval == 300
    assert settings.unknown_chargers == "accept"
    assert (settings.log_format, settings.log_level) == ("json", "info")
    assert settings.command_timeout == 30.0
    assert (settings.ws_ping_interval, settings.ws_ping_timeout) == (60.0, 300.0)


def test_blank_values_count_as_unset() -> None:
    env = {"CSMS_OCPP_PORT": "   ", "CSMS_DATABASE_URL": "", "CSMS_LOG_LEVEL": " "}

    assert Settings.from_env(env) == Settings()


def test_unrelated_variables_are_ignored() -> None:
    assert Settings.from_env({"PATH": "/bin", "CSMS_UNKNOWN": "x"}) == Settings()


def test_settings_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        Settings().ocpp_port = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    ("variable", "value", "field", "expected"),
    [
        (
            "CSMS_DATABASE_URL",
            "postgresql://csms:pw@db.example:5432/csms",
            "database_url",
            "postgresql://csms:pw@db.example:5432/csms",
        ),
        (
            "CSMS_DATABASE_URL",
            "postgres://localhost/csms",
            "database_url",
            "postgres://localhost/csms",
        ),
        (
            "CSMS_DATABASE_URL",
            "postgresql://u:@/csms?host=/var/run/postgresql",
            "database_url",
            "postgresql://u:@/csms?host=/var/run/postgresql",
        ),
        ("CSMS_DATA_DIR", "/var/lib/csms", "data_dir", Path("/var/lib/csms")),
        ("CSMS_OCPP_HOST", "127.0.0.1", "ocpp_host", "127.0.0.1"),
        ("CSMS_OCPP_PORT", "9100", "ocpp_port", 9100),
        ("CSMS_OCPP_PORT", " 9100 ", "ocpp_port", 9100),
        ("CSMS_OCPP_PORT", "0", "ocpp_port", 0),
        ("CSMS_OCPP_PORT", "65535", "ocpp_port", 65535),
        ("CSMS_HTTP_HOST", "::", "http_host", "::"),
        ("CSMS_HTTP_PORT", "8443", "http_port", 8443),
        ("CSMS_HEARTBEAT_INTERVAL", "60", "heartbeat_interval", 60),
        ("CSMS_HEARTBEAT_INTERVAL", "1", "heartbeat_interval", 1),
        ("CSMS_UNKNOWN_CHARGERS", "pending", "unknown_chargers", "pending"),
        ("CSMS_UNKNOWN_CHARGERS", "REJECT", "unknown_chargers", "reject"),
        ("CSMS_LOG_FORMAT", "console", "log_format", "console"),
        ("CSMS_LOG_FORMAT", "JSON", "log_format", "json"),
        ("CSMS_LOG_LEVEL", "debug", "log_level", "debug"),
        ("CSMS_LOG_LEVEL", "Warning", "log_level", "warning"),
        ("CSMS_LOG_LEVEL", "error", "log_level", "error"),
        ("CSMS_COMMAND_TIMEOUT", "2.5", "command_timeout", 2.5),
        ("CSMS_COMMAND_TIMEOUT", "10", "command_timeout", 10.0),
        ("CSMS_WS_PING_INTERVAL", "20", "ws_ping_interval", 20.0),
        ("CSMS_WS_PING_TIMEOUT", "600.5", "ws_ping_timeout", 600.5),
        ("CSMS_COMMIT_GATHER_MS", "20", "commit_gather_ms", 20),
        ("CSMS_COMMIT_GATHER_MS", "0", "commit_gather_ms", 0),
    ],
)
def test_each_variable_sets_its_field(
    variable: str, value: str, field: str, expected: object
) -> None:
    settings = Settings.from_env({variable: value})

    assert getattr(settings, field) == expected
    assert type(getattr(settings, field)) is type(expected)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("CSMS_DATABASE_URL", "not a url"),
        ("CSMS_DATABASE_URL", "mysql://localhost/csms"),
        ("CSMS_DATABASE_URL", "http://localhost:5432/csms"),
        ("CSMS_DATABASE_URL", "localhost:5432/csms"),
        ("CSMS_DATABASE_URL", "postgresql://localhost:99999/csms"),
        ("CSMS_DATABASE_URL", "postgresql://localhost:port/csms"),
        ("CSMS_DATABASE_URL", "postgresql://[::1/csms"),
        ("CSMS_OCPP_PORT", "nine thousand"),
        ("CSMS_OCPP_PORT", "9000.5"),
        ("CSMS_OCPP_PORT", "-1"),
        ("CSMS_OCPP_PORT", "65536"),
        ("CSMS_HTTP_PORT", "0x1F90"),
        ("CSMS_HTTP_PORT", "100000"),
        ("CSMS_HEARTBEAT_INTERVAL", "0"),
        ("CSMS_HEARTBEAT_INTERVAL", "-300"),
        ("CSMS_HEARTBEAT_INTERVAL", "5m"),
        ("CSMS_UNKNOWN_CHARGERS", "allow"),
        ("CSMS_UNKNOWN_CHARGERS", "accepted"),
        ("CSMS_LOG_FORMAT", "text"),
        ("CSMS_LOG_LEVEL", "verbose"),
        ("CSMS_LOG_LEVEL", "critical"),
        ("CSMS_COMMAND_TIMEOUT", "0"),
        ("CSMS_COMMAND_TIMEOUT", "-1"),
        ("CSMS_COMMAND_TIMEOUT", "30s"),
        ("CSMS_WS_PING_INTERVAL", "0.0"),
        ("CSMS_WS_PING_TIMEOUT", "-inf"),
        ("CSMS_COMMIT_GATHER_MS", "-1"),
        ("CSMS_COMMIT_GATHER_MS", "1001"),
        ("CSMS_COMMIT_GATHER_MS", "2.5"),
        ("CSMS_WS_PING_TIMEOUT", "never"),
    ],
)
def test_bad_value_raises_config_error_naming_the_variable(variable: str, value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({variable: value})

    assert caught.value.variable == variable
    assert str(caught.value).startswith(f"{variable}: ")
    assert caught.value.problem


def test_database_url_error_does_not_name_another_variable() -> None:
    env = {"CSMS_DATABASE_URL": "mysql://x/y", "CSMS_OCPP_PORT": "9001"}

    with pytest.raises(ConfigError) as caught:
        Settings.from_env(env)

    assert caught.value.variable == "CSMS_DATABASE_URL"
    assert "postgresql" in caught.value.problem


@pytest.mark.parametrize("variable", ["CSMS_COMMAND_TIMEOUT", "CSMS_WS_PING_TIMEOUT"])
@pytest.mark.parametrize("value", ["nan", "NaN", "inf"])
def test_non_finite_seconds_raise_config_error(variable: str, value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({variable: value})

    assert caught.value.variable == variable
