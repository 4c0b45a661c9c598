"""docker-compose.yml is accepted by Docker Compose and runs every process of the production stack."""

from __future__ import annotations

import shutil
import subprocess

from conftest import REPO, service_missing


def compose_command() -> list[str]:
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=60)
        if probe.returncode == 0:
            return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    service_missing("neither the `docker compose` plugin nor `docker-compose` is installed")
    return []


def run_compose(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*compose_command(), "-f", str(REPO / "docker-compose.yml"), *args], cwd=REPO,
                          capture_output=True, text=True, timeout=120)


def test_compose_accepts_the_file_and_defines_the_whole_stack():
    checked = run_compose("config", "-q")
    assert checked.returncode == 0, checked.stderr
    services = run_compose("config", "--services")
    assert set(services.stdout.split()) == {"postgres", "rabbitmq", "migrate", "api", "worker", "beat"}
