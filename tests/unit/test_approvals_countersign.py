"""Countersign decisions (会签 / 或签 / 依次 / 票签) as a pure function of the votes so far."""

from __future__ import annotations

import pytest

from bpm.services.approvals import countersign_result, vote_threshold

A, R = "approved", "rejected"


@pytest.mark.parametrize("mode, votes, total, expected", [
    ("all", [A, A], 3, None),
    ("all", [A, A, A], 3, A),
    ("all", [A, R], 3, R),
    ("sequential", [R], 2, R),
    ("any", [R, R], 3, None),
    ("any", [R, A], 3, A),
    ("any", [R, R, R], 3, R),
])
def test_all_any_sequential(mode, votes, total, expected):
    assert countersign_result(mode, votes, total, {}) == expected


def test_vote_by_percent_and_count():
    assert vote_threshold(3, {"bpm.votePercent": "60"}) == 2
    assert vote_threshold(5, {"bpm.votePercent": "50"}) == 3
    assert vote_threshold(4, {"bpm.votePercent": "50"}) == 2
    assert vote_threshold(4, {"bpm.voteCount": "9"}) == 4
    percent = {"bpm.votePercent": "60"}
    assert countersign_result("vote", [A], 3, percent) is None
    assert countersign_result("vote", [A, A], 3, percent) == A
    assert countersign_result("vote", [R, R], 3, percent) == R
    assert countersign_result("vote", [A, R], 3, percent) is None
    assert countersign_result("vote", [R], 3, {"bpm.voteCount": "1"}) is None
