"""Pure pieces of the cluster: subject names and the event codec."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from csms.cluster import codec
from csms.cluster.subjects import charger_from_token, charger_token, command_subject
from csms.domain.events import MeterSampled, TransactionStarted


@pytest.mark.parametrize("identity", ["CP-001", "cp_1", "a.b", "x*y", "sp ace", "gt>", "~7e", "Ü"])
def test_every_identity_gets_one_reversible_subject_token(identity: str) -> None:
    token = charger_token(identity)
    assert not set(token) & set(".*> \t")
    assert charger_from_token(token) == identity


def test_identities_that_look_alike_get_different_subjects() -> None:
    assert command_subject("a.b") != command_subject("a_b") != command_subject("a")


def test_events_survive_the_trip_and_their_id_is_their_content() -> None:
    at = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
    event = TransactionStarted("CP-1", 2, 17, "TAG", 1234, at)
    data = codec.encode(event)
    assert codec.decode(data) == event
    again = codec.encode(TransactionStarted("CP-1", 2, 17, "TAG", 1234, at))
    assert codec.message_id(again) == codec.message_id(data)
    other = codec.encode(MeterSampled("CP-1", 2, 17, 1300.0, None, at))
    assert codec.message_id(other) != codec.message_id(data)
    assert codec.decode(other) == MeterSampled("CP-1", 2, 17, 1300.0, None, at)


def test_an_unknown_event_type_is_refused_by_name() -> None:
    with pytest.raises(codec.UnknownEvent, match="FromTheFuture"):
        codec.decode(b'{"type":"FromTheFuture","fields":{}}')
