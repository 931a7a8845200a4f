"""The OpenAPI document an agency developer generates a Java or C# client from: valid, and
saying what the real gateway answers (status, media type, headers), every field described."""

from __future__ import annotations

from typing import Any

import httpx
from openapi_spec_validator import validate

from tests.gateway.conftest import GatewayProcess, draft

# The response headers a client acts on (docs/gateway.md).
HEADERS = {"location", "idempotent-replayed", "www-authenticate", "retry-after"}


def test_the_served_document_is_valid_openapi(gateway: GatewayProcess) -> None:
    """A dangling $ref (FastAPI's own HTTPValidationError) made generators stop here."""
    validate(httpx.get(f"{gateway.url}/openapi.json").json())


def test_every_real_answer_is_declared_with_its_media_type_and_headers(gateway: GatewayProcess) -> None:
    document = httpx.get(f"{gateway.url}/openapi.json").json()
    json = {"Content-Type": "application/json"}
    with gateway.client() as http, gateway.client(token="not-a-token") as stranger:
        first = http.post("/v1/events", json=draft(), headers={"Idempotency-Key": "k-1"})
        answers = {
            ("post", "/v1/events"): [
                first,
                http.post("/v1/events", json=draft(), headers={"Idempotency-Key": "k-1"}),  # replayed
                http.post("/v1/events", json=draft(subject="C-2"), headers={"Idempotency-Key": "k-1"}),
                http.post("/v1/events", content=b"{", headers=json),
                http.post("/v1/events", content=b"<e/>", headers={"Content-Type": "application/xml"}),
                http.post("/v1/events", content=b" " * (1024 * 1024 + 1), headers=json),
                http.post("/v1/events", json=draft(type="incident.reportd")),
                stranger.post("/v1/events", json=draft()),
            ],
            ("post", "/v1/events/batch"): [
                http.post("/v1/events/batch", json=[draft(subject="C-3")]),
                http.post("/v1/events/batch", json=[]),
                stranger.post("/v1/events/batch", json=[draft()]),
            ],
            ("get", "/v1/events/{event_id}"): [
                http.get(first.json()["status_url"]),
                http.get("/v1/events/not-an-event"),
                stranger.get(first.json()["status_url"]),
            ],
            ("get", "/v1/chain"): [http.get("/v1/chain"), stranger.get("/v1/chain")],
        }
    undeclared = []
    for (method, path), responses in answers.items():
        declared = document["paths"][path][method]["responses"]
        for response in responses:
            status, media = str(response.status_code), response.headers["content-type"]
            if status not in declared or media not in declared[status].get("content", {}):
                undeclared.append(f"{method} {path} {status} {media}")
                continue
            named = {h.lower() for h in declared[status].get("headers", {})}
            undeclared += [f"{method} {path} {status} {h}" for h in HEADERS & set(response.headers) - named]
    assert undeclared == []
    assert {"202", "400", "401", "409", "413", "415", "422"} <= {
        str(r.status_code) for r in answers[("post", "/v1/events")]
    }


def test_every_field_of_every_answer_and_request_is_described(gateway: GatewayProcess) -> None:
    schemas = httpx.get(f"{gateway.url}/openapi.json").json()["components"]["schemas"]
    bare = [
        f"{name}{path}" for name, schema in schemas.items() for path, field in _fields(schema, "")
        if "description" not in field
    ]  # fmt: skip
    assert bare == []


def _fields(schema: dict[str, Any], path: str) -> list[tuple[str, dict[str, Any]]]:
    found = []
    for name, field in schema.get("properties", {}).items():
        found.append((f"{path}/{name}", field))
        found += _fields(field, f"{path}/{name}")
    if "items" in schema:
        found += _fields(schema["items"], f"{path}/*")
    return found
