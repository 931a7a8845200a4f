"""The gateway over real HTTP: authentication, the contract's refusals, idempotency, batches."""

from __future__ import annotations

import json
import sqlite3
import stat
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from ledger.canonical import event_digest
from ledger.vocabulary import envelope_schema
from producers.outbox import Outbox
from tests.gateway.conftest import AGENCY, INCIDENT, GatewayProcess, draft, new_token, start_gateway

PROBLEM = "application/problem+json"


def test_a_draft_is_signed_chained_and_queued(gateway: GatewayProcess) -> None:
    with gateway.client() as http:
        first = http.post("/v1/events", json=draft())
        second = http.post("/v1/events", json=draft(data={**INCIDENT, "incident_ref": "INC-2"}))
        status = http.get(first.json()["status_url"])
    assert first.status_code == 202, first.text
    assert first.headers["location"] == f"/v1/events/{first.json()['id']}"
    assert (first.json()["sequence"], second.json()["sequence"]) == (1, 2)
    stored = [Outbox.decode(row.payload) for row in Outbox(gateway.outbox_url).events(AGENCY)]
    assert [e["id"] for e in stored] == [first.json()["id"], second.json()["id"]]
    assert stored[1]["prevhash"] == first.json()["digest"] == event_digest(stored[0])
    assert stored[0]["source"] == AGENCY and stored[0]["time"] == "2024-03-05T21:40:00+00:00"
    assert status.status_code == 200
    assert status.json()["status"] == "queued" and status.json()["sequence"] == 1
    assert "not visible" not in json.dumps(status.json())  # queued: nothing to ask the partnership yet


@pytest.mark.parametrize(
    ("header", "why"),
    [
        (None, "Authorization: Bearer"),
        ("Bearer sgw_not-a-real-token", "not known"),
        ("Basic dXNlcjpwYXNz", "Authorization: Bearer"),
    ],
)
def test_a_request_without_a_known_token_is_refused(
    gateway: GatewayProcess, header: str | None, why: str
) -> None:
    with gateway.client() as http:
        headers = {} if header is None else {"Authorization": header}
        if header is None:
            http.headers.pop("Authorization")
        answer = http.post("/v1/events", json=draft(), headers=headers)
    assert answer.status_code == 401
    assert answer.headers["content-type"] == PROBLEM
    assert answer.headers["www-authenticate"] == "Bearer"
    assert why in answer.json()["detail"]
    assert gateway.outbox_rows() == 0


def test_expired_and_revoked_tokens_are_refused(gateway: GatewayProcess) -> None:
    expired = new_token(gateway.data_dir, "old-loader", valid_for=timedelta(seconds=-1))
    with gateway.client(expired) as http:
        answer = http.post("/v1/events", json=draft())
    assert answer.status_code == 401 and "expired" in answer.json()["detail"]
    from producers.gateway.tokens import TokenStore

    store = TokenStore(gateway.outbox_url)
    token_id = next(t.id for t in store.list() if t.system == "records-system")
    with gateway.client() as http:
        assert http.post("/v1/events", json=draft()).status_code == 202
        store.revoke(token_id)
        answer = http.post("/v1/events", json=draft())
    assert answer.status_code == 401 and "revoked" in answer.json()["detail"]
    assert gateway.outbox_rows() == 1


def test_schema_errors_are_all_listed_with_path_expected_and_got(gateway: GatewayProcess) -> None:
    bad = draft(data={"children_present": "yes", "parties": [{"person": "P-m", "role": "bystander"}]})
    with gateway.client() as http:
        answer = http.post("/v1/events", json=bad)
    assert answer.status_code == 422
    assert answer.headers["content-type"] == PROBLEM
    body = answer.json()
    assert body["type"] == "urn:safeguarding-ledger:problem:invalid-event" and body["status"] == 422
    problems = {(p["path"], p["got"]) for p in body["problems"]}
    assert ("/data/children_present", '"yes"') in problems
    assert ("/data/parties/0/role", '"bystander"') in problems
    missing = {p["expected"] for p in body["problems"] if p["path"] == "/data"}
    assert any("'incident_ref'" in m and "'domestic_abuse'" in m for m in missing)
    assert gateway.outbox_rows() == 0


