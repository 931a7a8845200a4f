"""The gateway's outbox, tokens and idempotency records on PostgreSQL instead of SQLite."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from producers.gateway.tokens import TokenStore
from producers.outbox import Outbox
from tests.gateway.conftest import AGENCY, draft, start_gateway

pytestmark = pytest.mark.postgres


def test_publish_and_retry_on_a_postgresql_outbox(data_dir: Path, postgres_db: str) -> None:
    gateway = start_gateway(data_dir, f"--outbox-url={postgres_db}")
    tokens = TokenStore(postgres_db)
    token = tokens.create("records-system", timedelta(days=1))[0]
    tokens.close()
    try:
        with httpx.Client(base_url=gateway.url, headers={"Authorization": f"Bearer {token}"}) as http:
            key = {"Idempotency-Key": "pg-1"}
            first = http.post("/v1/events", json=draft(), headers=key)
            again = http.post("/v1/events", json=draft(), headers=key)
            other = http.post("/v1/events", json=draft(subject="C-2"), headers=key)
            batch = http.post("/v1/events/batch", json=[draft(subject=f"C-{n}") for n in range(3, 6)])
    finally:
        gateway.stop()
    assert first.status_code == again.status_code == 202 and again.json() == first.json()
    assert other.status_code == 409
    assert [e["sequence"] for e in batch.json()["events"]] == [2, 3, 4]
    outbox = Outbox(postgres_db)
    assert [row.sequence for row in outbox.events(AGENCY)] == [1, 2, 3, 4]
    outbox.close()
