"""How many read rounds a confirmation can afford within its decision's budget of calls."""

from __future__ import annotations

import pytest

from smartcar_bridge.confirmation import (
    DECISION_BUDGET,
    DEFAULT_DECISION_READS,
    READ_ROUNDS,
    decision_plan,
    read_rounds,
    reads_to_tell_apart,
)


@pytest.mark.parametrize(
    ("calls_left", "polling", "watched", "expected"),
    [
        (5, 2, 0, READ_ROUNDS),  # two polling cars read twice: 4 calls
        (3, 2, 0, READ_ROUNDS[-1:]),  # after 2 match reads: only the last round fits
        (3, 1, 1, READ_ROUNDS),  # 2 for the polling car, 1 fallback for the watched one
        (2, 1, 1, READ_ROUNDS[-1:]),
        (0, 0, 3, READ_ROUNDS[-1:]),  # watched cars report themselves; the last round stays
        (3, 0, 3, READ_ROUNDS),
        (-1, 1, 0, READ_ROUNDS[-1:]),  # already over (a retry): never the extra round
    ],
)
def test_rounds_fit_what_the_decision_has_left(
    calls_left: int, polling: int, watched: int, expected: tuple[float, ...]
) -> None:
    assert read_rounds(calls_left, polling=polling, watched=watched) == expected


def test_the_last_round_is_always_kept_and_ends_the_timeout() -> None:
    for left in range(-2, DECISION_BUDGET + 3):
        for polling in range(4):
            rounds = read_rounds(left, polling=polling, watched=4 - polling)
            assert rounds[-1] == 1.0
            spent = len(rounds) * polling + (4 - polling)
            assert len(rounds) == 1 or spent <= left


@pytest.mark.parametrize(
    ("before", "polling", "expected"),
    [
        ([False, False], [True, True], 2),  # the match's readings serve: the last round
        ([None, None], [True, True], 4),  # stale: each read before the start, and after
        ([False, None], [False, False], 1),  # watched cars report themselves
        ([True, False], [True, False], 0),  # one already charging is not watched
        ([None, False], [True, True], 3),
        ([], [], 0),
    ],
)
def test_a_confirmation_costs_a_read_per_unknown_state_and_per_polling_car(
    before: list[bool | None], polling: list[bool], expected: int
) -> None:
    assert reads_to_tell_apart(before, polling) == expected


@pytest.mark.parametrize(
    ("reads", "cap", "expected"),
    [
        (DEFAULT_DECISION_READS, 0, DECISION_BUDGET),  # issue 16's 5 with the default reads
        (2, 0, DECISION_BUDGET),  # fewer reads never lower it
        (50, 0, 51),  # a small fleet read whole: 46 reads more, its confirmation still fits
        (50, 7, 7),  # a hard cap is the plan, whatever the reads
        (4, 3, 3),
    ],
)
def test_the_plan_is_the_cap_or_five_raised_by_the_reads_allowed_beyond_four(
    reads: int, cap: int, expected: int
) -> None:
    assert decision_plan(reads, cap) == expected


def test_a_plan_always_leaves_the_default_headroom_after_the_reads_when_uncapped() -> None:
    for reads in range(0, 60):
        plan = decision_plan(reads, 0)
        assert plan >= DECISION_BUDGET
        assert plan - reads >= DECISION_BUDGET - DEFAULT_DECISION_READS
