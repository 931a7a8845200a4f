"""`/healthz`, `/readyz` and `/metrics` on the HTTP services' own port (web workspace, gateway).

Those services already answer HTTP, so the endpoints are routes of the same application rather
than a second server; they need no sign-in or token (they show no record) and stay out of the
OpenAPI document. Each request is counted by its route template and status class, never by its
URL: a URL can hold a child's id.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response
from fastapi.responses import PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram
from starlette.routing import Match

from sgledger.observe.metrics import ServiceMetrics
from sgledger.observe.server import Readiness, readiness_answer


def add_health_routes(app: FastAPI, metrics: ServiceMetrics, ready: Readiness) -> None:
    requests = Counter(
        "sgledger_http_requests_total",
        "HTTP requests by route template and status class (2xx, 4xx, ...).",
        ["route", "status"],
        registry=metrics.registry,
    )
    latency = Histogram(
        "sgledger_http_request_seconds",
        "HTTP request latency by route template.",
        ["route"],
        buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        registry=metrics.registry,
    )

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> PlainTextResponse:
        return PlainTextResponse("ok\n")

    @app.get("/readyz", include_in_schema=False)
    def readyz() -> PlainTextResponse:
        status, body = readiness_answer(ready)
        return PlainTextResponse(body, status_code=status)

    @app.get("/metrics", include_in_schema=False)
    def metrics_() -> Response:
        return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    @app.middleware("http")
    async def count(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        started = time.perf_counter()
        response = await call_next(request)
        route = _template(app, request)
        requests.labels(route, f"{response.status_code // 100}xx").inc()
        latency.labels(route).observe(time.perf_counter() - started)
        return response


def _template(app: FastAPI, request: Request) -> str:
    for route in app.router.routes:
        match, _ = route.matches(request.scope)
        if match == Match.FULL:
            return str(getattr(route, "path", "other"))
    return "unmatched"
