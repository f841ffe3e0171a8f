"""Signed, expiring OAuth ``state`` for Smartcar Connect (smartcar-api.md §2).

Connect echoes ``state`` back on the redirect. Ours says which account started the flow and
until when it is valid, signed with HMAC-SHA256 so a forged or altered redirect is refused
(CSRF, RFC 6749 10.12). Format, all URL-safe: ``<account_id>.<expires_epoch>.<nonce>.<sig>``.
It is not single-use: the code it comes with is, and the short TTL bounds any replay.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from datetime import datetime

from smartcar_bridge.crypto import derive_key

DEFAULT_TTL_S = 600  # Connect codes live 10 minutes (§2); a state need not outlive them
_INFO = b"csms/smartcar_bridge/oauth-state/v1"


class InvalidState(ValueError):
    """The ``state`` on a Connect redirect is malformed, forged or expired."""


def _sign(key: bytes, payload: str) -> str:
    digest = hmac.new(key, payload.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def make_state(account_id: int, secret: str, now: datetime, ttl: int = DEFAULT_TTL_S) -> str:
    """A state naming ``account_id``, valid for ``ttl`` seconds from ``now``."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if account_id < 0 or ttl <= 0:
        raise ValueError("account_id must be >= 0 and ttl > 0")
    expires = int(now.timestamp()) + ttl
    payload = f"{account_id}.{expires}.{secrets.token_urlsafe(12)}"
    return f"{payload}.{_sign(derive_key(secret, _INFO), payload)}"


def read_state(state: str, secret: str, now: datetime) -> int:
    """The account id inside a state we issued; raises ``InvalidState`` otherwise."""
    payload, dot, signature = state.rpartition(".")
    parts = payload.split(".")
    if not dot or len(parts) != 3 or not signature:
        raise InvalidState("malformed state")
    # Check the signature before trusting any field; compare_digest: constant time.
    expected = _sign(derive_key(secret, _INFO), payload).encode()
    if not hmac.compare_digest(expected, signature.encode("utf-8", "replace")):
        raise InvalidState("bad state signature")
    account, expires, _nonce = parts
    if not (account.isdigit() and expires.isdigit()):
        raise InvalidState("malformed state")
    if now.timestamp() >= int(expires):
        raise InvalidState("state expired")
    return int(account)
