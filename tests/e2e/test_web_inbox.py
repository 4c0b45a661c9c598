"""Browser tests of the approver's web inbox: log in, work tasks, see them leave the inbox, phone and desktop."""

from __future__ import annotations

import re

import pytest
from conftest import REPO
from webui_support import (  # noqa: F401
    EXPENSE,
    browser,
    deploy_file,
    expense_process,
    live_server,
    login,
    open_page,
    playwright_expect,
    screenshot,
)

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("expense_process")]


def _search(page, text):
    """Type into the search box and wait for the inbox to answer that search (typing is debounced)."""
    with page.expect_response(lambda response: f"q={text}" in response.url and "/api/v1/tasks?" in response.url):
        page.fill("#search", text)


def _task_row(page, business_key):
    return page.locator("#tasks li", has_text=business_key)


def test_login_refuses_a_wrong_token(browser, live_server):  # noqa: F811
    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{live_server.url}/inbox")
    assert "/login" in page.url
    page.fill("#username", "alice")
    page.fill("#token", "demo-wrong")
    page.click("button[type=submit]")
    playwright_expect()(page.locator(".problem")).to_contain_text("Unknown user or token")
    context.close()


def test_approver_completes_a_task_and_it_leaves_the_inbox(open_page, live_server):  # noqa: F811
    expect = playwright_expect()
    live_server.start("expense_approval", business_key="WEB-1", amount=5000)
    page = open_page("alice")
    row = _task_row(page, "WEB-1")
    expect(row).to_contain_text("Team lead review")
    row.locator("a").click()
    expect(page.locator("#task-name")).to_have_text("Team lead review")
    expect(page.locator("#history")).to_contain_text("started the process")
    page.wait_for_selector("#diagram .djs-element.current")
    approve_is_there = live_server.has_endpoint("post", "/api/v1/tasks/{task_id}/approve")
    if approve_is_there:
        page.fill("#opinion", "fine by me")
        page.click("#actions [data-op=approve]")
    else:
        page.click("#actions [data-op=claim]")
        expect(page.locator("#actions [data-op=complete]")).to_be_visible()
        page.click("#actions [data-op=complete]")
    page.wait_for_url(re.compile(r".*/inbox$"))
    expect(page.locator("#tasks")).not_to_contain_text("WEB-1")
    instance = live_server.api("GET", "/process-instances?business_key=WEB-1", "admin").json()[0]
    history = live_server.api("GET", f"/process-instances/{instance['id']}/history", "admin").json()
    assert any(row["event"].startswith("task.") and row["actor"] == "alice" and row["event"] != "task.claimed"
               for row in history)
    assert not page.errors


def test_keyboard_moves_and_opens_tasks(open_page, live_server):  # noqa: F811
    expect = playwright_expect()
    live_server.start("expense_approval", business_key="KEY-1", amount=10)
    live_server.start("expense_approval", business_key="KEY-2", amount=20)
    page = open_page("alice")
    expect(page.locator("#tasks li.selected")).to_have_count(1)
    first = page.locator("#tasks li.selected").get_attribute("data-task-id")
    page.keyboard.press("j")
    second = page.locator("#tasks li.selected").get_attribute("data-task-id")
    assert second != first
    page.keyboard.press("k")
    assert page.locator("#tasks li.selected").get_attribute("data-task-id") == first
    page.keyboard.press("/")
    assert page.evaluate("document.activeElement.id") == "search"
    page.keyboard.press("Escape")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(rf".*/tasks/{first}$"))


def test_reject_asks_for_a_reason_and_records_it(open_page, live_server):  # noqa: F811
    if not live_server.has_endpoint("post", "/api/v1/tasks/{task_id}/reject"):
        pytest.skip("the reject operation is not in this server's API yet")
    expect = playwright_expect()
    live_server.start("expense_approval", business_key="REJ-1", amount=50)
    page = open_page("alice")
    _task_row(page, "REJ-1").locator("a").click()
    page.click("#actions [data-op=reject]")
    expect(page.locator("#op-dialog")).to_be_visible()
    expect(page.locator("#op-help")).to_contain_text("rejected")
    page.fill("#op-reason", "receipt missing")
    page.click("#op-ok")
    page.wait_for_url(re.compile(r".*/inbox$"))
    expect(page.locator("#tasks")).not_to_contain_text("REJ-1")
    instance = live_server.api("GET", "/process-instances?business_key=REJ-1", "admin").json()[0]
    history = live_server.api("GET", f"/process-instances/{instance['id']}/history", "admin").json()
    assert "receipt missing" in str(history)


