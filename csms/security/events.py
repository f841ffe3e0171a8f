"""Events the security handlers publish on the domain event bus (others ignore them).

Defined with the other domain events (the bus's ``Event`` union names them all).
"""

from __future__ import annotations

from csms.domain.events import CertificateSigningRequested

__all__ = ["CertificateSigningRequested"]
