"""The outgoing CALL queue (csms.ocppj.outgoing), with plain values: one in flight, in order."""

from __future__ import annotations

import pytest

from csms.ocppj.outgoing import OutgoingQueue


def test_first_call_may_go_at_once_the_next_waits_for_its_answer() -> None:
    queue = OutgoingQueue()
    assert queue.submit("a") is True
    queue.sent("a")
    assert queue.submit("b") is False
    assert queue.next_turn() is None
    assert queue.ahead_of("b") == 1
    assert queue.finished("a") == "b"
    queue.sent("b")
    assert queue.in_flight == "b"


def test_calls_go_in_the_order_they_were_submitted() -> None:
    queue = OutgoingQueue()
    for message_id in "abc":
        queue.submit(message_id)
    order = []
    while (turn := queue.next_turn()) is not None:
        queue.sent(turn)
        order.append(turn)
        queue.finished(turn)
    assert order == ["a", "b", "c"]


def test_a_call_that_is_not_its_turn_cannot_be_sent() -> None:
    queue = OutgoingQueue()
    queue.submit("a")
    queue.submit("b")
    with pytest.raises(ValueError):
        queue.sent("b")


def test_a_waiting_call_that_gives_up_leaves_the_others_in_order() -> None:
    queue = OutgoingQueue()
    queue.submit("a")
    queue.sent("a")
    queue.submit("b")
    queue.submit("c")
    assert queue.ahead_of("c") == 2
    assert queue.withdraw("b") is None  # "a" is still in flight
    assert queue.finished("a") == "c"


def test_the_head_giving_up_hands_the_turn_to_the_next() -> None:
    queue = OutgoingQueue()
    queue.submit("a")
    queue.submit("b")
    assert queue.withdraw("a") == "b"


def test_only_an_answer_to_the_call_in_flight_matches() -> None:
    queue = OutgoingQueue()
    queue.submit("a")
    queue.sent("a")
    queue.submit("b")
    assert queue.answers_in_flight("a")
    assert not queue.answers_in_flight("b")  # not sent yet
    queue.finished("a")
    assert not queue.answers_in_flight("a")  # a late answer after its timeout


def test_a_lost_connection_separates_the_call_in_flight_from_those_never_sent() -> None:
    queue = OutgoingQueue()
    queue.submit("a")
    queue.sent("a")
    queue.submit("b")
    queue.submit("c")
    assert queue.clear() == ("a", ["b", "c"])
    assert len(queue) == 0 and queue.next_turn() is None
