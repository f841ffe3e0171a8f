"""Authorization codes, grants, access and refresh tokens (smartcar-api.md §2, §3).

Pure bookkeeping with an injected clock. A *grant* is one Connect session: a user, the
vehicles they selected and the scopes they approved. Tokens point at their grant, so
revoking a vehicle or the whole grant takes effect for every token at once.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from simulators.smartcar_fake.errors import ApiError, OAuthError

Clock = Callable[[], datetime]

CODE_TTL = timedelta(minutes=10)
REFRESH_TTL = timedelta(days=60)


@dataclass(slots=True)
class Grant:
    """What one Connect session authorised."""

    id: str
    user_id: str
    vehicle_ids: set[str]
    scopes: frozenset[str]
    revoked: bool = False


@dataclass(slots=True)
class AuthCode:
    code: str
    grant: Grant
    redirect_uri: str
    expires_at: datetime
    used: bool = False


@dataclass(slots=True)
class AccessToken:
    token: str
    grant: Grant
    expires_at: datetime


@dataclass(slots=True)
class RefreshToken:
    token: str
    grant: Grant
    expires_at: datetime
    # Set when the token was exchanged; it keeps working for the grace period after that.
    rotated_at: datetime | None = None
    revoked: bool = False


@dataclass(slots=True, frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int

    def body(self) -> dict[str, str | int]:
        """The token endpoint's 200 body."""
        return {
            "access_token": self.access_token,
            "token_type": "Bearer",
            "expires_in": self.expires_in,
            "refresh_token": self.refresh_token,
        }


@dataclass(slots=True)
class TokenStore:
    """Issues and checks codes and tokens; the TTL knobs may be changed at any time."""

    clock: Clock
    access_token_ttl_s: float = 7200.0
    # §3: the old refresh token dies 1 min (or 10 min, per another page) after use.
    refresh_grace_s: float = 60.0
    codes: dict[str, AuthCode] = field(default_factory=dict)
    access_tokens: dict[str, AccessToken] = field(default_factory=dict)
    refresh_tokens: dict[str, RefreshToken] = field(default_factory=dict)

    def issue_code(
        self, user_id: str, vehicle_ids: set[str], scopes: frozenset[str], redirect_uri: str
    ) -> str:
        """A single-use code bound to a new grant, valid for 10 minutes."""
        grant = Grant(str(uuid.uuid4()), user_id, set(vehicle_ids), scopes)
        code = str(uuid.uuid4())
        self.codes[code] = AuthCode(code, grant, redirect_uri, self.clock() + CODE_TTL)
        return code

    def exchange_code(self, code: str, redirect_uri: str | None) -> TokenPair:
        """``grant_type=authorization_code``; raises OAuthError(400) on any mismatch."""
        entry = self.codes.get(code)
        if entry is None or entry.used or self.clock() >= entry.expires_at:
            raise OAuthError(400, "invalid_request", f"Invalid code: {code}.")
        if redirect_uri != entry.redirect_uri:
            raise OAuthError(400, "invalid_request", f"Invalid redirect_uri: {redirect_uri}.")
        entry.used = True
        return self._issue_pair(entry.grant)

    def refresh(self, refresh_token: str) -> TokenPair:
        """``grant_type=refresh_token``: rotate; the old token lives on for the grace period."""
        now = self.clock()
        entry = self.refresh_tokens.get(refresh_token)
        grace = timedelta(seconds=self.refresh_grace_s)
        if (
            entry is None
            or entry.revoked
            or entry.grant.revoked
            or now >= entry.expires_at
            or (entry.rotated_at is not None and now >= entry.rotated_at + grace)
        ):
            raise OAuthError(400, "invalid_request", f"Invalid refresh_token: {refresh_token}.")
        if entry.rotated_at is None:
            entry.rotated_at = now
        return self._issue_pair(entry.grant)

    def authenticate(self, authorization: str | None) -> Grant:
        """The grant behind an ``Authorization: Bearer`` header, else 401 AUTHENTICATION."""
        scheme, _, token = (authorization or "").partition(" ")
        entry = self.access_tokens.get(token.strip()) if scheme.lower() == "bearer" else None
        if entry is None or entry.grant.revoked or self.clock() >= entry.expires_at:
            raise ApiError("AUTHENTICATION")
        return entry.grant

    def expire_access_tokens(self) -> int:
        """Make every access token expired now (refresh tokens stay valid)."""
        now = self.clock()
        for entry in self.access_tokens.values():
            entry.expires_at = min(entry.expires_at, now)
        return len(self.access_tokens)

    def revoke_refresh_token(self, refresh_token: str) -> bool:
        entry = self.refresh_tokens.get(refresh_token)
        if entry is None:
            return False
        entry.revoked = True
        return True

    def disconnect_vehicle(self, grant: Grant, vehicle_id: str) -> None:
        """DELETE /application: the app loses this vehicle; an empty grant dies entirely."""
        grant.vehicle_ids.discard(vehicle_id)
        if not grant.vehicle_ids:
            grant.revoked = True

    def _issue_pair(self, grant: Grant) -> TokenPair:
        now = self.clock()
        access = AccessToken(
            str(uuid.uuid4()), grant, now + timedelta(seconds=self.access_token_ttl_s)
        )
        refresh = RefreshToken(str(uuid.uuid4()), grant, now + REFRESH_TTL)
        self.access_tokens[access.token] = access
        self.refresh_tokens[refresh.token] = refresh
        return TokenPair(access.token, refresh.token, round(self.access_token_ttl_s))
