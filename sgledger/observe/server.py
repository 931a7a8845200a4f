"""`/healthz`, `/readyz` and `/metrics` on a small HTTP server in a daemon thread.

Health is "the process answers"; readiness is the service's own judgement (e.g. the projector's
last batch completed recently and its database answers), so a load balancer or Kubernetes stops
sending work to, or restarts, a service that is alive but stuck. The standard library's threading
server is enough: a scrape every few seconds is not traffic.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST

from sgledger.observe.metrics import ServiceMetrics

Readiness = Callable[[], tuple[bool, str]]


def readiness_answer(ready: Readiness) -> tuple[int, str]:
    """The /readyz status and body: 200 or 503 with the service's reason; a check that raises
    means "not ready", named by its exception class (never a traceback)."""
    try:
        ok, why = ready()
    except Exception as exc:
        ok, why = False, f"readiness check failed: {type(exc).__name__}"
    return (200 if ok else 503), f"{why}\n"


class HealthServer:
    def __init__(self, metrics: ServiceMetrics, ready: Readiness, *, host: str = "127.0.0.1", port: int = 0):
        self.metrics, self.ready = metrics, ready
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # the name http.server dispatches to
                server.answer(self)

            def log_message(self, format: str, *args: object) -> None:  # scrapes are not news
                return

        self._http = ThreadingHTTPServer((host, port), Handler)
        self._http.daemon_threads = True
        self._thread = threading.Thread(target=self._http.serve_forever, name="health", daemon=True)

    @property
    def port(self) -> int:
        return int(self._http.server_address[1])

    def start(self) -> HealthServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._http.shutdown()
        self._http.server_close()

    def answer(self, request: BaseHTTPRequestHandler) -> None:
        path = request.path.split("?", 1)[0]
        if path == "/healthz":
            self._send(request, 200, b"ok\n", "text/plain; charset=utf-8")
        elif path == "/readyz":
            status, body = readiness_answer(self.ready)
            self._send(request, status, body.encode(), "text/plain; charset=utf-8")
        elif path == "/metrics":
            self._send(request, 200, self.metrics.exposition(), CONTENT_TYPE_LATEST)
        else:
            self._send(request, 404, b"not found: /healthz, /readyz, /metrics\n", "text/plain; charset=utf-8")

    @staticmethod
    def _send(request: BaseHTTPRequestHandler, status: int, body: bytes, content_type: str) -> None:
        request.send_response(status)
        request.send_header("Content-Type", content_type)
        request.send_header("Content-Length", str(len(body)))
        request.send_header("Cache-Control", "no-store")
        request.end_headers()
        request.wfile.write(body)
