"""The fleet dashboard: its JSON (summary, charger pages at fleet scale), its token guard,
and its pages in a real headless Chromium (content, actions, a screenshot per page)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from ocpp.v16 import call

from csms.app import CentralSystem
from csms.config import Settings
from csms.db import id_tags
from smartcar_bridge.settings import BridgeSettings
from tests.conftest import TIMEOUT
from tests.ocpp_client import TestCharger, ocpp_charger
from tests.ops.browser import Page, chromium_page
from tests.ops.conftest import ROOT, report_status

VIN = "WVWZZZE1ZMP012345"
MASKED_VIN = "***********012345"
UNREACHABLE = "http://127.0.0.1:9"  # the bridge's routes are mounted; Smartcar is never called
# Screenshots are kept as test artifacts (CI uploads the directory).
ARTIFACTS = Path(os.environ.get("CSMS_TEST_ARTIFACTS", ROOT / "test-artifacts")) / "dashboard"


@pytest.fixture
async def bridge_system(settings: Settings, db: asyncpg.Connection) -> AsyncIterator[CentralSystem]:
    """The system with the bridge on, so its outcomes reach the summary through the hook."""
    bridge = BridgeSettings(
        client_id="dashboard-tests",
        client_secret="dashboard-tests-secret",
        redirect_uri=f"{UNREACHABLE}/smartcar/callback",
        secret_key="a-dashboard-test-secret-key-32-ch",
        api_url=UNREACHABLE,
        auth_url=UNREACHABLE,
        connect_url=UNREACHABLE,
    )
    central = CentralSystem(replace(settings, plugins={"smartcar": bridge}))
    await central.start()
    try:
        yield central
    finally:
        await central.stop()


@pytest.fixture
async def api(bridge_system: CentralSystem, api_token: str) -> AsyncIterator[httpx.AsyncClient]:
    base = f"http://127.0.0.1:{bridge_system.http_port}"
    headers = {"Authorization": f"Bearer {api_token}"}
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=TIMEOUT) as client:
        yield client


def iso(at: datetime) -> str:
    return at.isoformat()


async def eventually(check: Callable[[], Awaitable[Any]]) -> Any:
    """Poll ``check`` until it returns something truthy: the writers flush in batches."""
    async with asyncio.timeout(6 * TIMEOUT):
        while not (found := await check()):
            await asyncio.sleep(0.05)
    return found


async def start_at(cp: TestCharger, id_tag: str, meter_start_wh: int, at: datetime) -> int:
    started = await cp.call(
        call.StartTransaction(
            connector_id=1, id_tag=id_tag, meter_start=meter_start_wh, timestamp=iso(at)
        )
    )
    await report_status(cp, 1, "Charging")
    return started.transaction_id


async def meter_samples(
    cp: TestCharger, tx: int, samples: list[tuple[datetime, int, int, int]]
) -> None:
    """(at, register Wh, power W, charger SoC %) readings, sent as one MeterValues."""
    values = [
        {
            "timestamp": iso(at),
            "sampledValue": [
                {"value": str(wh), "measurand": "Energy.Active.Import.Register", "unit": "Wh"},
                {"value": str(w), "measurand": "Power.Active.Import", "unit": "W"},
                {"value": str(soc), "measurand": "SoC", "unit": "Percent"},
            ],
        }
        for at, wh, w, soc in samples
    ]
    await cp.call(call.MeterValues(connector_id=1, transaction_id=tx, meter_value=values))


async def billed_session(db: asyncpg.Connection, charge_point_id: str, tx: int) -> None:
    """What the bridge records for a finished plug-and-charge session: SoC samples, the
    reconciliation of charger and battery energy, and the bill."""
    account = await db.fetchval(
        "INSERT INTO accounts (name, payment_status, tariff_per_kwh) VALUES ('Ada', 'valid', 0.30)"
        " RETURNING id"
    )
    link = await db.fetchval(
        "INSERT INTO smartcar_links (account_id, smartcar_user_id, access_token_enc,"
        " refresh_token_enc, access_expires_at, refresh_expires_at)"
        " VALUES ($1, 'user-1', '\\x00', '\\x00', now(), now()) RETURNING id",
        account,
    )
    vehicle = await db.fetchval(
        "INSERT INTO vehicles (smartcar_vehicle_id, link_id, account_id, vin, make, model, year,"
        " id_tag) VALUES ('sc-1', $1, $2, $3, 'VOLKSWAGEN', 'ID.3', 2022, 'SC-TAG') RETURNING id",
        link,
        account,
        VIN,
    )
    now = datetime.now(UTC)
    session = await db.fetchval(
        "INSERT INTO charging_sessions (charge_point_id, connector_id, vehicle_id, account_id,"
        " vin, id_tag, transaction_id, state, target_soc_percent, start_soc_percent,"
        " last_soc_percent, end_soc_percent, battery_capacity_wh, stop_reason, grid_energy_wh,"
        " battery_energy_wh, efficiency, bill_energy_wh, bill_basis, bill_amount,"
        " tariff_per_kwh, currency, ended_at)"
        " VALUES ($1, 1, $2, $3, $4, 'SC-TAG', $5, 'completed', 80, 40, 46, 46, 58000,"
        " 'target_reached', 3000, 2784, 0.928, 3000, 'charger', 0.90, 0.30, 'EUR', $6)"
        " RETURNING id",
        charge_point_id,
        vehicle,
        account,
        VIN,
        tx,
        now,
    )
    await db.executemany(
        "INSERT INTO soc_samples (session_id, sampled_at, soc_percent, charge_state, source)"
        " VALUES ($1, $2, $3, 'CHARGING', 'smartcar')",
        [(session, now - timedelta(minutes=m), soc) for m, soc in ((10, 40), (6, 42), (2, 46))],
    )


# -- the JSON ------------------------------------------------------------------------------


async def test_dashboard_api_refuses_requests_without_a_token(
    system: CentralSystem, http: httpx.AsyncClient
) -> None:
    for path in ("/api/dashboard/summary", "/api/dashboard/chargers"):
        response = await http.get(path)
        assert response.status_code == 401
        assert response.headers["content-type"] == "application/problem+json"
    page = await http.get("/")
    assert page.status_code == 200  # the page itself holds no data
    assert "script-src 'self'" in page.headers["content-security-policy"]
    for asset in ("app.js", "fleet.js", "chart.js", "dashboard.css"):
        assert (await http.get(f"/static/{asset}")).status_code == 200, asset
    assert (await http.get("/static/..%2Fdashboard.py")).status_code == 404
    assert (await http.get("/static/nope.js")).status_code == 404


async def test_summary_never_counts_an_offline_charger_as_live(
    bridge_system: CentralSystem, api: httpx.AsyncClient
) -> None:
    await id_tags.upsert(bridge_system.pool, "TAG-S")
    port = bridge_system.ocpp.port
    now = datetime.now(UTC)
    async with ocpp_charger(port, "CP-GONE") as gone:  # charges, then drops off the network
        await gone.boot()
        await start_at(gone, "TAG-S", 0, now - timedelta(minutes=5))
    async with ocpp_charger(port, "CP-LIVE") as live, ocpp_charger(port, "CP-BROKEN") as broken:
        await live.boot()
        tx = await start_at(live, "TAG-S", 10_000, now - timedelta(minutes=3))
        await meter_samples(live, tx, [(now - timedelta(minutes=1), 12_345, 7_400, 50)])
        await broken.boot()
        await report_status(broken, 1, "Faulted")
        await report_status(broken, 2, "Available")

        async def settled() -> dict[str, Any] | None:
            body = (await api.get("/api/dashboard/summary")).json()
            done = body["transactions"]["energy_since_wh"] and body["connectors"].get("Faulted")
            return body if done and body["chargers"]["offline"] == 1 else None

        body = await eventually(settled)
        offline = (await api.get("/api/dashboard/chargers", params={"state": "offline"})).json()
        faulted = (await api.get("/api/dashboard/chargers", params={"state": "faulted"})).json()

    assert body["chargers"] == {
        "total": 3,
        "online": 2,
        "offline": 1,
        "pending": 0,
        "rejected": 0,
        "faulted": 1,
        "charging": 1,  # CP-LIVE only: CP-GONE's last "Charging" is history
    }
    assert body["connectors"] == {"Available": 1, "Charging": 1, "Faulted": 1, "Offline": 1}
    assert body["transactions"]["open"] == 2
    assert body["transactions"]["on_offline_chargers"] == 1
    assert body["transactions"]["energy_since_wh"] == 2_345
    assert [(t["charge_point_id"], t["charger_connected"]) for t in body["open_transactions"]] == [
        ("CP-LIVE", True),
        ("CP-GONE", False),
    ]
    assert body["bridge"] == {"ended": {}, "ended_by_reason": [], "open": {}}
    assert body["since"].endswith("+00:00")

    assert [(c["id"], c["state"]) for c in offline["items"]] == [("CP-GONE", "offline")]
    assert offline["items"][0]["connectors"][0]["status"] == "Charging"  # shown as last known
    assert [c["id"] for c in faulted["items"]] == ["CP-BROKEN"]
    # "Today" is the operator's: a day that started after everything counts nothing.
    later = (now + timedelta(hours=1)).isoformat()
    tomorrow = (await api.get("/api/dashboard/summary", params={"since": later})).json()
    assert tomorrow["transactions"]["energy_since_wh"] == 0
    naive = await api.get("/api/dashboard/summary", params={"since": "2026-01-01T00:00:00"})
    assert naive.status_code == 422 and naive.json()["field"] == "since"


async def test_summary_reports_the_bridges_outcomes_through_its_hook(
    bridge_system: CentralSystem, db: asyncpg.Connection, api: httpx.AsyncClient
) -> None:
    await id_tags.upsert(bridge_system.pool, "TAG-H")
    now = datetime.now(UTC)
    async with ocpp_charger(bridge_system.ocpp.port, "CP-H") as cp:
        await cp.boot()
        tx = await start_at(cp, "TAG-H", 0, now - timedelta(minutes=10))
        await billed_session(db, "CP-H", tx)
        body = (await api.get("/api/dashboard/summary")).json()
    assert body["bridge"]["ended"] == {"completed": 1}
    assert body["bridge"]["ended_by_reason"] == [
        {"state": "completed", "stop_reason": "target_reached", "count": 1}
    ]


async def insert_fleet(db: asyncpg.Connection, size: int) -> list[str]:
    """A fleet written the fast way: every 10th charger is connected to another node,
    every 500th has a faulted connector, every 7th is pending. Their ids, in order."""
    ids = [f"CP-{n:05d}" for n in range(size)]
    await db.copy_records_to_table(
        "charge_points",
        records=[
            (
                cp,
                "Pending" if n % 7 == 0 else "Accepted",
                "Acme" if n % 2 else "Volta",
                f"M{n % 3}",
                n % 10 == 0,
                "other-node" if n % 10 == 0 else None,
                datetime.now(UTC) - timedelta(seconds=n),
            )
            for n, cp in enumerate(ids)
        ],
        columns=[
            "id",
            "registration_status",
            "vendor",
            "model",
            "connected",
            "connected_node",
            "last_seen_at",
        ],
    )
    now = datetime.now(UTC)
    await db.copy_records_to_table(
        "connectors",
        records=[
            (cp, 1, "Faulted" if n % 500 == 0 else "Available", "NoError", now)
            for n, cp in enumerate(ids)
        ],
        columns=["charge_point_id", "connector_id", "status", "error_code", "updated_at"],
    )
    return ids


async def test_charger_listing_searches_filters_and_pages_5000_chargers(
    system: CentralSystem, db: asyncpg.Connection, http: httpx.AsyncClient, api_token: str
) -> None:
    ids = await insert_fleet(db, 5_000)
    headers = {"Authorization": f"Bearer {api_token}"}

    async def page(**params: Any) -> dict[str, Any]:
        response = await http.get("/api/dashboard/chargers", params=params, headers=headers)
        assert response.status_code == 200, response.text
        return response.json()

    seen: list[str] = []
    cursor = None
    while True:
        body = await page(limit=500, **({"cursor": cursor} if cursor else {}))
        assert body["total"] == 5_000
        seen += [c["id"] for c in body["items"]]
        if (cursor := body["next_cursor"]) is None:
            break
    assert seen == ids  # every charger once, in id order, ten pages

    online = await page(state="online", limit=1)
    assert online["total"] == 500 and online["items"][0]["id"] == "CP-00000"
    faulted = await page(state="faulted")
    # Connected and faulted: 0, 500, 1000, …; the offline ones with a Faulted connector
    # (none here: every 500th is also every 10th) would not count.
    assert faulted["total"] == 10
    assert {c["state"] for c in faulted["items"]} <= {"faulted", "pending"}
    pending = await page(state="pending", limit=5)
    assert pending["total"] == len([n for n in range(5_000) if n % 7 == 0])
    assert (await page(search="cp-0499"))["total"] == 10  # CP-04990 … CP-04999
    assert (await page(search="volta", state="offline"))["total"] == 2_000
    summary = await http.get("/api/dashboard/summary", headers=headers)
    counts = summary.json()["chargers"]
    assert (counts["total"], counts["online"], counts["offline"]) == (5_000, 500, 4_500)
    refused = await http.get(
        "/api/dashboard/chargers", params={"state": "sleeping"}, headers=headers
    )
    assert refused.status_code == 422


# -- the pages, in Chromium --------------------------------------------------------------


async def loaded(page: Page, selector: str) -> None:
    await page.wait_for(
        f"document.getElementById('view').dataset.loaded === 'true'"
        f" && !!document.querySelector({selector!r})"
    )


async def act(page: Page, button: str) -> str:
    """Click an action, confirm it in the dialog, and wait for the charger's answer."""
    before = await page.evaluate("document.querySelectorAll('#action-log li').length")
    await page.click(button)
    await page.wait_for("document.getElementById('confirm').open")
    await page.click("#confirm-ok")
    return await page.wait_for(
        f"(() => {{ const items = document.querySelectorAll('#action-log li');"
        f" return items.length > {before} && !items[0].classList.contains('pending-answer')"
        f" && items[0].textContent; }})()"
    )


