"""``python -m simulators.smartcar_fake --port 8090 --client-id ... --client-secret ...``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys

from simulators.smartcar_fake.limits import CostLimits
from simulators.smartcar_fake.server import bind_localhost, serve
from simulators.smartcar_fake.state import FakeConfig, FakeSmartcar
from simulators.world import World

# An instance, not the class: on a slots dataclass the class attributes are descriptors.
_DEFAULTS = FakeConfig()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Fake Smartcar API on 127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--client-id", default=_DEFAULTS.client_id)
    parser.add_argument("--client-secret", default=_DEFAULTS.client_secret)
    parser.add_argument(
        "--redirect-uri", action="append", help="registered redirect URI (repeatable)"
    )
    parser.add_argument("--chargers", type=int, default=20)
    parser.add_argument("--vehicles", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--access-token-ttl", type=float, default=7200.0)
    parser.add_argument("--refresh-grace", type=float, default=60.0)
    parser.add_argument("--webhook-url", help="deliver webhooks here (VERIFY sent at start)")
    parser.add_argument("--amt", help="application management token (webhook signing key)")
    parser.add_argument(
        "--limits",
        choices=("smartcar", "off"),
        default="off",
        help="cost limits (§9): Smartcar's published defaults, or none (the default)",
    )
    parser.add_argument(
        "--retire-v2", action="store_true", help="answer every v2.0 path as the switched-off API"
    )
    return parser.parse_args(argv)


async def main(args: argparse.Namespace) -> None:
    config = FakeConfig(
        client_id=args.client_id,
        client_secret=args.client_secret,
        redirect_uris=tuple(args.redirect_uri or _DEFAULTS.redirect_uris),
        access_token_ttl_s=args.access_token_ttl,
        refresh_grace_s=args.refresh_grace,
        seed=args.seed,
    )
    world = World.generate(chargers=args.chargers, vehicles=args.vehicles, seed=args.seed)
    fake = FakeSmartcar(world, config)
    if args.limits == "smartcar":
        fake.costs.configure(CostLimits.smartcar_defaults())
    if args.webhook_url and args.amt:
        # The VERIFY challenge goes out as soon as the server is up.
        fake.webhooks.configure(args.webhook_url, args.amt)
    fake.v3.v2_retired = args.retire_v2
    # Bound and listening before the line is printed, so that --port 0 prints the port the
    # OS chose and a client that read the line is queued until uvicorn accepts.
    sock = bind_localhost(args.port)
    sock.listen(2048)
    print(
        f"fake Smartcar on http://127.0.0.1:{sock.getsockname()[1]} (API at /v3 and /v2.0, "
        "management at /management/v3, app tokens at /oauth2/token)",
        flush=True,
    )
    await serve(fake, sock)


if __name__ == "__main__":
    arguments = parse_args()
    try:
        # uvicorn shuts down cleanly on Ctrl-C, then re-raises the signal: not an error here.
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(main(arguments))
    except OSError as exc:  # the port is taken: one line, not a traceback
        sys.exit(f"smartcar_fake: cannot listen on 127.0.0.1:{arguments.port}: {exc.strerror}")
