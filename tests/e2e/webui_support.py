"""Support for the browser tests of the web UI: a real server in a thread, users with known tokens, and a
Chromium driven by Playwright (Debian's Chromium; a browser is never downloaded).

The server is the real app (create_app) on a private migrated SQLite file, served by werkzeug on a free
port of 127.0.0.1; the browser talks to it over HTTP exactly as a user's would.
"""

from __future__ import annotations

import os
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from conftest import FIXTURES, REPO, service_missing
from werkzeug.serving import make_server

from api import create_app
from bpm.adapters.db import migrate
from bpm.config import Settings
from bpm.services import definitions, identity

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
SCREENSHOTS = Path(os.environ.get("BPM_SCREENSHOTS") or REPO / "var" / "screenshots")  # var/ is not committed
VENDOR = REPO / "api" / "web" / "static" / "vendor"

# username -> (roles, groups); each logs in with the token demo-<username>
WEB_USERS = {
    "admin": (["admin"], []),
    "dora": (["designer"], []),
    "alice": (["approver"], ["team-leads", "sales-managers"]),
    "bob": (["approver"], ["finance"]),
    "carol": (["approver"], ["directors"]),
    "sam": (["approver"], []),
    "tina": (["approver"], []),
}
SUPERVISORS = {"tina": "sam"}  # username -> their supervisor


@dataclass
class LiveServer:
    url: str
    app: object

    def api(self, method: str, path: str, user: str, **kwargs):
        headers = {"Authorization": f"Bearer demo-{user}", **kwargs.pop("headers", {})}
        return requests.request(method, f"{self.url}/api/v1{path}", headers=headers, timeout=30, **kwargs)

    def start(self, key: str, user: str = "alice", **variables) -> dict:
        response = self.api("POST", f"/process-definitions/{key}/instances", user,
                            json={"business_key": variables.pop("business_key", None), "variables": variables})
        assert response.status_code == 201, response.text
        return response.json()

    def has_endpoint(self, method: str, path: str) -> bool:
        """True when the OpenAPI document lists this operation (some are built by other areas)."""
        spec = requests.get(f"{self.url}/api/v1/openapi.json", timeout=30)
        paths = spec.json().get("paths", {})
        return method.lower() in paths.get(path, {})


def require_browser_tools():
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        service_missing("playwright for Python is not installed (pip install -e '.[test]')")
    if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
        service_missing(f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)")
    if not (VENDOR / "bpmn-js" / "bpmn-modeler.js").exists():
        service_missing("the web UI's npm packages are not built (make setup runs npm ci and build-vendor.mjs)")


@pytest.fixture(scope="module")
def live_server(tmp_path_factory):
    require_browser_tools()
    folder = tmp_path_factory.mktemp("web")
    url = f"sqlite:///{folder / 'bpm.sqlite'}"
    migrate(url)
    app = create_app(Settings(database_url=url, var_dir=folder))
    context = app.extensions["bpm"]
    for username, (roles, groups) in WEB_USERS.items():
        identity.create_user(identity.CreateUser(username, username.title(), None, groups, roles,
                                                 SUPERVISORS.get(username)), context.uow())
        identity.issue_token(identity.IssueToken(username, "web", token=f"demo-{username}"), context.uow())
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield LiveServer(f"http://127.0.0.1:{server.server_port}", app)
    server.shutdown()
    thread.join(timeout=10)
    context.engine.dispose()
    definitions.clear_runtime_cache()
    identity.clear_actor_cache()


@pytest.fixture(scope="module")
def browser():
    require_browser_tools()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def open_page(browser, live_server):
    """open_page(user, width=1280) -> a logged-in page; console errors are collected on page.errors."""
    contexts = []

    def _open(user: str, width: int = 1280, height: int = 900, locale: str = "en-US"):
        context = browser.new_context(viewport={"width": width, "height": height}, locale=locale)
        contexts.append(context)
        page = context.new_page()
        page.errors = []
        page.on("pageerror", lambda error: page.errors.append(str(error)))
        page.set_default_timeout(15_000)
        login(page, live_server.url, user)
        return page

    yield _open
    for context in contexts:
        context.close()


def login(page, base_url: str, user: str) -> None:
    page.goto(f"{base_url}/login")
    page.fill("#username", user)
    page.fill("#token", f"demo-{user}")
    page.click("button[type=submit]")
    page.wait_for_url(f"{base_url}/inbox")


def screenshot(page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def deploy_file(live_server: LiveServer, path: Path) -> None:
    response = live_server.api("POST", "/process-definitions", "dora", files={"file": (path.name, path.read_bytes())})
    assert response.status_code == 201, response.text


EXPENSE = FIXTURES / "bpmn" / "expense_approval.bpmn"


@pytest.fixture(scope="module")
def expense_process(live_server):
    """The expense approval process, deployed once per test module (`pytest.mark.usefixtures`)."""
    deploy_file(live_server, EXPENSE)


def playwright_expect():
    """Playwright's `expect`, imported when a browser test runs (collection works without Playwright)."""
    from playwright.sync_api import expect

    return expect
