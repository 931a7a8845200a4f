"""The web workspace over real HTTP: a `sgledger serve` process on the demo partnership.

Each test asserts what a lead, an auditor or an attacker would see, and what the ledger then
holds (the signed access and decision events), read back from the server's own database.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import pytest
from sqlalchemy import func, select, update

from ledger.store.ledger import Ledger
from ledger.store.models import AcceptedEvent
from producers.outbox import Outbox
from tests.web.conftest import (
    AUDITOR,
    CHILD,
    DSL,
    GP2,
    PASSWORD,
    POLICE,
    WebServer,
    csrf_of,
    sgledger,
    signin_csrf,
)
from views.access_log import list_access
from views.models import FlagRow
from web.accounts import Accounts, SessionRow

T = TypeVar("T")


def eventually(check: Callable[[], T], timeout: float = 30.0) -> T:
    """The page returns once its event is in the outbox; the ledger has it a moment later."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            assert value, "condition not met in time"
            return value
        time.sleep(0.2)


def ledger(server: WebServer) -> Ledger:
    return Ledger(f"sqlite:///{server.demo_dir / 'ledger.sqlite'}")


def outbox_size(server: WebServer) -> int:
    return len(Outbox(f"sqlite:///{server.demo_dir / 'outbox.sqlite'}").events("partnership/service"))


def flags_concerning(server: WebServer, agency: str) -> set[str]:
    with ledger(server).read() as session:
        return {
            row.id
            for row in session.scalars(select(FlagRow).where(FlagRow.status == "open"))
            if agency in json.loads(row.payload)["concerns"]
            and not json.loads(row.payload)["acknowledged_by"]
        }


def test_the_server_runs_without_the_root_private_key(web_server: WebServer) -> None:
    keys = web_server.demo_dir / "keys"
    assert not (keys / "root.key").exists() and (keys / "root.pub.json").exists()
    assert web_server.sign_in(POLICE).get("/flags").status_code == 200


def test_every_page_needs_sign_in_and_sends_security_headers(web_server: WebServer) -> None:
    client = web_server.client()
    response = client.get(f"/children/{CHILD}")
    assert response.status_code == 303
    assert response.headers["location"] == f"/sign-in?next=%2Fchildren%2F{CHILD}"
    page = client.get("/sign-in")
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "'unsafe-inline'" not in csp and "frame-ancestors 'none'" in csp
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["referrer-policy"] == "no-referrer"
    assert page.headers["cache-control"] == "no-store"
    assert "<script>" not in page.text  # no inline script anywhere: the CSP would block it


def test_session_cookie_is_httponly_and_samesite(web_server: WebServer) -> None:
    client = web_server.client()
    response = client.post(
        "/sign-in", data={"email": POLICE, "password": PASSWORD, "csrf_token": signin_csrf(client)}
    )
    cookie = response.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie and "max-age=28800" in cookie


@pytest.mark.slow  # six argon2 verifications and two CLI processes: ~10-20 s on a shared machine
def test_wrong_passwords_lock_the_account(web_server: WebServer) -> None:
    email = "locked.lead@police.example"
    sgledger(web_server.demo_dir, "users", "add", email, "--agency", "police/avon-somerset",
             "--role", "lead", stdin=PASSWORD + "\n")  # fmt: skip
    client = web_server.client()
    for _ in range(5):
        refused = client.post(
            "/sign-in",
            data={"email": email, "password": "not the password", "csrf_token": signin_csrf(client)},
        )
        assert refused.status_code == 401
        assert "Enter a correct email address and password" in refused.text
    locked = client.post(
        "/sign-in", data={"email": email, "password": PASSWORD, "csrf_token": signin_csrf(client)}
    )
    assert locked.status_code == 401 and "locked until" in locked.text
    listed = json.loads(sgledger(web_server.demo_dir, "users", "list", "--json").stdout)
    assert next(u for u in listed if u["email"] == email)["locked_until"] is not None


def test_sign_in_without_the_forms_token_is_refused(web_server: WebServer) -> None:
    client = web_server.client()
    response = client.post("/sign-in", data={"email": POLICE, "password": PASSWORD})
    assert response.status_code == 403
    assert "sgl_session" not in response.headers.get("set-cookie", "")


