"""TLS for profiles 2 and 3: the server context and the identities a client certificate names.

Security Whitepaper 2.3 / 2.4: TLS 1.2 or higher, and at least these TLS 1.2 suites:
TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
TLS_RSA_WITH_AES_128_GCM_SHA256, TLS_RSA_WITH_AES_256_GCM_SHA384. The ECDHE_RSA GCM
suites are added for forward secrecy with RSA server keys; TLS 1.3 suites stay enabled.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

WHITEPAPER_CIPHERS = ":".join(
    (
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-RSA-AES256-GCM-SHA384",
        "AES128-GCM-SHA256",
        "AES256-GCM-SHA384",
    )
)


def server_context(cert: Path, key: Path, client_ca: Path | None = None) -> ssl.SSLContext:
    """The wss listener's context; with ``client_ca``, client certificates are asked for.

    CERT_OPTIONAL, not REQUIRED: profile 2 chargers (Basic auth, no certificate) share the
    listener with profile 3 ones. A certificate that is offered must chain to ``client_ca``
    or the TLS handshake fails; whether one was needed is decided at the upgrade.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(WHITEPAPER_CIPHERS)
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE
    context.load_cert_chain(cert, key)
    if client_ca is not None:
        context.load_verify_locations(cafile=client_ca)
        context.verify_mode = ssl.CERT_OPTIONAL
    return context


def certificate_names(ssl_object: Any) -> frozenset[str] | None:
    """Identities a verified peer certificate names: subject CN and serialNumber.

    Whitepaper 2.4 / 3.1: the charger's serial number goes in the subject (CN in 1.6
    practice; some CAs use the serialNumber attribute), and must equal the identity.
    None when no certificate was presented (or it was not verified).
    """
    if ssl_object is None:
        return None
    peer = ssl_object.getpeercert()
    if not peer:
        return None
    names = {
        value
        for rdn in peer.get("subject", ())
        for name, value in rdn
        if name in ("commonName", "serialNumber")
    }
    return frozenset(names)