def test_delegated_task_shows_in_the_delegatees_inbox(open_page, live_server):  # noqa: F811
    if not live_server.has_endpoint("post", "/api/v1/tasks/{task_id}/delegate"):
        pytest.skip("the delegate operation is not in this server's API yet")
    expect = playwright_expect()
    live_server.start("expense_approval", business_key="DEL-1", amount=50)
    page = open_page("alice")
    _task_row(page, "DEL-1").locator("a").click()
    page.click("#actions [data-op=claim]")
    page.click("#actions [data-op=delegate]")
    page.fill("#op-to", "carol")
    page.fill("#op-comment", "please check the figures")
    page.click("#op-ok")
    page.wait_for_url(re.compile(r".*/inbox$"))
    carol = open_page("carol")
    expect(_task_row(carol, "DEL-1")).to_contain_text("Team lead review")


def test_api_errors_are_shown_not_swallowed(open_page, live_server):  # noqa: F811
    expect = playwright_expect()
    page = open_page("alice")
    page.goto(f"{live_server.url}/tasks/does-not-exist")
    expect(page.locator("[data-testid=problem]").first).to_be_visible()


def test_chinese_is_chosen_from_the_browser_and_switchable(open_page, live_server):  # noqa: F811
    expect = playwright_expect()
    live_server.start("expense_approval", business_key="ZH-1", amount=5)
    page = open_page("alice", width=375, locale="zh-CN")
    expect(page.locator("nav")).to_contain_text("待办")
    expect(_task_row(page, "ZH-1")).to_contain_text("Team lead review")  # names from BPMN stay as written
    _task_row(page, "ZH-1").locator("a").click()
    expect(page.locator("#actions")).to_contain_text("同意")
    page.locator("#history li").first.wait_for()
    screenshot(page, "task-zh-375")
    page.click("text=English")
    expect(page.locator("nav")).to_contain_text("Inbox")


@pytest.mark.parametrize("width", [375, 1280])
def test_screenshots_of_inbox_and_task(open_page, live_server, width):  # noqa: F811
    live_server.start("expense_approval", business_key=f"SHOT-{width}", amount=2500)
    page = open_page("alice", width=width, height=800)
    _task_row(page, f"SHOT-{width}").wait_for()
    screenshot(page, f"inbox-{width}")
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    _task_row(page, f"SHOT-{width}").locator("a").click()
    page.wait_for_selector("#diagram .djs-element.current")
    page.locator("#history li").first.wait_for()
    screenshot(page, f"task-{width}")
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    assert not page.errors


def test_search_and_a_saved_filter(open_page, live_server):  # noqa: F811
    expect = playwright_expect()
    live_server.start("expense_approval", business_key="FIND-ME-1", amount=5)
    live_server.start("expense_approval", business_key="OTHER-9", amount=5)
    page = open_page("alice")
    expect(_task_row(page, "OTHER-9")).to_be_visible()
    _search(page, "FIND-ME")
    expect(page.locator("#tasks")).not_to_contain_text("OTHER-9")
    expect(_task_row(page, "FIND-ME-1")).to_be_visible()
    page.click("#save-filter")
    page.fill("#filter-name", "find me")
    page.click("#save-dialog button[value=ok]")
    saved = page.locator("[data-saved='find me']")
    expect(saved).to_be_visible()
    page.reload()
    expect(_task_row(page, "OTHER-9")).to_be_visible()
    page.locator("[data-saved='find me']").click()
    expect(page.locator("#search")).to_have_value("FIND-ME")
    expect(page.locator("#tasks")).not_to_contain_text("OTHER-9")