def test_my_flags_are_the_flags_concerning_my_agency(web_server: WebServer) -> None:
    expected = flags_concerning(web_server, "gp/L85002")
    assert expected
    page = web_server.sign_in(GP2).get("/flags").text
    shown = {
        f
        for f in flags_concerning(web_server, "police/avon-somerset") | expected
        if f"/flags/{f[:8]}" in page
    }
    assert shown == expected  # gp/L85002's flags, and none of the police's own
    assert "gp/L85002 not told of incident INC-CH-1" in page
    eventually(
        lambda: any(
            a["who"] == f"local:{GP2}" and a["action"] == "web flags open"
            for a in access_events(web_server, partnership(web_server))
        )
    )


def partnership(server: WebServer) -> str:
    return str(json.loads((server.demo_dir / "keys" / "root.pub.json").read_text())["partnership"])


def access_events(server: WebServer, subject: str) -> list[dict[str, object]]:
    with ledger(server).read() as session:
        return [
            json.loads(envelope)["data"]
            for envelope in session.scalars(
                select(AcceptedEvent.envelope).where(
                    AcceptedEvent.type == "access.recorded", AcceptedEvent.subject == subject
                )
            )
        ]


def test_a_lead_reads_a_child_their_agency_works_with_and_the_read_is_signed(web_server: WebServer) -> None:
    response = web_server.sign_in(POLICE).get(f"/children/{CHILD}")
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    text = response.text
    assert (
        "Police recorded a domestic-abuse incident INC-CH-1: children present, DASH medium, "
        "reported by neighbour" in text
    )
    assert "Police since" in text and "GP practice L85001 since" in text
    reads = eventually(
        lambda: [a for a in list_access(ledger(web_server), CHILD) if a["who"] == f"local:{POLICE}"]
    )
    assert reads[0]["action"] == "web child" and reads[0]["agency"] == "police/avon-somerset"


def test_outside_the_relationship_a_lead_must_break_the_glass(web_server: WebServer) -> None:
    client = web_server.sign_in(GP2)
    refused = client.get(f"/children/{CHILD}")
    assert refused.status_code == 403
    assert "You need a reason to open this record" in refused.text
    assert "Police recorded" not in refused.text  # nothing of the record before the reason
    before = outbox_size(web_server)
    forged = client.post(f"/children/{CHILD}/break-glass", data={"reason": "no token"})
    assert forged.status_code == 403 and outbox_size(web_server) == before
    empty = client.post(
        f"/children/{CHILD}/break-glass", data={"reason": " ", "csrf_token": csrf_of(refused.text)}
    )
    assert empty.status_code == 400 and "govuk-error-summary" in empty.text
    reason = "Father registered with us disclosed abuse at the appointment today"
    opened = client.post(
        f"/children/{CHILD}/break-glass", data={"reason": reason, "csrf_token": csrf_of(refused.text)}
    )
    assert opened.status_code == 303
    assert client.get(f"/children/{CHILD}").status_code == 200
    mail = eventually(lambda: [m for m in web_server.mail.received if DSL in m.recipients])
    assert reason in mail[0].text() and f"local:{GP2}" in mail[0].text()
    eventually(lambda: reason in web_server.sign_in(DSL).get("/audit").text)
    audit = web_server.sign_in(AUDITOR).get(f"/audit/children/{CHILD}").text
    assert reason in audit and "break glass" in audit


def test_audit_pages_are_for_designated_leads_and_auditors(web_server: WebServer) -> None:
    assert web_server.sign_in(POLICE).get("/audit").status_code == 403
    assert web_server.sign_in(AUDITOR).get("/audit").status_code == 200


def test_acknowledge_and_dismiss_are_signed_decisions(web_server: WebServer) -> None:
    client = web_server.sign_in(POLICE)
    first, second = sorted(flags_concerning(web_server, "police/avon-somerset"))[:2]
    page = client.get(f"/flags/{first[:8]}")
    assert page.status_code == 200
    before = outbox_size(web_server)
    forged = client.post(f"/flags/{first[:8]}/acknowledge", data={"reason": "forged"})
    assert forged.status_code == 403 and outbox_size(web_server) == before
    done = client.post(
        f"/flags/{first[:8]}/acknowledge", data={"reason": "GP called", "csrf_token": csrf_of(page.text)}
    )
    assert done.status_code == 303 and done.headers["location"] == f"/flags/{first[:8]}?done=acknowledged"
    assert f"acknowledged by {POLICE}" in client.get(done.headers["location"]).text
    assert f"/flags/{first[:8]}" in client.get("/flags?tab=acknowledged").text
    no_reason = client.post(
        f"/flags/{second[:8]}/dismiss", data={"reason": "", "csrf_token": csrf_of(page.text)}
    )
    assert no_reason.status_code == 400 and "Enter why this flag needs no action" in no_reason.text
    client.post(
        f"/flags/{second[:8]}/dismiss", data={"reason": "told by phone", "csrf_token": csrf_of(page.text)}
    )
    with ledger(web_server).read() as session:
        row = session.get(FlagRow, second)
        assert row is not None and row.status == "dismissed"
        assert json.loads(row.payload)["dismissed_by"] == f"local:{POLICE}"
    assert f"/flags/{second[:8]}" in client.get("/flags?tab=resolved").text


