"""The benchmarks of BENCHMARKS.md still run, each from its documented command, with tiny parameters.

They are scripts, not timed tests: nothing here asserts a speed. What is asserted is that each one runs to its
report against the real PostgreSQL and RabbitMQ, and the figures that do not depend on the machine: the
statements per instance, the state row's size, zero failed calls and error lines, an empty outbox.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
from conftest import POSTGRES_URL, REPO
from harness import RABBITMQ_HOST_URL, require_rabbitmq

pytestmark = [pytest.mark.postgres, pytest.mark.rabbitmq]

STATEMENTS_PER_INSTANCE = 21  # start + 3 completions of benchmarks/three_approvals.bpmn (BENCHMARKS.md, ninth round)
# Its writes alone: the instance's INSERT and 3 UPDATEs, 3 task INSERTs and 3 UPDATEs, 4 history INSERTs. Most are
# sent on the driver, past SQLAlchemy (bpm.adapters.hot_rows): a count that misses them is below this.
WRITES_PER_INSTANCE = 14
STATE_ROW_LIMIT = 5 * 1024  # issue 7's target for the 3-approval process


@pytest.fixture(scope="module")
def services(postgres_url):
    """The suite's PostgreSQL tier (skipped loudly, or failed in CI, when the server is missing), and RabbitMQ."""
    require_rabbitmq()


