"""Application tokens for v3 (client credentials, smartcar-api.md §14.1): one token for the
whole application, valid one hour, no refresh token. Fetched once, shared by every call, and
renewed ``margin`` before it ends; a 401 renews it once and retries the call once (§7).

The cache sits behind ``AppTokenCache`` so several processes can share one token:
``PostgresAppTokenCache`` keeps it (encrypted) in ``smartcar_app_tokens``; a process that
finds a fresh token there uses it instead of asking iam.smartcar.com again.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol, TypeVar

import asyncpg
import structlog

from smartcar_bridge.crypto import TokenCipher
from smartcar_bridge.errors import AppCredentialsRefused, AuthenticationError
from smartcar_bridge.v3.parse import AppToken

log = structlog.get_logger()

T = TypeVar("T")
Clock = Callable[[], datetime]
DEFAULT_MARGIN = timedelta(minutes=5)
# After iam refused the secret, answer every caller with that refusal for this long instead
# of asking again on each vehicle call (the fix is the operator's, in the Dashboard).
DEFAULT_REFUSAL_HOLD = timedelta(seconds=60)


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(slots=True, frozen=True)
class CachedToken:
    access_token: str = field(repr=False)
    expires_at: datetime
    issued_at: datetime


class AppTokenCache(Protocol):
    """Where the current application token lives; ``key`` names the app and token URL."""

    async def get(self, key: str) -> CachedToken | None: ...

    async def put(self, key: str, token: CachedToken) -> None: ...


class MemoryAppTokenCache:
    """One process only: a dict."""

    def __init__(self) -> None:
        self._tokens: dict[str, CachedToken] = {}

    async def get(self, key: str) -> CachedToken | None:
        return self._tokens.get(key)

    async def put(self, key: str, token: CachedToken) -> None:
        self._tokens[key] = token


class PostgresAppTokenCache:
    """Shared by every process on the database; the token is encrypted like user tokens."""

    def __init__(self, pool: asyncpg.Pool, cipher: TokenCipher) -> None:
        self._pool = pool
        self._cipher = cipher

    async def get(self, key: str) -> CachedToken | None:
        row = await self._pool.fetchrow(
            "SELECT token_enc, expires_at, issued_at FROM smartcar_app_tokens WHERE cache_key = $1",
            key,
        )
        if row is None:
            return None
        token = self._cipher.decrypt(row["token_enc"])
        return CachedToken(token, row["expires_at"], row["issued_at"])

    async def put(self, key: str, token: CachedToken) -> None:
        # The later expiry wins: two processes renewing at once keep the longer-lived token.
        await self._pool.execute(
            """INSERT INTO smartcar_app_tokens (cache_key, token_enc, expires_at, issued_at)
               VALUES ($1, $2, $3, $4)
               ON CONFLICT (cache_key) DO UPDATE
               SET token_enc = EXCLUDED.token_enc, expires_at = EXCLUDED.expires_at,
                   issued_at = EXCLUDED.issued_at
               WHERE smartcar_app_tokens.expires_at <= EXCLUDED.expires_at""",
            key,
            self._cipher.encrypt(token.access_token),
            token.expires_at,
            token.issued_at,
        )


def cache_key(client_id: str, iam_url: str) -> str:
    """Names the application and the token endpoint, never the secret."""
    return hashlib.sha256(f"{iam_url.rstrip('/')}|{client_id}".encode()).hexdigest()[:32]


class AppTokens:
    """Hands out the application token. Raises ``AppCredentialsRefused`` when the secret is
    refused, and the client's other ``SmartcarError`` subclasses on transient failures."""

    def __init__(
        self,
        fetch: Callable[[], Awaitable[AppToken]],
        cache: AppTokenCache,
        key: str,
        clock: Clock = utc_now,
        *,
        margin: timedelta = DEFAULT_MARGIN,
        refusal_hold: timedelta = DEFAULT_REFUSAL_HOLD,
    ) -> None:
        self._fetch = fetch
        self._cache = cache
        self._key = key
        self._clock = clock
        self._margin = margin
        self._lock = asyncio.Lock()
        self._current: CachedToken | None = None
        self._refusal_hold = refusal_hold
        self._refused: tuple[AppCredentialsRefused, datetime] | None = None

    async def token(self) -> str:
        """A token valid for at least the margin (a quarter of its life for short ones)."""
        if self._current is not None and self._fresh(self._current):
            return self._current.access_token
        async with self._lock:  # one renewal at a time; the waiters reuse its result
            if self._current is not None and self._fresh(self._current):
                return self._current.access_token
            shared = await self._cache.get(self._key)
            if shared is not None and self._fresh(shared):
                self._current = shared
                return shared.access_token
            return await self._renew()

    async def renew(self, rejected: str | None = None) -> str:
        """Renew now (after a 401), unless another caller already replaced ``rejected``."""
        async with self._lock:
            current = self._current
            if current is not None and current.access_token != rejected and self._fresh(current):
                return current.access_token
            return await self._renew()

    async def with_token(self, fn: Callable[[str], Awaitable[T]]) -> T:
        """``fn(token)``; a 401 renews the token once and calls ``fn`` once more."""
        token = await self.token()
        try:
            return await fn(token)
        except AuthenticationError as exc:
            log.info("bridge.app_token_rejected", request_id=exc.request_id)
            token = await self.renew(rejected=token)
        return await fn(token)

    def _fresh(self, token: CachedToken) -> bool:
        # Renew ``margin`` before the end, or at three quarters of a shorter life (a test
        # fake's seconds-long tokens would otherwise be renewed on every call).
        margin = min(self._margin, (token.expires_at - token.issued_at) / 4)
        return token.expires_at - margin > self._clock()

    async def _renew(self) -> str:
        if self._refused is not None and self._clock() < self._refused[1]:
            raise self._refused[0]
        try:
            fetched = await self._fetch()
        except AppCredentialsRefused as exc:
            self._refused = (exc, self._clock() + self._refusal_hold)
            log.error(
                "bridge.app_token_refused",
                error=exc.error,
                status=exc.status,
                hint="create a new secret under API Credentials in the Smartcar Dashboard "
                "and set SMARTCAR_CLIENT_SECRET",
            )
            raise
        self._refused = None
        token = CachedToken(fetched.access_token, fetched.expires_at, fetched.issued_at)
        self._current = token
        await self._cache.put(self._key, token)
        log.info("bridge.app_token_renewed", expires_at=fetched.expires_at.isoformat())
        return token.access_token
