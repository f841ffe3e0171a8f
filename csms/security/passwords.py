"""Charger passwords (the 1.6 ``AuthorizationKey``): generated, checked, stored as a slow hash.

scrypt from the standard library: a memory-hard KDF that needs no extra dependency.
Verification is constant time and costs ~50 ms, so callers run it in a thread.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

# Security Whitepaper, AuthorizationKey: 16..20 random bytes, written as up to 40 hex digits.
# We accept any 16-40 character password (what the operator may type into a charger).
MIN_LENGTH = 16
MAX_LENGTH = 40
_GENERATED_BYTES = 20

_N, _R, _P = 2**14, 8, 1
_SALT_BYTES = 16
_KEY_BYTES = 32
_SCHEME = "scrypt"


class PasswordRuleError(ValueError):
    """The password breaks the 16-40 character rule."""


def generate_password() -> str:
    """A new AuthorizationKey: 20 random bytes as 40 hex digits (whitepaper maximum entropy)."""
    return secrets.token_hex(_GENERATED_BYTES)


def check_rule(password: str) -> None:
    if not MIN_LENGTH <= len(password) <= MAX_LENGTH:
        raise PasswordRuleError(f"a charger password has {MIN_LENGTH} to {MAX_LENGTH} characters")


def hash_password(password: str) -> str:
    """``scrypt$n$r$p$salt$key``, base64 parts; the only form a password is ever stored in."""
    check_rule(password)
    salt = secrets.token_bytes(_SALT_BYTES)
    key = _derive(password.encode(), salt, _N, _R, _P)
    return "$".join((_SCHEME, str(_N), str(_R), str(_P), _b64(salt), _b64(key)))


def verify_password(password: bytes | str, stored: str) -> bool:
    """Whether ``password`` matches ``stored``, compared in constant time."""
    if isinstance(password, str):
        password = password.encode()
    try:
        scheme, n, r, p, salt, key = stored.split("$")
        if scheme != _SCHEME:
            return False
        expected = base64.b64decode(key)
        actual = _derive(password, base64.b64decode(salt), int(n), int(r), int(p))
    except ValueError:
        return False
    return hmac.compare_digest(actual, expected)


def _derive(password: bytes, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        password, salt=salt, n=n, r=r, p=p, dklen=_KEY_BYTES, maxmem=128 * r * n * 2
    )


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
