"""Operator routes for transactions: filtered cursor pages and one transaction in full."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Query
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
from csms.log import mask_vin

if TYPE_CHECKING:
    import asyncpg


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


def create_router(pool: asyncpg.Pool) -> APIRouter:
    router = APIRouter(prefix="/api/transactions", tags=["transactions"])

    @router.get(
        "",
        response_model=TransactionPage,
        responses=errors(422),
        summary="Transactions, newest first, filtered",
        description=(
            "`from`/`to` bound the start time and need a time zone; `vin` and `account_id` "
            "match the bridge's plug-and-charge sessions."
        ),
    )
    async def list_transactions(
        charge_point_id: str | None = None,
        id_tag: str | None = None,
        vin: str | None = Query(default=None, min_length=1, max_length=32),
        account_id: int | None = None,
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
        where = TransactionFilter(
            charge_point_id=charge_point_id,
            id_tag=id_tag,
            vin=vin,
            account_id=account_id,
            active=active,
            start_from=start_from,
            start_to=start_to,
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
        if found["session"] is not None:
            found["session"]["vin"] = mask_vin(found["session"]["vin"])
        return JSONResponse(_item(found))

    return router
