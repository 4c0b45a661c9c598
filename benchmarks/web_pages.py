"""How heavy and how quick the approver's pages are in a real browser: bytes fetched and time until the inbox
list (and the task page's diagram and history) are on screen, over a real HTTP server.

Run: .venv/bin/python benchmarks/web_pages.py [--tasks 200] [--runs 15]
Needs Debian's Chromium at /usr/bin/chromium, Playwright for Python, and `make setup` (npm packages built).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests
from werkzeug.serving import make_server

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from api import create_app  # noqa: E402
from bpm.adapters.db import migrate  # noqa: E402
from bpm.config import Settings  # noqa: E402
from bpm.services import identity  # noqa: E402

BYTES_JS = """() => performance.getEntriesByType('resource').concat(performance.getEntriesByType('navigation'))
  .reduce((sum, entry) => sum + (entry.encodedBodySize || 0), 0)"""


def start_server(folder: Path, tasks: int) -> str:
    url = f"sqlite:///{folder / 'bpm.sqlite'}"
    migrate(url)
    app = create_app(Settings(database_url=url, var_dir=folder))
    context = app.extensions["bpm"]
    for username, roles, groups in (("dora", ["designer"], []), ("alice", ["approver"], ["team-leads"])):
        identity.create_user(identity.CreateUser(username, username, None, groups, roles), context.uow())
        identity.issue_token(identity.IssueToken(username, "bench", token=f"demo-{username}"), context.uow())
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}"
    bpmn = (REPO / "tests" / "fixtures" / "bpmn" / "expense_approval.bpmn").read_bytes()
    requests.post(f"{base}/api/v1/process-definitions", headers={"Authorization": "Bearer demo-dora"},
                  files={"file": ("expense.bpmn", bpmn)}, timeout=30).raise_for_status()
    for number in range(tasks):
        requests.post(f"{base}/api/v1/process-definitions/expense_approval/instances",
                      headers={"Authorization": "Bearer demo-alice"},
                      json={"business_key": f"B-{number}", "variables": {"amount": number}},
                      timeout=30).raise_for_status()
    return base


def measure(base: str, runs: int) -> dict[str, list[float]]:
    from playwright.sync_api import sync_playwright

    figures: dict[str, list[float]] = {"inbox_ms": [], "inbox_kb": [], "task_ms": [], "task_kb": []}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium",
                                             args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        for _ in range(runs):
            context = browser.new_context(viewport={"width": 375, "height": 800})
            context.add_cookies([{"name": "bpm_token", "value": "demo-alice", "url": base}])
            page = context.new_page()  # a fresh context: nothing cached, the first visit of the day
            began = time.perf_counter()
            page.goto(f"{base}/inbox")
            page.wait_for_selector("#tasks li[data-task-id]")
            figures["inbox_ms"].append((time.perf_counter() - began) * 1000)
            figures["inbox_kb"].append(page.evaluate(BYTES_JS) / 1024)
            began = time.perf_counter()
            page.locator("#tasks li[data-task-id] a").first.click()
            page.wait_for_selector("#diagram .djs-element.current")
            page.wait_for_selector("#history li")
            figures["task_ms"].append((time.perf_counter() - began) * 1000)
            figures["task_kb"].append(page.evaluate(BYTES_JS) / 1024)
            context.close()
        browser.close()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        base = start_server(Path(folder), args.tasks)
        figures = measure(base, args.runs)
    print(f"{args.tasks} open tasks, {args.runs} cold page loads at 375 px (fresh browser context each)")
    for name, values in figures.items():
        values = sorted(values)
        p95 = values[max(0, round(0.95 * len(values)) - 1)]
        print(f"  {name:<9} median {statistics.median(values):8.1f}   p95 {p95:8.1f}")


if __name__ == "__main__":
    main()
