"""The security check run during the WebSocket upgrade, before any OCPP message.

The charger's profile and password hashes come from a ``SecurityCache`` (a database
read on first sight, then memory until a write invalidates it); a refusal based on a
cached row is re-judged on a fresh read, so a change another path made a moment ago
cannot lock a charger out. The password is checked with scrypt in a worker thread so a
storm of logins does not stall the loop.
Refusals are logged as ``ocpp.auth_failed`` with a reason and never with the password,
the Authorization header or the certificate.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import math
import time
from collections.abc import Callable
from datetime import UTC, datetime

import asyncpg
import structlog
from websockets.asyncio.server import ServerConnection
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from csms.db import security as db
from csms.db.security import SecurityRow
from csms.security.backoff import FailureThrottle
from csms.security.cache import SecurityCache
from csms.security.passwords import verify_password
from csms.security.profiles import (
    HTTP_STATUS,
    Attempt,
    ChargerSecurity,
    Refusal,
    judge,
    promoted_profile,
)
from csms.security.tls import certificate_names

log = structlog.get_logger()

_BODY = {401: "Unauthorized\n", 403: "Forbidden\n"}


def _utc_now() -> datetime:
    return datetime.now(UTC)


def parse_basic(headers: Headers) -> tuple[str, bytes] | None:
    """(user, password) from ``Authorization: Basic``; None if absent or unreadable."""
    value = headers.get("Authorization")
    if value is None:
        return None
    scheme, _, token = value.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(token.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    user, colon, password = decoded.partition(b":")
    if not colon:
        return None
    # RFC 7617: UTF-8. The password stays bytes: whitepaper-literal firmware sends the
    # hex-decoded AuthorizationKey, which need not be text.
    return user.decode("utf-8", "replace"), password


class HandshakeGuard:
    """Decides whether an upgrade may proceed; remembers each charger's connected profile."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        default_profile: int,
        *,
        throttle: FailureThrottle | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        clock: Callable[[], datetime] = _utc_now,
        on_refused: Callable[[str], None] | None = None,
    ) -> None:
        self._pool = pool
        self.cache = SecurityCache(pool)
        # Told the reason of every refusal (the auth-failure metric).
        self._on_refused = on_refused
        self.default_profile = default_profile
        self.throttle = throttle or FailureThrottle()
        self._monotonic = monotonic
        self._clock = clock
        # Profile of the latest accepted upgrade per charger (read by the upgrade flow).
        self.connected_profiles: dict[str, int] = {}

    async def check(
        self, connection: ServerConnection, request: Request, identity: str
    ) -> Response | None:
        """None to go on with the upgrade, or the HTTP response that refuses it."""
        address = connection.remote_address[0] if connection.remote_address else None
        wait = self.throttle.retry_after(address, identity, self._monotonic())
        if wait > 0:
            if self._on_refused is not None:
                self._on_refused("throttled")
            log.warning(
                "ocpp.auth_throttled",
                charge_point_id=identity,
                remote=address,
                retry_after=math.ceil(wait),
            )
            response = connection.respond(429, "Too many failed attempts\n")
            response.headers["Retry-After"] = str(math.ceil(wait))
            return response
        ssl_object = connection.transport.get_extra_info("ssl_object")
        basic = parse_basic(request.headers)
        attempt = Attempt(
            identity=identity,
            tls=ssl_object is not None,
            basic_user=basic[0] if basic else None,
            has_password=basic is not None,
            certificate_names=certificate_names(ssl_object),
        )
        password = basic[1] if basic else None
        cached = self.cache.cached(identity)
        row = await self.cache.get(identity)
        charger, refusal = await self._decide(attempt, password, row)
        if refusal is not None and cached:
            fresh = await self.cache.fetch(identity)
            if fresh != row:
                row = fresh
                charger, refusal = await self._decide(attempt, password, row)
        if refusal is not None:
            return self._refuse(connection, attempt, charger, refusal, address)
        self.throttle.succeeded(identity)
        promoted = promoted_profile(attempt, charger)
        if promoted is not None:
            await db.promote_pending_profile(self._pool, identity, promoted)
            self.cache.invalidate(identity)
            log.info("ocpp.security_profile_raised", charge_point_id=identity, profile=promoted)
        self.connected_profiles[identity] = attempt.offered_profile
        return None

    async def _decide(
        self, attempt: Attempt, password: bytes | None, row: SecurityRow | None
    ) -> tuple[ChargerSecurity, Refusal | None]:
        charger = self._charger(row)
        verdict = judge(attempt, charger)
        refusal = verdict.refusal
        if refusal is None and verdict.check_password:
            assert password is not None
            refusal = await self._check_password(attempt.identity, password, row)
        return charger, refusal

    def _charger(self, row: SecurityRow | None) -> ChargerSecurity:
        if row is None:
            return ChargerSecurity(self.default_profile)
        profile = row.security_profile
        return ChargerSecurity(
            profile=self.default_profile if profile is None else profile,
            pending_profile=row.pending_security_profile,
            has_password=row.password_hash is not None,
        )

    async def _check_password(
        self, identity: str, password: bytes, row: SecurityRow | None
    ) -> Refusal | None:
        if row is None or (row.password_hash is None and row.pending_password_hash is None):
            return Refusal.WRONG_PASSWORD
        matched = await asyncio.to_thread(_match, password, row)
        if matched is None:
            return Refusal.WRONG_PASSWORD
        if matched == row.pending_password_hash:
            # The charger took the new AuthorizationKey (our answer may have been lost).
            await db.promote_pending_password(self._pool, identity, matched, self._clock())
            self.cache.invalidate(identity)
            log.info("ocpp.password_rotation_completed", charge_point_id=identity)
        return None

    def _refuse(
        self,
        connection: ServerConnection,
        attempt: Attempt,
        charger: ChargerSecurity,
        refusal: Refusal,
        address: str | None,
    ) -> Response:
        self.throttle.failed(address, attempt.identity, self._monotonic())
        if self._on_refused is not None:
            self._on_refused(refusal.value)
        log.warning(
            "ocpp.auth_failed",
            charge_point_id=attempt.identity,
            reason=refusal.value,
            required_profile=charger.profile,
            offered_profile=attempt.offered_profile,
            remote=address,
        )
        status = HTTP_STATUS[refusal]
        response = connection.respond(status, _BODY[status])
        if status == 401:
            response.headers["WWW-Authenticate"] = 'Basic realm="OCPP", charset="UTF-8"'
        return response


def _match(password: bytes, row: SecurityRow) -> str | None:
    """The stored hash ``password`` matches (current first, then pending), or None."""
    candidates = [password]
    if 16 <= len(password) <= 20:
        # Whitepaper-literal firmware hex-decodes the AuthorizationKey we sent and uses
        # the raw bytes; we generate (and hash) the hex form.
        candidates.append(password.hex().encode())
    for stored in (row.password_hash, row.pending_password_hash):
        if stored is not None and any(verify_password(c, stored) for c in candidates):
            return stored
    return None
