"""`bpm serve` as an operator runs it: access log where BPM_ACCESS_LOG says, a killed HTTP worker replaced
while the server keeps its port, and a clean stop on SIGTERM. Embedded mode (SQLite, no broker)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import requests
from test_readme_walkthrough import BPM, REPO, free_port, wait_until_ready

ADMIN_TOKEN = "serve-test-admin-token-0123456789"


@pytest.fixture
def server(tmp_path):
    port = free_port()
    env = {**os.environ, "BPM_VAR_DIR": str(tmp_path), "BPM_PORT": str(port), "BPM_DATABASE_URL": "",
           "BPM_BROKER_URL": "", "BPM_ACCESS_LOG": str(tmp_path / "access.log"),
           "BPM_BOOTSTRAP_ADMIN_TOKEN": ADMIN_TOKEN}
    log_path = tmp_path / "server.log"
    with log_path.open("w") as log:
        process = subprocess.Popen([str(BPM), "serve"], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{port}"
        try:
            wait_until_ready(base, process, log_path)
            yield process, base, tmp_path
        finally:
            if process.poll() is None:
                process.terminate()
                process.wait(timeout=30)


def workers_of(pid: int) -> list[int]:
    return [int(child) for task in Path(f"/proc/{pid}/task").iterdir()
            for child in (task / "children").read_text().split()]


def test_requests_are_written_to_the_access_log(server):
    _process, base, tmp_path = server
    assert requests.get(f"{base}/healthz", timeout=10).status_code == 200
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and "/healthz" not in _read(tmp_path / "access.log"):
        time.sleep(0.1)
    [line] = [line for line in _read(tmp_path / "access.log").splitlines() if "/healthz" in line]
    assert '"GET /healthz HTTP/1.1" 200' in line


def test_a_killed_worker_is_replaced_and_the_server_stops_cleanly_on_sigterm(server):
    process, base, tmp_path = server
    [worker] = workers_of(process.pid)
    os.kill(worker, signal.SIGKILL)
    deadline = time.monotonic() + 45
    while time.monotonic() < deadline:
        replaced = [pid for pid in workers_of(process.pid) if pid != worker]
        if replaced and _answers(base):
            break
        time.sleep(0.3)
    else:
        pytest.fail(f"no worker answered after the kill:\n{_read(tmp_path / 'server.log')}")
    assert process.poll() is None
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0
    assert not _answers(base)


def test_the_sign_in_cookie_is_secure_behind_a_local_https_proxy_and_only_then(server):
    _process, base, _tmp_path = server

    def cookie(headers: dict) -> str:
        response = requests.post(f"{base}/login", data={"token": ADMIN_TOKEN}, headers=headers,
                                 allow_redirects=False, timeout=10)
        assert response.status_code == 302, response.text
        return response.headers["Set-Cookie"]

    assert "Secure" in cookie({"X-Forwarded-Proto": "https"})
    assert "Secure" not in cookie({})
    assert "Secure" not in cookie({"X-Forwarded-Proto": "http"})


def test_workers_stop_when_the_main_process_is_killed(server):
    """A main process killed with SIGKILL (the OOM killer, say) leaves no worker serving on its port."""
    process, base, _tmp_path = server
    [worker] = workers_of(process.pid)
    process.kill()
    process.wait(timeout=10)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and Path(f"/proc/{worker}").exists() and _state(worker) != "Z":
        time.sleep(0.2)
    assert not Path(f"/proc/{worker}").exists() or _state(worker) == "Z", "the worker still runs"
    assert not _answers(base)


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"


def _answers(base: str) -> bool:
    try:
        return requests.get(f"{base}/healthz", timeout=2).status_code == 200
    except requests.RequestException:
        return False


def _read(path: Path) -> str:
    return path.read_text() if path.exists() else ""
