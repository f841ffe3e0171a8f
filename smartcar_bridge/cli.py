"""``csms account``: the bridge's operator commands, added to the core's CLI by the plug-in.

They talk to the running server's HTTP API, like ``csms chargers``, so they are there
whether or not the bridge is configured on this machine (the server says if it is off).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from csms import cli_api

if TYPE_CHECKING:
    from csms.cli import CliSettings


def add_commands(
    commands: Any,
    json_and_url: Callable[[argparse.ArgumentParser], None],
    wrap: Callable[[cli_api.Handler], Any],
) -> None:
    account = commands.add_parser("account", help="plug-and-charge accounts (bridge on)")
    account_actions = account.add_subparsers(dest="account_action", required=True)
    create = account_actions.add_parser("create", help="create an account")
    create.add_argument("name")
    create.add_argument("--payment", choices=["valid", "suspended", "none"], default="none")
    create.add_argument("--tariff", default="0", help="price per kWh, e.g. 0.30")
    create.add_argument("--currency", default="EUR")
    account_actions.add_parser("list", help="every account")
    for parser in account_actions.choices.values():
        json_and_url(parser)
        parser.set_defaults(run=wrap(_account))


def _account(cli: CliSettings, args: argparse.Namespace) -> int:
    if args.account_action == "list":
        columns = ("id", "name", "payment_status", "tariff_per_kwh", "currency")
        return cli_api.get_list(cli, args, "/api/accounts", {}, columns, None)
    body = {
        "name": args.name,
        "payment_status": args.payment,
        "tariff_per_kwh": args.tariff,
        "currency": args.currency,
    }
    return cli_api.print_answer(
        args, cli_api.call(cli, args, "POST", "/api/accounts", json_body=body)
    )