def test_a_pattern_problem_shows_the_contracts_example_beside_the_expression(gateway: GatewayProcess) -> None:
    """An upper-case UUID was answered with the regular expression alone; the contract's example
    beside it shows at a glance what the id must look like."""
    with gateway.client() as http:
        answer = http.post("/v1/events", json=draft(id="0190B6E2-3C4D-7E5F-8A6B-7C8D9E0F1A2B"))
    assert answer.status_code == 422, answer.text
    [problem] = answer.json()["problems"]
    example = envelope_schema()["properties"]["id"]["examples"][0]
    assert problem["path"] == "/id" and problem["expected"].endswith(f', e.g. "{example}"')
    assert problem["expected"].startswith("a string matching ^[0-9a-f]{8}-")
    assert gateway.outbox_rows() == 0


def test_a_misspelt_attribute_gets_a_did_you_mean_for_the_draft_and_its_data(gateway: GatewayProcess) -> None:
    """British and American spellings, and typos, of attribute names: say which one was meant."""
    subjet = draft()
    subjet["subjet"] = subjet.pop("subject")
    practise = draft(type="gp.registered", data={"person": "C-1", "practise": "L85001"})
    with gateway.client() as http:
        answers = [
            http.post("/v1/events", json=subjet),
            http.post("/v1/events", json=practise),
            http.post("/v1/events/batch", json=[draft(), draft(data={**INCIDENT, "partys": []})]),
        ]
    assert [a.status_code for a in answers] == [422] * 3
    problems = [p for answer in answers for p in answer.json()["problems"]]
    unexpected = [(p["path"], p["expected"]) for p in problems if p["got"].startswith("unexpected")]
    assert unexpected == [
        ("", "only the attributes type, subject, time, recordedtime, id, data (did you mean 'subject'?)"),
        ("/data", "no attributes outside the contract (did you mean 'practice'?)"),
        ("/1/data", "no attributes outside the contract (did you mean 'parties'?)"),
    ]
    assert gateway.outbox_rows() == 0


def test_unknown_type_suggests_the_near_one_and_internal_types_are_not_offered(
    gateway: GatewayProcess,
) -> None:
    with gateway.client() as http:
        typo = http.post("/v1/events", json=draft(type="incident.reportd"))
        internal = http.post("/v1/events", json=draft(type="agency.key.registered"))
    assert typo.status_code == 422
    assert "did you mean 'incident.reported'" in typo.json()["problems"][0]["expected"]
    assert internal.status_code == 422
    # Not "did you mean 'gp.registered'?": the type exists, and is not an agency's to send.
    [problem] = internal.json()["problems"]
    assert problem["expected"] == (
        "an agency event type: agency.key.registered is signed by the partnership itself, never by an agency"
    )
    assert "access.recorded" not in typo.text
    assert gateway.outbox_rows() == 0


def test_a_draft_recorded_in_the_future_is_refused_before_signing(gateway: GatewayProcess) -> None:
    with gateway.client() as http:
        answer = http.post("/v1/events", json=draft(recordedtime="2999-01-01T00:00:00+00:00"))
    assert answer.status_code == 422
    assert answer.json()["problems"][0]["path"] == "/recordedtime"
    assert gateway.outbox_rows() == 0


def test_an_oversized_body_is_refused_unread(gateway: GatewayProcess) -> None:
    huge = draft(data={**INCIDENT, "location": "x" * (1024 * 1024 + 1)})
    with gateway.client() as http:
        answer = http.post("/v1/events", json=huge)
    assert answer.status_code == 413
    assert answer.json()["type"].endswith("body-too-large")
    assert gateway.outbox_rows() == 0