def test_comment_and_attachment_on_a_task(open_page, live_server):  # noqa: F811
    expect = playwright_expect()
    live_server.start("expense_approval", business_key="NOTE-1", amount=5)
    page = open_page("alice")
    _task_row(page, "NOTE-1").locator("a").click()
    expect(page.locator("[data-testid=comments]")).to_contain_text("No comments yet")
    page.fill("#comment-text", "@bob can you check the receipt?")
    page.click("#comment-form button[type=submit]")
    expect(page.locator("[data-testid=comments]")).to_contain_text("can you check the receipt")
    page.set_input_files("#attachment-file", files=[{"name": "receipt.txt", "mimeType": "text/plain",
                                                     "buffer": b"taxi 42.00"}])
    page.click("#attachment-form button[type=submit]")
    expect(page.locator("#attachments")).to_contain_text("receipt.txt")
    assert not page.errors


def test_task_form_is_rendered_and_its_data_sent_with_the_approval(open_page, live_server):  # noqa: F811
    expect = playwright_expect()
    deploy_file(live_server, REPO / "processes" / "quote_approval.bpmn")
    instance = live_server.start("quote_approval", business_key="Q-FORM-1", amount=1000, discount=5,
                                 account_manager="alice", customer="ACME")
    assert [t["element_id"] for t in instance["open_tasks"]] == ["sales_manager"], instance["open_tasks"]
    page = open_page("alice")
    _task_row(page, "Q-FORM-1").locator("a").click()
    form = page.locator("#form-host .fjs-container")
    expect(form).to_contain_text("Quote Q-FORM-1")
    expect(page.locator("#opinion-box")).to_be_hidden()  # the form has its own opinion field
    form.get_by_label("Opinion").fill("discount is within policy")
    page.click("#actions [data-op=approve]")
    page.wait_for_url(re.compile(r".*/inbox$"))
    history = live_server.api("GET", f"/process-instances/{instance['id']}/history", "admin").json()
    assert "discount is within policy" in str(history)


def test_a_key_approves_the_selected_task_from_the_inbox(open_page, live_server):  # noqa: F811
    expect = playwright_expect()
    live_server.start("expense_approval", business_key="KEY-A-1", amount=5)
    page = open_page("alice")
    _search(page, "KEY-A-1")
    expect(page.locator("#tasks li[data-task-id]")).to_have_count(1)
    page.locator("#search").press("Escape")
    page.keyboard.press("a")
    expect(page.locator("[data-testid=empty]")).to_be_visible()
    expect(page.locator("#toast")).to_contain_text("Approved")


def test_send_back_is_confirmed_and_returns_the_task(open_page, live_server):  # noqa: F811
    expect = playwright_expect()
    instance = live_server.start("expense_approval", business_key="BACK-1", amount=5)
    [task] = instance["open_tasks"]
    assert live_server.api("POST", f"/tasks/{task['id']}/claim", "alice").status_code == 200
    assert live_server.api("POST", f"/tasks/{task['id']}/approve", "alice", json={}).status_code == 200
    page = open_page("carol")
    _task_row(page, "BACK-1").locator("a").click()
    page.wait_for_selector("#diagram .djs-element.current")
    page.click("#actions [data-op=claim]")
    page.click("#actions [data-op=send-back]")
    expect(page.locator("#op-help")).to_contain_text("steps after it run again")
    page.select_option("#op-to_element_id", "lead_review")
    page.fill("#op-comment", "please attach the receipt")
    page.click("#op-ok")
    page.wait_for_url(re.compile(r".*/inbox$"))
    alice = open_page("alice")
    expect(_task_row(alice, "BACK-1")).to_contain_text("Team lead review")


def test_bulk_approve_gives_a_result_per_task(open_page, live_server):  # noqa: F811
    expect = playwright_expect()
    live_server.start("expense_approval", business_key="BULK-1", amount=5)
    live_server.start("expense_approval", business_key="BULK-2", amount=5)
    page = open_page("alice")
    _search(page, "BULK-")
    expect(page.locator("#tasks li[data-task-id]")).to_have_count(2)
    page.locator("#search").press("Escape")
    page.keyboard.press("x")
    page.keyboard.press("j")
    page.keyboard.press("x")
    expect(page.locator("[data-testid=bulk-approve]")).to_contain_text("(2)")
    page.click("[data-testid=bulk-approve]")
    expect(page.locator("#toast")).to_contain_text("Approved 2 tasks")
    expect(page.locator("[data-testid=empty]")).to_be_visible()
    for key in ("BULK-1", "BULK-2"):
        instance = live_server.api("GET", f"/process-instances?business_key={key}", "admin").json()[0]
        detail = live_server.api("GET", f"/process-instances/{instance['id']}", "admin").json()
        assert [t["element_id"] for t in detail["open_tasks"]] == ["director_approval"]


