"""Shared plumbing of the performance benchmarks: a private PostgreSQL database, seeded approvers, the HTTP server
servers, Celery workers and an HTTP load generator that runs in its own processes.

Every benchmark creates its own database (dropped at the end) and stops every process it started, by pid.
"""

from __future__ import annotations

import http.client
import json
import multiprocessing
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Collection
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bpm.adapters.db import migrate  # noqa: E402
from bpm.config import Settings  # noqa: E402

DEFAULT_URL = os.environ.get("BPM_BENCH_DATABASE_URL", "postgresql+psycopg://root@127.0.0.1:5432/test")
BROKER_URL = os.environ.get("BPM_BENCH_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672//")
THREE_APPROVALS = Path(__file__).resolve().parent / "three_approvals.bpmn"
BIN = Path(sys.executable).parent
APPROVERS = {"alice": "team-leads", "bob": "finance", "carol": "directors"}
STARTER = "ivan"
# Task element -> the approver who completes it (the candidate group of that step).
STEP_APPROVER = {"approve_a": "alice", "approve_b": "bob", "approve_c": "carol"}


def token_of(username: str) -> str:
    return f"bench-{username}-token"


# --- database ----------------------------------------------------------------------------------------------------


@contextmanager
def driver_statements(engine):
    """The statements the engine's connections send through psycopg while the block runs, as (sql, parameters,
    many): SQLAlchemy's and those the server sends on the driver itself (bpm.adapters.hot_rows, on a cursor or
    in a pipeline), which no SQLAlchemy event sees. The engine's pool is emptied before and after, so every
    connection used in the block is a new one with a recording cursor."""
    from sqlalchemy import event

    from bpm.adapters import hot_rows

    seen: list[tuple[str, object, bool]] = []

    sending = []  # non-empty while hot_rows.send_statements runs: its statements are recorded there, once

    def record(dbapi_connection, _record) -> None:
        class Recording(dbapi_connection.cursor_factory):
            def execute(self, query, params=None, **options):
                if not sending:
                    seen.append((query, params, False))
                return super().execute(query, params, **options)

            def executemany(self, query, params_seq, **options):
                params_seq = list(params_seq)
                seen.append((query, params_seq, True))
                return super().executemany(query, params_seq, **options)

        dbapi_connection.cursor_factory = Recording

    def record_sent(connection, statements, commit=False):
        seen.extend((sql, parameters, False) for sql, parameters, _check in statements)
        sending.append(True)
        try:
            return send_statements(connection, statements, commit=commit)
        finally:
            sending.pop()

    send_statements = hot_rows.send_statements
    engine.dispose()
    event.listen(engine, "connect", record)
    hot_rows.send_statements = record_sent
    try:
        yield seen
    finally:
        hot_rows.send_statements = send_statements
        event.remove(engine, "connect", record)
        engine.dispose()


def libpq_url(sqlalchemy_url: str) -> str:
    """The database of a SQLAlchemy URL (postgresql+psycopg://...) as a URL psycopg connects to."""
    return make_url(sqlalchemy_url).set(drivername="postgresql").render_as_string(hide_password=False)


def _admin_conninfo(url: str) -> str:
    parsed = make_url(url)
    return f"host={parsed.host or '127.0.0.1'} port={parsed.port or 5432} user={parsed.username or 'root'} dbname=test"


@contextmanager
def private_database(prefix: str, base_url: str = DEFAULT_URL, migrated: bool = True):
    """A fresh database migrated with the project's Alembic revisions (unless `migrated` is false: empty);
    dropped (connections killed) at the end."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    admin = _admin_conninfo(base_url)
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    url = make_url(base_url).set(database=name).render_as_string(hide_password=False)
    try:
        if migrated:
            migrate(url)
        yield url, name
    finally:
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
            connection.execute(f'DROP DATABASE IF EXISTS "{name}"')


def database_stats(url: str) -> dict[str, int]:
    """Commits and rows written so far in this database (pg_stat_database, cumulative)."""
    parsed = make_url(url)
    with psycopg.connect(_admin_conninfo(url), autocommit=True) as connection:
        connection.execute("SELECT pg_stat_clear_snapshot()")
        row = connection.execute(
            "SELECT xact_commit, tup_inserted, tup_updated, tup_deleted FROM pg_stat_database WHERE datname = %s",
            (parsed.database,)).fetchone()
    return {"commits": row[0], "inserted": row[1], "updated": row[2], "deleted": row[3]}


def seed(url: str, bpmn_files: list[Path] | None = None) -> None:
    """Approvers alice/bob/carol (one group each), starter ivan, fixed tokens; deploy the given BPMN files."""
    from api.context import ServerContext
    from bpm.services import definitions, identity

    context = ServerContext.build(Settings(database_url=url, broker_url=BROKER_URL))
    for username, group in APPROVERS.items():
        identity.create_user(identity.CreateUser(username, groups=[group], roles=["approver"]), context.uow())
    identity.create_user(identity.CreateUser(STARTER, roles=["integrator", "approver"]), context.uow())
    for username in [*APPROVERS, STARTER]:
        identity.issue_token(identity.IssueToken(username, "bench", token=token_of(username)), context.uow())
    for path in bpmn_files or [THREE_APPROVALS]:
        definitions.deploy(definitions.DeployBpmn(path.read_bytes(), path.name, "bench"), context.uow())
    context.engine.dispose()


# --- processes -----------------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class Server:
    process: subprocess.Popen
    port: int
    log: Path
    kind: str = "api"

    def worker_pids(self) -> list[int]:
        """The HTTP workers of `bpm serve` (or Celery pool processes): children of the main process."""
        return _children(self.process.pid)

    def stop(self) -> None:
        stop_process(self.process)


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def stop_process(process: subprocess.Popen) -> None:
    """SIGTERM to the process group we created for this child (its HTTP workers and Celery pool included)."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
    except ProcessLookupError:
        pass


