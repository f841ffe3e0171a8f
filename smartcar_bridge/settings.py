"""The bridge's settings, read through the core's ``EnvReader`` (same rules, same errors).

The variable names are the bridge's own (``SMARTCAR_*``, ``CSMS_BRIDGE_*``,
``CSMS_SECRET_KEY``); the core does not know them: ``smartcar_bridge.plugin`` hands
``from_env`` to it as the plug-in's settings reader.
"""

from __future__ import annotations

from dataclasses import dataclass

from csms.config import ConfigError, EnvReader

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
    # Every Smartcar call one plug-in decision may make (reads, battery, confirmation, retries):
    # a hard cap, the call past it is refused here (0: no cap).
    decision_calls: int = 0
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


def from_env(env: EnvReader) -> BridgeSettings | None:
    """The bridge's settings; None (the bridge is off) unless ``SMARTCAR_CLIENT_ID`` is set."""
    reader = env.because("when the bridge is on")
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
        decision_calls=reader.integer(
            "CSMS_BRIDGE_DECISION_CALLS", defaults.decision_calls, minimum=0
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