def test_out_of_office_deputy_is_set_and_removed(open_page, live_server):  # noqa: F811
    expect = playwright_expect()
    page = open_page("bob")
    expect(page.locator("[data-testid=deputy]")).to_contain_text("No deputy")
    page.click("[data-testid=deputy-edit]")
    page.fill("#deputy-user", "carol")
    page.fill("#deputy-from", "2030-01-01")
    page.fill("#deputy-to", "2030-01-10")
    page.click("#deputy-dialog button[value=ok]")
    expect(page.locator("[data-testid=deputy]")).to_contain_text("Deputy carol")
    assert live_server.api("GET", "/users/me/substitute", "bob").json()["deputy"] == "carol"
    page.click("[data-testid=deputy-edit]")
    page.click("#deputy-clear")
    expect(page.locator("[data-testid=deputy]")).to_contain_text("No deputy")
    assert live_server.api("GET", "/users/me/substitute", "bob").status_code == 404


def test_copied_in_user_sees_the_task_read_only(open_page, live_server):  # noqa: F811
    expect = playwright_expect()
    xml = EXPENSE.read_text().replace(
        'camunda:dueDate="P2D">',
        'camunda:dueDate="P2D"><bpmn:extensionElements><camunda:properties>'
        '<camunda:property name="bpm.cc" value="user:bob" /></camunda:properties></bpmn:extensionElements>', 1)
    xml = xml.replace('id="expense_approval" name="Expense approval"', 'id="expense_cc" name="Expense with CC"')
    response = live_server.api("POST", "/process-definitions", "dora", files={"file": ("cc.bpmn", xml.encode())})
    assert response.status_code == 201, response.text
    live_server.start("expense_cc", business_key="CC-1", amount=5)
    page = open_page("bob")
    page.click("[data-filter=cc]")
    row = _task_row(page, "CC-1")
    expect(row).to_contain_text("Team lead review")
    row.locator("a").click()
    expect(page.locator("#actions")).to_contain_text("read only")
    expect(page.locator("#actions button")).to_have_count(0)
    expect(page.locator("#keys-hint")).to_be_hidden()  # no approve key to offer
    # a copied-in reader sees the instance's history and diagram too (read only)
    expect(page.locator("#history")).to_contain_text("started the process")
    expect(page.locator("#history")).to_contain_text("copied in")
    expect(page.locator("#history [data-testid=problem]")).to_have_count(0)
    page.wait_for_selector("#diagram .djs-element.current[data-element-id=lead_review]")
    screenshot(page, "task-cc-1280")
    instance = _instance(live_server, "CC-1")
    assert live_server.api("GET", f"/process-instances/{instance['id']}/history", "bob").status_code == 200
    [task] = instance["open_tasks"]
    assert live_server.api("POST", f"/tasks/{task['id']}/approve", "bob", json={}).status_code == 403
    assert _instance(live_server, "CC-1")["open_tasks"][0]["status"] == "open"
    assert not page.errors


# --- helpers for the operation tests below --------------------------------------------------------------------


def _instance(live_server, business_key):  # noqa: F811
    [found] = live_server.api("GET", f"/process-instances?business_key={business_key}", "admin").json()
    return live_server.api("GET", f"/process-instances/{found['id']}", "admin").json()


def _open_task_of(live_server, business_key):  # noqa: F811
    [task] = _instance(live_server, business_key)["open_tasks"]
    return live_server.api("GET", f"/tasks/{task['id']}", "admin").json()


def _events(live_server, instance_id):  # noqa: F811
    return live_server.api("GET", f"/process-instances/{instance_id}/history", "admin").json()


def _goto_task(page, live_server, task_id):  # noqa: F811
    """The task's page, loaded to its last part (the instance's history, after its diagram)."""
    page.goto(f"{live_server.url}/tasks/{task_id}")
    playwright_expect()(page.locator("#actions button").first).to_be_visible()
    playwright_expect()(page.locator("#history li").first).to_be_visible()


