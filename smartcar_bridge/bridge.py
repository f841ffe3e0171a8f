"""The bridge assembled: Smartcar client, token store, linking, the session engine."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import asyncpg
import httpx
import structlog

from csms.domain.events import EventPort
from smartcar_bridge import store
from smartcar_bridge.client import SmartcarClient
from smartcar_bridge.crypto import TokenCipher
from smartcar_bridge.linking import Linker, RegisterIdTag, id_tag_status
from smartcar_bridge.metrics import SmartcarMetrics
from smartcar_bridge.ownership import ClusterWork, LocalWork, WorkPort
from smartcar_bridge.ratelimit import RateLimiter, RateLimitSettings
from smartcar_bridge.sessions import PlugAndCharge
from smartcar_bridge.settings import BridgeSettings
from smartcar_bridge.shared_limit import SharedHolds, SharedRateLimit
from smartcar_bridge.tokens import TokenStore
from smartcar_bridge.v3.app_tokens import AppTokens, PostgresAppTokenCache, cache_key
from smartcar_bridge.v3.client import V3Client
from smartcar_bridge.v3.vehicles import UserIds, V3Vehicles
from smartcar_bridge.vehicle_access import V2Vehicles, VehicleAccess, VehicleApi

log = structlog.get_logger()


class Bridge:
    def __init__(
        self,
        settings: BridgeSettings,
        *,
        pool: asyncpg.Pool,
        events: EventPort,
        send_command: Callable[..., Awaitable[dict[str, Any]]],
        register_id_tag: RegisterIdTag,
        clock: Callable[[], datetime],
        http: httpx.AsyncClient | None = None,
        metrics: SmartcarMetrics | None = None,
        cluster: Any | None = None,
    ) -> None:
        """``cluster``: the node's ``csms.cluster.node.ClusterNode`` (None: one process)."""
        self._webhook_tasks: set[asyncio.Task[None]] = set()
        self.settings = settings
        self.pool = pool
        self.clock = clock
        self._register_id_tag = register_id_tag
        self.client = SmartcarClient(
            settings.api_url,
            settings.auth_url,
            settings.connect_url,
            settings.client_id,
            settings.client_secret,
            settings.redirect_uri,
            http=http,
            metrics=metrics,
            limiter=self._limiter(settings, pool, clustered=cluster is not None),
        )
        self.client.ledger.decision_budget = settings.decision_calls or None  # 0: no cap
        cipher = TokenCipher(settings.secret_key)
        self.tokens = TokenStore(pool, cipher, self.client, clock)
        self.access = VehicleAccess(self._vehicle_api(settings, pool, cipher, clock))
        self.linker = Linker(
            pool,
            self.client,
            self.tokens,
            register_id_tag,
            settings.secret_key,
            clock,
            settings.mode,
            access=self.access,
        )
        self.engine = PlugAndCharge(
            pool=pool,
            access=self.access,
            send_command=send_command,
            events=events,
            settings=settings,
            clock=clock,
            register_id_tag=register_id_tag,
            work=self._work(pool, cluster),
            decision_spent=self.client.ledger.spent,
            decision_calls_made=self.client.ledger.made,
        )

    @staticmethod
    def _limiter(settings: BridgeSettings, pool: asyncpg.Pool, *, clustered: bool) -> RateLimiter:
        """Smartcar's limits: in memory for one process, in PostgreSQL for a cluster."""
        limits = RateLimitSettings(
            bucket_size=settings.rate_bucket_size,
            bucket_refill_per_minute=settings.rate_refill_per_minute,
            session_budget=settings.session_call_budget,
        )
        if not clustered:
            return RateLimiter(limits)
        bucket = SharedRateLimit(
            pool,
            f"smartcar:{settings.client_id}",
            rate=settings.rate_refill_per_minute / 60.0,
            burst=float(settings.rate_bucket_size),
        )
        return RateLimiter(limits, shared_bucket=bucket, shared_holds=SharedHolds(pool))

    @staticmethod
    def _work(pool: asyncpg.Pool, cluster: Any | None) -> WorkPort:
        if cluster is None:
            return LocalWork(pool)
        # A lease lapses as a dead node's chargers do (CSMS_NODE_TIMEOUT).
        return ClusterWork(pool, cluster.nc, cluster.node_id, cluster.node_timeout)

    def _vehicle_api(
        self,
        settings: BridgeSettings,
        pool: asyncpg.Pool,
        cipher: TokenCipher,
        clock: Callable[[], datetime],
    ) -> VehicleApi:
        """SMARTCAR_API_VERSION picks the implementation; v3 is the default (§14.6)."""
        if settings.api_version == "2":
            return V2Vehicles(
                self.client,
                self.tokens,
                webhook_id=settings.webhook_id,
                management_token=settings.management_token,
            )
        v3 = V3Client(
            self.client, settings.v3_api_url, settings.management_api_url, settings.iam_url
        )
        # In PostgreSQL, so every process of the cluster shares one application token.
        app_tokens = AppTokens(
            v3.app_token,
            PostgresAppTokenCache(pool, cipher),
            cache_key(settings.client_id, settings.iam_url),
            clock,
        )
        return V3Vehicles(
            v3,
            app_tokens,
            UserIds(pool, v3, app_tokens),
            webhook_id=settings.webhook_id,
            command_timeout=settings.command_timeout,
        )

    async def start(self) -> None:
        await self.engine.start()
        api_url = self.settings.v3_api_url if self.access.version == "3" else self.settings.api_url
        log.info(
            "bridge.started",
            api_url=api_url,
            api_version=self.access.version,
            mode=self.settings.mode,
        )

    def handle_webhook(self, event: dict[str, Any]) -> None:
        """Handle a verified webhook event after its delivery is answered (§10: within 15 s,
        whatever the database is doing; a redelivery of an event not yet recorded is
        deduplicated on ``eventId``)."""
        task = asyncio.create_task(self.engine.on_webhook(event), name="bridge-webhook")
        self._webhook_tasks.add(task)
        task.add_done_callback(self._webhook_done)

    def _webhook_done(self, task: asyncio.Task[None]) -> None:
        self._webhook_tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("bridge.task_failed", task=task.get_name(), exc_info=task.exception())

    async def close(self) -> None:
        tasks = list(self._webhook_tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.engine.close()
        await self.client.aclose()

    async def sync_id_tags(self, account: store.Account) -> None:
        """Block or accept the account's cars at the chargers as its payment status changes."""
        for vehicle in await store.list_vehicles(self.pool, account.id):
            await self._register_id_tag(vehicle.id_tag, id_tag_status(account.payment_status))
