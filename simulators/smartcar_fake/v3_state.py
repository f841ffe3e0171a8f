"""The fake's v3 knobs and bookkeeping (smartcar-api.md §14): application tokens, command
executions, Management API subscriptions, and the switch that retires v2.0. Pure, clocked.
"""

from __future__ import annotations

import hmac
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from simulators.smartcar_fake.errors import ApiError, OAuthError
from simulators.smartcar_fake.tokens import Clock

COMMAND_MODES = ("sync", "pending", "stream")


@dataclass(slots=True)
class Execution:
    """One ``command-execution``; ``status`` PENDING until ``due_at``, then final."""

    id: str
    vehicle_id: str
    command_type: str
    parameters: dict[str, Any]
    executed_at: datetime
    mode: str
    status: str = "PENDING"
    error: ApiError | None = None
    completed_at: datetime | None = None


@dataclass(slots=True)
class Subscription:
    id: str
    webhook_id: str
    user_id: str
    vehicle_id: str
    created_at: datetime


@dataclass(slots=True)
class V3State:
    """Knobs tests turn: ``client_secret`` (rotate it to refuse the bridge's),
    ``app_token_ttl_s``, ``v2_retired``, ``command_mode`` / ``command_duration_s``,
    ``execution_failures`` (kinds the next executions report as FAILURE), ``epoch_ms``."""

    clock: Clock
    client_id: str
    client_secret: str
    app_token_ttl_s: float = 3600.0  # §14.1: one hour
    v2_retired: bool = False
    # How long-running commands answer: 202 + PENDING and a later GET of the execution
    # ("pending"), or a 202 held open until the final result ("stream", §14.2 third-party).
    command_mode: str = "sync"
    command_duration_s: float = 2.0
    execution_failures: list[str] = field(default_factory=list)
    epoch_ms: bool = True
    page_size: int = 10
    app_tokens: dict[str, datetime] = field(default_factory=dict)
    token_requests: int = 0
    executions: dict[str, Execution] = field(default_factory=dict)
    subscriptions: dict[str, Subscription] = field(default_factory=dict)

    # --- application tokens (§14.1) -------------------------------------------------------

    def issue_app_token(self, form: dict[str, str]) -> dict[str, Any]:
        self.token_requests += 1
        if form.get("grant_type") != "client_credentials":
            raise OAuthError(400, "invalid_request", "grant_type must be client_credentials.")
        if not form.get("client_id") or not form.get("client_secret"):
            raise OAuthError(400, "invalid_request", "client_id and client_secret are required.")
        ok = hmac.compare_digest(form["client_id"], self.client_id) and hmac.compare_digest(
            form["client_secret"], self.client_secret
        )
        if not ok:
            raise OAuthError(401, "invalid_client", "Client authentication failed.")
        token = str(uuid.uuid4())
        self.app_tokens[token] = self.clock() + timedelta(seconds=self.app_token_ttl_s)
        return {
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": round(self.app_token_ttl_s),
        }

    def authenticate(self, authorization: str | None) -> None:
        scheme, _, token = (authorization or "").partition(" ")
        expires = self.app_tokens.get(token.strip()) if scheme.lower() == "bearer" else None
        if expires is None or self.clock() >= expires:
            raise ApiError("AUTHENTICATION")

    def expire_app_tokens(self) -> int:
        now = self.clock()
        for token, expires in self.app_tokens.items():
            self.app_tokens[token] = min(expires, now)
        return len(self.app_tokens)

    # --- command executions (§14.2) ---------------------------------------------------------

    def new_execution(
        self, vehicle_id: str, command_type: str, parameters: dict[str, Any], mode: str
    ) -> Execution:
        execution = Execution(
            f"exec_{uuid.uuid4().hex}", vehicle_id, command_type, parameters, self.clock(), mode
        )
        self.executions[execution.id] = execution
        return execution

    def finish(self, execution: Execution, error: ApiError | None) -> None:
        execution.status = "SUCCESS" if error is None else "FAILURE"
        execution.error = error
        execution.completed_at = self.clock()

    def next_failure(self) -> ApiError | None:
        return ApiError(self.execution_failures.pop(0)) if self.execution_failures else None

    # --- Management API subscriptions (§14.4) -------------------------------------------------

    def subscribe(self, webhook_id: str, user_id: str, vehicle_id: str) -> Subscription | None:
        """A new subscription, or None when this vehicle is already on this webhook (409)."""
        for existing in self.subscriptions.values():
            if existing.webhook_id == webhook_id and existing.vehicle_id == vehicle_id:
                return None
        created = Subscription(str(uuid.uuid4()), webhook_id, user_id, vehicle_id, self.clock())
        self.subscriptions[created.id] = created
        return created
