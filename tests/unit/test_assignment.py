"""Assignment attributes on user tasks: literals, expressions, lanes, due dates and priorities."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bpm import engine
from bpm.expressions import ExpressionError
from bpm.services.projection import resolve_assignment

NOW = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def open_task(extensions, data=None, lane=None):
    return engine.OpenTask("t1", "review", "Review", lane, extensions, data or {})


def test_literals_split_into_lists():
    resolved = resolve_assignment(open_task({"candidateGroups": "sales, finance", "candidateUsers": "ann"}), {}, NOW)
    assert resolved["candidate_groups"] == ["sales", "finance"] and resolved["candidate_users"] == ["ann"]
    assert resolved["assignee"] is None and resolved["priority"] == 50


def test_expressions_read_task_data():
    task = open_task({"assignee": "${owner}", "candidateGroups": "${teams}", "priority": "${urgency}"},
                     {"owner": "bob", "teams": ["a", "b"], "urgency": 90})
    resolved = resolve_assignment(task, {}, NOW)
    assert (resolved["assignee"], resolved["candidate_groups"], resolved["priority"]) == ("bob", ["a", "b"], 90)


def test_lane_name_is_the_group_when_nothing_is_assigned():
    assert resolve_assignment(open_task({}, lane="Finance"), {}, NOW)["candidate_groups"] == ["Finance"]
    explicit = resolve_assignment(open_task({"candidateUsers": "ann"}, lane="Finance"), {}, NOW)
    assert explicit["candidate_groups"] == []


@pytest.mark.parametrize(("text", "data", "expected"), [
    ("P2D", {}, datetime(2026, 1, 7, 9, 0, tzinfo=UTC)),
    ("PT4H", {}, datetime(2026, 1, 5, 13, 0, tzinfo=UTC)),
    ("2026-02-01T10:00:00Z", {}, datetime(2026, 2, 1, 10, 0, tzinfo=UTC)),
    ("${dateTime().plusDays(2).toDate()}", {}, datetime(2026, 1, 7, 9, 0, tzinfo=UTC)),
    ("${dateTime().plusWeeks(1).toDate()}", {}, datetime(2026, 1, 12, 9, 0, tzinfo=UTC)),
    ("${deadline}", {"deadline": "2026-03-01T00:00:00+08:00"}, datetime(2026, 2, 28, 16, 0, tzinfo=UTC)),
    ("${sla}", {"sla": "PT30M"}, datetime(2026, 1, 5, 9, 30, tzinfo=UTC)),
])
def test_due_dates(text, data, expected):
    assert engine.resolve_due(text, data, NOW) == expected


def test_untranslatable_assignment_is_refused_at_deploy():
    with pytest.raises(ExpressionError):
        engine.check_assignment_text("${execution.getVariable('x')}")
    engine.check_assignment_text("${dateTime().plusHours(4).toDate()}")
    engine.check_assignment_text("sales")
