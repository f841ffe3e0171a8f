"""Id tag authorisation rules (csms.domain.authorization)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from csms.domain.authorization import IdTagRecord, canonical_id_tag, id_tag_info

NOW = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)


def _record(
    status: str = "Accepted",
    expiry_date: datetime | None = None,
    parent_id_tag: str | None = None,
) -> IdTagRecord:
    return IdTagRecord("04A23BC1", status, expiry_date, parent_id_tag)


def test_unknown_id_tag_is_invalid() -> None:
    assert id_tag_info(None, NOW) == {"status": "Invalid"}


def test_accepted_id_tag_without_expiry_is_accepted_with_status_only() -> None:
    assert id_tag_info(_record(), NOW) == {"status": "Accepted"}


def test_accepted_id_tag_expiring_later_is_accepted_and_says_when_it_expires() -> None:
    expiry = NOW + timedelta(days=30)

    assert id_tag_info(_record(expiry_date=expiry), NOW) == {
        "status": "Accepted",
        "expiryDate": "2024-03-31T12:00:00+00:00",
    }


@pytest.mark.parametrize("age", [timedelta(0), timedelta(seconds=1), timedelta(days=400)])
def test_accepted_id_tag_at_or_past_its_expiry_is_expired(age: timedelta) -> None:
    expiry = NOW - age

    info = id_tag_info(_record(expiry_date=expiry), NOW)

    assert info == {"status": "Expired", "expiryDate": expiry.isoformat()}


@pytest.mark.parametrize("status", ["Blocked", "Invalid", "ConcurrentTx", "Expired"])
def test_non_accepted_status_is_answered_as_stored(status: str) -> None:
    assert id_tag_info(_record(status=status), NOW) == {"status": status}


def test_blocked_id_tag_past_its_expiry_stays_blocked() -> None:
    info = id_tag_info(_record(status="Blocked", expiry_date=NOW - timedelta(days=1)), NOW)

    assert info["status"] == "Blocked"


def test_parent_id_tag_is_included_when_set() -> None:
    assert id_tag_info(_record(parent_id_tag="FLEET-1"), NOW) == {
        "status": "Accepted",
        "parentIdTag": "FLEET-1",
    }


def test_empty_parent_id_tag_is_left_out() -> None:
    assert "parentIdTag" not in id_tag_info(_record(parent_id_tag=""), NOW)


def test_expiry_date_is_an_iso_string_with_an_offset() -> None:
    info = id_tag_info(_record(expiry_date=NOW + timedelta(hours=1)), NOW)

    assert datetime.fromisoformat(info["expiryDate"]) == NOW + timedelta(hours=1)
    assert datetime.fromisoformat(info["expiryDate"]).tzinfo is not None


@pytest.mark.parametrize(
    ("sent", "canonical"),
    [
        ("04A23BC1", "04A23BC1"),
        ("04a23bc1", "04A23BC1"),
        ("04:a2:3b:c1", "04A23BC1"),
        ("04-A2-3B-C1", "04A23BC1"),
        ("04 A2 3B C1", "04A23BC1"),
        ("04\tA2\n3B:c1", "04A23BC1"),
        ("  04A23BC1  ", "04A23BC1"),
        ("driver_7", "DRIVER_7"),
        ("", ""),
    ],
)
def test_canonical_id_tag_ignores_case_and_separators(sent: str, canonical: str) -> None:
    assert canonical_id_tag(sent) == canonical


def test_hex_uid_with_and_without_separators_have_the_same_key() -> None:
    assert canonical_id_tag("04:A2:3B:C1:D4:E5:F6") == canonical_id_tag("04a23bc1d4e5f6")
