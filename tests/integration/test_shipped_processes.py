"""The shipped BPMN files deploy through the public API and import cleanly in bpmn-js's model layer, every
element drawn; every form they reference exists; the demo seed loads users, customers and leads."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

from conftest import REPO, deploy, service_missing
from shipped_kit import PROCESSES, SHIPPED

from bpm import forms

NODE_MODULES = REPO / "api" / "web" / "node_modules"
CHECKER = REPO / "tests" / "fixtures" / "js" / "check_bpmn.mjs"
FILES = [PROCESSES / f"{name}.bpmn" for name in SHIPPED]


def test_shipped_files_deploy_through_the_api(client, users):
    for path in FILES:
        response = deploy(client, users["dora"], path.read_bytes(), path.name)
        assert response.status_code == 201, (path.name, response.json)
        assert [d["key"] for d in response.json["definitions"]] == [path.stem]


def test_every_form_key_resolves_to_a_shipped_form():
    keys = {key for path in FILES for key in re.findall(r'camunda:formKey="([^"]+)"', path.read_text())}
    assert len(keys) >= 10
    for key in keys:
        form = forms.find(key)
        assert form is not None and form["components"], key


def test_files_import_in_bpmn_js_without_warnings_and_fully_drawn():
    if shutil.which("node") is None or not (NODE_MODULES / "bpmn-moddle").is_dir():
        service_missing("node and api/web/node_modules/bpmn-moddle are needed for the bpmn-js import check")
    output = subprocess.run(["node", str(CHECKER), str(NODE_MODULES), *map(str, FILES)], capture_output=True,
                            text=True, timeout=60, check=True).stdout
    results = [json.loads(line) for line in output.splitlines()]
    assert len(results) == len(FILES)
    for result in results:
        assert result["warnings"] == [] and result["undrawn"] == [], result


def test_demo_seed_creates_staff_customers_and_leads(context):
    from api import demo, demo_data

    lines = []
    demo.deploy_shipped_processes(context, PROCESSES, lines.append)
    demo.seed(context, PROCESSES, lines.append)
    demo.seed(context, PROCESSES, lines.append)  # idempotent
    from sqlalchemy import func, select

    from bpm.adapters.orm_records import Customer, Lead

    with context.uow() as uow:
        assert uow.session.scalar(select(func.count()).select_from(Customer)) == len(demo_data.CUSTOMERS) + \
            sum(1 for lead in demo_data.LEADS if lead.get("convert"))
        assert uow.session.scalar(select(func.count()).select_from(Lead)) == len(demo_data.LEADS)


def groups_the_processes_need() -> set[str]:
    """Literal candidate groups in the shipped BPMN, and every group the shipped rules can route work to."""
    from bpm import rule_defaults, rules
    from bpm.services import complaints

    needed = {group for path in FILES for group in re.findall(r'candidateGroups="([^"$]+)"', path.read_text())}
    needed |= {rules.evaluate(rule_defaults.COMPLAINT_ROUTING, {"category": c}) for c in complaints.CATEGORIES}
    needed |= {rules.evaluate(rule_defaults.LEAD_ASSIGNMENT, {"region": region, "industry": industry})
               for region in ("east", "north", "south", "west") for industry in ("retail", "banking")}
    needed |= set(rules.evaluate(rule_defaults.QUOTE_COUNTERSIGNERS, {"amount": 2_000_000}))
    return needed | {complaints.DIRECTORS}


def test_demo_seed_shows_the_three_processes_working(client, context):
    """`make run` (bpm serve --seed-demo): every group the processes route to has a member with a demo token,
    and each process has work waiting in someone's inbox, the dormant-customer task included."""
    from sqlalchemy import select

    from api import demo
    from bpm.adapters.orm import Group, User, UserGroup

    demo.seed(context, PROCESSES, lambda _line: None)
    with context.uow() as uow:
        staffed = set(uow.session.scalars(select(Group.name).join(UserGroup, UserGroup.group_id == Group.id)
                                          .join(User, User.id == UserGroup.user_id).where(User.active.is_(True))))
    missing = groups_the_processes_need() - staffed
    assert not missing, f"no demo user in {sorted(missing)}"

    def waiting(username, process_key):
        tasks = get_json(client, username, "/api/v1/tasks")["items"]
        return [t for t in tasks if t["process_key"] == process_key]

    assert [t["element_id"] for t in waiting("bob", "quote_approval")] == ["technical_director"]
    assert [t["element_id"] for t in waiting("frank", "complaint_handling")] == ["register"]
    assert any(n["title"].startswith("Escalated") for n in get_json(client, "diana", "/api/v1/notifications"))
    assert [t["element_id"] for t in waiting("eason", "lead_follow_up")] == ["first_contact"]
    assert [t["element_id"] for t in waiting("kevin", "lead_follow_up")] == ["first_contact"]  # the bank
    [dormant] = waiting("alice", "dormant_customer")
    assert dormant["assignee"] == "alice" and dormant["element_id"] == "reach_out"
    demo.seed(context, PROCESSES, lambda _line: None)  # seeding again raises nothing twice
    assert len(waiting("alice", "dormant_customer")) == 1


def get_json(client, username, url):
    from api import demo

    response = client.get(url, headers={"Authorization": f"Bearer {demo.demo_token(username)}"})
    assert response.status_code == 200, (url, response.json)
    return response.json
