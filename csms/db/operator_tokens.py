"""SQL for operator API tokens: create (shown once), revoke, list, authenticate.

Only a SHA-256 hash of a token is stored. A slow password hash (bcrypt, argon2) exists to
make guessing a *low-entropy human secret* expensive; these tokens are 32 random bytes, so
a guess is hopeless whatever the hash, and a fast hash lets every request be checked by one
indexed lookup instead of burning ~100 ms of CPU.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg

# Recognisable in a leaked config file or a secret scanner's rules.
TOKEN_PREFIX = "csms_"
# last_used_at is for "is this token still in use?", not an audit log: minute precision.
TOUCH_EVERY = timedelta(minutes=1)

Executor = asyncpg.Pool | asyncpg.Connection


class TokenNameTaken(Exception):
    """A live token already has this name."""


@dataclass(slots=True, frozen=True)
class OperatorToken:
    id: int
    name: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


_COLUMNS = "id, name, created_at, last_used_at, revoked_at"


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


async def create(db: Executor, name: str) -> str:
    """Store a new token named ``name``; return the token (the only time it exists)."""
    token = new_token()
    try:
        await db.execute(
            "INSERT INTO operator_tokens (name, token_hash) VALUES ($1, $2)",
            name,
            token_hash(token),
        )
    except asyncpg.UniqueViolationError:
        raise TokenNameTaken(name) from None
    return token


async def revoke(db: Executor, name: str) -> bool:
    """Revoke the live token named ``name``; False if there is none."""
    result = await db.execute(
        "UPDATE operator_tokens SET revoked_at = now() WHERE name = $1 AND revoked_at IS NULL",
        name,
    )
    return result != "UPDATE 0"


async def list_tokens(db: Executor) -> list[OperatorToken]:
    rows = await db.fetch(f"SELECT {_COLUMNS} FROM operator_tokens ORDER BY name, id")
    return [OperatorToken(**dict(r)) for r in rows]


async def find(db: Executor, token: str) -> OperatorToken | None:
    """The token record (live or revoked) for a presented token, or None if unknown."""
    # Looked up by hash: the comparison happens on a digest an attacker cannot steer, so
    # the index lookup leaks nothing useful about the stored tokens through timing.
    row = await db.fetchrow(
        f"SELECT {_COLUMNS} FROM operator_tokens WHERE token_hash = $1", token_hash(token)
    )
    return OperatorToken(**dict(row)) if row else None


async def touch(db: Executor, token: OperatorToken, now: datetime) -> None:
    """Record use, but write only when the stored time is older than ``TOUCH_EVERY``."""
    if token.last_used_at is not None and now - token.last_used_at < TOUCH_EVERY:
        return
    # The guard is repeated in SQL so concurrent requests (or processes) write once.
    await db.execute(
        """UPDATE operator_tokens SET last_used_at = $2
           WHERE id = $1
             AND (last_used_at IS NULL OR last_used_at < $2::timestamptz - $3::interval)""",
        token.id,
        now,
        TOUCH_EVERY,
    )
