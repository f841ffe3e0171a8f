"""Start-up and database failures as one line an operator can act on.

The one place that turns a lower layer's exception (asyncpg, a socket bind) into the
``csms: …`` line the CLI prints: it names the setting to change, never a password.
"""

from __future__ import annotations

import errno
from urllib.parse import urlsplit

import asyncpg

from csms.config import Settings

# What the CLI catches around a command: the database and the network, nothing else.
OPERATIONAL_ERRORS = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError)


def _where(settings: Settings) -> str:
    """``user@host:port/db`` of the configured database, without the password."""
    if not settings.database_url:
        return f"the embedded PostgreSQL in {settings.data_dir}"
    url = urlsplit(settings.database_url)
    user = f"{url.username}@" if url.username else ""
    host = url.hostname or "localhost"
    port = f":{url.port}" if url.port else ""
    return f"{user}{host}{port}{url.path} (CSMS_DATABASE_URL)"


def _ports(settings: Settings) -> dict[int, str]:
    return {
        settings.ocpp_port: "CSMS_OCPP_PORT",
        settings.http_port: "CSMS_HTTP_PORT",
        settings.tls_port: "CSMS_TLS_PORT",
    }


def explain(exc: BaseException, settings: Settings) -> str:
    """One line saying what failed and which setting it concerns."""
    where = _where(settings)
    if isinstance(exc, asyncpg.InvalidCatalogNameError):
        return f"database {where}: {exc}; create it (createdb) or fix the URL"
    if isinstance(
        exc, asyncpg.InvalidAuthorizationSpecificationError | asyncpg.InvalidPasswordError
    ):
        return f"database {where} refused the login: {exc}; check the user and password"
    if isinstance(exc, asyncpg.PostgresError | asyncpg.InterfaceError):
        return f"database {where}: {exc}"
    if isinstance(exc, OSError) and exc.errno in (errno.EADDRINUSE, errno.EADDRNOTAVAIL):
        return _listen_error(exc, settings)
    if isinstance(exc, OSError) and (
        exc.errno in (errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ETIMEDOUT)
        or isinstance(exc, ConnectionError)
    ):
        return f"cannot reach database {where}: {exc.strerror or exc}"
    return str(exc) or type(exc).__name__


def _listen_error(exc: OSError, settings: Settings) -> str:
    text = str(exc)
    for port, variable in _ports(settings).items():
        # asyncio's message names the address ("... on address ('0.0.0.0', 9000): ..."),
        # and csms.app names the HTTP listener's the same way.
        if port and f", {port})" in text:
            problem = "is already in use" if exc.errno == errno.EADDRINUSE else "is not available"
            return f"port {port} ({variable}) {problem}: {text}"
    return text