# --- 转办 transfer, 加签/减签 add/remove signer, assign, 催办 urge, 撤回 withdraw, 委派 resolve ---------------------


def test_transfer_moves_the_task_to_another_person_for_good(open_page, live_server):  # noqa: F811
    expect = playwright_expect()
    live_server.start("expense_approval", business_key="TRANS-1", amount=50)
    page = open_page("alice")
    _task_row(page, "TRANS-1").locator("a").click()
    page.click("#actions [data-op=claim]")
    page.click("#actions [data-op=transfer]")
    expect(page.locator("#op-dialog")).to_be_visible()
    page.fill("#op-to", "bob")
    page.click("#op-ok")
    page.wait_for_url(re.compile(r".*/inbox$"))
    expect(page.locator("#tasks")).not_to_contain_text("TRANS-1")
    task = _open_task_of(live_server, "TRANS-1")
    assert (task["assignee"], task.get("owner")) == ("bob", None)
    bob = open_page("bob")
    bob.click("[data-filter=mine]")
    expect(_task_row(bob, "TRANS-1")).to_contain_text("Team lead review")
    _task_row(bob, "TRANS-1").locator("a").click()
    expect(bob.locator("#actions [data-op=approve]")).to_be_visible()
    expect(bob.locator("#history")).to_contain_text("transferred")
    events = _events(live_server, task["instance_id"])
    assert [(e["actor"], e["data"]["to"]) for e in events if e["event"] == "task.transferred"] == [("alice", "bob")]
    assert not page.errors and not bob.errors


def test_add_a_signer_after_me_then_remove_them(open_page, live_server):  # noqa: F811
    expect = playwright_expect()
    live_server.start("expense_approval", business_key="SIGN-1", amount=50)
    page = open_page("alice")
    _task_row(page, "SIGN-1").locator("a").click()
    page.click("#actions [data-op=claim]")
    expect(page.locator("#actions [data-op=remove-signer]")).to_have_count(0)  # nobody to remove yet
    page.click("#actions [data-op=add-signer]")
    page.fill("#op-users", "bob")
    page.select_option("#op-position", "after")
    page.click("#op-ok")
    expect(page.locator("#toast")).to_contain_text("Signer added")
    expect(page.locator("[data-testid=signers]")).to_contain_text("bob (after me, waiting)")
    screenshot(page, "task-signers-1280")
    task = _open_task_of(live_server, "SIGN-1")
    signers = live_server.api("GET", f"/tasks/{task['id']}/signers", "alice").json()
    assert [(s["username"], s["position"], s["status"]) for s in signers] == [("bob", "after", "pending")]

    page.click("#actions [data-op=remove-signer]")
    expect(page.locator("#op-username option")).to_have_text(["bob (after me)"])
    page.click("#op-ok")
    expect(page.locator("#toast")).to_contain_text("Signer removed")
    expect(page.locator("[data-testid=signers]")).to_be_empty()
    expect(page.locator("#actions [data-op=remove-signer]")).to_have_count(0)
    signers = live_server.api("GET", f"/tasks/{task['id']}/signers", "alice").json()
    assert [(s["username"], s["status"]) for s in signers] == [("bob", "removed")]
    # the step is still alice's to decide, and it no longer waits for bob
    page.fill("#opinion", "fine without bob")
    page.click("#actions [data-op=approve]")
    page.wait_for_url(re.compile(r".*/inbox$"))
    assert [t["element_id"] for t in _instance(live_server, "SIGN-1")["open_tasks"]] == ["director_approval"]
    assert not page.errors


