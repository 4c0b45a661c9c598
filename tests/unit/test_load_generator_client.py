"""The benchmarks' lean HTTP client (benchmarks/_common.Client) reads responses the way HTTP/1.1 frames them.

The throughput figures of BENCHMARKS.md count the calls this client completes, so a response it misreads would
be a wrong figure. Each test scripts a loopback server's raw bytes and checks what the client returns and what it
sent.
"""

from __future__ import annotations

import json
import socket
import sys
import threading

import pytest
from conftest import REPO

sys.path.insert(0, str(REPO / "benchmarks"))
from _common import Client, token_of  # noqa: E402


class ScriptedServer:
    """Accepts connections one after another; answers each request read with the next scripted response and
    closes the connection after a response marked so. Records each request's raw bytes and each connection."""

    def __init__(self, responses: list[tuple[bytes, bool]]):
        self.responses = list(responses)
        self.requests: list[bytes] = []
        self.connections = 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while self.responses:
            connection, _ = self.listener.accept()
            self.connections += 1
            with connection:
                buffer = b""
                while self.responses:
                    request, buffer = _read_request(connection, buffer)
                    if request is None:
                        break
                    self.requests.append(request)
                    response, close = self.responses.pop(0)
                    connection.sendall(response)
                    if close:
                        break

    def close(self) -> None:
        self.listener.close()


def _read_request(connection, buffer: bytes) -> tuple[bytes | None, bytes]:
    while b"\r\n\r\n" not in buffer:
        chunk = connection.recv(65536)
        if not chunk:
            return None, buffer
        buffer += chunk
    head, _, rest = buffer.partition(b"\r\n\r\n")
    length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                   if line.lower().startswith(b"content-length:")), 0)
    while len(rest) < length:
        rest += connection.recv(65536)
    return head + b"\r\n\r\n" + rest[:length], rest[length:]


@pytest.fixture
def scripted():
    servers = []

    def start(*responses):
        server = ScriptedServer(list(responses))
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


@pytest.fixture
def client():
    clients = []

    def connect(server: ScriptedServer) -> Client:
        clients.append(Client(server.port))
        return clients[-1]

    yield connect
    for each in clients:
        each.close()


def test_a_post_sends_its_json_body_and_token_and_reads_a_content_length_body(scripted, client):
    server = scripted((b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n"
                       b'{"id": "7"}', False))
    status, data = client(server).call("POST", "/api/v1/things", "alice", {"amount": 5000})
    assert (status, data) == (201, {"id": "7"})
    head, _, body = server.requests[0].partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert lines[0] == "POST /api/v1/things HTTP/1.1"
    assert f"Authorization: Bearer {token_of('alice')}" in lines
    assert "Content-Type: application/json" in lines
    assert json.loads(body) == {"amount": 5000}


def test_calls_reuse_one_connection_and_a_body_split_across_reads_is_joined(scripted, client):
    body = json.dumps({"items": ["x" * 70_000]}).encode()  # more than one recv's worth
    server = scripted(
        (b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body, False),
        (b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n[]", False))
    http = client(server)
    assert http.call("GET", "/a", "bob") == (200, {"items": ["x" * 70_000]})
    assert http.call("GET", "/b", "bob") == (200, [])
    assert server.connections == 1
    assert b"Content-Type" not in server.requests[1]  # a GET sends no body


def test_a_chunked_body_with_a_trailer_is_read_whole_and_the_next_response_after_it(scripted, client):
    server = scripted(
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
         b"4\r\n{\"a\"\r\n6;ext=1\r\n: [1]}\r\n0\r\nX-Trailer: 1\r\n\r\n", False),
        (b"HTTP/1.1 404 Not Found\r\nContent-Length: 13\r\n\r\n{\"error\": 1}\n", False))
    http = client(server)
    assert http.call("GET", "/a", "bob") == (200, {"a": [1]})
    assert http.call("GET", "/b", "bob") == (404, {"error": 1})
    assert server.connections == 1


def test_connection_close_opens_a_new_connection_for_the_next_call(scripted, client):
    server = scripted(
        (b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\n1", True),
        (b"HTTP/1.1 204 No Content\r\n\r\n", False))
    http = client(server)
    assert http.call("POST", "/a", "bob", {}) == (200, 1)
    assert http.socket is None  # not left open for a request the server would not read
    assert http.call("DELETE", "/b", "bob") == (204, None)
    assert server.connections == 2


def test_a_body_without_length_ends_with_the_connection(scripted, client):
    server = scripted((b"HTTP/1.0 200 OK\r\n\r\n{\"done\": true}", True),
                      (b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\ntrue", False))
    http = client(server)
    assert http.call("GET", "/a", "bob") == (200, {"done": True})
    assert http.call("GET", "/b", "bob") == (200, True)
    assert server.connections == 2


def test_an_http_1_0_response_closes_the_connection_unless_it_keeps_it_alive(scripted, client):
    server = scripted((b"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n1", True),
                      (b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\n2", False),
                      (b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n3", False))
    http = client(server)
    assert http.call("GET", "/a", "bob") == (200, 1)
    assert http.socket is None
    assert http.call("GET", "/b", "bob") == (200, 2)
    assert http.call("GET", "/c", "bob") == (200, 3)
    assert server.connections == 2


def test_a_body_that_is_not_json_fails_the_call_without_sending_it_again(scripted, client):
    server = scripted((b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 11\r\n\r\nBad Gateway", False))
    with pytest.raises(ValueError):
        client(server).call("POST", "/a", "bob", {"amount": 1})
    assert len(server.requests) == 1  # a POST is not repeated for a response it could not read as JSON


def test_a_connection_the_server_closed_while_idle_is_opened_again_once(scripted, client):
    server = scripted((b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n1", True),  # closes without saying so
                      (b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n2", False))
    http = client(server)
    assert http.call("GET", "/a", "bob") == (200, 1)
    assert http.call("GET", "/b", "bob") == (200, 2)  # the send or the read fails, the retry succeeds
    assert server.connections == 2
    assert [request.split(b" ")[1] for request in server.requests] == [b"/a", b"/b"]
