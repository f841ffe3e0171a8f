"""``csms serve | migrate | command | charger``."""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from typing import Any

import httpx

from csms.app import CentralSystem, migrate_database, resolve_database
from csms.config import ConfigError, Settings
from csms.log import configure_logging


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        print(f"csms: configuration error: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_format, settings.log_level)
    return int(args.run(settings, args) or 0)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="csms", description="OCPP 1.6J central system")
    commands = parser.add_subparsers(dest="command", required=True)

    commands.add_parser("serve", help="run the central system").set_defaults(run=_serve)
    commands.add_parser("migrate", help="apply database migrations and exit").set_defaults(
        run=_migrate
    )

    command = commands.add_parser("command", help="send an OCPP command to a connected charger")
    command.add_argument("charge_point_id")
    command.add_argument("action", help="e.g. Reset, RemoteStartTransaction")
    command.add_argument("payload", nargs="?", default="{}", help="JSON payload")
    command.add_argument("--timeout", type=float, default=None, help="seconds to wait")
    command.add_argument("--url", default=None, help="HTTP base URL of the running server")
    command.set_defaults(run=_command)

    charger = commands.add_parser("charger", help="registration of a charger")
    charger.add_argument("decision", choices=["accept", "reject", "pending"])
    charger.add_argument("charge_point_id")
    charger.add_argument("--url", default=None, help="HTTP base URL of the running server")
    charger.set_defaults(run=_charger)
    return parser


def _serve(settings: Settings, _args: argparse.Namespace) -> int:
    async def run() -> None:
        system = CentralSystem(settings)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await system.start()
        try:
            await stop.wait()
        finally:
            await system.stop()

    asyncio.run(run())
    return 0


def _migrate(settings: Settings, _args: argparse.Namespace) -> int:
    async def run() -> list[str]:
        dsn, embedded = await resolve_database(settings)
        try:
            return await migrate_database(dsn)
        finally:
            if embedded is not None:
                embedded.close()

    applied = asyncio.run(run())
    print(f"applied {len(applied)} migration(s): {', '.join(applied) or 'none needed'}")
    return 0


def _base_url(settings: Settings, url: str | None) -> str:
    if url:
        return url.rstrip("/")
    host = settings.http_host if settings.http_host not in ("0.0.0.0", "::") else "127.0.0.1"
    return f"http://{host}:{settings.http_port}"


def _command(settings: Settings, args: argparse.Namespace) -> int:
    try:
        payload = json.loads(args.payload)
    except json.JSONDecodeError as exc:
        print(f"csms: the payload is not JSON: {exc}", file=sys.stderr)
        return 2
    params = {"timeout": args.timeout} if args.timeout else None
    url = f"{_base_url(settings, args.url)}/api/charge-points/{args.charge_point_id}"
    return _request("POST", f"{url}/commands/{args.action}", payload, params)


def _charger(settings: Settings, args: argparse.Namespace) -> int:
    status = {"accept": "Accepted", "reject": "Rejected", "pending": "Pending"}[args.decision]
    url = f"{_base_url(settings, args.url)}/api/charge-points/{args.charge_point_id}/registration"
    return _request("PUT", url, {"status": status}, None)


def _request(method: str, url: str, body: Any, params: dict[str, Any] | None) -> int:
    try:
        response = httpx.request(method, url, json=body, params=params, timeout=660)
    except httpx.HTTPError as exc:
        print(f"csms: cannot reach the central system at {url}: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(response.json(), indent=2))
    return 0 if response.is_success else 1


if __name__ == "__main__":
    sys.exit(main())