def test_unknown_child_and_malformed_date_get_clear_pages(web_server: WebServer) -> None:
    client = web_server.sign_in(DSL)
    unknown = client.get("/children/C-NOBODY")
    assert unknown.status_code == 404 and "Child not found" in unknown.text
    bad_date = client.get(f"/children/{CHILD}", params={"as_of": "10/12/2019"})
    assert bad_date.status_code == 400
    assert "govuk-error-summary" in bad_date.text and "Enter the date as year-month-day" in bad_date.text
    assert "Traceback" not in unknown.text + bad_date.text
    past = client.get(f"/children/{CHILD}", params={"as_of": "2019-12-09"})
    assert past.status_code == 200
    assert "INC-CH-1" in past.text and "INC-CH-5" not in past.text  # not yet recorded then


def test_sql_and_html_in_search_are_shown_as_text_and_change_nothing(web_server: WebServer) -> None:
    client = web_server.sign_in(DSL)
    with ledger(web_server).read() as session:
        flags_before = session.scalar(select(func.count()).select_from(FlagRow))
    attack = "<script>alert(1)</script>' OR '1'='1'; DROP TABLE flags; --"
    response = client.get("/search", params={"child": attack})
    assert response.status_code == 404
    assert "<script>alert(1)</script>" not in response.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in response.text
    with ledger(web_server).read() as session:
        assert session.scalar(select(func.count()).select_from(FlagRow)) == flags_before
    # Access events about the partnership are filed under its id: it is not a child.
    assert client.get("/search", params={"child": partnership(web_server)}).status_code == 404
    found = client.get("/search", params={"child": CHILD})
    assert found.status_code == 303 and found.headers["location"] == f"/children/{CHILD}"


def test_an_expired_session_goes_back_to_sign_in(web_server: WebServer) -> None:
    client = web_server.sign_in(POLICE)
    accounts = Accounts(f"sqlite:///{web_server.demo_dir / 'ledger.sqlite'}")
    try:
        with accounts.engine.begin() as connection:  # an hour passes without a request
            connection.execute(update(SessionRow).values(seen_at=datetime.now(UTC) - timedelta(hours=1)))
    finally:
        accounts.close()
    response = client.get("/flags")
    assert response.status_code == 303 and "expired=1" in response.headers["location"]
    assert "Your session has ended" in client.get(response.headers["location"]).text


def test_sign_out_ends_the_session_on_the_server(web_server: WebServer) -> None:
    client = web_server.sign_in(POLICE)
    token = csrf_of(client.get("/flags").text)
    assert client.post("/sign-out", data={"csrf_token": token}).status_code == 303
    client.cookies.clear()
    assert client.get("/flags").status_code == 303


def test_chronology_downloads(web_server: WebServer) -> None:
    client = web_server.sign_in(POLICE)
    html = client.get(f"/children/{CHILD}/chronology.html")
    assert html.status_code == 200 and "INC-CH-1" in html.text
    csv = client.get(f"/children/{CHILD}/chronology.csv")
    assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
    # Outside the relationship, in a new session (a break-glass read lasts for its session only).
    assert web_server.sign_in(GP2).get(f"/children/{CHILD}/chronology.csv").status_code == 403
    pdf = client.get(f"/children/{CHILD}/chronology.pdf")
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    assert client.get(f"/children/{CHILD}/chronology.exe").status_code == 404


def test_health_readiness_and_metrics_show_no_child(web_server: WebServer) -> None:
    client = web_server.client()
    assert client.get("/healthz").text == "ok\n"
    assert client.get("/readyz").status_code == 200
    web_server.sign_in(POLICE).get(f"/children/{CHILD}")
    metrics = client.get("/metrics").text
    assert 'route="/children/{child}"' in metrics and CHILD not in metrics
