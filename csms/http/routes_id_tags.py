"""Operator routes for the authorisation list, and pushing it to a charger (SendLocalList)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

import structlog
from fastapi import APIRouter, Body, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, field_validator

from csms.db import listings, operator_actions
from csms.domain.authorization import IdTagRecord, id_tag_info
from csms.http.paging import MAX_LIMIT, InvalidCursor, decode_cursor, encode_cursor, jsonable
from csms.http.problems import command_problem, problem
from csms.http.schemas import COMMAND_ERRORS, IdTag, IdTagPage, LocalListOut, errors
from csms.ocpp16.errors import CallErrorReceived, CommandError

if TYPE_CHECKING:
    import asyncpg

    from csms.ports import CommandPort

log = structlog.get_logger()

# OCPP 1.6 IdToken is CiString20Type: longer tags (a field deviation we accept on the
# way in) cannot be put in a SendLocalList, so they are left out and reported.
OCPP_ID_TOKEN_MAX = 20

IdTagStatus = Literal["Accepted", "Blocked", "Expired", "Invalid", "ConcurrentTx"]


def _aware(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        raise ValueError("give a time zone (Z or +hh:mm)")
    return value


class IdTagIn(BaseModel):
    id_tag: str = Field(min_length=1, max_length=64)
    status: IdTagStatus = "Accepted"
    expiry_date: datetime | None = None
    parent_id_tag: str | None = Field(default=None, min_length=1, max_length=OCPP_ID_TOKEN_MAX)

    _check_expiry = field_validator("expiry_date")(_aware)


class ExpireIn(BaseModel):
    expiry_date: datetime | None = None

    _check_expiry = field_validator("expiry_date")(_aware)


def _tag(row: dict[str, Any], now: datetime) -> dict[str, Any]:
    record = IdTagRecord(row["id_tag"], row["status"], row["expiry_date"], row["parent_id_tag"])
    # What a charger would be told right now (an Accepted tag past its expiry is Expired).
    effective = id_tag_info(record, now)["status"]
    return jsonable({**row, "effective_status": effective})


def _unknown(id_tag: str) -> JSONResponse:
    return problem(404, "Unknown id tag", f"{id_tag!r} is not on the authorisation list")


def create_router(
    pool: asyncpg.Pool, commands: CommandPort, clock: Callable[[], datetime]
) -> APIRouter:
    router = APIRouter(tags=["id tags"])

    @router.get(
        "/api/id-tags",
        response_model=IdTagPage,
        responses=errors(422),
        summary="The authorisation list, by canonical id tag",
    )
    async def list_id_tags(
        status: IdTagStatus | None = None,
        limit: int = Query(default=MAX_LIMIT, ge=1, le=MAX_LIMIT),
        cursor: str | None = None,
    ) -> JSONResponse:
        try:
            after = str(decode_cursor("tag", cursor)[0]) if cursor else None
        except (InvalidCursor, IndexError):
            return problem(422, "Invalid request", "invalid value for cursor", field="cursor")
        rows = await listings.id_tags(pool, status=status, after_key=after, limit=limit)
        now = clock()
        next_cursor = encode_cursor("tag", rows[-1]["id_tag_key"]) if len(rows) == limit else None
        return JSONResponse({"items": [_tag(r, now) for r in rows], "next_cursor": next_cursor})

    @router.post(
        "/api/id-tags",
        status_code=201,
        response_model=IdTag,
        responses=errors(409, 422),
        summary="Add an id tag to the authorisation list",
    )
    async def create_id_tag(request: Request, body: IdTagIn) -> JSONResponse:
        try:
            row = await operator_actions.create_id_tag(
                pool, body.id_tag, body.status, body.expiry_date, body.parent_id_tag
            )
        except operator_actions.IdTagExists:
            detail = f"{body.id_tag!r} (or the same UID written differently) is already listed"
            return problem(409, "Id tag exists", detail)
        _log_change(request, "created", row)
        return JSONResponse(_tag(row, clock()), status_code=201)

    @router.post(
        "/api/id-tags/{id_tag}/block",
        response_model=IdTag,
        responses=errors(404),
        summary="Block an id tag",
    )
    async def block(request: Request, id_tag: str) -> JSONResponse:
        row = await operator_actions.set_id_tag_status(pool, id_tag, "Blocked")
        if row is None:
            return _unknown(id_tag)
        _log_change(request, "blocked", row)
        return JSONResponse(_tag(row, clock()))

    @router.post(
        "/api/id-tags/{id_tag}/unblock",
        response_model=IdTag,
        responses=errors(404),
        summary="Unblock an id tag (back to Accepted; an expiry date stays)",
    )
    async def unblock(request: Request, id_tag: str) -> JSONResponse:
        # Back to Accepted; an expiry date stays (expired tags are refused by their date).
        row = await operator_actions.set_id_tag_status(pool, id_tag, "Accepted")
        if row is None:
            return _unknown(id_tag)
        _log_change(request, "unblocked", row)
        return JSONResponse(_tag(row, clock()))

    @router.post(
        "/api/id-tags/{id_tag}/expire",
        response_model=IdTag,
        responses=errors(404, 422),
        summary="Expire an id tag now, or at `expiry_date`",
    )
    async def expire(
        request: Request,
        id_tag: str,
        body: ExpireIn | None = Body(default=None),  # noqa: B008
    ) -> JSONResponse:
        now = clock()
        at = body.expiry_date if body is not None and body.expiry_date is not None else now
        row = await operator_actions.set_id_tag_expiry(pool, id_tag, at)
        if row is None:
            return _unknown(id_tag)
        _log_change(request, "expired", row)
        return JSONResponse(_tag(row, now))

    @router.delete(
        "/api/id-tags/{id_tag}",
        status_code=204,
        responses=errors(404),
        summary="Remove an id tag from the authorisation list",
    )
    async def delete(request: Request, id_tag: str) -> Response:
        if not await operator_actions.delete_id_tag(pool, id_tag):
            return _unknown(id_tag)
        _log_change(request, "deleted", {"id_tag": id_tag})
        return Response(status_code=204)

    async def _charger_list_version(charge_point_id: str, timeout: float | None) -> int | None:
        try:
            answer = await commands.send(
                charge_point_id, "GetLocalListVersion", {}, timeout=timeout
            )
        except CallErrorReceived:
            return None  # firmware without GetLocalListVersion: our own record decides
        return int(answer["listVersion"])

    @router.post(
        "/api/charge-points/{charge_point_id}/local-list",
        response_model=LocalListOut,
        responses=errors(*COMMAND_ERRORS),
        summary="Push the whole authorisation list to a charger (SendLocalList, Full)",
        description="Tags longer than OCPP's 20 characters are left out and listed.",
    )
    async def send_local_list(
        request: Request,
        charge_point_id: str,
        timeout: float | None = Query(default=None, gt=0, le=600),
    ) -> JSONResponse:
        now = clock()
        entries, skipped = [], []
        for row in await operator_actions.local_list_entries(pool):
            tag = row["id_tag"]
            if len(tag) > OCPP_ID_TOKEN_MAX:
                skipped.append(tag)
                continue
            record = IdTagRecord(tag, row["status"], row["expiry_date"], row["parent_id_tag"])
            entries.append({"idTag": tag, "idTagInfo": id_tag_info(record, now)})
        try:
            # The version continues from the charger's own (1.6 §5.10), not from 1.
            version = await operator_actions.next_local_list_version(
                pool, charge_point_id, await _charger_list_version(charge_point_id, timeout)
            )
            # OCPP 1.6 §5.15: a Full update replaces the charger's list with exactly this one.
            payload = {
                "listVersion": version,
                "updateType": "Full",
                "localAuthorizationList": entries,
            }
            answer = await commands.send(charge_point_id, "SendLocalList", payload, timeout=timeout)
        except CommandError as exc:
            return command_problem(exc)
        status = str(answer.get("status"))
        await operator_actions.record_local_list_push(
            pool, charge_point_id, version, len(entries), status, now
        )
        log.info(
            "http.local_list_sent",
            charge_point_id=charge_point_id,
            list_version=version,
            entries=len(entries),
            skipped=len(skipped),
            status=status,
            operator=getattr(request.state, "operator", None),
        )
        return JSONResponse(
            {
                "charge_point_id": charge_point_id,
                "list_version": version,
                "entries": len(entries),
                "skipped_id_tags": skipped,
                "status": status,
                "answer": answer,
            }
        )

    return router


def _log_change(request: Request, change: str, row: dict[str, Any]) -> None:
    log.info(
        "http.id_tag_changed",
        change=change,
        id_tag=row["id_tag"],
        operator=getattr(request.state, "operator", None),
    )