async def test_dashboard_pages_in_headless_chromium(
    bridge_system: CentralSystem,
    db: asyncpg.Connection,
    api_token: str,
    chromium: Path,
    tmp_path: Path,
) -> None:
    await id_tags.upsert(bridge_system.pool, "TAG-B")
    port = bridge_system.ocpp.port
    base = f"http://127.0.0.1:{bridge_system.http_port}/"
    now = datetime.now(UTC)
    async with ocpp_charger(port, "CP-OFFLINE") as gone:
        await gone.boot()
        await start_at(gone, "TAG-B", 0, now - timedelta(minutes=20))
    # A charger the operator has not accepted yet (what CSMS_UNKNOWN_CHARGERS=pending does).
    await db.execute(
        "INSERT INTO charge_points (id, registration_status) VALUES ('CP-PENDING', 'Pending')"
    )
    bridge_system.services.registrations["CP-PENDING"] = "Pending"
    async with (
        ocpp_charger(port, "CP-LIVE") as live,
        ocpp_charger(port, "CP-PENDING") as pending,
        ocpp_charger(port, "CP-FAULTY") as faulty,
        chromium_page(chromium, tmp_path / "profile", timezone="Europe/Paris") as page,
    ):
        await live.boot()
        done = await start_at(live, "TAG-B", 1_000, now - timedelta(minutes=10))
        await meter_samples(
            live,
            done,
            [
                (now - timedelta(minutes=m), 1_000 + wh, w, soc)
                for m, wh, w, soc in (
                    (8, 500, 7_200, 41),
                    (6, 1_300, 7_400, 42),
                    (4, 2_100, 7_300, 44),
                    (2, 2_900, 3_600, 46),
                )
            ],
        )
        await live.call(
            call.StopTransaction(meter_stop=4_000, timestamp=iso(now), transaction_id=done)
        )
        await billed_session(db, "CP-LIVE", done)
        running = await start_at(live, "TAG-B", 4_000, now)
        assert (await pending.boot()).status == "Pending"
        await faulty.boot()
        await report_status(faulty, 1, "Faulted")

        # The fleet page: summary, states, last seen, dates with their zone.
        await page.goto(f"{base}?token={api_token}")
        await loaded(page, "#chargers tr[data-charger-id='CP-FAULTY'] .state-faulted")
        await page.wait_for(
            "document.querySelector('[data-count=offline] .value').textContent === '1'"
        )
        assert await page.evaluate("location.search") == ""  # the token left the address bar
        counts = await page.evaluate(
            "Object.fromEntries([...document.querySelectorAll('[data-count]')].map("
            "c => [c.dataset.count, c.querySelector('.value').textContent]))"
        )
        assert counts["total"] == "4"
        assert (counts["online"], counts["offline"]) == ("3", "1")
        assert (counts["pending"], counts["faulted"], counts["open"]) == ("1", "1", "2")
        assert counts["energy"] == "3.00 kWh"  # the finished 3 kWh; the new one has no reading
        assert counts["bridge"] == "1 completed"
        states = await page.evaluate(
            "Object.fromEntries([...document.querySelectorAll('#chargers tr[data-charger-id]')]"
            ".map(r => [r.dataset.chargerId, r.querySelector('[data-state]').dataset.state]))"
        )
        assert states == {
            "CP-FAULTY": "faulted",
            "CP-LIVE": "charging",
            "CP-OFFLINE": "offline",
            "CP-PENDING": "pending",
        }
        offline_row = "#chargers tr[data-charger-id='CP-OFFLINE']"
        # Never green, never a live colour: only "last known", on a hatched grey chip.
        assert (
            await page.evaluate(
                f"document.querySelector({offline_row!r}).querySelector('.status').className"
            )
            == "status status-stale"
        )
        assert "last known Charging" in await page.evaluate(
            f"document.querySelector({offline_row!r}).textContent"
        )
        text = await page.text()
        assert "UTC+01:00" in text and "Europe/Paris" in text  # every date says its zone
        assert "s ago" in text or "min ago" in text  # last seen
        assert "Transaction Started" in text  # recent events
        assert await page.evaluate(
            "document.querySelector('#open-transactions tr[data-transaction-id=\"1\"]')"
            ".textContent.includes('charger offline')"
        )
        assert api_token not in await page.evaluate("document.documentElement.outerHTML")
        await page.screenshot(ARTIFACTS / "fleet.png")

        # Search and filter run on the server and page the table.
        await page.fill("#search", "faul")
        await page.wait_for(
            "document.querySelectorAll('#chargers tr[data-charger-id]').length === 1"
        )
        assert (
            await page.evaluate("document.getElementById('page-info').textContent")
            == "1\u20131 of 1"
        )
        await page.fill("#search", "")
        await page.click("[data-count=offline]")
        await page.wait_for(
            "[...document.querySelectorAll('#chargers tr[data-charger-id]')].map("
            "r => r.dataset.chargerId).join() === 'CP-OFFLINE'"
        )

        # The pending charger's page: accept it, confirmed, and see what happened.
        await page.goto(f"{base}#/chargers/CP-PENDING")
        await loaded(page, "#action-accept:not([hidden])")
        await page.click("#action-accept")
        await page.wait_for("document.getElementById('confirm').open")
        await page.click("#confirm-cancel")  # cancelled: nothing is sent
        await asyncio.sleep(0.3)
        assert await page.evaluate("document.querySelectorAll('#action-log li').length") == 0
        answer = await act(page, "#action-accept")
        assert "registration is now Accepted" in answer
        await page.wait_for("document.getElementById('action-accept').hidden")
        assert ("TriggerMessage", {"requested_message": "BootNotification"}) in pending.received

        # The live charger: reset, remote start and stop, unlock; each reports the answer.
        await page.goto(f"{base}#/chargers/CP-LIVE")
        await loaded(page, f"button[data-stop='{running}']")
        assert await page.evaluate("document.getElementById('action-accept').hidden")
        answer = await act(page, "#action-reset-soft")
        assert answer.endswith("CP-LIVE answered Reset: Accepted")
        assert ("Reset", {"type": "Soft"}) in live.received
        await page.fill("#start-id-tag", "TAG-B")
        answer = await act(page, "#action-start")
        assert answer.endswith("CP-LIVE answered RemoteStartTransaction: Accepted")
        assert ("RemoteStartTransaction", {"id_tag": "TAG-B", "connector_id": 1}) in live.received
        answer = await act(page, f"button[data-stop='{running}']")
        assert answer.endswith("CP-LIVE answered RemoteStopTransaction: Accepted")
        assert ("RemoteStopTransaction", {"transaction_id": running}) in live.received
        # The test charger does not implement UnlockConnector: its CALLERROR is shown.
        answer = await act(page, "#action-unlock")
        assert "refused — 502" in answer and "NotImplemented" in answer
        text = await page.text()
        assert "Status history" in text and "Charging" in text
        assert f"{done}" in await page.evaluate(
            "document.getElementById('transactions').textContent"
        )
        await page.screenshot(ARTIFACTS / "charger.png")

        # The offline charger's page says its states are not live.
        await page.goto(f"{base}#/chargers/CP-OFFLINE")
        await loaded(page, "#connectors .status-stale")
        assert "offline: connector states below are the last known" in await page.text()

        # The finished session: power, energy and SoC over time; reconciliation and bill.
        await page.goto(f"{base}#/transactions/{done}")
        await loaded(page, "#charts svg")
        series = await page.evaluate(
            "Object.fromEntries([...document.querySelectorAll('#charts .legend')].map("
            "l => [l.textContent.split(':')[0], Number(l.dataset.points)]))"
        )
        assert series == {
            "power (charger)": 4,
            "energy delivered": 6,  # start, four readings, stop
            "SoC (car, bridge)": 3,
            "SoC (charger)": 4,
        }
        assert await page.evaluate("document.querySelectorAll('#charts path.line').length") == 4
        reconciliation = await page.evaluate("document.getElementById('reconciliation').innerText")
        assert "3.00 kWh" in reconciliation and "2.78 kWh" in reconciliation
        assert "92.8 %" in reconciliation and "40 % → 46 %" in reconciliation
        bill = await page.evaluate("document.getElementById('bill').innerText")
        assert "0.90 EUR" in bill and "0.30 EUR / kWh" in bill and "charger" in bill
        text = await page.text()
        assert MASKED_VIN in text and VIN not in text
        assert "time (UTC+01:00)" in text
        await page.screenshot(ARTIFACTS / "session.png")
        assert page.errors == []

    for name in ("fleet", "charger", "session"):
        shot = ARTIFACTS / f"{name}.png"
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert shot.stat().st_size > 30_000, name  # a rendered page, not a blank one
    assert Decimal("0.90") == await db.fetchval("SELECT bill_amount FROM charging_sessions")


