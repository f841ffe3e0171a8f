"""v3 error bodies in the JSON:API shape (smartcar-api.md §8): ``{"errors": [{...}]}`` with
``status`` as a string. The same ``ApiError`` the v2.0 routes raise renders either shape."""

from __future__ import annotations

from typing import Any

from simulators.smartcar_fake.errors import ApiError

_TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    409: "Conflict",
    429: "Too Many Requests",
    430: "Billing Limit",
    500: "Internal Server Error",
    501: "Not Implemented",
    502: "Bad Gateway",
}
V3_DOCS = "https://smartcar.com/docs/errors/api-errors/v3"


def v3_body(error: ApiError, request_id: str) -> dict[str, Any]:
    flat = error.body(request_id)
    anchor = (error.code or error.error_type).lower().replace("_", "-")
    item: dict[str, Any] = {
        "status": str(error.status),
        "type": error.error_type,
        "code": error.code,
        "title": _TITLES.get(error.status, "Error"),
        "detail": flat["description"],
        "links": {
            "about": f"{V3_DOCS}/{error.error_type.lower().replace('_', '-')}-errors#{anchor}"
        },
        "resolution": flat["resolution"],
        "meta": {"requestId": request_id},
    }
    if "suggestedUserMessage" in flat:
        item["suggestedUserMessage"] = flat["suggestedUserMessage"]
    return {"errors": [item]}
