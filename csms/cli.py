"""``csms serve | migrate | command | charger | chargers | sessions | idtag | account | token``."""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import signal
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from csms import cli_api, plugins
from csms.app import CentralSystem, migrate_database, resolve_database
from csms.cli_errors import OPERATIONAL_ERRORS, explain
from csms.config import ConfigError, Settings
from csms.log import configure_logging
from csms.security.cli_commands import SECURITY_ACTIONS, add_security_arguments, security_request


@dataclass(frozen=True, slots=True)
class CliSettings:
    """What the operator commands need beyond the server's settings; read here, once.

    ``CSMS_API_URL`` (default ``http://127.0.0.1:$CSMS_HTTP_PORT``) and ``CSMS_API_TOKEN``
    (an operator token from ``csms token create``) belong to the client, not the server.
    """

    server: Settings
    api_url: str
    api_token: str | None

    @classmethod
    def from_env(cls, server: Settings, env: Mapping[str, str] | None = None) -> CliSettings:
        env = os.environ if env is None else env
        url = (env.get("CSMS_API_URL") or "").strip() or _base_url(server, None)
        token = (env.get("CSMS_API_TOKEN") or "").strip() or None
        return cls(server=server, api_url=url.rstrip("/"), api_token=token)


def _operator(handler: cli_api.Handler) -> Any:
    # The operator commands take CliSettings, built from the environment here.
    return lambda settings, args: handler(CliSettings.from_env(settings), args)


def _json_and_url(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--url", default=None, help="HTTP base URL (default: $CSMS_API_URL)")


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        print(f"csms: configuration error: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_format, settings.log_level)
    try:
        return int(args.run(settings, args) or 0)
    except BrokenPipeError:
        # `csms chargers | head`: the reader has gone, which is not our error. Point stdout
        # at /dev/null so the interpreter's final flush cannot fail again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except OPERATIONAL_ERRORS as exc:
        # `csms migrate`, `csms token …`: a database out of reach or refusing, one line.
        print(f"csms: {explain(exc, settings)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="csms", description="OCPP 1.6J central system")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the central system")
    serve.add_argument(
        "--workers",
        type=int,
        default=None,
        help="worker processes sharing the ports, routed through NATS (default: $CSMS_WORKERS)",
    )
    serve.set_defaults(run=_serve)
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

    charger = commands.add_parser(
        "charger", help="show a charger (CP_ID), or decide its registration (accept CP_ID)"
    )
    charger.add_argument("first", metavar="CP_ID | accept | reject | pending | set-password …")
    charger.add_argument("charge_point_id", nargs="?", metavar="CP_ID")
    add_security_arguments(charger)
    _json_and_url(charger)
    charger.set_defaults(run=_charger)

    cli_api.add_commands(commands, _json_and_url, _operator)
    # Installed plug-ins add theirs (the bridge: `csms account`), configured here or not.
    for plugin in plugins.installed(strict=False).values():
        plugin.add_cli_commands(commands, _json_and_url, _operator)
    return parser


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    workers = args.workers if args.workers is not None else settings.workers
    if workers < 1:
        print("csms: --workers must be at least 1", file=sys.stderr)
        return 2
    if workers > 1:
        from csms.cluster.supervisor import run_workers

        try:
            return asyncio.run(run_workers(settings, workers))
        except OSError as exc:
            print(f"csms: cannot start: {exc}", file=sys.stderr)
            return 1

    async def run() -> int:
        system = CentralSystem(settings)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            await system.start()
            # What start-up built (imports, pools, caches) lives as long as we do: out of
            # the collector's sight, so a full collection walks only the chargers' objects.
            gc.freeze()
        except OPERATIONAL_ERRORS as exc:
            # A port in use, a database out of reach, missing or refusing the user: one
            # line, and stop what started (an embedded PostgreSQL must not outlive us).
            await system.stop()
            print(f"csms: cannot start: {explain(exc, settings)}", file=sys.stderr)
            return 1
        try:
            await stop.wait()
        finally:
            await system.stop()
        return 0

    tune_gc()
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        return runner.run(run())


# A server holding 10,000 connections has millions of long-lived objects and allocates
# a few hundred per message: at the default gen-0 threshold (700) the collector ran
# every few messages and was the top frame of a reconnect storm's profile (32 % self).
# Cycles are rare in our per-message garbage (frames and dicts freed by refcount), so
# collecting young objects every 50,000 allocations costs ~100 MB at worst, never cycles.
GC_THRESHOLDS = (50_000, 20, 100)


def tune_gc() -> None:
    gc.set_threshold(*GC_THRESHOLDS)


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    # uvloop's C event loop, transports and futures: measured in a 10,000-charger reconnect
    # storm, asyncio's own machinery was over half of the server's CPU.
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def _migrate(settings: Settings, _args: argparse.Namespace) -> int:
    async def run() -> list[str]:
        dsn, embedded = await resolve_database(settings)
        try:
            return await migrate_database(dsn, settings.plugins)
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
    path = f"/api/charge-points/{args.charge_point_id}/commands/{args.action}"
    return _request(CliSettings.from_env(settings), args.url, "POST", path, payload, params)


_DECISIONS = {"accept": "Accepted", "reject": "Rejected", "pending": "Pending"}


def _charger(settings: Settings, args: argparse.Namespace) -> int:
    cli = CliSettings.from_env(settings)
    if args.charge_point_id is None:  # csms charger CP_ID
        return cli_api.show_charger(cli, args, args.first)
    if args.first in SECURITY_ACTIONS:  # set-password / set-profile / security-events CP_ID
        request = security_request(args)
        return 2 if request is None else _request(cli, args.url, *request, None)
    if args.first not in _DECISIONS:
        print(f"csms: {args.first!r} is not accept, reject or pending", file=sys.stderr)
        return 2
    path = f"/api/charge-points/{args.charge_point_id}/registration"
    return _request(cli, args.url, "PUT", path, {"status": _DECISIONS[args.first]}, None)


def _request(
    cli: CliSettings,
    url: str | None,
    method: str,
    path: str,
    body: Any,
    params: dict[str, Any] | None,
) -> int:
    response = cli_api.call_api(cli, url, method, path, json_body=body, params=params, timeout=660)
    if response is None or not response.is_success:
        return cli_api.fail(response)  # one line on stderr, whatever the body
    print(json.dumps(response.json(), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
