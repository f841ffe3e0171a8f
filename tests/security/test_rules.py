"""Pure rules: profile verdicts, throttling, password hashing, CSR checks, configuration."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from csms.config import ConfigError, Settings
from csms.security.backoff import FailureThrottle
from csms.security.ca import ChargerCA, CsrRejected
from csms.security.passwords import (
    PasswordRuleError,
    generate_password,
    hash_password,
    verify_password,
)
from csms.security.profiles import (
    Attempt,
    ChargerSecurity,
    DowngradeRefused,
    Refusal,
    check_upgrade,
    judge,
    promoted_profile,
)
from tests.security.conftest import Pki
from tests.security.pki import make_csr

CERT = frozenset({"CP-1"})


@pytest.mark.parametrize(
    ("attempt", "required", "refusal", "check"),
    [
        (Attempt("CP-1", tls=False), 0, None, False),
        (Attempt("CP-1", tls=False), 1, Refusal.NO_CREDENTIALS, False),
        (Attempt("CP-1", False, "CP-1", True), 1, None, True),
        (Attempt("CP-1", False, "CP-2", True), 1, Refusal.IDENTITY_MISMATCH, False),
        (Attempt("CP-1", False, "CP-1", True), 2, Refusal.PROFILE_TOO_LOW, False),
        (Attempt("CP-1", True, "CP-1", True), 2, None, True),
        (Attempt("CP-1", True, "CP-1", True), 3, Refusal.PROFILE_TOO_LOW, False),
        (Attempt("CP-1", True, certificate_names=CERT), 3, None, False),
        (
            Attempt("CP-1", True, certificate_names=frozenset({"X"})),
            3,
            Refusal.IDENTITY_MISMATCH,
            False,
        ),
        (
            Attempt("CP-1", True, certificate_names=frozenset()),
            3,
            Refusal.BAD_CLIENT_CERTIFICATE,
            False,
        ),
        (Attempt("CP-1", True, certificate_names=CERT), 1, None, False),
    ],
)
def test_judge_refuses_less_than_the_required_profile(
    attempt: Attempt, required: int, refusal: Refusal | None, check: bool
) -> None:
    verdict = judge(attempt, ChargerSecurity(required, has_password=True))
    assert (verdict.refusal, verdict.check_password) == (refusal, check)


def test_profile_0_charger_sending_a_password_we_never_set_is_let_in() -> None:
    attempt = Attempt("CP-1", False, "CP-1", True)
    assert judge(attempt, ChargerSecurity(0)).check_password is False
    assert judge(attempt, ChargerSecurity(0, has_password=True)).check_password is True


def test_pending_profile_is_promoted_only_when_the_charger_uses_it() -> None:
    charger = ChargerSecurity(0, pending_profile=2)
    assert promoted_profile(Attempt("CP-1", False, "CP-1", True), charger) is None
    assert promoted_profile(Attempt("CP-1", True, "CP-1", True), charger) == 2


def test_downgrade_is_refused() -> None:
    check_upgrade(1, 2)
    with pytest.raises(DowngradeRefused):
        check_upgrade(2, 1)
    with pytest.raises(ValueError, match="one of"):
        check_upgrade(0, 4)


def test_throttle_blocks_after_free_failures_and_doubles_up_to_the_cap() -> None:
    throttle = FailureThrottle(free_failures=2, base=1.0, cap=4.0)
    for _ in range(2):
        throttle.failed("10.0.0.1", "CP-1", 100.0)
    assert throttle.retry_after("10.0.0.1", "CP-1", 100.0) == 0
    waits = []
    for _ in range(4):
        throttle.failed("10.0.0.1", "CP-1", 100.0)
        waits.append(throttle.retry_after("10.0.0.1", "CP-1", 100.0))
    assert waits == [1.0, 2.0, 4.0, 4.0]
    # Another identity from the same address waits too; the same identity elsewhere as well.
    assert throttle.retry_after("10.0.0.1", "CP-2", 100.0) == 4.0
    assert throttle.retry_after("10.0.0.9", "CP-1", 100.0) == 4.0
    throttle.succeeded("CP-1")
    assert throttle.retry_after("10.0.0.9", "CP-1", 100.0) == 0
    assert throttle.retry_after("10.0.0.9", "CP-1", 200.0) == 0


def test_passwords_are_hashed_slowly_and_checked_in_constant_time() -> None:
    password = generate_password()
    assert len(password) == 40
    stored = hash_password(password)
    assert stored.startswith("scrypt$") and password not in stored
    assert verify_password(password, stored)
    assert not verify_password(password[:-1] + "x", stored)
    assert not verify_password(password, "garbage")
    with pytest.raises(PasswordRuleError):
        hash_password("short")
    with pytest.raises(PasswordRuleError):
        hash_password("x" * 41)


def test_ca_signs_a_csr_for_the_charger_and_refuses_others(pki: Pki) -> None:
    ca = ChargerCA.load(pki.charger_ca.cert_path, pki.charger_ca.key_path)
    csr, _ = make_csr("CP-1")
    signed = ca.sign(csr, "CP-1", datetime.now(UTC))
    assert "BEGIN CERTIFICATE" in signed.pem and "CN=CP-1" in signed.subject
    with pytest.raises(CsrRejected, match="does not name"):
        ca.sign(csr, "CP-2", datetime.now(UTC))
    with pytest.raises(CsrRejected, match="not a PEM"):
        ca.sign("not a csr", "CP-1", datetime.now(UTC))


def test_profile_0_is_the_default_only_for_open_sites(tmp_path: Path) -> None:
    assert Settings.from_env({}).security_profile == 0
    assert Settings.from_env({"CSMS_UNKNOWN_CHARGERS": "pending"}).security_profile == 1
    env = {"CSMS_UNKNOWN_CHARGERS": "reject", "CSMS_SECURITY_PROFILE": "0"}
    assert Settings.from_env(env).security_profile == 0
    with pytest.raises(ConfigError, match="CSMS_TLS_CERT"):
        Settings.from_env({"CSMS_SECURITY_PROFILE": "2"})
    cert = tmp_path / "c.pem"
    cert.write_text("x")
    with pytest.raises(ConfigError, match="CSMS_TLS_KEY"):
        Settings.from_env({"CSMS_TLS_CERT": str(cert)})
