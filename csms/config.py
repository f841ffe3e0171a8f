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


SMARTCAR_MODES = ("live", "test", "simulated")
# Vehicles API v3 is the default; v2.0 (switched off by Smartcar, §14.6) stays selectable.
SMARTCAR_API_VERSIONS = ("3", "2")


@dataclass(frozen=True, slots=True)
class BridgeSettings:
    """The Smartcar bridge; present only when ``SMARTCAR_CLIENT_ID`` is set."""

    client_id: str
    client_secret: str
    redirect_uri: str
    secret_key: str
    api_url: str = "https://api.smartcar.com/v2.0"
    auth_url: str = "https://auth.smartcar.com"
    connect_url: str = "https://connect.smartcar.com"
    mode: str = "live"
    management_token: str | None = None
    poll_interval: float = 60.0
    energy_tolerance: float = 0.15
    start_timeout: float = 90.0
    match_give_up_after: float = 180.0
    # §9: the application's token bucket (Smartcar's default; support can change it) and
    # the calls one session may spend before a warning.
    rate_bucket_size: int = 120
    rate_refill_per_minute: float = 2.0
    session_call_budget: int = 12
    # Smartcar calls before reads (smartcar_bridge/candidates.py): the polling cars one
    # plug-in decision may read, and how long after a Preparing a webhook-watched car's
    # silence means it did not plug in.
    decision_reads: int = 4
    webhook_lag: float = 30.0
    # How long a polling car's last known position is trusted to exclude it from a
    # plug-in elsewhere (it may have driven since).
    position_trusted: float = 1800.0
    # Plug-and-charge matching (README "Plug-and-charge"): a car is a candidate for a
    # plug-in only if its own plug-in is within match_window of the charger's Preparing;
    # a plug-in waits match_settle for its neighbours' Preparing before a direct match;
    # a confirmation start waits confirm_timeout for a candidate to charge, reading the
    # candidates every confirm_poll.
    match_window: float = 120.0
    match_settle: float = 3.0
    confirm_timeout: float = 120.0
    confirm_poll: float = 10.0
    # Vehicles API v3 (smartcar-api.md §14): app token from iam, Management API webhooks.
    api_version: str = "3"
    v3_api_url: str = "https://vehicle.api.smartcar.com/v3"
    management_api_url: str = "https://management.api.smartcar.com/v3"
    iam_url: str = "https://iam.smartcar.com"
    webhook_id: str | None = None
    command_timeout: float = 310.0


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
    bridge: BridgeSettings | None = None
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
        reader = _Reader(env)
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
            ws_ping_interval=reader.seconds("CSMS_WS_PING_INTERVAL", defaults.ws_ping_interval),
            ws_ping_timeout=reader.seconds("CSMS_WS_PING_TIMEOUT", defaults.ws_ping_timeout),
            bridge=_bridge_settings(reader),
            **_security_settings(reader),
            workers=reader.integer("CSMS_WORKERS", defaults.workers, minimum=1, maximum=64),
            nats_url=reader.nats_url("CSMS_NATS_URL"),
            reuse_port=reader.flag("CSMS_REUSE_PORT"),
            node_timeout=reader.seconds("CSMS_NODE_TIMEOUT", defaults.node_timeout),
        )


def _security_settings(reader: _Reader) -> dict[str, Any]:
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


def _bridge_settings(reader: _Reader) -> BridgeSettings | None:
    client_id = reader.optional("SMARTCAR_CLIENT_ID")
    if client_id is None:
        return None
    secret_key = reader.optional("CSMS_SECRET_KEY")
    # Tokens are encrypted at rest with this key: no key, no bridge.
    if secret_key is None or len(secret_key) < 16:
        raise ConfigError("CSMS_SECRET_KEY", "required (16+ characters) when the bridge is on")
    defaults = BridgeSettings("", "", "", "")
    return BridgeSettings(
        client_id=client_id,
        client_secret=reader.required("SMARTCAR_CLIENT_SECRET"),
        redirect_uri=reader.http_url("SMARTCAR_REDIRECT_URI", None),
        secret_key=secret_key,
        api_url=reader.http_url("SMARTCAR_API_URL", defaults.api_url),
        auth_url=reader.http_url("SMARTCAR_AUTH_URL", defaults.auth_url),
        connect_url=reader.http_url("SMARTCAR_CONNECT_URL", defaults.connect_url),
        mode=reader.choice("SMARTCAR_MODE", defaults.mode, SMARTCAR_MODES),
        management_token=reader.optional("SMARTCAR_MANAGEMENT_TOKEN"),
        poll_interval=reader.seconds("CSMS_BRIDGE_POLL_INTERVAL", defaults.poll_interval),
        energy_tolerance=reader.seconds("CSMS_BRIDGE_ENERGY_TOLERANCE", defaults.energy_tolerance),
        start_timeout=reader.seconds("CSMS_BRIDGE_START_TIMEOUT", defaults.start_timeout),
        match_give_up_after=reader.seconds(
            "CSMS_BRIDGE_MATCH_GIVE_UP_AFTER", defaults.match_give_up_after
        ),
        rate_bucket_size=reader.integer(
            "SMARTCAR_RATE_BUCKET_SIZE", defaults.rate_bucket_size, minimum=1
        ),
        # A rate, not a duration, but the same rule: a finite number above 0.
        rate_refill_per_minute=reader.seconds(
            "SMARTCAR_RATE_REFILL_PER_MINUTE", defaults.rate_refill_per_minute
        ),
        session_call_budget=reader.integer(
            "CSMS_BRIDGE_SESSION_CALL_BUDGET", defaults.session_call_budget, minimum=1
        ),
        decision_reads=reader.integer(
            "CSMS_BRIDGE_DECISION_READS", defaults.decision_reads, minimum=0
        ),
        webhook_lag=reader.seconds("CSMS_BRIDGE_WEBHOOK_LAG", defaults.webhook_lag),
        position_trusted=reader.seconds("CSMS_BRIDGE_POSITION_TRUSTED", defaults.position_trusted),
        match_window=reader.seconds("CSMS_BRIDGE_MATCH_WINDOW", defaults.match_window),
        match_settle=reader.seconds("CSMS_BRIDGE_MATCH_SETTLE", defaults.match_settle),
        confirm_timeout=reader.seconds("CSMS_BRIDGE_CONFIRM_TIMEOUT", defaults.confirm_timeout),
        confirm_poll=reader.seconds("CSMS_BRIDGE_CONFIRM_POLL", defaults.confirm_poll),
        api_version=reader.choice(
            "SMARTCAR_API_VERSION", defaults.api_version, SMARTCAR_API_VERSIONS
        ),
        v3_api_url=reader.http_url("SMARTCAR_V3_API_URL", defaults.v3_api_url),
        management_api_url=reader.http_url(
            "SMARTCAR_MANAGEMENT_API_URL", defaults.management_api_url
        ),
        iam_url=reader.http_url("SMARTCAR_IAM_URL", defaults.iam_url),
        webhook_id=reader.optional("SMARTCAR_WEBHOOK_ID"),
        command_timeout=reader.seconds("SMARTCAR_COMMAND_TIMEOUT", defaults.command_timeout),
    )


class _Reader:
    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env

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
            raise ConfigError(name, "required when the bridge is on")
        return value

    def http_url(self, name: str, default: str | None) -> str:
        value = self._raw(name) or default
        if value is None:
            raise ConfigError(name, "required when the bridge is on")
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