def test_admin_assigns_a_task_to_someone(open_page, live_server):  # noqa: F811
    expect = playwright_expect()
    live_server.start("expense_approval", business_key="ASSIGN-1", amount=50)
    task = _open_task_of(live_server, "ASSIGN-1")
    alice = open_page("alice")  # a candidate is not offered "assign"
    _goto_task(alice, live_server, task["id"])
    expect(alice.locator("#actions [data-op=assign]")).to_have_count(0)
    page = open_page("admin")
    _goto_task(page, live_server, task["id"])
    page.click("#actions [data-op=assign]")
    page.fill("#op-assignee", "carol")
    page.click("#op-ok")
    expect(page.locator("#toast")).to_contain_text("Assigned")
    expect(page.locator("#facts")).to_contain_text("Assignee: carol")
    assert _open_task_of(live_server, "ASSIGN-1")["assignee"] == "carol"
    carol = open_page("carol")
    carol.click("[data-filter=mine]")
    expect(_task_row(carol, "ASSIGN-1")).to_contain_text("Team lead review")
    events = _events(live_server, task["instance_id"])
    assert [(e["actor"], e["data"]["assignee"]) for e in events if e["event"] == "task.assigned"] == \
        [("admin", "carol")]
    assert not page.errors


def test_supervisor_reassigns_their_reports_task(open_page, live_server):  # noqa: F811
    expect = playwright_expect()
    live_server.start("expense_approval", business_key="ASSIGN-2", amount=50)
    task = _open_task_of(live_server, "ASSIGN-2")
    assert live_server.api("POST", f"/tasks/{task['id']}/assign", "admin", json={"assignee": "tina"}).ok
    page = open_page("sam")  # tina's supervisor
    _goto_task(page, live_server, task["id"])
    expect(page.locator("#facts")).to_contain_text("Assignee: tina")
    expect(page.locator("#actions [data-op=approve]")).to_have_count(0)
    page.click("#actions [data-op=assign]")
    page.fill("#op-assignee", "alice")
    page.click("#op-ok")
    page.wait_for_url(re.compile(r".*/inbox$"))  # alice is not sam's report: the task leaves sam's sight
    assert _open_task_of(live_server, "ASSIGN-2")["assignee"] == "alice"
    events = _events(live_server, task["instance_id"])
    assert [(e["actor"], e["data"]["assignee"]) for e in events if e["event"] == "task.assigned"] == \
        [("admin", "tina"), ("sam", "alice")]
    alice = open_page("alice")
    alice.click("[data-filter=mine]")
    expect(_task_row(alice, "ASSIGN-2")).to_contain_text("Team lead review")
    assert not page.errors


def test_initiator_urges_and_a_second_urge_is_refused_with_the_reason(open_page, live_server):  # noqa: F811
    expect = playwright_expect()
    live_server.start("expense_approval", user="bob", business_key="URGE-1", amount=50)
    task = _open_task_of(live_server, "URGE-1")
    page = open_page("bob")
    _goto_task(page, live_server, task["id"])
    expect(page.locator("#actions [data-op=approve]")).to_have_count(0)  # bob started it; the step is alice's
    page.click("#actions [data-op=urge]")
    expect(page.locator("#toast")).to_contain_text("Reminder sent")
    expect(page.locator("#actions [data-op=urge]")).to_be_enabled()
    page.click("#actions [data-op=urge]")
    refused = page.locator("#problem [data-testid=problem]")
    expect(refused).to_contain_text("urged less than 10 minutes ago")
    expect(refused).to_contain_text("try again in")
    screenshot(page, "task-urge-limited-1280")
    events = _events(live_server, task["instance_id"])
    urged = [e for e in events if e["event"] == "task.urged"]
    assert [(e["actor"], e["data"]["recipients"]) for e in urged] == [("bob", ["alice"])]
    assert not page.errors


def test_initiator_withdraws_before_anyone_acted(open_page, live_server):  # noqa: F811
    expect = playwright_expect()
    live_server.start("expense_approval", user="bob", business_key="WITHDRAW-1", amount=50)
    task = _open_task_of(live_server, "WITHDRAW-1")
    page = open_page("bob")
    _goto_task(page, live_server, task["id"])
    page.click("#actions [data-op=withdraw]")
    expect(page.locator("#op-help")).to_contain_text("whole request is withdrawn")
    page.fill("#op-reason", "wrong cost centre")
    page.click("#op-ok")
    page.wait_for_url(re.compile(r".*/inbox$"))
    detail = _instance(live_server, "WITHDRAW-1")
    assert (detail["status"], detail["open_tasks"]) == ("cancelled", [])
    events = _events(live_server, task["instance_id"])
    assert [(e["actor"], e["data"].get("reason")) for e in events if e["event"] == "instance.withdrawn"] == \
        [("bob", "wrong cost centre")]
    alice = open_page("alice")
    _search(alice, "WITHDRAW-1")
    expect(alice.locator("[data-testid=empty]")).to_be_visible()


