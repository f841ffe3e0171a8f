"""Operator routes for transactions: filtered cursor pages and one transaction in full."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from csms.db import transaction_listings
from csms.db.transaction_listings import TransactionFilter
from csms.http.paging import (
    MAX_LIMIT,
    InvalidCursor,
    decode_timestamp_cursor,
    encode_cursor,
    jsonable,
)
from csms.http.problems import problem
from csms.http.schemas import TransactionDetail, TransactionPage, errors

if TYPE_CHECKING:
    import asyncpg

    from csms.plugins import TransactionLink, TransactionParameter


def _energy_wh(row: dict[str, Any]) -> int | None:
    # A meter that went backwards is flagged, never turned into a negative energy.
    # An open transaction counts up to its latest stored energy register reading.
    start = row["meter_start_wh"]
    stop = row["meter_stop_wh"] if row["meter_stop_wh"] is not None else row["meter_last_wh"]
    if stop is None or row["meter_anomaly"] or stop < start:
        return None
    return int(stop - start)


def _item(row: dict[str, Any]) -> dict[str, Any]:
    energy_wh = _energy_wh(row)
    row.pop("meter_last_wh", None)
    return jsonable({**row, "energy_wh": energy_wh})


def _aware(name: str, value: datetime | None) -> JSONResponse | None:
    if value is not None and value.tzinfo is None:
        detail = f"invalid value for {name}: give a time zone (Z or +hh:mm)"
        return problem(422, "Invalid request", detail, field=name)
    return None


def _openapi_parameter(parameter: TransactionParameter) -> dict[str, Any]:
    return {
        "name": parameter.name,
        "in": "query",
        "required": False,
        "description": parameter.description,
        "schema": dict(parameter.schema),
    }


def create_router(pool: asyncpg.Pool, links: Sequence[TransactionLink] = ()) -> APIRouter:
    """``links``: the plug-ins' filters and per-transaction records (csms/plugins.py)."""
    router = APIRouter(prefix="/api/transactions", tags=["transactions"])
    parameters = [parameter for link in links for parameter in link.parameters]
    details = [link.detail for link in links if link.detail is not None]

    @router.get(
        "",
        response_model=TransactionPage,
        responses=errors(422),
        summary="Transactions, newest first, filtered",
        description=(
            "`from`/`to` bound the start time and need a time zone; the other filters "
            "are added by plug-ins (the Smartcar bridge: `vin`, `account_id`)."
        ),
        openapi_extra={"parameters": [_openapi_parameter(p) for p in parameters]},
    )
    async def list_transactions(
        request: Request,
        charge_point_id: str | None = None,
        id_tag: str | None = None,
        active: bool | None = None,
        start_from: datetime | None = Query(default=None, alias="from"),  # noqa: B008
        start_to: datetime | None = Query(default=None, alias="to"),  # noqa: B008
        limit: int = Query(default=100, ge=1, le=MAX_LIMIT),
        cursor: str | None = None,
    ) -> JSONResponse:
        for name, value in (("from", start_from), ("to", start_to)):
            if (refused := _aware(name, value)) is not None:
                return refused
        try:
            after = decode_timestamp_cursor("tx", cursor) if cursor else None
        except InvalidCursor as exc:
            return problem(
                422, "Invalid request", f"invalid value for cursor: {exc}", field="cursor"
            )
        extra = []
        for parameter in parameters:
            text = request.query_params.get(parameter.name)
            if text is None:
                continue
            try:
                value = parameter.parse(text)
            except ValueError as exc:
                detail = f"invalid value for {parameter.name}: {exc}"
                return problem(422, "Invalid request", detail, field=parameter.name)
            extra.append(_condition(parameter, value))
        where = TransactionFilter(
            charge_point_id=charge_point_id,
            id_tag=id_tag,
            active=active,
            start_from=start_from,
            start_to=start_to,
            extra=extra,
        )
        rows = await transaction_listings.transactions(pool, where, after=after, limit=limit)
        next_cursor = None
        if len(rows) == limit:
            last = rows[-1]
            next_cursor = encode_cursor("tx", last["start_timestamp"], last["id"])
        return JSONResponse({"items": [_item(r) for r in rows], "next_cursor": next_cursor})

    @router.get(
        "/{transaction_id}",
        response_model=TransactionDetail,
        responses=errors(404, 422),
        summary="One transaction with its meter values and plug-and-charge session",
    )
    async def get_transaction(transaction_id: int) -> JSONResponse:
        found = await transaction_listings.transaction(pool, transaction_id)
        if found is None:
            detail = f"transaction {transaction_id} does not exist"
            return problem(404, "Unknown transaction", detail)
        session = None
        for read in details:  # the first plug-in that keeps a record of it
            if (session := await read(pool, transaction_id)) is not None:
                break
        found["session"] = session
        return JSONResponse(_item(found))

    return router


def _condition(parameter: TransactionParameter, value: Any) -> Any:
    # Bound here, not in the loop, so each condition keeps its own value.
    return lambda bind: parameter.condition(value, bind)
