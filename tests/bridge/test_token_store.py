"""TokenStore against the real PostgreSQL and the fake Smartcar over HTTP."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from structlog.testing import capture_logs

from csms.db.pool import create_pool
from simulators.smartcar_fake import FakeConfig, RunningFake, run_smartcar_fake
from simulators.world import World
from smartcar_bridge.client import SmartcarClient
from smartcar_bridge.crypto import TokenCipher
from smartcar_bridge.errors import AuthenticationError, ReauthRequired
from smartcar_bridge.responses import TokenSet, Vin
from smartcar_bridge.tokens import LinkNotFound, TokenStore
from tests.bridge.test_smartcar_client import SCOPE, connect, first_vehicle, make_client
from tests.conftest import TIMEOUT

SECRET_KEY = "test-secret-key-0123456789abcdef"
# The fake's access tokens live 400 s, so the store's margin is capped at 200 s: moving the
# clock 250 s ahead makes the token due for refresh while it still works at the fake.
ACCESS_TTL_S = 400.0
REFRESH_DUE = timedelta(seconds=250)


class ShiftedClock:
    """Real time plus an offset the test moves, so the fake (real time) still agrees."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


@dataclass
class Linked:
    store: TokenStore
    client: SmartcarClient
    running: RunningFake
    clock: ShiftedClock
    link_id: int
    account_id: int
    tokens: TokenSet
    vehicle_id: str

    def refreshes(self) -> int:
        """Pairs the fake issued beyond the first: one per successful refresh."""
        return len(self.running.fake.tokens.refresh_tokens) - 1


@pytest.fixture
async def pool(database_url: str, db: asyncpg.Connection) -> AsyncIterator[asyncpg.Pool]:
    connection_pool = await create_pool(database_url, min_size=1, max_size=4)
    yield connection_pool
    await connection_pool.close()


@pytest.fixture
async def account_id(db: asyncpg.Connection) -> int:
    created: int = await db.fetchval("INSERT INTO accounts (name) VALUES ('Fleet') RETURNING id")
    return created


@pytest.fixture
async def linked(pool: asyncpg.Pool, account_id: int) -> AsyncIterator[Linked]:
    world = World.generate(chargers=1, vehicles=3, seed=8)
    config = FakeConfig(access_token_ttl_s=ACCESS_TTL_S)
    clock = ShiftedClock()
    async with (
        run_smartcar_fake(world, config=config) as running,
        make_client(running, seed=2, clock=clock) as client,
    ):
        vehicle = first_vehicle(running)
        tokens = await connect(client, running, vehicle.vin)
        store = TokenStore(pool, TokenCipher(SECRET_KEY), client, clock)
        user = await client.user(tokens.access_token)
        link_id = await store.save_link(account_id, user.id, tokens, SCOPE)
        yield Linked(
            store, client, running, clock, link_id, account_id, tokens, vehicle.smartcar_id
        )


def secrets_of(linked: Linked) -> list[str]:
    return [linked.tokens.access_token, linked.tokens.refresh_token]


async def test_tokens_are_stored_encrypted(linked: Linked, db: asyncpg.Connection) -> None:
    row = await db.fetchrow("SELECT * FROM smartcar_links WHERE id = $1", linked.link_id)
    assert row is not None
    for column, token in (
        ("access_token_enc", linked.tokens.access_token),
        ("refresh_token_enc", linked.tokens.refresh_token),
    ):
        assert token.encode() not in row[column]
        assert TokenCipher(SECRET_KEY).decrypt(row[column]) == token
    assert (row["status"], list(row["scopes"])) == ("active", SCOPE)
    assert row["access_expires_at"] == linked.tokens.access_expires_at


async def test_saving_the_same_user_again_replaces_the_pair(linked: Linked) -> None:
    fresh = await linked.client.refresh(linked.tokens.refresh_token)
    status = await linked.store.status(linked.link_id)
    link_id = await linked.store.save_link(
        linked.account_id, status.smartcar_user_id, fresh, ["read_vin"]
    )
    assert link_id == linked.link_id
    assert await linked.store.access_token(link_id) == fresh.access_token
    assert (await linked.store.status(link_id)).scopes == ("read_vin",)


async def test_valid_token_is_returned_without_a_refresh(linked: Linked) -> None:
    assert await linked.store.access_token(linked.link_id) == linked.tokens.access_token
    assert linked.refreshes() == 0


