"""The fake's ASGI app: routers, SC-Request-Id on every response, errors in Smartcar's shape."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from simulators.smartcar_fake import (
    routes_admin,
    routes_admin_v3,
    routes_management,
    routes_oauth,
    routes_v3,
    routes_vehicles,
)
from simulators.smartcar_fake.errors import ApiError, OAuthError
from simulators.smartcar_fake.state import FakeSmartcar
from simulators.smartcar_fake.v3_errors import v3_body

# Paths answered in the v3 JSON:API error shape (§8): Vehicles API v3 and Management API.
V3_PREFIXES = ("/v3/", "/management/v3/")


class RequestIdMiddleware:
    """Give every request a UUID, exposed as ``request.state.request_id`` and ``SC-Request-Id``.

    Plain ASGI rather than ``BaseHTTPMiddleware``: cheaper, and it sees error responses too.
    Every request is counted in ``fake.request_count`` (the world's summary reports it).
    """

    def __init__(self, app: ASGIApp, fake: FakeSmartcar) -> None:
        self.app = app
        self.fake = fake

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        self.fake.request_count += 1
        request_id = str(uuid.uuid4())
        scope.setdefault("state", {})["request_id"] = request_id

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.append((b"sc-request-id", request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_id)


def api_error_response(request: Request, exc: ApiError) -> JSONResponse:
    request_id = request.state.request_id
    v3 = request.url.path.startswith(V3_PREFIXES)
    body = v3_body(exc, request_id) if v3 else exc.body(request_id)
    return JSONResponse(body, status_code=exc.status, headers=exc.headers)


def create_app(fake: FakeSmartcar) -> ASGIApp:
    """An ASGI app serving ``fake``; its lifespan starts and stops the webhook dispatcher."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await fake.webhooks.start()
        try:
            yield
        finally:
            await fake.webhooks.close()

    app = FastAPI(title="Fake Smartcar", lifespan=lifespan, openapi_url=None, docs_url=None)
    app.state.fake = fake
    app.include_router(routes_oauth.router)
    app.include_router(routes_vehicles.router)
    app.include_router(routes_admin.router)
    app.include_router(routes_v3.iam_router)
    app.include_router(routes_v3.router)
    app.include_router(routes_management.router)
    app.include_router(routes_admin_v3.router)

    @app.exception_handler(ApiError)
    async def on_api_error(request: Request, exc: ApiError) -> Response:
        return api_error_response(request, exc)

    @app.exception_handler(OAuthError)
    async def on_oauth_error(request: Request, exc: OAuthError) -> Response:
        return JSONResponse(exc.body(), status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def on_validation_error(request: Request, exc: RequestValidationError) -> Response:
        if not request.url.path.startswith(("/v2.0/", *V3_PREFIXES)):
            return JSONResponse({"detail": exc.errors()}, status_code=422)
        return api_error_response(request, ApiError("VALIDATION:PARAMETER"))

    @app.exception_handler(StarletteHTTPException)
    async def on_http_error(request: Request, exc: StarletteHTTPException) -> Response:
        # §1: unknown paths under a version answer RESOURCE_NOT_FOUND in the v2 shape.
        path = request.url.path
        if exc.status_code == 404 and path.startswith(("/v", "/management/v3/")):
            known = path.startswith(("/v2.0/", *V3_PREFIXES))
            if path.startswith("/v2.0/") and request.app.state.fake.v3.v2_retired:
                known = False  # a retired version answers VERSION for every path
            kind = "PATH" if known else "VERSION"
            return api_error_response(request, ApiError(f"RESOURCE_NOT_FOUND:{kind}"))
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code)

    # Wrapped outside FastAPI's own error middleware so even a crash's 500 carries the id.
    return RequestIdMiddleware(app, fake)
