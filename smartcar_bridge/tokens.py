"""Encrypted Smartcar token storage with refresh-before-expiry (smartcar-api.md §3).

Refresh tokens rotate: each refresh returns a new pair and the old refresh token dies a minute
later. So refreshes for one link are serialised (an ``asyncio.Lock`` per link, re-checking the
row once the lock is held), both new tokens are written in one statement, and the write is
conditional on the refresh token we used, so a second process that rotated first wins cleanly.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import asyncpg
import structlog

from smartcar_bridge.client import SmartcarClient
from smartcar_bridge.crypto import TokenCipher
from smartcar_bridge.errors import AuthenticationError, ReauthRequired, RefreshRefused
from smartcar_bridge.responses import TokenSet

log = structlog.get_logger()

T = TypeVar("T")
Clock = Callable[[], datetime]

DEFAULT_REFRESH_MARGIN = timedelta(minutes=5)

_SELECT = """
SELECT id, account_id, smartcar_user_id, sc_user_id, status, access_token_enc,
       refresh_token_enc, access_expires_at, refresh_expires_at, scopes, updated_at
FROM smartcar_links WHERE id = $1
"""
_UPSERT = """
INSERT INTO smartcar_links (account_id, smartcar_user_id, access_token_enc, refresh_token_enc,
                            access_expires_at, refresh_expires_at, scopes, status,
                            created_at, updated_at, sc_user_id)
VALUES ($1, $2, $3, $4, $5, $6, $7, 'active', $8, $8, $9)
ON CONFLICT (account_id, smartcar_user_id) DO UPDATE SET
    -- A v3 link brings no v2.0 tokens: keep any the link already had (NULL = none new).
    access_token_enc = COALESCE(EXCLUDED.access_token_enc, smartcar_links.access_token_enc),
    refresh_token_enc = COALESCE(EXCLUDED.refresh_token_enc, smartcar_links.refresh_token_enc),
    access_expires_at = COALESCE(EXCLUDED.access_expires_at, smartcar_links.access_expires_at),
    refresh_expires_at = COALESCE(EXCLUDED.refresh_expires_at,
                                  smartcar_links.refresh_expires_at),
    sc_user_id = COALESCE(EXCLUDED.sc_user_id, smartcar_links.sc_user_id),
    scopes = EXCLUDED.scopes,
    status = 'active',
    updated_at = EXCLUDED.updated_at
RETURNING id
"""
# Conditional on the refresh token we spent: 0 rows means another writer rotated first.
_ROTATE = """
UPDATE smartcar_links
SET access_token_enc = $3, refresh_token_enc = $4, access_expires_at = $5,
    refresh_expires_at = $6, updated_at = $7
WHERE id = $1 AND refresh_token_enc = $2 AND status = 'active'
"""
_MARK_REAUTH = """
UPDATE smartcar_links SET status = 'reauth_required', updated_at = $3
WHERE id = $1 AND refresh_token_enc = $2 AND status = 'active'
"""


def utc_now() -> datetime:
    return datetime.now(UTC)


class LinkNotFound(LookupError):
    """No ``smartcar_links`` row with this id."""


@dataclass(slots=True, frozen=True)
class LinkStatus:
    """A link's state without its tokens."""

    link_id: int
    account_id: int
    smartcar_user_id: str
    status: str  # active, reauth_required, revoked
    scopes: tuple[str, ...]
    access_expires_at: datetime | None  # None: a v3 link without v2.0 tokens
    refresh_expires_at: datetime | None
    updated_at: datetime
    sc_user_id: str | None = None  # the Connect redirect's user_id (v3's sc-user-id)


