"""Settings: one frozen dataclass built once from the environment.

Nothing else in the project reads ``os.environ``. A bad value raises
``ConfigError`` naming the variable; the CLI turns it into one line and exit 2.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

UNKNOWN_CHARGER_POLICIES = ("accept", "pending", "reject")
LOG_FORMATS = ("json", "console")
LOG_LEVELS = ("debug", "info", "warning", "error")


class ConfigError(Exception):
    """A configuration variable has a value we cannot use."""

    def __init__(self, variable: str, problem: str) -> None:
        super().__init__(f"{variable}: {problem}")
        self.variable = variable
        self.problem = problem


@dataclass(frozen=True, slots=True)
class Settings:
    database_url: str | None = None
    data_dir: Path = Path(".csms")
    ocpp_host: str = "0.0.0.0"
    ocpp_port: int = 9000
    http_host: str = "0.0.0.0"
    http_port: int = 8080
    heartbeat_interval: int = 300
    unknown_chargers: str = "accept"
    log_format: str = "json"
    log_level: str = "info"
    command_timeout: float = 30.0
    ws_ping_interval: float = 60.0
    ws_ping_timeout: float = 300.0
    # Group commit (csms/db/batch.py): the most rows of one writer in one transaction.
    write_batch_rows: int = 5000
    # Milliseconds an idle group commit waits after the first row for more to join its
    # transaction: fewer commits for some latency. 0 (the default): written at once.
    commit_gather_ms: int = 0
    # Plug-ins (csms/plugins.py) by name: their own settings, None when installed but off.
    # Left at None: every installed plug-in, off (what a Settings() built in code means).
    plugins: Mapping[str, object | None] | None = None
    # Charger security (csms/security); see _security_settings.
    security_profile: int = 0
    tls_port: int = 9443
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_client_ca: Path | None = None
    charger_ca_cert: Path | None = None
    charger_ca_key: Path | None = None
    # Cluster mode (csms/cluster): NATS routes commands, events and cache invalidations
    # between nodes. Unset and one worker: one process with in-process routing.
    workers: int = 1
    nats_url: str | None = None
    # Set by `csms serve --workers N` for its workers: share the OCPP and HTTP ports.
    reuse_port: bool = False
    # A node silent this long is dead: its chargers are shown disconnected, its work taken.
    node_timeout: float = 10.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Build settings from ``env`` (default: the process environment)."""
        env = os.environ if env is None else env
        reader = EnvReader(env)
        defaults = cls()
        return cls(
            database_url=reader.url("CSMS_DATABASE_URL"),
            data_dir=Path(reader.text("CSMS_DATA_DIR", str(defaults.data_dir))),
            ocpp_host=reader.text("CSMS_OCPP_HOST", defaults.ocpp_host),
            ocpp_port=reader.port("CSMS_OCPP_PORT", defaults.ocpp_port),
            http_host=reader.text("CSMS_HTTP_HOST", defaults.http_host),
            http_port=reader.port("CSMS_HTTP_PORT", defaults.http_port),
            heartbeat_interval=reader.integer(
                "CSMS_HEARTBEAT_INTERVAL", defaults.heartbeat_interval, minimum=1
            ),
            unknown_chargers=reader.choice(
                "CSMS_UNKNOWN_CHARGERS", defaults.unknown_chargers, UNKNOWN_CHARGER_POLICIES
            ),
            log_format=reader.choice("CSMS_LOG_FORMAT", defaults.log_format, LOG_FORMATS),
            log_level=reader.choice("CSMS_LOG_LEVEL", defaults.log_level, LOG_LEVELS),
            command_timeout=reader.seconds("CSMS_COMMAND_TIMEOUT", defaults.command_timeout),
            commit_gather_ms=reader.integer(
                "CSMS_COMMIT_GATHER_MS", defaults.commit_gather_ms, minimum=0, maximum=1000
            ),
            ws_ping_interval=reader.seconds("CSMS_WS_PING_INTERVAL", defaults.ws_ping_interval),
            ws_ping_timeout=reader.seconds("CSMS_WS_PING_TIMEOUT", defaults.ws_ping_timeout),
            plugins=_plugin_settings(reader),
            **_security_settings(reader),
            workers=reader.integer("CSMS_WORKERS", defaults.workers, minimum=1, maximum=64),
            nats_url=reader.nats_url("CSMS_NATS_URL"),
            reuse_port=reader.flag("CSMS_REUSE_PORT"),
            node_timeout=reader.seconds("CSMS_NODE_TIMEOUT", defaults.node_timeout),
        )


def _plugin_settings(reader: EnvReader) -> dict[str, object | None] | None:
    from csms.plugins import PluginError, select

    names = reader.optional("CSMS_PLUGINS")
    try:
        chosen = select(names)
    except PluginError as exc:
        raise ConfigError("CSMS_PLUGINS", str(exc)) from None
    found = {name: plugin.settings_from_env(reader) for name, plugin in chosen.items()}
    if names is None and all(value is None for value in found.values()):
        return None  # the default: every installed plug-in, none configured
    return found