def test_a_batch_checks_its_token_while_its_body_arrives_with_the_same_answers(data_dir: Path) -> None:
    """The batch endpoint looks the token up while it reads the body (``post_batch``): the
    answers keep their precedence (401 before 400 and 415, those before 413), an expired or
    revoked token is refused on the very next request, and nothing is stored for any of them."""
    from producers.gateway.tokens import TokenStore

    gateway = start_gateway(data_dir, "--max-batch-bytes=100000")
    try:
        gateway.token = new_token(data_dir)
        expired = new_token(data_dir, "old-loader", valid_for=timedelta(seconds=-1))
        small = [draft(data={**INCIDENT, "incident_ref": f"INC-{n}"}) for n in range(20)]
        large = json.dumps(small * 50).encode()  # over the limit
        as_json, csv = {"Content-Type": "application/json"}, {"Content-Type": "text/csv"}
        long_key = {"Content-Type": "application/x-ndjson", "Idempotency-Key": "k" * 300}

        def chunked() -> Iterator[bytes]:  # no Content-Length: only reading it finds it too large
            for start in range(0, len(large), 4096):
                yield large[start : start + 4096]

        with gateway.client("sgw_not-a-real-token") as http:
            unknown = [
                http.post("/v1/events/batch", json=small),
                http.post("/v1/events/batch", content=large, headers=as_json),
                http.post("/v1/events/batch", content=chunked(), headers=as_json),
                http.post("/v1/events/batch", content=large, headers=csv),
                http.post("/v1/events/batch", json=small, headers=long_key),
            ]
        with gateway.client(expired) as http:
            too_old = http.post("/v1/events/batch", json=small)
        with gateway.client() as http:
            media = http.post("/v1/events/batch", content=large, headers=csv)
            bad_key = http.post("/v1/events/batch", content=large, headers=long_key)
            too_large = http.post("/v1/events/batch", content=chunked(), headers=as_json)
            stored = http.post("/v1/events/batch", json=small)
            store = TokenStore(gateway.outbox_url)
            try:
                token_id = next(t.id for t in store.list() if t.system == "records-system")
                store.revoke(token_id)
            finally:
                store.close()
            revoked = http.post("/v1/events/batch", json=small)
    finally:
        gateway.stop()
    assert [a.status_code for a in unknown] == [401] * 5, [a.text for a in unknown]
    assert all("not known" in a.json()["detail"] for a in unknown)
    assert too_old.status_code == 401 and "expired" in too_old.json()["detail"]
    assert media.status_code == 415 and bad_key.status_code == 400 and too_large.status_code == 413
    assert stored.status_code == 202 and stored.json()["count"] == 20
    assert revoked.status_code == 401 and "revoked" in revoked.json()["detail"]
    assert gateway.outbox_rows() == 20


def test_unreadable_bodies_and_media_types(gateway: GatewayProcess) -> None:
    with gateway.client() as http:
        not_json = http.post("/v1/events", content=b"{nope", headers={"Content-Type": "application/json"})
        xml = http.post("/v1/events", content=b"<event/>", headers={"Content-Type": "application/xml"})
        forked = json.dumps(draft())[:-1] + ', "subject": "C-SOMEONE-ELSE"}'
        twice = http.post("/v1/events", content=forked, headers={"Content-Type": "application/json"})
        nan = http.post(
            "/v1/events", content=json.dumps(draft(data={**INCIDENT, "n": float("nan")})),
            headers={"Content-Type": "application/json"},
        )  # fmt: skip
    assert not_json.status_code == 400 and "not UTF-8 JSON" in not_json.json()["detail"]
    # A member named twice has no one meaning (readers keep the first or the last): refused.
    assert twice.status_code == 400 and '"subject" twice' in twice.json()["detail"]
    assert nan.status_code == 400 and "NaN is not a JSON number" in nan.json()["detail"]
    assert gateway.outbox_rows() == 0
    assert xml.status_code == 415 and "application/cloudevents+json" in xml.json()["detail"]


def test_a_wrong_path_or_method_is_answered_in_problem_json_too(gateway: GatewayProcess) -> None:
    """docs/gateway.md: every refusal is RFC 9457 problem JSON (Starlette's own were not)."""
    with gateway.client() as http:
        typo = http.post("/v1/event", json=draft())
        method = http.put("/v1/events", json=draft())
    assert (typo.status_code, method.status_code) == (404, 405)
    assert {typo.headers["content-type"], method.headers["content-type"]} == {PROBLEM}
    assert typo.json()["type"].endswith(":not-found") and "/v1/events" in typo.json()["detail"]
    assert method.json()["type"].endswith(":method-not-allowed") and method.headers["allow"] == "POST"
    assert gateway.outbox_rows() == 0


