"""Pure rules: which security profile a connection offers, and whether it is good enough.

Security Whitepaper section 2: profile 1 is HTTP Basic over ws, profile 2 Basic over TLS,
profile 3 TLS with a client certificate. A charger configured for profile N may connect
with N or more, never with less; the configured profile only ever goes up.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

PROFILES = (0, 1, 2, 3)


class Refusal(StrEnum):
    """Why a handshake was refused; the ``reason`` of ``ocpp.auth_failed``."""

    NO_CREDENTIALS = "no_credentials"
    WRONG_PASSWORD = "wrong_password"
    IDENTITY_MISMATCH = "identity_mismatch"
    PROFILE_TOO_LOW = "profile_too_low"
    BAD_CLIENT_CERTIFICATE = "bad_client_certificate"


# HTTP status per refusal: 401 asks for (other) Basic credentials, 403 will not change with them.
HTTP_STATUS = {
    Refusal.NO_CREDENTIALS: 401,
    Refusal.WRONG_PASSWORD: 401,
    Refusal.IDENTITY_MISMATCH: 401,
    Refusal.PROFILE_TOO_LOW: 403,
    Refusal.BAD_CLIENT_CERTIFICATE: 403,
}


class DowngradeRefused(ValueError):
    """Whitepaper: a charger's security profile may be raised, never lowered."""

    def __init__(self, current: int, requested: int) -> None:
        super().__init__(f"security profile {current} cannot be lowered to {requested}")
        self.current = current
        self.requested = requested


@dataclass(slots=True, frozen=True)
class Attempt:
    """What a connection presented at the upgrade."""

    identity: str
    tls: bool
    basic_user: str | None = None
    has_password: bool = False
    # Identities named by a client certificate that the TLS layer already verified
    # against CSMS_TLS_CLIENT_CA (subject CN and serialNumber); None if no certificate.
    certificate_names: frozenset[str] | None = None

    @property
    def offered_profile(self) -> int:
        if self.tls and self.certificate_names is not None:
            return 3
        if self.has_password:
            return 2 if self.tls else 1
        return 0


@dataclass(slots=True, frozen=True)
class ChargerSecurity:
    """What we know about the charger: its required profile and whether it has a password."""

    profile: int
    pending_profile: int | None = None
    has_password: bool = False


@dataclass(slots=True, frozen=True)
class Verdict:
    """The outcome before any password is checked: a refusal, or whether to check one."""

    refusal: Refusal | None
    check_password: bool = False


def judge(attempt: Attempt, charger: ChargerSecurity) -> Verdict:
    """Decide everything that does not need the password hash."""
    offered = attempt.offered_profile
    if offered == 3:
        if not attempt.certificate_names:
            return Verdict(Refusal.BAD_CLIENT_CERTIFICATE)
        if attempt.identity not in attempt.certificate_names:
            return Verdict(Refusal.IDENTITY_MISMATCH)
        return Verdict(None)
    if attempt.basic_user is not None and attempt.basic_user != attempt.identity:
        # Whitepaper 2.2: the Basic username is the charge point identity.
        return Verdict(Refusal.IDENTITY_MISMATCH)
    if offered < charger.profile:
        reason = Refusal.NO_CREDENTIALS if offered == 0 else Refusal.PROFILE_TOO_LOW
        return Verdict(reason)
    if attempt.has_password:
        # A charger that sends a password we never set is let in only at profile 0
        # (some firmware always sends Basic); once we hold a hash, it is checked.
        return Verdict(None, check_password=charger.has_password or charger.profile > 0)
    return Verdict(None)


def promoted_profile(attempt: Attempt, charger: ChargerSecurity) -> int | None:
    """The pending profile, once the charger has connected with it (upgrade completed)."""
    pending = charger.pending_profile
    if pending is not None and attempt.offered_profile >= pending > charger.profile:
        return pending
    return None


def check_upgrade(current: int, requested: int) -> None:
    """Raise ``DowngradeRefused`` for a lower profile; ValueError for an unknown one."""
    if requested not in PROFILES:
        raise ValueError(f"security profile must be one of {PROFILES}")
    if requested < current:
        raise DowngradeRefused(current, requested)
