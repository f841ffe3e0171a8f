"""A faithful fake of the Smartcar API (v2.0 vehicles, OAuth, Connect, v4.0 webhooks).

Backed by a ``simulators.world.World``; see ``/work/shared/smartcar-api.md`` for the behaviour
it copies. Start it in-process with ``run_smartcar_fake()`` or as ``python -m
simulators.smartcar_fake``.
"""

from simulators.smartcar_fake.errors import ApiError, OAuthError
from simulators.smartcar_fake.faults import FAULT_KINDS, FaultPlan
from simulators.smartcar_fake.server import RunningFake, run_smartcar_fake, serve
from simulators.smartcar_fake.state import ConnectKnobs, FakeConfig, FakeSmartcar, ManualClock
from simulators.smartcar_fake.webhooks import WebhookDispatcher, sign

__all__ = [
    "FAULT_KINDS",
    "ApiError",
    "ConnectKnobs",
    "FakeConfig",
    "FakeSmartcar",
    "FaultPlan",
    "ManualClock",
    "OAuthError",
    "RunningFake",
    "WebhookDispatcher",
    "run_smartcar_fake",
    "serve",
    "sign",
]