async def test_token_is_refreshed_before_it_expires(linked: Linked, db: asyncpg.Connection) -> None:
    linked.clock.offset = REFRESH_DUE
    with capture_logs() as logs:
        token = await linked.store.access_token(linked.link_id)
    assert token != linked.tokens.access_token
    assert linked.refreshes() == 1
    # The new token works, and the rotated refresh token was persisted with it.
    assert (await linked.client.battery(token, linked.vehicle_id)).percent_remaining > 0
    row = await db.fetchrow("SELECT * FROM smartcar_links WHERE id = $1", linked.link_id)
    assert row is not None
    cipher = TokenCipher(SECRET_KEY)
    assert cipher.decrypt(row["access_token_enc"]) == token
    assert cipher.decrypt(row["refresh_token_enc"]) != linked.tokens.refresh_token
    assert row["access_expires_at"] > linked.tokens.access_expires_at
    assert any(e["event"] == "bridge.token_refreshed" for e in logs)
    linked.clock.offset = timedelta(0)
    assert await linked.store.access_token(linked.link_id) == token
    assert linked.refreshes() == 1


async def test_concurrent_callers_share_one_refresh(linked: Linked) -> None:
    linked.clock.offset = REFRESH_DUE
    async with asyncio.timeout(TIMEOUT):
        tokens = await asyncio.gather(
            *(linked.store.access_token(linked.link_id) for _ in range(20))
        )
    assert len(set(tokens)) == 1
    assert tokens[0] != linked.tokens.access_token
    assert linked.refreshes() == 1


async def test_refused_refresh_marks_the_link_for_reauth(linked: Linked) -> None:
    linked.running.fake.tokens.revoke_refresh_token(linked.tokens.refresh_token)
    linked.clock.offset = REFRESH_DUE
    with capture_logs() as logs, pytest.raises(ReauthRequired) as reauth:
        await linked.store.access_token(linked.link_id)
    assert reauth.value.link_id == linked.link_id
    assert (await linked.store.status(linked.link_id)).status == "reauth_required"
    [event] = [e for e in logs if e["event"] == "bridge.reauth_required"]
    assert (event["link_id"], event["account_id"]) == (linked.link_id, linked.account_id)
    assert event["log_level"] == "warning"
    for secret in secrets_of(linked):
        assert secret not in repr(logs)
        assert secret not in str(reauth.value)
    # Later callers fail fast, without asking Smartcar again.
    with capture_logs() as later, pytest.raises(ReauthRequired):
        await linked.store.access_token(linked.link_id)
    assert not [e for e in later if e["event"].startswith("smartcar.")]


async def test_expired_refresh_token_needs_reauth_without_asking(linked: Linked) -> None:
    linked.clock.offset = timedelta(days=61)
    with capture_logs() as logs, pytest.raises(ReauthRequired):
        await linked.store.access_token(linked.link_id)
    assert not [e for e in logs if e["event"].startswith("smartcar.")]
    assert (await linked.store.status(linked.link_id)).status == "reauth_required"


async def test_with_token_refreshes_once_after_a_401(linked: Linked) -> None:
    linked.running.fake.tokens.expire_access_tokens()  # the store still believes it valid
    used: list[str] = []

    async def read_battery(token: str) -> float:
        used.append(token)
        return (await linked.client.battery(token, linked.vehicle_id)).percent_remaining

    assert await linked.store.with_token(linked.link_id, read_battery) == pytest.approx(0.5)
    assert used[0] == linked.tokens.access_token
    assert len(used) == 2 and used[1] != used[0]
    assert linked.refreshes() == 1


async def test_with_token_gives_up_after_the_second_401(linked: Linked) -> None:
    calls: list[str] = []

    async def always_rejected(token: str) -> None:
        calls.append(token)
        raise AuthenticationError("expired", status=401)

    with pytest.raises(AuthenticationError):
        await linked.store.with_token(linked.link_id, always_rejected)
    assert len(calls) == 2
    assert linked.refreshes() == 1


async def test_simultaneous_401s_refresh_only_once(linked: Linked) -> None:
    linked.running.fake.tokens.expire_access_tokens()

    async def read_vin(token: str) -> Vin:
        return await linked.client.vin(token, linked.vehicle_id)

    async with asyncio.timeout(TIMEOUT):
        results = await asyncio.gather(
            *(linked.store.with_token(linked.link_id, read_vin) for _ in range(5))
        )
    assert [r.vin for r in results] == [next(iter(linked.running.fake.world.vehicles))] * 5
    assert linked.refreshes() == 1


async def test_unknown_link_is_reported(linked: Linked) -> None:
    with pytest.raises(LinkNotFound):
        await linked.store.access_token(linked.link_id + 1000)
