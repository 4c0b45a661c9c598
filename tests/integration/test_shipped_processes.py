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
