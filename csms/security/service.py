"""The security side of the running system: certificate issuing and credential flows.

Owns one task that consumes ``CertificateSigningRequested`` from the event bus, signs the
CSR with the charger CA and sends CertificateSigned through the command API (the same one
an operator uses), so the handler answers SignCertificate at once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import datetime
from typing import Any

import asyncpg
import structlog

from csms.config import Settings
from csms.db import security as db
from csms.domain import registration
from csms.domain.events import EventBus
from csms.ocpp16.commands import CommandService
from csms.ocpp16.errors import CommandError
from csms.security.ca import ChargerCA, CsrRejected
from csms.security.events import CertificateSigningRequested
from csms.security.handshake import HandshakeGuard
from csms.security.rotation import CredentialFlows

log = structlog.get_logger()


class SecurityService:
    def __init__(
        self,
        settings: Settings,
        pool: asyncpg.Pool,
        events: EventBus,
        commands: CommandService,
        guard: HandshakeGuard,
        is_connected: Callable[[str], bool],
        clock: Callable[[], datetime],
    ) -> None:
        self._settings = settings
        self._pool = pool
        self._events = events
        self._commands = commands
        self._guard = guard
        self._is_connected = is_connected
        self._clock = clock
        self.flows = CredentialFlows(
            pool,
            commands.send,
            is_connected,
            settings.security_profile,
            clock,
            registration.initial_status(settings.unknown_chargers),
            # The handshake answers from its cache: every credential write must drop
            # the charger's cached row (a cluster would broadcast this call).
            changed=guard.cache.invalidate,
        )
        self.ca: ChargerCA | None = None
        self._queue: asyncio.Queue[Any] | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        settings = self._settings
        if settings.charger_ca_cert is not None and settings.charger_ca_key is not None:
            self.ca = ChargerCA.load(settings.charger_ca_cert, settings.charger_ca_key)
        self._queue = self._events.subscribe()
        self._task = asyncio.create_task(self._consume(), name="security-certificates")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._queue is not None:
            self._events.unsubscribe(self._queue)

    async def status(self, charge_point_id: str) -> dict[str, Any] | None:
        row = await db.fetch_security(self._pool, charge_point_id)
        if row is None:
            return None
        profile = row.security_profile
        connected = self._is_connected(charge_point_id)
        return {
            "charge_point_id": charge_point_id,
            "security_profile": self._settings.security_profile if profile is None else profile,
            "site_default": profile is None,
            "pending_security_profile": row.pending_security_profile,
            "has_password": row.password_hash is not None,
            "password_change_pending": row.pending_password_hash is not None,
            "connected": connected,
            "connected_profile": (
                self._guard.connected_profiles.get(charge_point_id) if connected else None
            ),
        }

    async def _consume(self) -> None:
        assert self._queue is not None
        while True:
            event = await self._queue.get()
            if not isinstance(event, CertificateSigningRequested):
                continue
            try:
                await self._issue(event)
            except Exception:
                log.exception("security.certificate_failed", charge_point_id=event.charge_point_id)

    async def _issue(self, event: CertificateSigningRequested) -> None:
        bound = log.bind(charge_point_id=event.charge_point_id)
        if self.ca is None:
            bound.warning("security.certificate_not_issued", reason="no_charger_ca")
            return
        try:
            signed = self.ca.sign(event.csr_pem, event.charge_point_id, self._clock())
        except CsrRejected as exc:
            bound.warning("security.certificate_not_issued", reason=str(exc))
            return
        certificate_id = await db.insert_certificate(
            self._pool,
            event.charge_point_id,
            serial_number=signed.serial_number,
            subject=signed.subject,
            not_before=signed.not_before,
            not_after=signed.not_after,
            pem=signed.pem,
            at=self._clock(),
        )
        bound.info(
            "security.certificate_issued",
            serial_number=signed.serial_number,
            not_after=signed.not_after.isoformat(),
        )
        try:
            answer = await self._commands.send(
                event.charge_point_id, "CertificateSigned", {"certificateChain": signed.pem}
            )
        except CommandError:
            status = "not_delivered"  # the command API logged why
        else:
            status = "accepted" if answer.get("status") == "Accepted" else "rejected"
        await db.set_certificate_status(self._pool, certificate_id, status, self._clock())
        bound.info(
            "security.certificate_delivered", serial_number=signed.serial_number, outcome=status
        )
