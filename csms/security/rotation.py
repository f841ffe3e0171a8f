"""Password rotation and profile upgrades, through the command API (Security Whitepaper A01, A05).

Rotation: we generate the AuthorizationKey, keep only its hash as *pending*, send it with
ChangeConfiguration, and make it current once the charger accepts it (or logs in with it,
if its answer was lost). Upgrade: password first when the new profile needs one, then
ChangeConfiguration SecurityProfile; the charger reconnects, and the first connection with
the new profile makes it the least the charger may use from then on.

Raises ``SecurityChangeError`` subclasses, ``profiles.DowngradeRefused`` and the command
API's ``CommandError`` family (``NotConnected``, ``CommandTimeout``, ``CallErrorReceived``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import structlog

from csms.db import security as db
from csms.ocpp16.errors import CommandError, NotConnected, OutcomeUnknown
from csms.security.passwords import generate_password, hash_password
from csms.security.profiles import check_upgrade

log = structlog.get_logger()

Send = Callable[[str, str, dict[str, Any]], Awaitable[dict[str, Any]]]


class SecurityChangeError(Exception):
    """A password or profile change could not be made."""


class UnknownChargePoint(SecurityChangeError):
    def __init__(self, charge_point_id: str) -> None:
        super().__init__(f"{charge_point_id!r} was never seen")


class ChargerRefused(SecurityChangeError):
    """The charger answered ChangeConfiguration with something other than Accepted."""

    def __init__(self, key: str, status: str) -> None:
        super().__init__(f"the charger answered {status} to ChangeConfiguration {key}")
        self.key = key
        self.status = status


@dataclass(slots=True, frozen=True)
class ProfileChange:
    security_profile: int
    pending_security_profile: int | None
    # A password generated for the upgrade: shown to the operator once, never stored.
    password: str | None = None


class CredentialFlows:
    def __init__(
        self,
        pool: asyncpg.Pool,
        send: Send,
        is_connected: Callable[[str], bool],
        default_profile: int,
        clock: Callable[[], datetime],
        new_charger_status: str,
        changed: Callable[[str], None] = lambda _charge_point_id: None,
    ) -> None:
        # Told after every write to a charger's security row (the guard's cache).
        self._changed = changed
        self._new_charger_status = new_charger_status
        self._pool = pool
        self._send = send
        self._is_connected = is_connected
        self._default_profile = default_profile
        self._clock = clock

    async def rotate_password(self, charge_point_id: str) -> str:
        """Give the connected charger a new AuthorizationKey; return it (shown once)."""
        if not self._is_connected(charge_point_id):
            raise NotConnected(charge_point_id)
        await self._ensure_row(charge_point_id)
        password = generate_password()
        pending = await asyncio.to_thread(hash_password, password)
        await db.set_pending_password(self._pool, charge_point_id, pending)
        self._changed(charge_point_id)
        try:
            answer = await self._send(
                charge_point_id,
                "ChangeConfiguration",
                {"key": "AuthorizationKey", "value": password},
            )
        except OutcomeUnknown:
            # It may have taken the key (timed out, or the connection closed after sending):
            # a login with it completes the rotation.
            raise
        except CommandError:
            await db.set_pending_password(self._pool, charge_point_id, None)
            self._changed(charge_point_id)
            raise
        if answer.get("status") != "Accepted":
            await db.set_pending_password(self._pool, charge_point_id, None)
            self._changed(charge_point_id)
            raise ChargerRefused("AuthorizationKey", str(answer.get("status")))
        await db.promote_pending_password(self._pool, charge_point_id, pending, self._clock())
        self._changed(charge_point_id)
        log.info("security.password_rotated", charge_point_id=charge_point_id)
        return password

    async def _ensure_row(self, charge_point_id: str) -> None:
        # A charger's row is written in the next batch after its first connection.
        await db.ensure_charger(
            self._pool, charge_point_id, self._new_charger_status, self._clock()
        )

    async def provision_password(self, charge_point_id: str, registration_status: str) -> str:
        """A password for a charger the operator configures by hand; stored hashed at once."""
        password = generate_password()
        password_hash = await asyncio.to_thread(hash_password, password)
        now = self._clock()
        await db.ensure_charger(self._pool, charge_point_id, registration_status, now)
        await db.set_password_hash(self._pool, charge_point_id, password_hash, now)
        self._changed(charge_point_id)
        log.info("security.password_provisioned", charge_point_id=charge_point_id)
        return password

    async def set_profile(self, charge_point_id: str, target: int) -> ProfileChange:
        """Raise the charger's profile; downgrades are refused.

        Connected: asked with ChangeConfiguration (pending until it reconnects with it).
        Not connected: recorded at once, for an operator who configures the charger by hand.
        """
        if self._is_connected(charge_point_id):
            await self._ensure_row(charge_point_id)
        row = await db.fetch_security(self._pool, charge_point_id)
        if row is None:
            raise UnknownChargePoint(charge_point_id)
        current = self._default_profile if row.security_profile is None else row.security_profile
        check_upgrade(current, target)
        if target == current and row.security_profile is not None:
            return ProfileChange(current, row.pending_security_profile)
        if target == current or not self._is_connected(charge_point_id):
            await db.set_profile(self._pool, charge_point_id, target)
            self._changed(charge_point_id)
            log.info("security.profile_set", charge_point_id=charge_point_id, profile=target)
            return ProfileChange(target, None)
        password = None
        if target in (1, 2) and row.password_hash is None:
            # Whitepaper A05: the AuthorizationKey must be set before Basic auth is required.
            password = await self.rotate_password(charge_point_id)
        await db.set_pending_profile(self._pool, charge_point_id, target)
        self._changed(charge_point_id)
        try:
            answer = await self._send(
                charge_point_id,
                "ChangeConfiguration",
                {"key": "SecurityProfile", "value": str(target)},
            )
        except OutcomeUnknown:
            raise
        except CommandError:
            await db.set_pending_profile(self._pool, charge_point_id, None)
            self._changed(charge_point_id)
            raise
        if answer.get("status") != "Accepted":
            await db.set_pending_profile(self._pool, charge_point_id, None)
            self._changed(charge_point_id)
            raise ChargerRefused("SecurityProfile", str(answer.get("status")))
        log.info("security.profile_requested", charge_point_id=charge_point_id, profile=target)
        return ProfileChange(current, target, password)