def run_benchmark(script: str, *args: str) -> str:
    env = {**os.environ, "BPM_BENCH_DATABASE_URL": POSTGRES_URL, "BPM_BENCH_BROKER_URL": RABBITMQ_HOST_URL + "//"}
    result = subprocess.run([sys.executable, str(REPO / "benchmarks" / script), *args], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"{script} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout


def table_rows(output: str, first_cell: str) -> list[list[str]]:
    return [[cell.strip() for cell in line.strip("|").split("|")]
            for line in output.splitlines() if line.startswith(f"| {first_cell}")]


def test_engine_vs_server_reports_every_path_the_statements_and_the_state_row(services):
    output = run_benchmark("engine_vs_server.py", "--rounds", "1", "--instances", "3", "--http-seconds", "1")
    for path in ("(a) pure SpiffWorkflow", "(a2) bpm.engine", "(b) service layer + PostgreSQL", "(c) HTTP"):
        [row] = table_rows(output, path)
        assert float(row[1]) > 0, f"{path}: no steps measured"
    statements = re.search(r"SQL statements per instance .*\(b\) (\d+)", output)
    assert statements and WRITES_PER_INSTANCE <= int(statements.group(1)) <= STATEMENTS_PER_INSTANCE, output[-1500:]
    state = re.search(r"process_instances.state_json: average (\d+), max (\d+)", output)
    assert state and 0 < int(state.group(2)) <= STATE_ROW_LIMIT
    cpu = re.search(r"CPU per step \(median\): \(a\) ([\d.]+) ms; \(b\) ([\d.]+) ms in the service calls "
                    r"\+ ([\d.]+) ms in PostgreSQL's backends", output)
    # The backends' CPU is read in clock ticks (10 ms): a run this short may see none of it.
    assert cpu and float(cpu.group(1)) > 0 and float(cpu.group(2)) > 0 and float(cpu.group(3)) >= 0, output[-1500:]
    ratio = re.search(r"CPU per step \(b\)/\(a\), per round: [\d.]+; median ([\d.]+)", output)
    # The service's CPU per step includes the engine's own work, so it cannot cost less than half the pure engine
    # (whose JSON carries the spec) unless the measurement lost a side.
    assert ratio and float(ratio.group(1)) > 0.5, output[-1500:]


def test_throughput_runs_one_server_and_the_scale_out_without_errors(services):
    output = run_benchmark("throughput.py", "--clients", "4", "--seconds", "1")  # scale-out runs levels >= 4
    single, scaled = table_rows(output, "1 API x "), table_rows(output, "2 APIs x ")  # bpm serve's worker count
    assert len(single) == 1 and len(scaled) == 1, output[-2000:]
    for row in single + scaled:
        assert float(row[2]) > 0, f"no instance completed: {row}"
        assert row[-1] == "0", f"failed calls: {row}"
    assert "ERROR/Traceback lines in API, worker and beat logs: 0" in output
    assert "outbox: empty" in output
    assert re.search(r"worker : master \d+ MB, children \d+ MB", output), "no peak RSS of the Celery workers"


def test_cost_growth_runs_every_process_shape_through_the_engine_and_the_service(services):
    output = run_benchmark("cost_growth.py", "--lengths", "5", "--loop", "3", "--parallel", "3",
                           "--parallel-loop", "2", "--inclusive-loop", "2", "--long-loop", "20")
    for process in ("sequential_5", "loop_3", "parallel_loop_2", "inclusive_loop_2", "parallel_3"):
        [row] = table_rows(output, process)
        engine_after, service = row[3], row[4]
        assert "failed" not in engine_after and "failed" not in service, f"{process}: {row}"
    for label in ("engine alone, CPU", "service, wall"):  # the long loop, by tenths of its 20 steps
        tenths = re.search(rf"  {label}: ([\d., ]+)\n", output)
        assert tenths and len(tenths.group(1).split(", ")) == 10, output[-1500:]
        assert all(float(value) > 0 for value in tenths.group(1).split(", ")), output[-1500:]


def test_sql_floor_replays_the_statements_of_the_service_layer(services):
    output = run_benchmark("sql_floor.py", "--rounds", "1", "--instances", "3")
    recorded = re.search(r"statements per instance: (\d+) ", output)
    assert recorded and WRITES_PER_INSTANCE <= int(recorded.group(1)) <= STATEMENTS_PER_INSTANCE, output[-1500:]
    for path in ("(sql) its statements", "(sql-sa)", "(sql-pipe)", "(sql-1rt)"):
        [row] = table_rows(output, path)
        assert float(row[1]) > 0, f"{path}: {row}"


def test_state_compression_measures_both_methods_on_both_states(services):
    output = run_benchmark("state_compression.py", "--rows", "40", "--rounds", "1")
    for state in ("3-approval", "parallel_100"):
        rows = {row[2]: row for row in table_rows(output, state) if row[2] in ("pglz", "lz4")}
        assert set(rows) == {"pglz", "lz4"}, output[-1500:]
        for row in rows.values():
            assert int(row[3].replace(",", "")) > 0, f"{state}: nothing stored: {row}"


def test_http_floor_loads_each_server_without_a_failed_request(services):
    output = run_benchmark("http_floor.py", "--rounds", "1", "--seconds", "0.5")
    for server in ("granian, a WSGI function", "granian + Flask, one route", "bpm serve, /healthz",
                   "bpm serve, an empty inbox"):
        [row] = table_rows(output, server)
        assert float(row[1].replace(",", "")) > 0 and int(row[2].split()[0]) > 0, f"{server}: {row}"


@pytest.mark.parametrize("arguments", [("--decide", "approve", "--against", "trail-apart"),
                                       ("--against", "fresh-connections")])
def test_service_cpu_pairs_the_shipped_code_with_an_earlier_way(services, arguments):
    against = arguments[-1]
    output = run_benchmark("service_cpu.py", *arguments, "--rounds", "1", "--instances", "2")
    assert re.search(rf"{against} +wall +\d", output) and re.search(r"shipped +wall +\d", output), output[-1500:]
    assert f"shipped / {against}, median of the rounds' ratios" in output


@pytest.mark.parametrize("against", ["stdlib-json", "session-reads", "webargs-query"])
def test_api_cpu_pairs_the_shipped_api_with_each_change_undone(services, against):
    output = run_benchmark("api_cpu.py", "--against", against, "--rounds", "1", "--instances", "2")
    for label, unit in (("API CPU per instance", "ms"), ("API CPU per inbox page", "us")):
        line = re.search(rf"{label} \(median of 1 rounds of 2 instances\): shipped ([\d.]+) {unit}, "
                         rf"{against} ([\d.]+) {unit}; shipped / {against}", output)
        assert line and float(line.group(1)) > 0 and float(line.group(2)) > 0, output[-1500:]


def test_ab_http_pairs_the_lean_load_generator_with_http_client_on_the_same_code(services):
    output = run_benchmark("ab_http.py", "--baseline", ".", "--baseline-client", "stdlib", "--slices", "1",
                           "--seconds", "1", "--clients", "2")
    assert "load generator's client: old stdlib, new lean" in output, output[-1500:]
    assert " errors, e.g. " not in output, output[-1500:]  # what a slice with failed calls prints
    for side in ("old", "new"):
        [row] = table_rows(output, side)
        rate, cpu = float(row[1]), [float(value) for value in row[2].split(" / ")]
        assert rate > 0 and all(value > 0 for value in cpu), f"{side}: {row}"
    assert re.search(r"new/old client CPU per instance: median of slice pairs [\d.]+", output), output[-1500:]
