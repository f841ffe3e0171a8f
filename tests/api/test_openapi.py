"""``/openapi.json``: a valid document that declares the token, every success's shape and
every error a route can answer, as problem+json; and real answers that fit it."""

from __future__ import annotations

import inspect
import re
import types
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import jsonschema
import pytest
from fastapi.routing import APIRoute, iter_route_contexts
from openapi_spec_validator import validate

from csms.app import CentralSystem
from csms.db import id_tags
from tests.ocpp_client import ocpp_charger
from tests.ops.conftest import report_status, sample_energy, start_charging, stop_charging

PROBLEM_JSON = "application/problem+json"
_STATUS_IN_SOURCE = re.compile(r"(?:problem|_page)\(\s*(\d{3})\b")


@pytest.fixture
async def document(base_url: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=base_url) as client:
        response = await client.get("/openapi.json")
    assert response.status_code == 200
    return response.json()


def operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            yield path, method, operation


def _ours(value: Any) -> bool:
    module = getattr(value, "__module__", "") or ""
    return isinstance(value, types.FunctionType) and module.startswith(
        ("csms.", "smartcar_bridge.")
    )


def statuses_in_source(function: Callable[..., Any], seen: set[Any] | None = None) -> set[int]:
    """The problem statuses a route can answer: every ``problem(NNN`` in its body and in the
    module-level helpers of ours it calls (``_unknown``, ``command_problem``, ``_error``…)."""
    seen = set() if seen is None else seen
    if function in seen:
        return set()
    seen.add(function)
    source = inspect.getsource(function)
    found = {int(s) for s in _STATUS_IN_SOURCE.findall(source)}
    scope = {**function.__globals__, **_closure(function)}
    for name in set(re.findall(r"\b([A-Za-z_]\w*)\(", source)):
        helper = scope.get(name)
        if _ours(helper) and helper is not function:
            found |= statuses_in_source(helper, seen)
    # A mapping table read by the code (``_COMMAND_PROBLEMS``: error class -> (status, ...)).
    for name in set(re.findall(r"\b([A-Za-z_]\w*)\b", source)):
        table = scope.get(name)
        if isinstance(table, dict):
            found |= {
                v[0] for v in table.values() if isinstance(v, tuple) and v and type(v[0]) is int
            }
    return found


def _closure(function: Callable[..., Any]) -> dict[str, Any]:
    names = function.__code__.co_freevars
    cells = function.__closure__ or ()
    return {n: c.cell_contents for n, c in zip(names, cells, strict=True) if _has(c)}


def _has(cell: Any) -> bool:
    try:
        cell.cell_contents  # noqa: B018
    except ValueError:
        return False
    return True


async def test_openapi_document_is_a_valid_openapi_document(document: dict[str, Any]) -> None:
    validate(document)
    assert document["info"]["description"].startswith("Operator API")
    assert document["components"]["securitySchemes"]["operatorToken"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "An operator token from `csms token create NAME`.",
    }
    # Not a bare route list: the core's and the bridge's routes are all there.
    paths = set(document["paths"])
    assert {"/api/charge-points", "/api/transactions/{transaction_id}", "/api/sessions"} <= paths
    assert {"/api/dashboard/summary", "/api/dashboard/chargers", "/healthz"} <= paths


async def test_every_api_operation_requires_the_token_and_declares_401(
    document: dict[str, Any],
) -> None:
    for path, method, operation in operations(document):
        if path.startswith("/api/"):
            assert operation.get("security") == [{"operatorToken": []}], (method, path)
            assert "401" in operation["responses"], (method, path)
        else:
            assert "security" not in operation, (method, path)


async def test_every_operation_has_a_summary_and_a_schema_for_its_success(
    document: dict[str, Any],
) -> None:
    for path, method, operation in operations(document):
        where = (method, path)
        assert operation.get("summary"), where
        successes = {s: r for s, r in operation["responses"].items() if s.startswith(("2", "3"))}
        assert successes, where
        for status, response in successes.items():
            if status in ("204", "302"):
                continue
            content = response.get("content", {})
            if "text/html" in content:
                continue
            schema = content["application/json"]["schema"]
            assert schema and schema != {}, (where, status)


