"""The README's promise to a newcomer: `bpm serve --seed-demo`, then its curl walkthrough, verbatim."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

REPO = Path(__file__).resolve().parents[2]
BPM = Path(sys.executable).parent / "bpm"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def readme_curl_block() -> str:
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Try it with curl", 1)[1]
    return re.search(r"```bash\n(.*?)```", section, re.S).group(1)


@pytest.fixture
def running_server(tmp_path):
    if shutil.which("curl") is None:
        pytest.skip("SERVICE MISSING: curl is not installed")
    port = free_port()
    env = {**os.environ, "BPM_VAR_DIR": str(tmp_path), "BPM_PORT": str(port), "BPM_DATABASE_URL": "",
           "BPM_BROKER_URL": ""}
    log = (tmp_path / "server.log").open("w")
    server = subprocess.Popen([str(BPM), "serve", "--seed-demo"], cwd=REPO, env=env, stdout=log,
                              stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(base, server, tmp_path / "server.log")
        yield base, tmp_path / "server.log"
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


def wait_until_ready(base: str, server, log_path: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"bpm serve exited early:\n{log_path.read_text()}")
        try:
            if requests.get(f"{base}/readyz", timeout=10).status_code == 200:
                return
        except requests.RequestException:  # not listening yet, or too busy to answer in time
            pass
        time.sleep(0.3)
    pytest.fail(f"bpm serve did not become ready:\n{log_path.read_text()}")


def test_readme_walkthrough_runs_as_written(running_server):
    base, log_path = running_server
    script = readme_curl_block().replace("http://127.0.0.1:8000", base)
    result = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=REPO, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr + result.stdout
    documents = [json.loads(line) for line in result.stdout.strip().splitlines()[-2:]]
    instance, history = documents
    assert instance["status"] == "completed"
    actors = [h["actor"] for h in history if h["event"] == "task.completed"]
    assert actors == ["alice", "bob", "carol"]
    [decision] = [h for h in history if h["event"] == "gateway.decision"]
    assert decision["data"]["evaluations"][0]["values"] == {"amount": 5000}
    assert "demo-alice" in log_path.read_text()  # the run command prints the demo tokens
