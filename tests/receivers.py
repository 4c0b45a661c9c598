"""Local stand-ins for the outside world of delivery: an SMTP server and a webhook receiver on loopback.

Both count what arrives by the sender's dedupe key (Message-ID, X-BPM-Delivery), as a real receiver would,
so tests can tell "delivered" from "delivered twice in effect".
"""

from __future__ import annotations

import email
import email.policy
import json
import socket
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from bpm.adapters import channels


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class SmtpSink:
    """An aiosmtpd server on 127.0.0.1 that keeps every message it receives."""

    def __init__(self):
        from aiosmtpd.controller import Controller

        self.messages: list[email.message.EmailMessage] = []
        self._lock = threading.Lock()
        self.controller = Controller(self, hostname="127.0.0.1", port=free_port())

    async def handle_DATA(self, _server, _session, envelope):  # noqa: N802 - aiosmtpd's hook name
        message = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        with self._lock:
            self.messages.append(message)
        return "250 OK"

    def start(self) -> SmtpSink:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()

    @property
    def port(self) -> int:
        return self.controller.port

    def reset(self) -> None:
        with self._lock:
            self.messages.clear()

    def message_ids(self) -> Counter:
        with self._lock:
            return Counter(str(message["Message-ID"]) for message in self.messages)


class WebhookReceiver:
    """A JSON webhook endpoint that verifies X-BPM-Signature and counts X-BPM-Delivery ids.

    `fail_next` makes the next N requests answer 500; `robot_errcode` answers like a refusing chat robot.
    """

    def __init__(self, secret: str = ""):
        self.secret = secret
        self.deliveries: Counter = Counter()
        self.bodies: list[dict] = []
        self.paths: list[str] = []
        self.bad_signatures = 0
        self.fail_next = 0
        self.robot_errcode = 0
        self.delay = 0.0  # seconds each accepted request takes (to catch a consumer mid-delivery)
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True

    def _handler(self):
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's hook name
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                status = receiver.receive(self.path, self.headers, body)
                answer = json.dumps({"errcode": receiver.robot_errcode, "errmsg": "ok"}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *_args):
                pass

        return Handler

    def receive(self, path: str, headers, body: bytes) -> int:
        if self.delay:
            time.sleep(self.delay)
        with self._lock:
            if self.fail_next > 0:
                self.fail_next -= 1
                return 500
            if self.secret and not channels.verify(self.secret, headers.get("X-BPM-Signature", ""), body):
                self.bad_signatures += 1
                return 401
            self.paths.append(path)
            self.bodies.append(json.loads(body))
            self.deliveries[headers.get("X-BPM-Delivery", "")] += 1
            return 200

    def distinct_deliveries(self) -> set[str]:
        with self._lock:
            return set(self.deliveries)

    def reset(self) -> None:
        with self._lock:
            self.deliveries.clear()
            self.bodies.clear()
            self.paths.clear()
            self.bad_signatures = 0

    def start(self) -> WebhookReceiver:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"
