"""The operator CLI's commands: tokens straight in the database, the rest over the HTTP API.

Handlers take a ``CliSettings`` (built once in ``csms.cli``) and return the exit status:
0 done, 1 refused or unreachable, 2 bad usage.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import httpx

from csms.app import migrate_database, resolve_database
from csms.config import Settings

if TYPE_CHECKING:
    from csms.cli import CliSettings

Handler = Callable[["CliSettings", argparse.Namespace], int]

# What `csms chargers --status` filters on: a registration status or a connector status.
CHARGER_STATUSES = (
    *("Accepted", "Pending", "Rejected"),
    *("Available", "Preparing", "Charging", "SuspendedEVSE", "SuspendedEV", "Finishing"),
    *("Reserved", "Unavailable", "Faulted"),
)
EXPIRY_HINT = "an ISO 8601 date and time with a time zone, e.g. 2027-01-31T23:59:59Z"


def charger_status(value: str) -> str:
    """``--status``: any known status, in any case; an unknown one is refused, listing all."""
    for status in CHARGER_STATUSES:
        if status.lower() == value.lower():
            return status
    raise argparse.ArgumentTypeError(
        f"unknown status {value!r}; one of: {', '.join(CHARGER_STATUSES)}"
    )


def expiry(value: str) -> str:
    """``--expiry``: checked here, so a bad date gets the format, not a 422 from the server."""
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not {EXPIRY_HINT}") from None
    if parsed.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{value!r} has no time zone: give {EXPIRY_HINT}")
    return parsed.isoformat()


def add_commands(
    commands: Any,
    json_and_url: Callable[[argparse.ArgumentParser], None],
    wrap: Callable[[Handler], Any],
) -> None:
    """Register ``token``, ``chargers``, ``sessions`` and ``idtag`` (plug-ins add theirs
    the same way, e.g. the bridge's ``account``); ``wrap`` turns a handler into what
    ``csms.cli`` calls (it supplies ``CliSettings``)."""
    token = commands.add_parser("token", help="operator API tokens (talks to the database)")
    token_actions = token.add_subparsers(dest="token_action", required=True)
    for action, text in (("create", "create a token, print it once"), ("revoke", "revoke")):
        parser = token_actions.add_parser(action, help=text)
        parser.add_argument("name")
        parser.set_defaults(run=wrap(_token))
    token_actions.add_parser("list", help="names, creation and last use").set_defaults(
        run=wrap(_token)
    )
    for parser in token_actions.choices.values():
        parser.add_argument("--json", action="store_true", help="print JSON")

    chargers = commands.add_parser("chargers", help="list charge points")
    state = chargers.add_mutually_exclusive_group()
    state.add_argument("--connected", dest="connected", action="store_true", default=None)
    state.add_argument("--disconnected", dest="connected", action="store_false")
    chargers.add_argument(
        "--status", type=charger_status, help="registration or connector status, e.g. Faulted"
    )
    chargers.add_argument("--vendor")
    json_and_url(chargers)
    chargers.set_defaults(run=wrap(_chargers))

    sessions = commands.add_parser("sessions", help="list transactions, newest first")
    sessions.add_argument("--active", action="store_true", default=None, help="only open ones")
    sessions.add_argument("--charge-point", dest="charge_point_id")
    sessions.add_argument("--id-tag")
    sessions.add_argument("--limit", type=int, default=50)
    json_and_url(sessions)
    sessions.set_defaults(run=wrap(_sessions))

    idtag = commands.add_parser("idtag", help="the authorisation list")
    idtag_actions = idtag.add_subparsers(dest="idtag_action", required=True)
    add = idtag_actions.add_parser("add", help="add id tags (Accepted)")
    add.add_argument("id_tag", nargs="+", help="one or more id tags")
    add.add_argument("--expiry", type=expiry, help=f"expiry: {EXPIRY_HINT}")
    add.add_argument("--parent", help="parent id tag")
    for action, text in (
        ("block", "block an id tag (chargers refuse it)"),
        ("unblock", "accept a blocked id tag again"),
        ("expire", "expire an id tag now"),
        ("delete", "delete an id tag"),
    ):
        idtag_actions.add_parser(action, help=text).add_argument("id_tag")
    idtag_actions.add_parser("list", help="every id tag")
    for parser in idtag_actions.choices.values():
        json_and_url(parser)
        parser.set_defaults(run=wrap(_idtag))


# -- tokens: straight to the database, so the first token can exist before any server --


def _token(cli: CliSettings, args: argparse.Namespace) -> int:
    from csms.db import operator_tokens

    async def act(connection: Any) -> int:
        if args.token_action == "create":
            try:
                token = await operator_tokens.create(connection, args.name)
            except operator_tokens.TokenNameTaken:
                print(f"csms: a live token is already named {args.name!r}", file=sys.stderr)
                return 1
            print(json.dumps({"name": args.name, "token": token}) if args.json else token)
            if not args.json:
                print("Store it now: it is not shown again.", file=sys.stderr)
            return 0
        if args.token_action == "revoke":
            if not await operator_tokens.revoke(connection, args.name):
                print(f"csms: no live token named {args.name!r}", file=sys.stderr)
                return 1
            print(f"revoked {args.name}")
            return 0
        rows = [
            {
                "name": t.name,
                "created_at": t.created_at.isoformat(),
                "last_used_at": t.last_used_at.isoformat() if t.last_used_at else None,
                "revoked_at": t.revoked_at.isoformat() if t.revoked_at else None,
            }
            for t in await operator_tokens.list_tokens(connection)
        ]
        _show(rows, args.json, ("name", "created_at", "last_used_at", "revoked_at"))
        return 0

    return asyncio.run(_with_database(cli.server, act))


async def _with_database(settings: Settings, act: Callable[[Any], Any]) -> int:
    import asyncpg

    dsn, embedded = await resolve_database(settings)
    try:
        await migrate_database(dsn, settings.plugins)
        connection = await asyncpg.connect(dsn)
        try:
            return await act(connection)
        finally:
            await connection.close()
    finally:
        if embedded is not None:
            embedded.close()


# -- over the HTTP API --


def _chargers(cli: CliSettings, args: argparse.Namespace) -> int:
    params = {"connected": args.connected, "status": args.status, "vendor": args.vendor}
    return get_list(cli, args, "/api/charge-points", params, _CHARGER_COLUMNS, _charger_row)


_CHARGER_COLUMNS = ("id", "registration", "connected", "vendor", "model", "last_seen", "connectors")


def _charger_row(item: dict[str, Any]) -> dict[str, Any]:
    connectors = " ".join(f"{c['connector_id']}:{c['status']}" for c in item["connectors"])
    return {
        "id": item["id"],
        "registration": item["registration_status"],
        "connected": "yes" if item["connected"] else "no",
        "vendor": item["vendor"],
        "model": item["model"],
        "last_seen": item["last_seen_at"],
        "connectors": connectors,
    }


def show_charger(cli: CliSettings, args: argparse.Namespace, charge_point_id: str) -> int:
    response = call(cli, args, "GET", f"/api/charge-points/{_segment(charge_point_id)}")
    if response is None or not response.is_success:
        return fail(response)
    body = response.json()
    if args.json:
        print(json.dumps(body, indent=2))
        return 0
    fields: tuple[str, ...] = ("id", "registration_status", "connected", "vendor", "model")
    fields += ("serial_number", "firmware_version", "first_seen_at", "last_boot_at", "last_seen_at")
    for name in fields:
        print(f"{name:<20} {_cell(body.get(name))}")
    print(f"{'active transactions':<20} {_cell(body['active_transaction_ids'])}")
    print()
    _show(body["connectors"], False, ("connector_id", "status", "error_code", "info", "updated_at"))
    return 0


def _sessions(cli: CliSettings, args: argparse.Namespace) -> int:
    params = {
        "active": args.active,
        "charge_point_id": args.charge_point_id,
        "id_tag": args.id_tag,
        "limit": args.limit,
    }
    columns: tuple[str, ...] = ("id", "charge_point_id", "connector_id", "id_tag")
    columns += ("start_timestamp", "stop_timestamp", "energy_wh", "active")
    return get_list(cli, args, "/api/transactions", params, columns, None)


def _idtag(cli: CliSettings, args: argparse.Namespace) -> int:
    action = args.idtag_action
    if action == "list":
        columns = ("id_tag", "status", "effective_status", "expiry_date", "parent_id_tag")
        return get_list(cli, args, "/api/id-tags", {}, columns, None)
    if action == "add":
        failed = 0
        for id_tag in args.id_tag:
            body = {"id_tag": id_tag, "expiry_date": args.expiry, "parent_id_tag": args.parent}
            failed |= print_answer(args, call(cli, args, "POST", "/api/id-tags", json_body=body))
        return failed
    if action == "delete":
        response = call(cli, args, "DELETE", f"/api/id-tags/{_segment(args.id_tag)}")
    else:
        response = call(cli, args, "POST", f"/api/id-tags/{_segment(args.id_tag)}/{action}")
    return print_answer(args, response)


# -- plumbing (plug-ins' commands use it too) --


def _segment(value: str) -> str:
    from urllib.parse import quote

    return quote(value, safe="")


def call_api(
    cli: CliSettings,
    url: str | None,
    method: str,
    path: str,
    *,
    json_body: Any = None,
    params: dict[str, Any] | None = None,
    timeout: float = 30.0,
) -> httpx.Response | None:
    """One request with the operator token; None (and a line on stderr) if unreachable."""
    base = (url or cli.api_url).rstrip("/")
    headers = {"Authorization": f"Bearer {cli.api_token}"} if cli.api_token else {}
    query = {k: _param(v) for k, v in (params or {}).items() if v is not None}
    try:
        return httpx.request(
            method, base + path, json=json_body, params=query, headers=headers, timeout=timeout
        )
    except httpx.HTTPError as exc:
        print(f"csms: cannot reach the central system at {base}: {exc}", file=sys.stderr)
        return None


def call(
    cli: CliSettings, args: argparse.Namespace, method: str, path: str, **kwargs: Any
) -> httpx.Response | None:
    return call_api(cli, args.url, method, path, **kwargs)


def _param(value: Any) -> Any:
    return str(value).lower() if isinstance(value, bool) else value


def fail(response: httpx.Response | None) -> int:
    """A refused or failed request as one line on stderr (whatever the body); status 1."""
    if response is None:
        return 1
    try:
        body = response.json()
        title, detail = body.get("title"), body.get("detail")
        message = detail or title or response.text
        if title and detail and title.lower() not in detail.lower():
            message = f"{title}: {detail}"
        if body.get("errors"):  # a 422 naming each field
            message += ": " + "; ".join(f"{e['field']}: {e['message']}" for e in body["errors"])
    except (ValueError, AttributeError, KeyError, TypeError):
        message = response.text or response.reason_phrase
    hint = " (set CSMS_API_TOKEN)" if response.status_code == 401 else ""
    line = " ".join(f"{response.status_code}: {message}{hint}".split())
    print(f"csms: {line}", file=sys.stderr)
    return 1


def print_answer(args: argparse.Namespace, response: httpx.Response | None) -> int:
    if response is None or not response.is_success:
        return fail(response)
    if response.status_code == 204:
        print("done")
    elif args.json:
        print(json.dumps(response.json(), indent=2))
    else:
        body = response.json()
        for name, value in body.items():
            print(f"{name:<20} {_cell(value)}")
    return 0


def get_list(
    cli: CliSettings,
    args: argparse.Namespace,
    path: str,
    params: dict[str, Any],
    columns: Sequence[str],
    row: Callable[[dict[str, Any]], dict[str, Any]] | None,
) -> int:
    response = call(cli, args, "GET", path, params=params)
    if response is None or not response.is_success:
        return fail(response)
    body = response.json()
    items = body["items"] if isinstance(body, dict) else body
    if args.json:
        print(json.dumps(items, indent=2))
        return 0
    _show([row(i) for i in items] if row else items, False, columns)
    return 0


def _show(rows: list[dict[str, Any]], as_json: bool, columns: Sequence[str]) -> None:
    """Rows as JSON, or as a plain aligned table."""
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    table = [list(columns)] + [[_cell(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(columns))]
    for line in table:
        cells = (cell.ljust(width) for cell, width in zip(line, widths, strict=True))
        print("  ".join(cells).rstrip())
    if not rows:
        print("(none)")


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) or "-"
    return str(value)
