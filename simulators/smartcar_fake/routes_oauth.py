"""Connect (``GET /oauth/authorize``) and the token endpoint (``POST /oauth/token``)."""

from __future__ import annotations

import base64
import binascii
import hmac
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response

from simulators.smartcar_fake.connect import ConnectPageError, authorize
from simulators.smartcar_fake.errors import OAuthError
from simulators.smartcar_fake.state import FakeSmartcar

router = APIRouter()


def fake_of(request: Request) -> FakeSmartcar:
    fake: FakeSmartcar = request.app.state.fake
    return fake


@router.get("/oauth/authorize")
async def connect_authorize(request: Request) -> Response:
    try:
        location = authorize(fake_of(request), dict(request.query_params))
    except ConnectPageError as exc:
        # An untrusted redirect URI must not receive anything: show an error page instead.
        return PlainTextResponse(str(exc), status_code=400)
    return RedirectResponse(location, status_code=302)


def _client_credentials(fake: FakeSmartcar, authorization: str | None) -> None:
    scheme, _, encoded = (authorization or "").partition(" ")
    try:
        client_id, _, secret = base64.b64decode(encoded, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        client_id, secret = "", ""
    ok = (
        scheme.lower() == "basic"
        and hmac.compare_digest(client_id, fake.config.client_id)
        and hmac.compare_digest(secret, fake.config.client_secret)
    )
    if not ok:
        # §3: status unconfirmed for auth.smartcar.com; 401 invalid_client as on iam.smartcar.com.
        raise OAuthError(401, "invalid_client", "Invalid client credentials.")


@router.post("/oauth/token")
async def token(request: Request) -> JSONResponse:
    fake = fake_of(request)
    _client_credentials(fake, request.headers.get("authorization"))
    # Parsed by hand: Starlette's request.form() needs python-multipart, which we do not ship.
    form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
    grant_type = form.get("grant_type")
    if grant_type == "authorization_code":
        code = form.get("code", "")
        pair = fake.tokens.exchange_code(code, form.get("redirect_uri"))
    elif grant_type == "refresh_token":
        pair = fake.tokens.refresh(form.get("refresh_token", ""))
    else:
        raise OAuthError(400, "unsupported_grant_type", f"Unsupported grant_type: {grant_type}.")
    # OAuth 2.0 (RFC 6749 5.1): token responses must not be cached.
    return JSONResponse(pair.body(), headers={"Cache-Control": "no-store", "Pragma": "no-cache"})
