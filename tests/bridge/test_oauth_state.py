"""Signed, expiring Connect ``state`` and the token cipher: pure, no I/O."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from smartcar_bridge.crypto import TokenCipher, TokenDecryptError
from smartcar_bridge.oauth import InvalidState, make_state, read_state

SECRET = "s3cret-key-for-tests-only-0123456789"
NOW = datetime(2025, 6, 1, 8, 30, tzinfo=UTC)


def test_state_round_trips_the_account_id_and_is_url_safe() -> None:
    state = make_state(42, SECRET, NOW)
    assert read_state(state, SECRET, NOW + timedelta(seconds=599)) == 42
    assert re.fullmatch(r"[A-Za-z0-9_.\-]+", state)


def test_two_states_for_the_same_account_differ() -> None:
    assert make_state(1, SECRET, NOW) != make_state(1, SECRET, NOW)


def test_expired_state_is_refused() -> None:
    state = make_state(42, SECRET, NOW, ttl=60)
    with pytest.raises(InvalidState, match="expired"):
        read_state(state, SECRET, NOW + timedelta(seconds=60))


def test_state_signed_with_another_secret_is_refused() -> None:
    state = make_state(42, "another-secret-of-enough-length", NOW)
    with pytest.raises(InvalidState, match="signature"):
        read_state(state, SECRET, NOW)


def test_altered_account_id_is_refused() -> None:
    _account, rest = make_state(42, SECRET, NOW).split(".", 1)
    with pytest.raises(InvalidState, match="signature"):
        read_state(f"43.{rest}", SECRET, NOW)


def test_extended_expiry_is_refused() -> None:
    account, expires, nonce, signature = make_state(42, SECRET, NOW).split(".")
    forged = f"{account}.{int(expires) + 3600}.{nonce}.{signature}"
    with pytest.raises(InvalidState, match="signature"):
        read_state(forged, SECRET, NOW)


@pytest.mark.parametrize("state", ["", "abc", "1.2.3", "1.2.3.4.5", "a.b.c.", "1.2.n.sïg", "..."])
def test_malformed_state_is_refused(state: str) -> None:
    with pytest.raises(InvalidState):
        read_state(state, SECRET, NOW)


def test_naive_time_and_short_secret_are_rejected() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        make_state(1, SECRET, datetime(2025, 1, 1))
    with pytest.raises(ValueError, match="at least 16"):
        make_state(1, "short", NOW)


def test_cipher_round_trips_and_hides_the_plaintext() -> None:
    cipher = TokenCipher(SECRET)
    token = "cf7ba7e9-8c5d-417d-a99f-c386cfc235cc"
    sealed = cipher.encrypt(token)
    assert token.encode() not in sealed
    assert cipher.encrypt(token) != sealed  # random IV: equal tokens do not look equal
    assert cipher.decrypt(sealed) == token


def test_cipher_with_another_key_cannot_decrypt() -> None:
    sealed = TokenCipher(SECRET).encrypt("token")
    with pytest.raises(TokenDecryptError):
        TokenCipher("a-different-secret-key-1234").decrypt(sealed)


@pytest.mark.parametrize("secret", ["", "fifteen-chars!!"])
def test_cipher_refuses_a_short_secret(secret: str) -> None:
    with pytest.raises(ValueError, match="CSMS_SECRET_KEY"):
        TokenCipher(secret)
