"""Pure authorisation rules for id tags (OCPP 1.6 section 5.2, IdTagInfo)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

_ID_TAG_SEPARATORS = re.compile(r"[\s:\-]")


def canonical_id_tag(id_tag: str) -> str:
    """Key for matching id tags: upper case, no separators (hex UIDs come both ways)."""
    return _ID_TAG_SEPARATORS.sub("", id_tag).upper()


@dataclass(slots=True, frozen=True)
class IdTagRecord:
    id_tag: str
    status: str
    expiry_date: datetime | None
    parent_id_tag: str | None


def id_tag_info(record: IdTagRecord | None, now: datetime) -> dict[str, Any]:
    """The IdTagInfo to answer for ``record`` at ``now``; unknown tags are Invalid."""
    if record is None:
        return {"status": "Invalid"}
    status = record.status
    if status == "Accepted" and record.expiry_date is not None and record.expiry_date <= now:
        status = "Expired"
    info: dict[str, Any] = {"status": status}
    if record.expiry_date is not None:
        info["expiryDate"] = record.expiry_date.isoformat()
    if record.parent_id_tag:
        info["parentIdTag"] = record.parent_id_tag
    return info
