"""Events the security handlers publish on the domain event bus (others ignore them)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(slots=True, frozen=True)
class CertificateSigningRequested:
    """A charger sent an acceptable SignCertificate; CertificateSigned is to follow."""

    charge_point_id: str
    csr_pem: str
    at: datetime
