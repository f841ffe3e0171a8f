"""Embedded PostgreSQL (the ``pgserver`` wheel) for when no database URL is configured."""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import structlog

log = structlog.get_logger()


class EmbeddedPostgres:
    """A PostgreSQL server whose files live under ``data_dir``; stopped by ``close``."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir.resolve()
        self._server: Any = None

    def start(self) -> str:
        """Start (or join) the server and return a DSN for its ``postgres`` database."""
        # platformdirs warns when XDG_RUNTIME_DIR is unset (as under CI); pgserver does
        # not need it, so keep that out of operators' logs.
        os.environ.setdefault("XDG_RUNTIME_DIR", "/tmp")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import pgserver

            self.data_dir.mkdir(parents=True, exist_ok=True)
            self._server = pgserver.get_server(self.data_dir / "pg", cleanup_mode="stop")
        log.info("db.embedded_started", data_dir=str(self.data_dir))
        return str(self._server.get_uri())

    def dsn_for(self, database: str) -> str:
        """DSN of another database on the same server."""
        return str(self._server.get_uri(database))

    def close(self) -> None:
        if self._server is not None:
            self._server.cleanup()
            self._server = None
