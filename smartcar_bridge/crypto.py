"""Encryption at rest for Smartcar tokens: Fernet with a key derived from CSMS_SECRET_KEY."""

from __future__ import annotations

import base64

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

MIN_SECRET_LENGTH = 16
# Domain separation: the same CSMS_SECRET_KEY may key other things (OAuth state signing);
# a distinct label gives this use its own independent key. Changing it orphans stored tokens.
_INFO = b"csms/smartcar_bridge/token-encryption/v1"


class TokenDecryptError(ValueError):
    """Stored ciphertext cannot be read: another CSMS_SECRET_KEY, or corrupted bytes."""


def derive_key(secret_key: str, info: bytes) -> bytes:
    """32 bytes from ``secret_key`` for the purpose named by ``info`` (HKDF-SHA256)."""
    if len(secret_key) < MIN_SECRET_LENGTH:
        raise ValueError(
            f"CSMS_SECRET_KEY must be at least {MIN_SECRET_LENGTH} characters "
            f"(got {len(secret_key)}); generate one with `python -c "
            "'import secrets; print(secrets.token_urlsafe(32))'`"
        )
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(
        secret_key.encode()
    )


class TokenCipher:
    """``encrypt(str) -> bytes`` and back; authenticated (Fernet: AES-128-CBC + HMAC-SHA256)."""

    def __init__(self, secret_key: str) -> None:
        key = derive_key(secret_key, _INFO)
        self._fernet = Fernet(base64.urlsafe_b64encode(key))

    def encrypt(self, plaintext: str) -> bytes:
        return self._fernet.encrypt(plaintext.encode())

    def decrypt(self, ciphertext: bytes) -> str:
        try:
            return self._fernet.decrypt(bytes(ciphertext)).decode()
        except InvalidToken as exc:
            raise TokenDecryptError(
                "cannot decrypt a stored token: wrong CSMS_SECRET_KEY or corrupted data"
            ) from exc

    def __repr__(self) -> str:
        return "TokenCipher(<key hidden>)"
