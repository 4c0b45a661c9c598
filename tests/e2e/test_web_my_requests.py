"""Browser tests of "My requests": the initiator sees what they started, where it waits, and urges or withdraws."""

from __future__ import annotations

import re

import pytest
from webui_support import (  # noqa: F401
    EXPENSE,
    browser,
    expense_process,
    live_server,
    login,
    open_page,
    playwright_expect,
    screenshot,
)

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("expense_process")]


def _my_requests(page, live_server):  # noqa: F811
    """Open the page through the navigation, as a user would, and wait for the list to answer."""
    with page.expect_response(lambda r: "/api/v1/process-instances?" in r.url and "started_by=me" in r.url):
        page.click("[data-testid=nav-my-requests]")
    page.wait_for_url(f"{live_server.url}/requests")


def _row(page, business_key):
    return page.locator("#requests li.request", has_text=business_key)


def _events(live_server, instance_id):  # noqa: F811
    return live_server.api("GET", f"/process-instances/{instance_id}/history", "admin").json()


def _fits_the_width(page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


def test_initiator_sees_the_request_with_its_current_step_and_others_do_not(open_page, live_server):  # noqa: F811
    expect = playwright_expect()
    started = live_server.start("expense_approval", user="tina", business_key="MINE-1", amount=50)
    page = open_page("tina")
    _my_requests(page, live_server)
    row = _row(page, "MINE-1")
    expect(row.locator(".request-name")).to_have_text("Expense approval")
    expect(row.locator("[data-testid=status]")).to_have_text("running")
    expect(row.locator("li.step .step-name")).to_have_text(["Team lead review"])
    expect(row.locator("[data-testid=holders]")).to_have_text("groups: team-leads")
    expect(row.locator("[data-testid=due]")).to_contain_text("due")
    assert row.locator("[data-testid=open-instance]").get_attribute("href") == f"/instances/{started['id']}"
    screenshot(page, "my-requests-1280")
    assert _fits_the_width(page)
    phone = open_page("tina", width=390, height=844)
    _my_requests(phone, live_server)
    expect(_row(phone, "MINE-1").locator("[data-op=urge]")).to_be_visible()
    assert _fits_the_width(phone)
    screenshot(phone, "my-requests-390")
    row.locator("[data-testid=open-instance]").click()
    page.wait_for_url(re.compile(rf".*/instances/{started['id']}$"))
    expect(page.locator("#open-tasks")).to_contain_text("Team lead review")
    other = open_page("carol")
    _my_requests(other, live_server)
    expect(other.locator("[data-testid=empty]")).to_be_visible()
    expect(other.locator("#requests")).not_to_contain_text("MINE-1")
    assert not page.errors and not phone.errors and not other.errors


def test_initiator_urges_and_a_second_urge_shows_the_rate_limit(open_page, live_server):  # noqa: F811
    expect = playwright_expect()
    started = live_server.start("expense_approval", user="sam", business_key="MINE-URGE", amount=50)
    page = open_page("sam")
    _my_requests(page, live_server)
    row = _row(page, "MINE-URGE")
    message = row.locator("[data-testid=row-message]")
    row.locator("[data-op=urge]").click()
    expect(message).to_contain_text("Reminder sent")
    expect(row.locator("[data-op=urge]")).to_be_enabled()
    row.locator("[data-op=urge]").click()
    expect(message).to_contain_text("urged less than 10 minutes ago")
    expect(message).to_have_attribute("role", "alert")
    urged = [e for e in _events(live_server, started["id"]) if e["event"] == "task.urged"]
    assert [(e["actor"], e["data"]["recipients"]) for e in urged] == [("sam", ["alice"])]
    assert not page.errors


def test_initiator_withdraws_before_anyone_acted(open_page, live_server):  # noqa: F811
    expect = playwright_expect()
    started = live_server.start("expense_approval", user="sam", business_key="MINE-WD", amount=50)
    page = open_page("sam")
    _my_requests(page, live_server)
    row = _row(page, "MINE-WD")
    row.locator("[data-op=withdraw]").click()
    expect(page.locator("#withdraw-help")).to_contain_text("whole request is withdrawn")
    page.fill("#withdraw-reason", "sent by mistake")
    page.click("#withdraw-ok")
    expect(row.locator("[data-testid=status]")).to_have_text("withdrawn")
    expect(row.locator("[data-testid=row-message]")).to_contain_text("Withdrawn.")
    expect(row.locator("[data-op]")).to_have_count(0)
    detail = live_server.api("GET", f"/process-instances/{started['id']}", "admin").json()
    assert (detail["status"], detail["open_tasks"]) == ("cancelled", [])
    assert [(e["actor"], e["data"].get("reason")) for e in _events(live_server, started["id"])
            if e["event"] == "instance.withdrawn"] == [("sam", "sent by mistake")]
    page.reload()
    expect(_row(page, "MINE-WD").locator("[data-testid=status]")).to_have_text("withdrawn")
    alice = open_page("alice")
    with alice.expect_response(lambda r: "q=MINE-WD" in r.url and "/api/v1/tasks?" in r.url):
        alice.fill("#search", "MINE-WD")
    expect(alice.locator("[data-testid=empty]")).to_be_visible()
    assert not page.errors


def test_withdraw_after_the_next_step_acted_shows_the_servers_reason(open_page, live_server):  # noqa: F811
    expect = playwright_expect()
    started = live_server.start("expense_approval", user="sam", business_key="MINE-LATE", amount=50)
    [task] = live_server.api("GET", f"/process-instances/{started['id']}", "sam").json()["open_tasks"]
    assert live_server.api("POST", f"/tasks/{task['id']}/approve", "alice", json={}).status_code == 200
    page = open_page("sam")
    _my_requests(page, live_server)
    row = _row(page, "MINE-LATE")
    expect(row.locator("li.step .step-name")).to_have_text(["Director approval"])
    row.locator("[data-op=withdraw]").click()
    page.click("#withdraw-ok")
    expect(row.locator("[data-testid=row-message]")).to_contain_text("can no longer be withdrawn")
    expect(row.locator("[data-testid=status]")).to_have_text("running")
    assert live_server.api("GET", f"/process-instances/{started['id']}", "sam").json()["status"] == "running"


def test_a_step_past_its_due_date_is_marked_overdue(open_page, live_server):  # noqa: F811
    expect = playwright_expect()
    late = (EXPENSE.read_text().replace('id="expense_approval" name="Expense approval"',
                                        'id="late_expense" name="Late expense"')
            .replace('camunda:dueDate="P2D"', 'camunda:dueDate="2020-01-06T09:00:00Z"'))
    deployed = live_server.api("POST", "/process-definitions", "dora", files={"file": ("late.bpmn", late.encode())})
    assert deployed.status_code == 201, deployed.text
    live_server.start("late_expense", user="tina", business_key="MINE-LATE-DUE", amount=50)
    live_server.start("expense_approval", user="tina", business_key="MINE-ON-TIME", amount=50)
    page = open_page("tina")
    _my_requests(page, live_server)
    late_row, on_time = _row(page, "MINE-LATE-DUE"), _row(page, "MINE-ON-TIME")
    expect(late_row.locator(".request-name")).to_have_text("Late expense")
    expect(late_row.locator(".request-head .pill.overdue")).to_have_text("overdue")
    expect(late_row.locator("[data-testid=overdue]")).to_contain_text("overdue")
    expect(on_time.locator("[data-testid=due]")).to_be_visible()
    expect(on_time.locator(".pill.overdue")).to_have_count(0)


def test_the_page_speaks_chinese(browser, live_server):  # noqa: F811
    expect = playwright_expect()
    live_server.start("expense_approval", user="tina", business_key="MINE-ZH", amount=50)
    context = browser.new_context(locale="zh-CN")
    page = context.new_page()
    login(page, live_server.url, "tina")
    expect(page.locator("[data-testid=nav-my-requests]")).to_have_text("我发起的")
    _my_requests(page, live_server)
    row = _row(page, "MINE-ZH")
    expect(row.locator("[data-op=urge]")).to_have_text("催办")
    expect(row.locator("[data-op=withdraw]")).to_have_text("撤回")
    context.close()
