"""Helpers for tests that need a connected vehicle without driving a real Smartcar client."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import httpx

from simulators.smartcar_fake.server import RunningFake

PLUG_AND_CHARGE_SCOPE = (
    "required:read_vehicle_info read_vin read_battery read_charge control_charge"
)


async def authorize_code(
    client: httpx.AsyncClient,
    running: RunningFake,
    *vins: str,
    scope: str = PLUG_AND_CHARGE_SCOPE,
    state: str = "test-state",
) -> dict[str, str]:
    """Log the owner of ``vins`` in at Connect; return the redirect's query parameters."""
    running.fake.login(*vins)
    config = running.fake.config
    response = await client.get(
        f"{running.connect_url}/oauth/authorize",
        params={
            "response_type": "code",
            "client_id": config.client_id,
            "redirect_uri": config.redirect_uris[0],
            "scope": scope,
            "state": state,
        },
        follow_redirects=False,
    )
    if response.status_code != 302:
        raise AssertionError(f"Connect did not redirect: {response.status_code} {response.text}")
    query = parse_qs(urlsplit(response.headers["location"]).query)
    return {key: values[0] for key, values in query.items()}


async def connect_vehicles(
    client: httpx.AsyncClient,
    running: RunningFake,
    *vins: str,
    scope: str = PLUG_AND_CHARGE_SCOPE,
) -> dict[str, str | int]:
    """Full Connect + code exchange over HTTP; returns the token endpoint's JSON."""
    params = await authorize_code(client, running, *vins, scope=scope)
    config = running.fake.config
    response = await client.post(
        f"{running.auth_url}/oauth/token",
        data={
            "grant_type": "authorization_code",
            "code": params["code"],
            "redirect_uri": config.redirect_uris[0],
        },
        auth=(config.client_id, config.client_secret),
    )
    response.raise_for_status()
    tokens: dict[str, str | int] = response.json()
    return tokens
