"""``/_fake/v3``: the v3 knobs over HTTP, for a fake run as its own process (not Smartcar)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel

from simulators.smartcar_fake.errors import split_kind
from simulators.smartcar_fake.routes_oauth import fake_of
from simulators.smartcar_fake.v3_state import COMMAND_MODES

router = APIRouter(prefix="/_fake/v3")


class V3Settings(BaseModel):
    v2_retired: bool | None = None
    client_secret: str | None = None
    app_token_ttl_s: float | None = None
    command_mode: str | None = None
    command_duration_s: float | None = None
    execution_failures: list[str] | None = None
    epoch_ms: bool | None = None
    page_size: int | None = None


@router.post("")
async def set_v3(request: Request, settings: V3Settings) -> dict[str, Any]:
    state = fake_of(request).v3
    if settings.command_mode is not None and settings.command_mode not in COMMAND_MODES:
        raise HTTPException(422, f"command_mode must be one of {', '.join(COMMAND_MODES)}")
    try:
        for kind in settings.execution_failures or ():
            split_kind(kind)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None
    for name, value in settings.model_dump(exclude_none=True).items():
        setattr(state, name, list(value) if isinstance(value, list) else value)
    return {
        "v2_retired": state.v2_retired,
        "app_token_ttl_s": state.app_token_ttl_s,
        "command_mode": state.command_mode,
        "command_duration_s": state.command_duration_s,
        "execution_failures": list(state.execution_failures),
        "epoch_ms": state.epoch_ms,
        "page_size": state.page_size,
        "token_requests": state.token_requests,
        "subscriptions": len(state.subscriptions),
    }


@router.post("/expire_app_tokens")
async def expire_app_tokens(request: Request) -> dict[str, int]:
    return {"expired": fake_of(request).v3.expire_app_tokens()}
