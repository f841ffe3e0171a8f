"""The bridge as a csms plug-in: the one place the core and the bridge meet.

Declared in ``pyproject.toml`` (entry point ``smartcar`` in the ``csms.plugins`` group);
the core finds it there and never imports the bridge. Everything the bridge adds to a
running ``csms serve`` is registered here: its settings (``smartcar_bridge.settings``, the
same variables as always), its migrations (``smartcar_bridge/migrations``, versions
``bridge/…``), its routes (or, when off, answers that say how to switch it on), its
metrics and its dashboard card.
"""

from __future__ import annotations

import argparse
import functools
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import structlog

from csms.config import EnvReader
from smartcar_bridge import settings as bridge_settings
from smartcar_bridge import transactions
from smartcar_bridge.settings import BridgeSettings

# The rest is imported when the bridge starts: reading settings (every `csms` command does)
# must not load the web stack and the Smartcar client.
if TYPE_CHECKING:
    from fastapi import APIRouter

    from csms.cli_api import Handler
    from csms.plugins import DashboardPanel, PluginContext
    from smartcar_bridge.bridge import Bridge

log = structlog.get_logger()


class RunningBridge:
    """A started bridge, as the core sees it (``csms.plugins.RunningPlugin``)."""

    def __init__(self, bridge: Bridge) -> None:
        self.bridge = bridge

    def routers(self) -> Sequence[APIRouter]:
        from smartcar_bridge import http, http_plug_ins

        return [http.create_router(self.bridge), http_plug_ins.create_router(self.bridge)]

    def dashboard_panels(self) -> Mapping[str, DashboardPanel]:
        from csms.plugins import DashboardPanel
        from smartcar_bridge import dashboard

        read = functools.partial(dashboard.outcomes_since, self.bridge.pool)
        return {"bridge": DashboardPanel(read=read, cards=dashboard.cards)}

    async def close(self) -> None:
        await self.bridge.close()


class SmartcarPlugin:
    name = "smartcar"
    migrations = ("smartcar_bridge", "bridge/")
    openapi_tags: Sequence[dict[str, str]] = (
        {"name": "bridge", "description": "Smartcar plug-and-charge: accounts, cars, sessions."},
    )
    off_reason = "SMARTCAR_CLIENT_ID is not set"
    # Filters by car and account, and the session in a transaction's detail.
    transaction_link = transactions.LINK

    def settings_from_env(self, env: EnvReader) -> BridgeSettings | None:
        return bridge_settings.from_env(env)

    def add_cli_commands(
        self,
        commands: Any,
        json_and_url: Callable[[argparse.ArgumentParser], None],
        wrap: Callable[[Handler], Any],
    ) -> None:
        from smartcar_bridge import cli

        cli.add_commands(commands, json_and_url, wrap)

    def routes_when_off(self) -> Sequence[APIRouter]:
        from smartcar_bridge import http_off

        log.info("bridge.disabled", reason=self.off_reason)
        return [http_off.create_router(self.off_reason)]

    async def start(self, settings: Any, context: PluginContext) -> RunningBridge:
        from smartcar_bridge.bridge import Bridge
        from smartcar_bridge.metrics import SessionsCollector, SmartcarMetrics

        assert isinstance(settings, BridgeSettings)
        sessions = SessionsCollector(context.pool)
        context.metrics.registry.register(sessions)
        context.metrics.on_refresh(sessions.refresh)
        bridge = Bridge(
            settings,
            pool=context.pool,
            events=context.events,
            send_command=context.commands.send,
            register_id_tag=context.register_id_tag,
            clock=context.clock,
            metrics=SmartcarMetrics(context.metrics.registry),
            cluster=context.cluster,  # leases, hand-over and shared limits when clustered
        )
        await bridge.start()
        return RunningBridge(bridge)


plugin = SmartcarPlugin()
