"""Smartcar Connect without a browser: decide the redirect at once (§2).

No page is shown: the simulated driver's choices come from ``FakeSmartcar.connect``.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlencode, urlsplit, urlunsplit

from simulators.smartcar_fake.state import FakeSmartcar
from simulators.world import UnknownVehicle, Vehicle


class ConnectPageError(Exception):
    """Connect shows an error page instead of redirecting (the redirect URI is not trusted)."""


def _redirect(uri: str, params: dict[str, str]) -> str:
    parts = urlsplit(uri)
    query = "&".join(q for q in (parts.query, urlencode(params)) if q)
    return urlunsplit(parts._replace(query=query))


def requested_scopes(scope: str | None, defaults: tuple[str, ...]) -> tuple[set[str], set[str]]:
    """(required, optional) scopes from ``required:read_battery read_vin ...``."""
    if not scope:
        return set(), set(defaults)
    required, optional = set(), set()
    for item in scope.split():
        if item.startswith("required:"):
            required.add(item.removeprefix("required:"))
        else:
            optional.add(item)
    return required, optional - required


def authorize(fake: FakeSmartcar, params: Mapping[str, str]) -> str:
    """The ``Location`` Connect redirects to for these query parameters."""
    if params.get("client_id") != fake.config.client_id:
        raise ConnectPageError("Unknown client_id.")
    redirect_uri = params.get("redirect_uri") or fake.config.redirect_uris[0]
    if redirect_uri not in fake.config.redirect_uris:
        raise ConnectPageError("redirect_uri does not match a registered redirect URI.")
    if params.get("response_type") != "code":
        raise ConnectPageError("response_type must be code.")
    state = {"state": params["state"]} if "state" in params else {}
    knobs = fake.connect
    if knobs.decline:
        return _redirect(
            redirect_uri,
            {
                "error": "access_denied",
                "error_description": "User denied access to application.",
                **state,
            },
        )
    if knobs.error is not None:
        return _redirect(
            redirect_uri,
            {"error": knobs.error, "error_description": f"Connect error: {knobs.error}.", **state},
        )
    vehicles = _selected_vehicles(fake, params)
    if not vehicles:
        return _redirect(
            redirect_uri,
            {
                "error": "no_vehicles",
                "error_description": "No vehicles were found for this account.",
                **state,
            },
        )
    required, optional = requested_scopes(params.get("scope"), fake.config.default_scopes)
    scopes = frozenset(required | (optional - knobs.declined_scopes))
    code = fake.tokens.issue_code(
        vehicles[0].owner_id, {v.smartcar_id for v in vehicles}, scopes, redirect_uri
    )
    # §2/§14.1: the redirect carries the user's id next to the code (v3's sc-user-id).
    return _redirect(redirect_uri, {"code": code, "user_id": vehicles[0].owner_id, **state})


def _selected_vehicles(fake: FakeSmartcar, params: Mapping[str, str]) -> list[Vehicle]:
    single_vin = params.get("single_select_vin")
    # single_select_vin takes precedence over make and over the driver's other cars (§2).
    vins = [single_vin] if single_vin else fake.connect.login_vins
    try:
        vehicles = [fake.world.vehicle(vin) for vin in vins]
    except UnknownVehicle:
        return []
    make = params.get("make")
    if make and not single_vin:
        vehicles = [v for v in vehicles if v.make.upper() == make.upper()]
    if params.get("single_select", "").lower() == "true":
        vehicles = vehicles[:1]
    return vehicles