def server_env(url: str, port: int, var_dir: str, root: Path = ROOT) -> dict[str, str]:
    env = dict(os.environ)
    env.update(BPM_DATABASE_URL=url, BPM_BROKER_URL=BROKER_URL, BPM_PORT=str(port), BPM_HOST="127.0.0.1",
               BPM_VAR_DIR=var_dir, PYTHONPATH=str(root))
    return env


def start_api(url: str, workers: int, log_dir: Path, root: Path = ROOT, env: dict[str, str] | None = None) -> Server:
    """`bpm serve` with a broker URL: granian with the shipped configuration, no embedded background threads.
    `root`: the checkout whose code it runs (another one for an A/B against older code); `env`: settings of its
    own (BPM_WEB_THREADS, say)."""
    port = free_port()
    log = log_dir / f"api-{port}.log"
    process = subprocess.Popen([str(BIN / "bpm"), "serve", "--workers", str(workers)], cwd=root,
                               env={**server_env(url, port, str(log_dir), root), **(env or {})}, stdout=log.open("w"),
                               stderr=subprocess.STDOUT, start_new_session=True)
    server = Server(process, port, log)
    _wait_healthy(server)
    return server


def start_worker(url: str, name: str, log_dir: Path) -> Server:
    """`bpm worker` (Celery, one pool process) against the same database and RabbitMQ."""
    log = log_dir / f"worker-{name}.log"
    process = subprocess.Popen([str(BIN / "bpm"), "worker", "--concurrency=1", f"-n{name}@%h"], cwd=ROOT,
                               env=server_env(url, 0, str(log_dir)), stdout=log.open("w"),
                               stderr=subprocess.STDOUT, start_new_session=True)
    return Server(process, 0, log, "worker")


