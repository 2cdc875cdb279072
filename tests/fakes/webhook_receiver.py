"""A platform's webhook endpoint on loopback: verifies our Standard Webhooks signatures with the
reference ``standardwebhooks`` library and records every delivery.

Tell it to fail: ``fail_times`` answers 500 that many times first, ``status`` answers that code
always, ``delay`` sleeps before answering (to make the sender time out).
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks import Webhook, WebhookVerificationError


@dataclass
class Received:
    """One delivery as the receiver saw it."""

    headers: dict[str, str]
    body: bytes
    verified: bool
    payload: Any = None


@dataclass
class WebhookReceiver:
    """The fake endpoint; ``url`` is where to send, ``secret`` the ``whsec_`` secret to check."""

    secret: str
    fail_times: int = 0
    status: int = 200
    delay: float = 0.0
    received: list[Received] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks/modtools"

    def start(self) -> WebhookReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {key.lower(): value for key, value in self.headers.items()}
                try:
                    payload = Webhook(receiver.secret).verify(body, headers)
                    verified = True
                except WebhookVerificationError:
                    payload, verified = None, False
                receiver.received.append(Received(headers, body, verified, payload))
                if receiver.delay:
                    time.sleep(receiver.delay)
                if receiver.fail_times > 0:
                    receiver.fail_times -= 1
                    code = 500
                else:
                    code = receiver.status if verified else 401
                answer = json.dumps({"ok": code < 300}).encode()
                try:
                    self.send_response(code)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(answer)))
                    self.end_headers()
                    self.wfile.write(answer)
                except OSError:
                    pass  # the sender gave up waiting

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    def ids(self) -> list[str]:
        """The ``webhook-id`` of every delivery, in order."""
        return [delivery.headers.get("webhook-id", "") for delivery in self.received]