def test_idempotency_key_returns_the_same_event_and_refuses_a_different_body(gateway: GatewayProcess) -> None:
    key = {"Idempotency-Key": "req-0001"}
    with gateway.client() as http:
        first = http.post("/v1/events", json=draft(), headers=key)
        again = http.post("/v1/events", json=draft(), headers=key)
        other = http.post("/v1/events", json=draft(subject="C-2"), headers=key)
        fresh = http.post("/v1/events", json=draft(), headers={"Idempotency-Key": "req-0002"})
    assert first.status_code == again.status_code == 202
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert other.status_code == 409 and other.json()["type"].endswith("idempotency-key-reused")
    assert fresh.json()["sequence"] == 2
    assert gateway.outbox_rows() == 2


def test_a_batch_is_all_or_nothing_in_json_and_ndjson(gateway: GatewayProcess) -> None:
    items = [draft(data={**INCIDENT, "incident_ref": f"INC-{n}"}) for n in range(1500)]
    broken = [*items[:3], draft(data={**INCIDENT, "children_present": "yes"}), draft(type="nope")]
    ndjson = "\n".join(json.dumps(i) for i in items[:10]) + "\n"
    with gateway.client() as http:
        refused = http.post("/v1/events/batch", json=broken)
        assert gateway.outbox_rows() == 0
        answer = http.post("/v1/events/batch", json=items)
        lines = http.post(
            "/v1/events/batch", content=ndjson.encode(), headers={"Content-Type": "application/x-ndjson"}
        )
    assert refused.status_code == 422
    assert {p["path"] for p in refused.json()["problems"]} == {"/3/data/children_present", "/4/type"}
    assert answer.status_code == 202 and answer.json()["count"] == 1500
    assert [e["sequence"] for e in answer.json()["events"]] == list(range(1, 1501))
    assert lines.status_code == 202 and lines.json()["events"][0]["sequence"] == 1501
    assert gateway.outbox_rows() == 1510
    events = {r.event_id: Outbox.decode(r.payload) for r in Outbox(gateway.outbox_url).events(AGENCY)}
    receipts = answer.json()["events"] + lines.json()["events"]
    assert [r["digest"] for r in receipts] == [event_digest(events[r["id"]]) for r in receipts]
    # drafts without a recorded time are recorded when their request was received: one time each
    received = [{events[r["id"]]["recordedtime"] for r in a.json()["events"]} for a in (answer, lines)]
    assert [len(times) for times in received] == [1, 1] and min(received[0]) <= min(received[1])


