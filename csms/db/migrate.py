"""Plain SQL migrations, applied in order, recorded, safe when two processes start at once."""

from __future__ import annotations

from collections.abc import Sequence
from importlib import resources

import asyncpg
import structlog

log = structlog.get_logger()

# Any constant works; it only has to be the same in every process of this system.
_ADVISORY_LOCK_KEY = 0x0C5_0C5_16


# Each package keeps its own numbered files; the core's run first. A plug-in (csms/plugins.py)
# owns its tables but shares the database and this one runner: its (package, version prefix)
# pairs come in as ``extra``.
MIGRATION_PACKAGES = (("csms.db", ""),)


def available_migrations(extra: Sequence[tuple[str, str]] = ()) -> list[tuple[str, str]]:
    """Return ``(version, sql)`` for each bundled migration file, in order."""
    found: list[tuple[str, str]] = []
    for package, prefix in (*MIGRATION_PACKAGES, *extra):
        folder = resources.files(package) / "migrations"
        # By name (one folder, so the order paths sort in): a Traversable need not be orderable.
        files = sorted(
            (f for f in folder.iterdir() if f.name.endswith(".sql")), key=lambda f: f.name
        )
        found += [
            (prefix + f.name.removesuffix(".sql"), f.read_text(encoding="utf-8")) for f in files
        ]
    return found


async def migrate(
    connection: asyncpg.Connection, extra: Sequence[tuple[str, str]] = ()
) -> list[str]:
    """Apply the migrations not yet applied; return the versions applied now."""
    applied_now: list[str] = []
    # Session-level lock: a second process waits here until the first has finished.
    await connection.execute("SELECT pg_advisory_lock($1)", _ADVISORY_LOCK_KEY)
    try:
        await connection.execute(
            """CREATE TABLE IF NOT EXISTS schema_migrations (
                   version text PRIMARY KEY,
                   applied_at timestamptz NOT NULL DEFAULT now())"""
        )
        done = {
            r["version"] for r in await connection.fetch("SELECT version FROM schema_migrations")
        }
        for version, sql in available_migrations(extra):
            if version in done:
                continue
            async with connection.transaction():
                await connection.execute(sql)
                await connection.execute(
                    "INSERT INTO schema_migrations (version) VALUES ($1)", version
                )
            applied_now.append(version)
            log.info("db.migration_applied", version=version)
    finally:
        await connection.execute("SELECT pg_advisory_unlock($1)", _ADVISORY_LOCK_KEY)
    return applied_now