class TokenStore:
    """Hands out valid access tokens for a link, refreshing and persisting as needed.

    Raises: ``ReauthRequired`` (the user must re-connect), ``LinkNotFound``, and the client's
    other ``SmartcarError`` subclasses when a refresh fails transiently (the link stays active).
    """

    def __init__(
        self,
        pool: asyncpg.Pool,
        cipher: TokenCipher,
        client: SmartcarClient,
        clock: Clock = utc_now,
        *,
        refresh_margin: timedelta = DEFAULT_REFRESH_MARGIN,
    ) -> None:
        self._pool = pool
        self._cipher = cipher
        self._client = client
        self._clock = clock
        self._margin = refresh_margin
        self._locks: dict[int, asyncio.Lock] = {}

    async def save_link(
        self,
        account_id: int,
        smartcar_user_id: str,
        tokens: TokenSet | None,
        scopes: Sequence[str] | None = None,
        *,
        sc_user_id: str | None = None,
    ) -> int:
        """Insert or replace the link for (account, Smartcar user); returns its id.

        ``tokens`` is None for a link made under v3 (app token + ``sc_user_id``, §14.1)."""
        link_id: int = await self._pool.fetchval(
            _UPSERT,
            account_id,
            smartcar_user_id,
            self._cipher.encrypt(tokens.access_token) if tokens else None,
            self._cipher.encrypt(tokens.refresh_token) if tokens else None,
            tokens.access_expires_at if tokens else None,
            tokens.refresh_expires_at if tokens else None,
            list((tokens.scopes if tokens else ()) if scopes is None else scopes),
            self._clock(),
            sc_user_id,
        )
        log.info("bridge.link_saved", link_id=link_id, account_id=account_id)
        return link_id

    async def access_token(self, link_id: int) -> str:
        """A token valid for at least the refresh margin, refreshing it if needed."""
        row = await self._active_row(link_id)
        if self._fresh(row):
            return self._cipher.decrypt(row["access_token_enc"])
        async with self._lock(link_id):
            # Whoever held the lock before us has probably refreshed already.
            row = await self._active_row(link_id)
            if self._fresh(row):
                return self._cipher.decrypt(row["access_token_enc"])
            return await self._refresh(row)

    async def force_refresh(self, link_id: int, rejected_token: str | None = None) -> str:
        """Refresh now (after an AuthenticationError); skipped if ``rejected_token`` is stale."""
        async with self._lock(link_id):
            row = await self._active_row(link_id)
            current = self._cipher.decrypt(row["access_token_enc"])
            if rejected_token is not None and current != rejected_token and self._fresh(row):
                # Another caller hit the same 401 and already replaced that token.
                return current
            return await self._refresh(row)

    async def status(self, link_id: int) -> LinkStatus:
        row = await self._row(link_id)
        return LinkStatus(
            link_id=row["id"],
            account_id=row["account_id"],
            smartcar_user_id=row["smartcar_user_id"],
            status=row["status"],
            scopes=tuple(row["scopes"]),
            access_expires_at=row["access_expires_at"],
            refresh_expires_at=row["refresh_expires_at"],
            updated_at=row["updated_at"],
            sc_user_id=row["sc_user_id"],
        )

    async def with_token(self, link_id: int, fn: Callable[[str], Awaitable[T]]) -> T:
        """``fn(access_token)``; on AuthenticationError refresh once and call it once more (§7)."""
        token = await self.access_token(link_id)
        try:
            return await fn(token)
        except AuthenticationError as exc:
            log.info("bridge.token_rejected", link_id=link_id, request_id=exc.request_id)
            token = await self.force_refresh(link_id, rejected_token=token)
        return await fn(token)

    def _lock(self, link_id: int) -> asyncio.Lock:
        return self._locks.setdefault(link_id, asyncio.Lock())

    def _fresh(self, row: asyncpg.Record) -> bool:
        expires_at: datetime = row["access_expires_at"]
        # Cap the margin at half the token's life: a token living less than the margin
        # (a short-TTL test setup, a changed API) would otherwise be refreshed on every call.
        margin = min(self._margin, (expires_at - row["updated_at"]) / 2)
        return expires_at - margin > self._clock()

    async def _row(self, link_id: int) -> asyncpg.Record:
        row = await self._pool.fetchrow(_SELECT, link_id)
        if row is None:
            raise LinkNotFound(link_id)
        return row

    async def _active_row(self, link_id: int) -> asyncpg.Record:
        row = await self._row(link_id)
        if row["status"] != "active":
            raise ReauthRequired(link_id, f"link is {row['status']}")
        if row["refresh_token_enc"] is None:
            # Linked under v3: there is no per-vehicle token to use with v2.0 (§14.1).
            raise ReauthRequired(link_id, "link has no v2.0 tokens (linked under v3)")
        return row

    async def _refresh(self, row: asyncpg.Record) -> str:
        link_id: int = row["id"]
        spent = row["refresh_token_enc"]
        now = self._clock()
        if now >= row["refresh_expires_at"]:
            # §3: refresh tokens live 60 days; asking would only earn a refusal.
            return await self._reauth(row, "refresh token expired", None)
        try:
            tokens = await self._client.refresh(self._cipher.decrypt(spent), tuple(row["scopes"]))
        except RefreshRefused as exc:
            return await self._reauth(row, "refresh token refused", exc)
        result = await self._pool.execute(
            _ROTATE,
            link_id,
            spent,
            self._cipher.encrypt(tokens.access_token),
            self._cipher.encrypt(tokens.refresh_token),
            tokens.access_expires_at,
            tokens.refresh_expires_at,
            self._clock(),
        )
        if result == "UPDATE 0":
            # Another process rotated first; its pair is stored, ours is valid too until expiry.
            log.info("bridge.token_refresh_raced", link_id=link_id)
            return tokens.access_token
        log.info(
            "bridge.token_refreshed",
            link_id=link_id,
            account_id=row["account_id"],
            access_expires_at=tokens.access_expires_at.isoformat(),
        )
        return tokens.access_token

    async def _reauth(self, row: asyncpg.Record, reason: str, cause: Exception | None) -> Any:
        link_id: int = row["id"]
        result = await self._pool.execute(
            _MARK_REAUTH, link_id, row["refresh_token_enc"], self._clock()
        )
        if result == "UPDATE 0":
            # The stored pair changed under us (another process refreshed): use the new one.
            fresh = await self._active_row(link_id)
            return self._cipher.decrypt(fresh["access_token_enc"])
        log.warning(
            "bridge.reauth_required", link_id=link_id, account_id=row["account_id"], reason=reason
        )
        raise ReauthRequired(link_id, reason) from cause