def _security_settings(reader: EnvReader) -> dict[str, Any]:
    # Profile 0 (no authentication) is the site default only while unknown chargers are
    # accepted anyway; otherwise new chargers need at least Basic auth unless the operator
    # sets CSMS_SECURITY_PROFILE=0 or lowers one charger with `csms charger set-profile`.
    open_site = reader.choice("CSMS_UNKNOWN_CHARGERS", "accept", UNKNOWN_CHARGER_POLICIES)
    profile = reader.integer(
        "CSMS_SECURITY_PROFILE", 0 if open_site == "accept" else 1, minimum=0, maximum=3
    )
    tls_cert, tls_key = reader.file_pair("CSMS_TLS_CERT", "CSMS_TLS_KEY")
    client_ca = reader.file("CSMS_TLS_CLIENT_CA")
    if client_ca is not None and tls_cert is None:
        raise ConfigError("CSMS_TLS_CLIENT_CA", "needs CSMS_TLS_CERT and CSMS_TLS_KEY")
    if profile >= 2 and tls_cert is None:
        raise ConfigError("CSMS_SECURITY_PROFILE", f"{profile} needs CSMS_TLS_CERT/CSMS_TLS_KEY")
    if profile == 3 and client_ca is None:
        raise ConfigError("CSMS_SECURITY_PROFILE", "3 needs CSMS_TLS_CLIENT_CA")
    ca_cert, ca_key = reader.file_pair("CSMS_CHARGER_CA_CERT", "CSMS_CHARGER_CA_KEY")
    return {
        "security_profile": profile,
        "tls_port": reader.port("CSMS_TLS_PORT", 9443),
        "tls_cert": tls_cert,
        "tls_key": tls_key,
        "tls_client_ca": client_ca,
        "charger_ca_cert": ca_cert,
        "charger_ca_key": ca_key,
    }


class EnvReader:
    """Reads variables with the project's rules; plug-ins read theirs through it too."""

    def __init__(self, env: Mapping[str, str], required_because: str = "") -> None:
        self._env = env
        # What ``required`` errors add, e.g. "when <the plug-in> is on".
        self.required_because = required_because

    def because(self, reason: str) -> EnvReader:
        """The same variables, with ``reason`` in the "required" errors."""
        return EnvReader(self._env, reason)

    def _raw(self, name: str) -> str | None:
        value = self._env.get(name)
        if value is None or value.strip() == "":
            return None
        return value.strip()

    def text(self, name: str, default: str) -> str:
        return self._raw(name) or default

    def optional(self, name: str) -> str | None:
        return self._raw(name)

    def required(self, name: str) -> str:
        value = self._raw(name)
        if value is None:
            raise ConfigError(name, f"required {self.required_because}".rstrip())
        return value

    def http_url(self, name: str, default: str | None) -> str:
        value = self._raw(name) or default
        if value is None:
            raise ConfigError(name, f"required {self.required_because}".rstrip())
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigError(name, f"not an http(s) URL: {value!r}")
        return value.rstrip("/")

    def url(self, name: str) -> str | None:
        value = self._raw(name)
        if value is None:
            return None
        try:
            parts = urlsplit(value)
            parts.port  # noqa: B018 - raises ValueError on a bad port
        except ValueError as exc:
            raise ConfigError(name, f"not a valid URL ({exc})") from None
        if parts.scheme not in ("postgres", "postgresql"):
            raise ConfigError(name, "must be a postgresql:// URL")
        return value

    def nats_url(self, name: str) -> str | None:
        value = self._raw(name)
        if value is None:
            return None
        # A NATS cluster is given as a comma-separated list of its servers.
        for server in value.split(","):
            parts = urlsplit(server.strip())
            if parts.scheme not in ("nats", "tls", "ws", "wss") or not parts.hostname:
                raise ConfigError(name, f"not a nats:// URL: {server.strip()!r}")
        return value

    def flag(self, name: str) -> bool:
        value = self._raw(name)
        if value is None:
            return False
        if value.lower() not in ("1", "true", "yes", "0", "false", "no"):
            raise ConfigError(name, f"{value!r} is not true or false")
        return value.lower() in ("1", "true", "yes")

    def integer(self, name: str, default: int, *, minimum: int, maximum: int | None = None) -> int:
        value = self._raw(name)
        if value is None:
            return default
        try:
            number = int(value)
        except ValueError:
            raise ConfigError(name, f"not a whole number: {value!r}") from None
        if number < minimum or (maximum is not None and number > maximum):
            bound = f"{minimum}..{maximum}" if maximum is not None else f">= {minimum}"
            raise ConfigError(name, f"{number} is out of range ({bound})")
        return number

    def file(self, name: str) -> Path | None:
        value = self._raw(name)
        if value is None:
            return None
        path = Path(value)
        if not path.is_file():
            raise ConfigError(name, f"no such file: {value!r}")
        return path

    def file_pair(self, first: str, second: str) -> tuple[Path | None, Path | None]:
        pair = self.file(first), self.file(second)
        if (pair[0] is None) != (pair[1] is None):
            missing = second if pair[1] is None else first
            raise ConfigError(missing, f"required with {first if missing == second else second}")
        return pair

    def port(self, name: str, default: int) -> int:
        return self.integer(name, default, minimum=0, maximum=65535)

    def seconds(self, name: str, default: float) -> float:
        value = self._raw(name)
        if value is None:
            return default
        try:
            number = float(value)
        except ValueError:
            raise ConfigError(name, f"not a number of seconds: {value!r}") from None
        if not math.isfinite(number) or number <= 0:
            raise ConfigError(name, "must be a finite number greater than 0")
        return number

    def choice(self, name: str, default: str, choices: tuple[str, ...]) -> str:
        value = self._raw(name)
        if value is None:
            return default
        if value.lower() not in choices:
            raise ConfigError(name, f"{value!r} is not one of {', '.join(choices)}")
        return value.lower()