def test_a_locked_outbox_answers_503_and_the_retry_stores_once(gateway: GatewayProcess) -> None:
    """Another process holds the outbox's write lock past the gateway's busy timeout."""
    key = {"Idempotency-Key": "locked-1"}
    blocker = sqlite3.connect(gateway.data_dir / "outbox.sqlite", isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        with gateway.client() as http:
            answer = http.post("/v1/events", json=draft(), headers=key)
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert answer.status_code == 503, answer.text
    assert answer.headers["retry-after"] == "2"
    assert "locked" in answer.json()["detail"] and "same Idempotency-Key" in answer.json()["detail"]
    with gateway.client() as http:
        retried = http.post("/v1/events", json=draft(), headers=key)
        again = http.post("/v1/events", json=draft(), headers=key)
    assert retried.status_code == 202 and again.json()["id"] == retried.json()["id"]
    assert gateway.outbox_rows() == 1


def test_a_full_disk_answers_503_and_the_retry_stores_once(gateway: GatewayProcess) -> None:
    """RLIMIT_FSIZE on the running gateway makes every write past the files' current size fail
    (EFBIG: SQLite reports "database or disk is full"); lifting it is the disk being freed."""
    import resource

    with gateway.client() as http:
        assert http.post("/v1/events", json=draft()).status_code == 202
        _, hard = resource.prlimit(gateway.process.pid, resource.RLIMIT_FSIZE)
        resource.prlimit(gateway.process.pid, resource.RLIMIT_FSIZE, (1, hard))
        key = {"Idempotency-Key": "full-1"}
        big = draft(data={**INCIDENT, "incident_ref": "INC-full"})
        try:
            full = http.post("/v1/events", json=big, headers=key)
        finally:
            resource.prlimit(gateway.process.pid, resource.RLIMIT_FSIZE, (hard, hard))
        retried = http.post("/v1/events", json=big, headers=key)
        again = http.post("/v1/events", json=big, headers=key)
    assert full.status_code == 503, full.text
    assert "full" in full.json()["detail"] or "disk" in full.json()["detail"]
    assert retried.status_code == 202, retried.text
    assert again.json() == retried.json() and retried.json()["sequence"] == 2
    assert gateway.outbox_rows() == 2


def test_a_batch_whose_commit_fails_answers_503_and_the_retry_stores_it_once(
    gateway: GatewayProcess,
) -> None:
    """The batch's answer is written while its commit syncs (``Gateway._once``): a commit that
    fails there (the disk full as the write-ahead log grows, RLIMIT_FSIZE as above) must still
    answer 503, not the 202 being written, and store nothing; the retry stores the batch once."""
    import resource

    items = [draft(data={**INCIDENT, "incident_ref": f"INC-{n}"}) for n in range(600)]
    key = {"Idempotency-Key": "full-batch-1"}
    with gateway.client() as http:
        assert http.post("/v1/events", json=draft()).status_code == 202
        _, hard = resource.prlimit(gateway.process.pid, resource.RLIMIT_FSIZE)
        resource.prlimit(gateway.process.pid, resource.RLIMIT_FSIZE, (1, hard))
        try:
            full = http.post("/v1/events/batch", json=items, headers=key)
            rows_while_full = gateway.outbox_rows()
        finally:
            resource.prlimit(gateway.process.pid, resource.RLIMIT_FSIZE, (hard, hard))
        retried = http.post("/v1/events/batch", json=items, headers=key)
        again = http.post("/v1/events/batch", json=items, headers=key)
    assert full.status_code == 503, full.text
    assert rows_while_full == 1
    assert retried.status_code == 202, retried.text
    assert [e["sequence"] for e in retried.json()["events"]] == list(range(2, 602))
    assert again.content == retried.content and again.headers["idempotent-replayed"] == "true"
    stored = Outbox(gateway.outbox_url).events(AGENCY)
    assert [(r.event_id, r.sequence) for r in stored[1:]] == [
        (e["id"], e["sequence"]) for e in retried.json()["events"]
    ]


def test_the_cli_manages_tokens(data_dir: Path) -> None:
    from click.testing import CliRunner

    from sgledger.cli import cli

    runner = CliRunner()
    created = runner.invoke(
        cli, ["--data-dir", str(data_dir), "gateway", "token", "create", "mosaic", "--json"]
    )
    assert created.exit_code == 0, created.output
    token = json.loads(created.output)
    assert token["token"].startswith("sgw_")
    listed = runner.invoke(cli, ["--data-dir", str(data_dir), "gateway", "token", "list", "--json"])
    assert token["token"] not in listed.output  # the secret is shown once, never listed
    assert json.loads(listed.output)[0]["system"] == "mosaic"
    # The same instant, with its offset: a naive time reads as local time in a client's parser.
    assert json.loads(listed.output)[0]["expires_at"] == token["expires_at"]
    help_text = runner.invoke(cli, ["gateway", "token", "--help"]).output
    assert "Create a token for SYSTEM; it is printed once" in help_text  # not cut at "(e.g."
    revoked = runner.invoke(cli, ["--data-dir", str(data_dir), "gateway", "token", "revoke", token["id"]])
    assert revoked.exit_code == 0 and "revoked" in revoked.output
    unknown = runner.invoke(cli, ["--data-dir", str(data_dir), "gateway", "token", "revoke", "tok-nope"])
    assert unknown.exit_code != 0


def test_a_token_created_before_the_gateways_first_start_lets_a_system_publish(data_dir: Path) -> None:
    """The order a new agency follows: `gateway token create` makes the outbox's file, then
    `gateway run` opens it. The file was made readable by others (the umask's 0644), and the
    gateway then refused to start ("open to other local users")."""
    from click.testing import CliRunner

    from sgledger.cli import cli

    created = CliRunner().invoke(
        cli, ["--data-dir", str(data_dir), "gateway", "token", "create", "mosaic", "--json"]
    )
    assert created.exit_code == 0, created.output
    assert stat.S_IMODE((data_dir / "outbox.sqlite").stat().st_mode) == 0o600
    gateway = start_gateway(data_dir)
    try:
        gateway.token = json.loads(created.output)["token"]
        with gateway.client() as http:
            answer = http.post("/v1/events", json=draft())
        assert answer.status_code == 202, answer.text
    finally:
        gateway.stop()


def test_gateway_run_with_a_misspelt_agency_suggests_the_key_it_has(data_dir: Path) -> None:
    """Not "`sgledger agency add police/avon-somerst`", which would make a key for the typo."""
    run = subprocess.run(
        [sys.executable, "-m", "sgledger", "--data-dir", str(data_dir), "gateway", "run",
         "--agency", "police/avon-somerst", "--port", "1"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert run.returncode == 2
    assert "did you mean 'police/avon-somerset'?" in run.stderr
    assert "agency add police/avon-somerst" not in run.stderr


def test_the_committed_openapi_document_is_what_the_gateway_serves(gateway: GatewayProcess) -> None:
    import httpx

    served = httpx.get(f"{gateway.url}/openapi.json").json()
    committed = json.loads((Path(__file__).parents[2] / "docs" / "openapi.json").read_text("utf-8"))
    assert served == committed, "regenerate: sgledger gateway openapi > docs/openapi.json"


def test_a_draft_that_signs_to_more_than_the_message_limit_is_refused(gateway: GatewayProcess) -> None:
    """The body fits the 1 MiB limit, the signed event (envelope added) would not."""
    party = {"person": "P-m", "role": "victim"}
    item = draft(data={**INCIDENT, "parties": []})
    room = 1024 * 1024 - 100 - len(json.dumps(item, separators=(",", ":")))
    item["data"]["parties"] = [party] * (room // (len(json.dumps(party, separators=(",", ":"))) + 1))
    body = json.dumps(item, separators=(",", ":")).encode()
    assert len(body) <= 1024 * 1024
    with gateway.client() as http:
        answer = http.post("/v1/events", content=body, headers={"Content-Type": "application/json"})
    assert answer.status_code == 422, answer.text
    assert answer.json()["problems"][0]["expected"] == "at most 1048576 bytes"
    assert gateway.outbox_rows() == 0


def test_a_batch_item_that_signs_to_more_than_the_message_limit_is_named_by_its_index(
    gateway: GatewayProcess,
) -> None:
    """Found only once signed, it was "the event was refused: /": which of 10,000?"""
    party = {"person": "P-m", "role": "victim"}
    big = draft(data={**INCIDENT, "parties": [party] * (1024 * 1024 // 30)})  # 33 bytes each, signed
    with gateway.client() as http:
        answer = http.post("/v1/events/batch", json=[draft(), big, draft()])
    assert answer.status_code == 422, answer.text
    [problem] = answer.json()["problems"]
    assert problem["path"] == "/1" and problem["expected"] == "at most 1048576 bytes"
    assert answer.json()["detail"].startswith("the batch was refused: /1: ")
    assert gateway.outbox_rows() == 0


def test_health_readiness_and_metrics_need_no_token_and_count_routes(gateway: GatewayProcess) -> None:
    anonymous = httpx.Client(base_url=gateway.url, timeout=30)
    assert anonymous.get("/healthz").text == "ok\n"
    ready = anonymous.get("/readyz")
    assert ready.status_code == 200 and "outbox answers" in ready.text
    assert gateway.client().post("/v1/events", json=draft()).status_code == 202
    assert anonymous.get("/v1/events/not-an-event-id").status_code == 401
    metrics = anonymous.get("/metrics").text
    assert 'sgledger_http_requests_total{route="/v1/events",status="2xx"} 1.0' in metrics
    assert 'route="/v1/events/{event_id}",status="4xx"' in metrics  # the template, not the URL
    assert "not-an-event-id" not in metrics
    assert "/healthz" not in anonymous.get("/openapi.json").text
