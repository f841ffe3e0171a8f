"""Security profiles 1-3 for simulated charge points (OCPP 1.6 Security Whitepaper).

``ChargerSecurity.connect_kwargs()`` gives what ``websockets.asyncio.client.connect`` needs:
the Basic ``Authorization`` header (profiles 1 and 2; user = identity, password =
AuthorizationKey) and the TLS context (profiles 2 and 3, the latter with a client
certificate). ``apply`` plays ChangeConfiguration AuthorizationKey / SecurityProfile the
way the whitepaper says a charger does: the new values are used from the next connection.
Like the rest of ``simulators``, this never imports the central system.
"""

from __future__ import annotations

import base64
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SECURITY_KEYS = ("AuthorizationKey", "SecurityProfile")


@dataclass(slots=True)
class ChargerSecurity:
    identity: str
    profile: int = 0
    authorization_key: str | None = None
    # Profiles 2 and 3: the CA that signed the central system's certificate.
    server_ca: Path | None = None
    # Profile 3: the charger's own certificate (CN = identity) and key.
    client_cert: Path | None = None
    client_key: Path | None = None
    _contexts: dict[tuple[Any, ...], ssl.SSLContext] = field(default_factory=dict, repr=False)

    def scheme(self) -> str:
        return "wss" if self.profile >= 2 else "ws"

    def connect_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {}
        if self.profile in (1, 2) and self.authorization_key is not None:
            token = f"{self.identity}:{self.authorization_key}".encode()
            kwargs["additional_headers"] = {
                "Authorization": "Basic " + base64.b64encode(token).decode("ascii")
            }
        if self.profile >= 2:
            kwargs["ssl"] = self._ssl_context()
        return kwargs

    def apply(self, key: str, value: str) -> str:
        """ChangeConfiguration of a security key: Accepted / Rejected, as a charger answers."""
        if key == "AuthorizationKey":
            if not 16 <= len(value) <= 40:
                return "Rejected"
            self.authorization_key = value
            return "Accepted"
        if key == "SecurityProfile":
            try:
                profile = int(value)
            except ValueError:
                return "Rejected"
            # Whitepaper: never downgrade; 1-2 need a key; 3 needs a client certificate.
            if profile <= self.profile or profile > 3:
                return "Rejected"
            if profile in (1, 2) and self.authorization_key is None:
                return "Rejected"
            if profile == 3 and self.client_cert is None:
                return "Rejected"
            self.profile = profile
            return "Accepted"
        return "NotSupported"

    def _ssl_context(self) -> ssl.SSLContext:
        key = (self.server_ca, self.client_cert, self.client_key, self.profile)
        context = self._contexts.get(key)
        if context is None:
            context = ssl.create_default_context(cafile=self.server_ca)
            context.minimum_version = ssl.TLSVersion.TLSv1_2
            if self.profile == 3 and self.client_cert is not None:
                context.load_cert_chain(self.client_cert, self.client_key)
            self._contexts[key] = context
        return context
