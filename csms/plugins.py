"""The one seam through which an optional part (the Smartcar bridge) plugs into the core.

The core never imports a plug-in. A plug-in is an object named by an entry point in the
``csms.plugins`` group of an installed distribution (``pyproject.toml``:
``[project.entry-points."csms.plugins"]``); ``CSMS_PLUGINS`` narrows the set (a comma list
of entry-point names, or ``none``). For each plug-in the core:

1. asks it for its settings (``settings_from_env``; ``None`` means "installed but off"),
   so its variables are read with the core's rules and errors, once, at start;
2. runs its migrations with the core's (``migrations``), whether it is on or off, so a
   plug-in switched on later finds its tables and the core's reads of them never fail;
3. when on, starts it with a ``PluginContext`` holding the ports it may use (command,
   event, presence, database, metrics, id tags) and mounts what it hands back: routers,
   dashboard panels (its metrics it adds to ``context.metrics`` itself); when off, mounts
   ``routes_when_off`` (answers that say how to switch it on).

Nothing here knows what a plug-in does; ``tests/unit/test_boundary.py`` keeps it so.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from importlib import metadata
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    import argparse

    import asyncpg
    from fastapi import APIRouter

    from csms.cli_api import Handler
    from csms.cluster.node import ClusterNode
    from csms.config import EnvReader
    from csms.domain.events import EventPort
    from csms.metrics import Metrics
    from csms.ports import CommandPort, PresencePort


ENTRY_POINT_GROUP = "csms.plugins"

# A dashboard section: given the start of the operator's day, a JSON-ready dict.
SummarySection = Callable[[datetime], Awaitable[dict[str, Any]]]
# Record an id tag (the bridge gives each car one) with its status.
RegisterIdTag = Callable[[str, str], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class DashboardPanel:
    """A plug-in's part of ``/api/dashboard/summary``: its section, under the panel's name,
    and the cards the fleet page draws from it (``{"id", "label", "value", "note"}``: the
    page knows the shape of a card, never what a plug-in counts)."""

    read: SummarySection
    cards: Callable[[dict[str, Any]], list[dict[str, Any]]] = lambda _section: []


# Binds one value as a query parameter and returns its placeholder (``$3``).
Bind = Callable[[Any], str]


@dataclass(frozen=True, slots=True)
class TransactionParameter:
    """A query parameter a plug-in adds to ``GET /api/transactions``."""

    name: str
    description: str
    schema: Mapping[str, Any]  # its OpenAPI schema
    # The text of the parameter to a value; ValueError is a 422 naming the parameter.
    parse: Callable[[str], Any]
    # An SQL condition on the transaction row ``t``, every value bound through ``bind``.
    condition: Callable[[Any, Bind], str]


@dataclass(frozen=True, slots=True)
class TransactionLink:
    """What a plug-in keeps about the core's transactions: filters for the list, and its
    record of one transaction for the detail's ``session`` (JSON-ready, secrets masked).

    Its tables exist whenever its migrations ran, on or off, so the core uses the link of
    every installed plug-in, running or not."""

    parameters: Sequence[TransactionParameter] = ()
    detail: Callable[[asyncpg.Pool, int], Awaitable[dict[str, Any] | None]] | None = None


@dataclass(frozen=True, slots=True)
class PluginContext:
    """The services a plug-in may use: ports, never the central system itself."""

    pool: asyncpg.Pool
    events: EventPort
    commands: CommandPort
    presence: PresencePort
    register_id_tag: RegisterIdTag
    clock: Callable[[], datetime]
    metrics: Metrics
    # This node's NATS side (``csms.cluster.node.ClusterNode``) in cluster mode, else None:
    # for a plug-in that shares its own work between nodes (the bridge's session leases).
    cluster: ClusterNode | None = None


@runtime_checkable
class RunningPlugin(Protocol):
    """A started plug-in: what the core mounts, and how to stop it."""

    def routers(self) -> Sequence[APIRouter]: ...

    def dashboard_panels(self) -> Mapping[str, DashboardPanel]: ...

    async def close(self) -> None: ...


@runtime_checkable
class Plugin(Protocol):
    """What an entry point of the ``csms.plugins`` group names."""

    name: str
    # (package holding a ``migrations/`` folder, version prefix in schema_migrations)
    migrations: tuple[str, str] | None
    # Tags of its routes in the OpenAPI document (FastAPI's ``openapi_tags`` entries).
    openapi_tags: Sequence[dict[str, str]]
    # Why it is off when ``settings_from_env`` gave None (logged, and said by its routes).
    off_reason: str
    # Its part in the transactions API, if it keeps something per transaction.
    transaction_link: TransactionLink | None

    def settings_from_env(self, env: EnvReader) -> object | None: ...

    def add_cli_commands(
        self,
        commands: Any,
        json_and_url: Callable[[argparse.ArgumentParser], None],
        wrap: Callable[[Handler], Any],
    ) -> None:
        """Add its ``csms`` subcommands (``csms.cli_api`` has the plumbing they share)."""
        ...

    def routes_when_off(self) -> Sequence[APIRouter]:
        """Called once at start when it is off: log why, return routes that say so."""
        ...

    async def start(self, settings: Any, context: PluginContext) -> RunningPlugin: ...


class PluginError(Exception):
    """An entry point that does not name a plug-in, or a CSMS_PLUGINS name not installed."""


@functools.cache
def _entry_points() -> dict[str, metadata.EntryPoint]:
    return {entry.name: entry for entry in metadata.entry_points(group=ENTRY_POINT_GROUP)}


@functools.cache
def _load(name: str) -> Plugin:
    entry = _entry_points()[name]
    try:
        plugin = entry.load()
    except ImportError as exc:
        raise PluginError(
            f"plug-in {name!r} ({entry.value}) cannot be imported ({exc}); "
            "set CSMS_PLUGINS to the ones to run, or none"
        ) from None
    if not isinstance(plugin, Plugin):
        raise PluginError(f"entry point {entry.name!r} ({entry.value}) is not a csms plug-in")
    return plugin


def installed(*, strict: bool = True) -> Mapping[str, Plugin]:
    """Every plug-in the installed distributions declare, by entry-point name (loaded).

    ``strict=False`` (the CLI's parser) leaves out those that fail to load instead."""
    if strict:
        return {name: _load(name) for name in _entry_points()}
    found: dict[str, Plugin] = {}
    for name in _entry_points():
        try:
            found[name] = _load(name)
        except PluginError:
            continue  # `csms serve` says why (ConfigError on CSMS_PLUGINS)
    return found


def select(names: str | None) -> dict[str, Plugin]:
    """The plug-ins ``CSMS_PLUGINS`` asks for: all installed when unset, none for ``none``.

    Only the chosen ones are imported: with ``none`` the core runs where a plug-in's
    package is missing or broken."""
    if names is None:
        return dict(installed())
    wanted = [n.strip() for n in names.split(",") if n.strip()]
    if wanted == ["none"]:
        return {}
    available = _entry_points()
    unknown = [n for n in wanted if n not in available]
    if unknown:
        known = ", ".join(available) or "none installed"
        raise PluginError(f"not installed: {', '.join(unknown)} (installed: {known})")
    return {n: _load(n) for n in wanted}


def configured(settings: Mapping[str, object | None] | None) -> dict[str, tuple[Plugin, Any]]:
    """The plug-ins to run with their settings (``None``: off). ``Settings.plugins`` left
    at its default (``None``) means every installed plug-in, none of them configured."""
    if settings is None:
        return {name: (plugin, None) for name, plugin in installed().items()}
    missing = [name for name in settings if name not in _entry_points()]
    if missing:
        raise PluginError(f"settings given for plug-ins not installed: {', '.join(missing)}")
    return {name: (_load(name), value) for name, value in settings.items()}


def migration_packages(settings: Mapping[str, object | None] | None) -> list[tuple[str, str]]:
    """The plug-ins' migration folders, to run after the core's."""
    return [
        plugin.migrations
        for plugin, _ in configured(settings).values()
        if plugin.migrations is not None
    ]