def test_withdraw_after_the_next_step_acted_shows_why_not(open_page, live_server):  # noqa: F811
    expect = playwright_expect()
    live_server.start("expense_approval", user="bob", business_key="WITHDRAW-2", amount=50)
    first = _open_task_of(live_server, "WITHDRAW-2")
    assert live_server.api("POST", f"/tasks/{first['id']}/approve", "alice", json={}).status_code == 200
    task = _open_task_of(live_server, "WITHDRAW-2")
    page = open_page("bob")
    _goto_task(page, live_server, task["id"])
    page.click("#actions [data-op=withdraw]")
    page.click("#op-ok")
    expect(page.locator("#problem [data-testid=problem]")).to_contain_text("can no longer be withdrawn")
    assert _instance(live_server, "WITHDRAW-2")["status"] == "running"


def test_delegatee_returns_the_task_and_the_owner_finishes_it(open_page, live_server):  # noqa: F811
    expect = playwright_expect()
    live_server.start("expense_approval", business_key="RESOLVE-1", amount=50)
    task = _open_task_of(live_server, "RESOLVE-1")
    assert live_server.api("POST", f"/tasks/{task['id']}/claim", "alice").status_code == 200
    delegated = live_server.api("POST", f"/tasks/{task['id']}/delegate", "alice", json={"to": "carol"})
    assert delegated.status_code == 200, delegated.text
    carol = open_page("carol")
    carol.click("[data-filter=delegated]")
    _task_row(carol, "RESOLVE-1").locator("a").click()
    expect(carol.locator("#facts")).to_contain_text("Delegated by: alice")
    expect(carol.locator("#actions [data-op=resolve]")).to_be_visible()
    expect(carol.locator("#actions [data-op=approve]")).to_have_count(0)  # the owner finishes, not the delegatee
    screenshot(carol, "task-delegated-1280")
    carol.fill("#opinion", "figures checked")
    carol.click("#actions [data-op=resolve]")
    carol.wait_for_url(re.compile(r".*/inbox$"))
    back = _open_task_of(live_server, "RESOLVE-1")
    assert (back["assignee"], back["delegation_state"]) == ("alice", "resolved")
    alice = open_page("alice")
    _task_row(alice, "RESOLVE-1").locator("a").click()
    expect(alice.locator("#history")).to_contain_text("returned to owner")
    alice.click("#actions [data-op=approve]")
    alice.wait_for_url(re.compile(r".*/inbox$"))
    events = [(e["event"], e["actor"]) for e in _events(live_server, task["instance_id"])]
    assert events.index(("task.resolved", "carol")) < events.index(("task.approved", "alice"))
    assert "figures checked" in str(_events(live_server, task["instance_id"]))
    assert not carol.errors and not alice.errors


def test_a_task_is_approved_on_a_phone(open_page, live_server):  # noqa: F811
    expect = playwright_expect()
    live_server.start("expense_approval", business_key="PHONE-1", amount=50)
    page = open_page("alice", width=390, height=844)
    row = _task_row(page, "PHONE-1")
    expect(row).to_contain_text("Team lead review")
    row.locator("a").click()
    approve = page.locator("#actions [data-op=approve]")
    expect(approve).to_be_visible()
    page.wait_for_load_state("networkidle")  # the actions panel is re-rendered once the task's data arrives
    box = approve.evaluate("button => { const r = button.getBoundingClientRect(); return {x: r.x, width: r.width}; }")
    assert box["x"] >= 0 and box["x"] + box["width"] <= 390  # reachable without sideways scrolling
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.fill("#opinion", "ok from my phone")
    screenshot(page, "task-phone-390")
    approve.click()
    page.wait_for_url(re.compile(r".*/inbox$"))
    expect(page.locator("#tasks")).not_to_contain_text("PHONE-1")
    assert [t["element_id"] for t in _instance(live_server, "PHONE-1")["open_tasks"]] == ["director_approval"]
    assert "ok from my phone" in str(_events(live_server, _instance(live_server, "PHONE-1")["id"]))
    assert not page.errors