def _wait_healthy(server: Server, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"server exited early; see {server.log}:\n{server.log.read_text()[-2000:]}")
        try:
            connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=2)
            connection.request("GET", "/healthz")
            if connection.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    server.stop()
    raise RuntimeError(f"server did not become healthy; see {server.log}")


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU the processes have used so far (Linux /proc; a process that is gone counts 0)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def backend_cpu_seconds(url: str, database: str, exclude: Collection[int] = ()) -> float:
    """User + system CPU the PostgreSQL backends connected to `database` have used so far, but those whose process
    ids are in `exclude` (Linux /proc; PostgreSQL must run on this machine). A backend that disconnected before the
    second reading takes its CPU with it."""
    with psycopg.connect(_admin_conninfo(url), autocommit=True) as connection:
        pids = [row[0] for row in connection.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s", (database,)) if row[0] not in exclude]
    return cpu_seconds(pids)


def postgres_pids() -> list[int]:
    """Every PostgreSQL server process on the machine (the benchmarks' backends included)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().startswith("postgres"):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def cpu_by_process(servers: list[Server]) -> dict[str, dict[int, float]]:
    """CPU used so far by each of our server processes (main processes, HTTP workers, Celery
    pool processes) and PostgreSQL's."""
    ours = [pid for server in servers for pid in (server.process.pid, *server.worker_pids())]
    return {"server": {pid: cpu_seconds([pid]) for pid in ours},
            "postgres": {pid: cpu_seconds([pid]) for pid in postgres_pids()}}


def cpu_used(before: dict[str, dict[int, float]], after: dict[str, dict[int, float]]) -> dict[str, float]:
    """CPU seconds per part between two snapshots (a process that started in between counts whole)."""
    return {part: sum(seconds - before[part].get(pid, 0.0) for pid, seconds in after[part].items())
            for part in after}


def peak_rss_kb(pid: int) -> int:
    """VmHWM: the highest resident set size the process has had (kB)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def scratch_dir() -> Path:
    return Path(tempfile.mkdtemp(prefix="bpm-bench-"))


# --- HTTP load generator -----------------------------------------------------------------------------------------


class Client:
    """One keep-alive HTTP/1.1 connection per thread, JSON in, JSON out, read and written on the socket directly.

    The load generator shares the machine's two cores with the server and PostgreSQL, so its own CPU per call
    takes cores from the server. http.client (`StdlibClient`) parses each response's headers with the email
    package; this client reads the status line, Content-Length (or a chunked body) and Connection, which is all
    the calls here need. BENCHMARKS.md, "Throughput under concurrency", twentieth round, pairs the two."""

    def __init__(self, port: int):
        self.port = port
        self.socket: socket.socket | None = None
        self.buffer = b""

    def call(self, method: str, path: str, user: str, body=None):
        payload = b"" if body is None else json.dumps(body).encode()
        head = (f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n"
                f"Authorization: Bearer {token_of(user)}\r\nContent-Length: {len(payload)}\r\n"
                + ("" if body is None else "Content-Type: application/json\r\n") + "\r\n").encode()
        for attempt in range(2):  # a connection the server closed while idle is opened again once, as StdlibClient's
            try:
                if self.socket is None:
                    self._connect()
                self.socket.sendall(head + payload)
                status, data, keep_alive = self._response()
                break
            except OSError:
                self.close()
                if attempt:
                    raise
        if not keep_alive:
            self.close()
        return status, (json.loads(data) if data else None)

    def _connect(self) -> None:
        self.socket = socket.create_connection(("127.0.0.1", self.port), timeout=60)
        self.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def close(self) -> None:
        if self.socket is not None:
            self.socket.close()
        self.socket, self.buffer = None, b""

    def _response(self) -> tuple[int, bytes, bool]:
        """(status, body, whether the connection stays open) of the next response."""
        while (end := self.buffer.find(b"\r\n\r\n")) < 0:
            self._receive()
        lines = self.buffer[:end].decode("latin-1").split("\r\n")
        self.buffer = self.buffer[end + 4:]
        status = int(lines[0].split(" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip().lower()
        keep_alive = (headers.get("connection") == "keep-alive" if lines[0].startswith("HTTP/1.0")
                      else headers.get("connection") != "close")
        if headers.get("transfer-encoding") == "chunked":
            return status, self._chunked(), keep_alive
        if "content-length" in headers:
            return status, self._take(int(headers["content-length"])), keep_alive
        if status in (204, 304) or 100 <= status < 200:
            return status, b"", keep_alive
        while self._receive(eof_ok=True):  # no length: the body ends with the connection
            pass
        data, self.buffer = self.buffer, b""
        return status, data, False

    def _chunked(self) -> bytes:
        parts = []
        while True:
            while (end := self.buffer.find(b"\r\n")) < 0:
                self._receive()
            size = int(self.buffer[:end].split(b";")[0], 16)
            self.buffer = self.buffer[end + 2:]
            if size == 0:
                while (end := self.buffer.find(b"\r\n")) != 0:  # trailers, up to the empty line
                    if end < 0:
                        self._receive()
                    else:
                        self.buffer = self.buffer[end + 2:]
                self.buffer = self.buffer[2:]
                return b"".join(parts)
            parts.append(self._take(size))
            self._take(2)

    def _take(self, size: int) -> bytes:
        while len(self.buffer) < size:
            self._receive()
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data

    def _receive(self, eof_ok: bool = False) -> bool:
        chunk = self.socket.recv(65536)
        if not chunk:
            if eof_ok:
                return False
            raise ConnectionError("the server closed the connection")
        self.buffer += chunk
        return True


class StdlibClient:
    """The load generator's client before the twentieth round: http.client, one keep-alive connection per
    thread. Kept to pair the two (benchmarks/ab_http.py --baseline-client stdlib)."""

    def __init__(self, port: int):
        self.port = port
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def call(self, method: str, path: str, user: str, body=None):
        headers = {"Authorization": f"Bearer {token_of(user)}"}
        payload = None
        if body is not None:
            payload = json.dumps(body)
            headers["Content-Type"] = "application/json"
        for attempt in range(2):
            try:
                self.connection.request(method, path, payload, headers)
                response = self.connection.getresponse()
                data = response.read()
                return response.status, (json.loads(data) if data else None)
            except (http.client.HTTPException, OSError):
                self.connection.close()
                self.connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        self.connection.close()


CLIENTS = {"lean": Client, "stdlib": StdlibClient}  # the load generator's HTTP clients, by name


API = "/api/v1"


DECISIONS = {"complete": {"variables": {"approved": True}},  # the generic task API
             "approve": {"opinion": "ok"}}  # the approvers' operation (signers, trail, routing variables)


def run_instance(client: Client, key: str, samples: list, errors: list, decision: str = "complete") -> bool:
    """Start one 3-approval instance and decide its three tasks (`decision`: complete or approve), each by its
    candidate approver. The next task is found the way an approver finds it: their inbox filtered by business
    key. The decision calls are sampled as "complete" whichever operation they use."""
    business_key = uuid.uuid4().hex

    def timed(kind, method, path, user, body=None, expect=(200,)):
        began = time.perf_counter()
        status, data = client.call(method, path, user, body)
        samples.append((kind, time.perf_counter() - began))
        if status not in expect:
            errors.append(f"{kind} {status} {str(data)[:200]}")
            return None
        return data

    detail = timed("start", "POST", f"{API}/process-definitions/{key}/instances", STARTER,
                   {"business_key": business_key, "variables": {"amount": 5000}}, expect=(201,))
    if detail is None:
        return False
    task = detail["open_tasks"][0]
    for step in range(3):
        approver = STEP_APPROVER[task["element_id"]]
        if timed("complete", "POST", f"{API}/tasks/{task['id']}/{decision}", approver,
                 DECISIONS[decision]) is None:
            return False
        if step == 2:
            return True
        nxt = ("approve_b", "approve_c")[step]
        page = timed("inbox", "GET", f"{API}/tasks?business_key={business_key}", STEP_APPROVER[nxt])
        if page is None or not page["items"]:
            errors.append(f"inbox of {STEP_APPROVER[nxt]} lacks {nxt}")
            return False
        task = page["items"][0]
    return True


def _load_process(ports: list[int], threads: int, duration: float, key: str, decision: str, client: str,
                  out) -> None:
    out.send("ready")
    start_at = out.recv()  # every client process starts at the same moment, once all have imported
    cpu_before = time.process_time()
    samples: list = []
    errors: list = []
    completed = [0]
    lock = threading.Lock()

    def worker(index: int):
        http_client = CLIENTS[client](ports[index % len(ports)])
        local_samples, local_errors, done = [], [], 0
        while time.time() < start_at:
            time.sleep(0.005)
        end = start_at + duration
        while time.time() < end:
            try:
                if run_instance(http_client, key, local_samples, local_errors, decision):
                    done += 1
            except Exception as error:  # noqa: BLE001 - a load generator counts failures, it does not stop
                local_errors.append(repr(error))
        http_client.close()
        with lock:
            samples.extend(local_samples)
            errors.extend(local_errors)
            completed[0] += done

    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    out.send({"samples": samples, "errors": errors, "completed": completed[0], "finished": time.time(),
              "cpu": time.process_time() - cpu_before})
    out.close()


@dataclass
class LoadResult:
    clients: int
    seconds: float
    completed: int
    samples: list = field(default_factory=list)
    errors: list = field(default_factory=list)
    client_cpu: float = 0.0  # CPU seconds the client processes used during the run

    def latencies(self) -> dict[str, dict[str, float]]:
        by_kind: dict[str, list[float]] = {}
        for kind, seconds in self.samples:
            by_kind.setdefault(kind, []).append(seconds * 1000)
        return {kind: percentiles(values) for kind, values in sorted(by_kind.items())}


def percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)

    def at(q):
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    return {"n": len(ordered), "p50": at(0.50), "p95": at(0.95), "p99": at(0.99), "mean": statistics.fmean(ordered)}


def generate_load(ports: list[int], clients: int, duration: float, key: str = "three_approvals",
                  processes: int | None = None, decision: str = "complete", client: str = "lean") -> LoadResult:
    """`clients` concurrent clients (threads spread over client processes), round-robin over `ports`; each
    approver decides a task with `decision` (see DECISIONS); `client` names the HTTP client (see CLIENTS)."""
    processes = processes or (1 if clients < 4 else 2)
    context = multiprocessing.get_context("spawn")
    pipes, children = [], []
    for index in range(processes):
        threads = clients // processes + (1 if index < clients % processes else 0)
        receive, send = context.Pipe()
        child = context.Process(target=_load_process, args=(ports, threads, duration, key, decision, client, send))
        child.start()
        pipes.append(receive)
        children.append(child)
    for receive in pipes:
        receive.recv()
    start_at = time.time() + 0.2
    for receive in pipes:
        receive.send(start_at)
    result = LoadResult(clients, duration, 0)
    finished = start_at
    for receive in pipes:
        part = receive.recv()
        finished = max(finished, part["finished"])
        result.samples += part["samples"]
        result.errors += part["errors"]
        result.completed += part["completed"]
        result.client_cpu += part["cpu"]
    for child in children:
        child.join()
    result.seconds = finished - start_at  # the last instance started before the deadline runs to its end
    return result