async def test_every_error_is_problem_json_with_the_problem_schema(
    document: dict[str, Any],
) -> None:
    refs = {"#/components/schemas/Problem", "#/components/schemas/ValidationProblem"}
    for path, method, operation in operations(document):
        for status, response in operation["responses"].items():
            if status[0] not in "45" or "text/html" in response.get("content", {}):
                continue  # the Smartcar callback's pages are for a driver's browser
            if path in ("/healthz", "/readyz"):
                assert "application/json" in response["content"]  # 503 is their usual body
                continue
            content = response["content"]
            assert list(content) == [PROBLEM_JSON], (method, path, status)
            assert content[PROBLEM_JSON]["schema"].get("$ref") in refs, (method, path, status)
    problem = document["components"]["schemas"]["ValidationProblem"]
    assert {"type", "title", "status", "detail", "errors"} <= set(problem["properties"])
    assert "HTTPValidationError" not in document["components"]["schemas"]


async def test_every_route_declares_the_errors_its_code_can_answer(
    api_system: CentralSystem, document: dict[str, Any]
) -> None:
    app = api_system._http.config.app
    checked = 0
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        if not isinstance(route, APIRoute) or not route.include_in_schema:
            continue
        found = statuses_in_source(route.endpoint)
        for method in context.methods or ():
            operation = document["paths"][context.path_format][method.lower()]
            missing = found - {int(s) for s in operation["responses"]}
            assert not missing, f"{method} {context.path_format} can answer {missing}, undeclared"
            checked += 1
    assert checked > 30
    # The analysis itself sees through helpers: the command route reaches every mapping.
    commands = next(
        c.original_route
        for c in iter_route_contexts(app.routes)
        if c.path_format.endswith("/commands/{action}")
    )
    assert isinstance(commands, APIRoute)
    assert {409, 422, 502, 503, 504} <= statuses_in_source(commands.endpoint)


def check(document: dict[str, Any], model: str, instance: Any) -> None:
    """Validate a real answer against a component schema of the document."""
    schema = {"$ref": f"#/components/schemas/{model}", "components": document["components"]}
    jsonschema.validate(instance, schema, cls=jsonschema.Draft202012Validator)


async def test_real_answers_match_the_declared_schemas(
    api_system: CentralSystem, api: httpx.AsyncClient, document: dict[str, Any]
) -> None:
    await id_tags.upsert(api_system.pool, "TAG-OAS")
    async with ocpp_charger(api_system.ocpp.port, "CP-OAS") as cp:
        tx = await start_charging(cp, "TAG-OAS", 1_000)
        await sample_energy(cp, tx, 2_500, 40)
        await stop_charging(cp, tx, 3_000)
        await report_status(cp, 1, "Available")
        answers = {
            "ChargePointPage": await api.get("/api/charge-points"),
            "ChargePointDetail": await api.get("/api/charge-points/CP-OAS"),
            "TransactionPage": await api.get("/api/transactions"),
            "TransactionDetail": await api.get(f"/api/transactions/{tx}"),
            "IdTagPage": await api.get("/api/id-tags"),
            "DashboardSummary": await api.get("/api/dashboard/summary"),
            "FleetPage": await api.get("/api/dashboard/chargers"),
            "StatusHistoryPage": await api.get("/api/charge-points/CP-OAS/status-history"),
            "SecurityStatus": await api.get("/api/charge-points/CP-OAS/security"),
            "SecurityEvents": await api.get("/api/charge-points/CP-OAS/security-events"),
            "SessionPage": await api.get("/api/sessions"),
            "Readiness": await api.get("/readyz"),
            "Health": await api.get("/healthz"),
        }
        command = await api.post("/api/charge-points/CP-OAS/commands/Reset", json={"type": "Soft"})
    for model, response in answers.items():
        assert response.status_code == 200, (model, response.text)
        check(document, model, response.json())
    assert command.status_code == 200
    check(document, "CommandAnswer", command.json())
    created = await api.post("/api/accounts", json={"name": "Ada", "payment_status": "valid"})
    assert created.status_code == 201
    check(document, "Account", created.json())
    for row in (await api.get("/api/accounts")).json():
        check(document, "AccountRow", row)
    detail = await api.get(f"/api/accounts/{created.json()['id']}")
    check(document, "AccountDetail", detail.json())

    unknown = await api.get("/api/charge-points/NOPE")
    invalid = await api.get("/api/transactions", params={"limit": 0})
    offline = await api.post("/api/charge-points/CP-OAS/commands/Reset", json={"type": "Soft"})
    for status, response, model in (
        (404, unknown, "Problem"),
        (422, invalid, "ValidationProblem"),
        (409, offline, "Problem"),
    ):
        assert response.status_code == status
        assert response.headers["content-type"] == PROBLEM_JSON
        check(document, model, response.json())
    async with httpx.AsyncClient(base_url=str(api.base_url)) as anonymous:
        refused = await anonymous.get("/api/charge-points")
    assert refused.status_code == 401
    check(document, "Problem", refused.json())