async def test_dashboard_asks_for_a_token_and_says_how_to_get_one(
    system: CentralSystem, db: asyncpg.Connection, chromium: Path, tmp_path: Path
) -> None:
    base = f"http://127.0.0.1:{system.http_port}/"
    async with chromium_page(chromium, tmp_path / "profile") as page:
        await page.goto(f"{base}?token=not-a-real-token")
        await page.wait_for("!document.getElementById('login').hidden")
        text = await page.text()
        assert "The token was refused" in text
        assert "csms token create" in text  # how to get one
        assert await page.evaluate("document.getElementById('view').hidden")
        await page.screenshot(ARTIFACTS / "login.png")
        assert page.errors == []


async def test_fleet_page_of_5000_chargers_pages_on_the_server(
    system: CentralSystem,
    db: asyncpg.Connection,
    api_token: str,
    chromium: Path,
    tmp_path: Path,
) -> None:
    await insert_fleet(db, 5_000)
    base = f"http://127.0.0.1:{system.http_port}/"
    rows = "document.querySelectorAll('#chargers tr[data-charger-id]')"
    async with chromium_page(chromium, tmp_path / "profile") as page:
        await page.goto(f"{base}?token={api_token}")
        await loaded(page, "#chargers tr[data-charger-id]")
        assert await page.evaluate("document.getElementById('page-info').textContent") == (
            "1\u201350 of 5,000"
        )
        assert await page.evaluate(f"{rows}.length") == 50  # one page, never the whole fleet
        counts = await page.evaluate(
            "Object.fromEntries([...document.querySelectorAll('[data-count]')].map("
            "c => [c.dataset.count, c.querySelector('.value').textContent]))"
        )
        assert (counts["total"], counts["online"], counts["offline"]) == ("5,000", "500", "4,500")
        await page.screenshot(ARTIFACTS / "fleet-5000.png")
        await page.click("#next-page")
        await page.wait_for(f"{rows}[0].dataset.chargerId === 'CP-00050'")
        assert await page.evaluate("document.getElementById('page-info').textContent") == (
            "51\u2013100 of 5,000"
        )
        await page.click("#prev-page")
        await page.wait_for(f"{rows}[0].dataset.chargerId === 'CP-00000'")
        assert page.errors == []
