"""Bearer-token authentication for everything under ``/api/``.

An ASGI middleware on the path prefix rather than a FastAPI dependency on each router: one
place guards the whole prefix, so the core's routes, the bridge's router and any router
added later are covered without each remembering a dependency, and an unknown ``/api/``
path answers 401 rather than telling an anonymous caller which routes exist. ``/healthz``,
``/readyz``, ``/metrics``, ``/`` and ``/smartcar/*`` stay outside: load balancers, scrapers,
browsers and Smartcar's redirects and webhooks cannot send our token (webhooks are
authenticated by their own signature).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import asyncpg
import structlog
from starlette.types import ASGIApp, Receive, Scope, Send

from csms.db import operator_tokens
from csms.http.problems import problem

log = structlog.get_logger()

PROTECTED_PREFIX = "/api/"
_CHALLENGE = 'Bearer realm="csms"'


def utc_now() -> datetime:
    return datetime.now(UTC)


def is_protected(path: str) -> bool:
    return path == PROTECTED_PREFIX.rstrip("/") or path.startswith(PROTECTED_PREFIX)


class BearerAuth:
    """Refuse ``/api/`` requests without a live operator token: 401 problem+json.

    ``pool`` is a callable because the app is built before the pool may be swapped (tests
    restart the system on the same ports); the authenticated token lands in
    ``scope["state"]["operator"]`` for routes that want to log who did what.
    """

    def __init__(
        self,
        app: ASGIApp,
        pool: Callable[[], asyncpg.Pool],
        clock: Callable[[], datetime] = utc_now,
        on_refused: Callable[[str], None] | None = None,
    ) -> None:
        self.app = app
        self._pool = pool
        self._clock = clock
        # Told the reason of every refusal (the auth-failure metric).
        self._on_refused = on_refused

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not is_protected(scope["path"]):
            await self.app(scope, receive, send)
            return
        token = _bearer(scope)
        if token is None:
            reason = "missing" if _header(scope, b"authorization") is None else "malformed"
            await self._refuse(scope, receive, send, reason)
            return
        try:
            pool = self._pool()
            record = await operator_tokens.find(pool, token)
            if record is not None and record.revoked_at is None:
                await operator_tokens.touch(pool, record, self._clock())
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            log.warning("http.auth_unavailable", error=str(exc), path=scope["path"])
            response = problem(503, "Unavailable", "cannot check the token right now")
            await response(scope, receive, send)
            return
        if record is None or record.revoked_at is not None:
            reason = "unknown" if record is None else "revoked"
            await self._refuse(scope, receive, send, reason, token_name=_name(record))
            return
        scope.setdefault("state", {})["operator"] = record.name
        await self.app(scope, receive, send)

    async def _refuse(
        self, scope: Scope, receive: Receive, send: Send, reason: str, **fields: Any
    ) -> None:
        # Never the token itself, not even a prefix of it.
        if self._on_refused is not None:
            self._on_refused(reason)
        client = scope.get("client")
        log.warning(
            "http.auth_failed",
            reason=reason,
            path=scope["path"],
            remote=client[0] if client else None,
            **{k: v for k, v in fields.items() if v is not None},
        )
        # RFC 6750 §3: a presented but bad token is "invalid_token"; none at all gets no code.
        challenge = _CHALLENGE if reason == "missing" else f'{_CHALLENGE}, error="invalid_token"'
        detail = {
            "missing": "send an operator token: Authorization: Bearer <token>",
            "malformed": "the Authorization header is not 'Bearer <token>'",
            "unknown": "the token is not valid",
            "revoked": "the token has been revoked",
        }[reason]
        response = problem(401, "Unauthorized", detail, headers={"WWW-Authenticate": challenge})
        await response(scope, receive, send)


def _name(record: operator_tokens.OperatorToken | None) -> str | None:
    return record.name if record is not None else None


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return value.decode("latin-1")
    return None


def _bearer(scope: Scope) -> str | None:
    value = _header(scope, b"authorization")
    if value is None:
        return None
    scheme, _, token = value.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or " " in token:
        return None
    return token
