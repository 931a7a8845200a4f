"""A safeguarding lead's path through the workspace over real HTTP, where it went wrong for one:
what they see when they edit an address, mistype a date, come back after their session ended,
or read a time (a real `sgledger serve` process on the demo partnership)."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import update

from tests.web.conftest import AUDITOR, CHILD, DSL, PASSWORD, POLICE, WebServer, csrf_of, signin_csrf
from web.accounts import Accounts, SessionRow


def field_value(html: str, field_id: str) -> str:
    found = re.search(rf'<input [^>]*id="{field_id}"[^>]*value="([^"]*)"', html)
    assert found, f"no #{field_id} field with a value in the page"
    return found.group(1)


def test_times_say_which_zone_they_are_in(web_server: WebServer) -> None:
    """Incident INC-CH-1 happened at 20:15 UTC on 8 Dec 2019 (GMT); a due time at midnight is
    midnight London time. Without the zone a lead could not tell either from UTC."""
    page = web_server.sign_in(POLICE).get(f"/children/{CHILD}").text
    assert "Sun 8 Dec 2019 20:15 GMT" in page
    assert "Tue 10 Dec 2019 00:00 GMT" in page


def test_an_edited_address_gets_a_page_not_json(web_server: WebServer) -> None:
    client = web_server.sign_in(DSL)
    for path in ("/flags?page_no=two", "/flags?tab=open&page_no=", "/sign-in?expired=yes"):
        response = client.get(path)
        assert response.status_code == 400, path
        assert response.headers["content-type"].startswith("text/html"), path
        assert "There is a problem with the address" in response.text
        assert '"detail"' not in response.text and "int_parsing" not in response.text
    # Signed in: the page keeps the header, so the lead can carry on from it.
    assert "Sign out" in client.get("/flags?page_no=two").text


def test_a_mistyped_date_stays_in_the_field_to_be_corrected(web_server: WebServer) -> None:
    response = web_server.sign_in(POLICE).get(f"/children/{CHILD}", params={"as_of": "10/12/2019"})
    assert response.status_code == 400 and "Enter the date as year-month-day" in response.text
    assert field_value(response.text, "as-of") == "10/12/2019"


def test_a_session_that_ends_mid_form_returns_to_the_form_after_sign_in(web_server: WebServer) -> None:
    """The lead opens a flag, is called away, and presses "Acknowledge flag" after the session
    ended: after signing in again they are back on the flag's page (it used to be the POST-only
    action's address, a "Not allowed" page), with nothing decided on their behalf."""
    client = web_server.sign_in(POLICE)
    ref = first_flag(client)
    token = csrf_of(client.get(f"/flags/{ref}").text)
    expire_sessions(web_server)
    response = client.post(f"/flags/{ref}/acknowledge", data={"csrf_token": token, "reason": "called"})
    assert response.status_code == 303
    assert response.headers["location"] == f"/sign-in?next=%2Fflags%2F{ref}&expired=1"
    form = {"email": POLICE, "password": PASSWORD, "csrf_token": signin_csrf(client), "next": f"/flags/{ref}"}
    back = client.post("/sign-in", data=form)
    assert back.status_code == 303 and back.headers["location"] == f"/flags/{ref}"
    shown = client.get(back.headers["location"])
    assert shown.status_code == 200 and "Acknowledge flag" in shown.text  # still open, undecided


def test_a_page_that_does_not_exist_keeps_the_signed_in_menu(web_server: WebServer) -> None:
    response = web_server.sign_in(POLICE).get("/no-such-page")
    assert response.status_code == 404 and "Page not found" in response.text
    assert "Sign out" in response.text and "My flags" in response.text
    assert "Sign out" not in web_server.client().get("/no-such-page").text


def expire_sessions(server: WebServer) -> None:
    """An hour passes without a request: every session's idle clock runs out."""
    accounts = Accounts(f"sqlite:///{server.demo_dir / 'ledger.sqlite'}")
    try:
        with accounts.engine.begin() as connection:
            connection.execute(update(SessionRow).values(seen_at=datetime.now(UTC) - timedelta(hours=1)))
    finally:
        accounts.close()


def test_searching_with_nothing_entered_asks_for_an_id(web_server: WebServer) -> None:
    response = web_server.sign_in(POLICE).get("/search", params={"child": "  "})
    assert response.status_code == 400 and "Enter the child&#39;s id" in response.text
    assert "No child has that id" not in response.text


def test_a_flag_address_that_names_no_flag_says_where_flags_are(web_server: WebServer) -> None:
    client = web_server.sign_in(POLICE)
    for ref in ("zzzz", "00000000"):
        response = client.get(f"/flags/{ref}")
        assert response.status_code == 404 and "Flag not found" in response.text
        assert "Open the flag from My flags" in response.text and "sgledger" not in response.text.lower()


def test_the_note_a_lead_leaves_when_acknowledging_is_on_the_flag_for_the_next_lead(
    web_server: WebServer,
) -> None:
    """The form asks for "what you have done"; the designated lead opening the flag later must
    be able to read it (it was only in the signed event, shown nowhere in the workspace)."""
    police = web_server.sign_in(POLICE)
    ref = first_flag(police)
    token = csrf_of(police.get(f"/flags/{ref}").text)
    note = "Phoned the practice manager; incident now on the GP record"
    done = police.post(f"/flags/{ref}/acknowledge", data={"csrf_token": token, "reason": note})
    assert done.status_code == 303 and "done=acknowledged" in done.headers["location"]
    page = web_server.sign_in(DSL).get(f"/flags/{ref}").text
    assert f"{POLICE} acknowledged flag {ref}: {note}" in page
    assert f"local:{POLICE}" not in page  # named as the lead signed in, not by the account id


def first_flag(client: httpx.Client) -> str:
    """The short id of the first open flag on the signed-in lead's My flags."""
    found = re.search(r'href="/flags/([0-9a-f]{8})"', client.get("/flags").text)
    assert found, "no open flag"
    return found.group(1)


def test_the_timeline_names_agencies_as_a_lead_does(web_server: WebServer) -> None:
    """ "Police told Health visiting", not "Police told phn/somerset": an id is for machines."""
    page = web_server.sign_in(POLICE).get(f"/children/{CHILD}").text
    timeline = page[page.index('class="app-timeline"') :]
    assert "Police told Health visiting about INC-CH-2" in timeline
    assert "Police referred the child to Children&#39;s social care (referral REF-CH-5)" in timeline
    assert "phn/somerset" not in timeline and "csc/somerset" not in timeline


def test_a_crafted_link_cannot_make_the_flag_page_claim_a_decision(web_server: WebServer) -> None:
    client = web_server.sign_in(POLICE)
    ref = first_flag(client)
    page = client.get(f"/flags/{ref}", params={"done": "deleted all evidence on"}).text
    assert "deleted all evidence" not in page and "govuk-notification-banner" not in page


def test_a_persons_roles_read_as_words(web_server: WebServer) -> None:
    page = web_server.sign_in(POLICE).get(f"/children/{CHILD}").text
    people = page[page.index("People and roles") : page.index("What happened")]
    assert "father; in incidents: alleged perpetrator, counter allegation, perpetrator, victim" in people
    assert "party:" not in people


def test_each_severity_has_its_own_tag_colour(web_server: WebServer) -> None:
    page = web_server.sign_in(POLICE).get("/flags").text
    tags = set(re.findall(r'<strong class="govuk-tag ([\w-]*)">(\w+)</strong>', page))
    assert tags == {("govuk-tag--red", "high"), ("govuk-tag--yellow", "medium"), ("govuk-tag--grey", "low")}


def test_signing_out_says_so(web_server: WebServer) -> None:
    client = web_server.sign_in(POLICE)
    response = client.post("/sign-out", data={"csrf_token": csrf_of(client.get("/flags").text)})
    assert response.status_code == 303
    page = client.get(response.headers["location"]).text
    assert "You have signed out" in page and "Sign out" not in page


def test_who_looked_says_what_they_did_in_words(web_server: WebServer) -> None:
    client = web_server.sign_in(POLICE)
    ref = first_flag(client)
    client.get(f"/children/{CHILD}", params={"as_of": "2019-12-10"})
    client.get(f"/flags/{ref}")
    client.get(f"/children/{CHILD}/chronology.csv")
    wanted = (
        "Opened the record as it stood on 10 Dec 2019",
        f"Opened flag {ref}",
        "Downloaded the chronology as CSV",
    )
    deadline = time.monotonic() + 30
    while True:  # each read reaches the ledger a moment after its page is shown
        page = client.get(f"/audit/children/{CHILD}").text
        if all(w in page for w in wanted) or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert all(w in page for w in wanted), page
    assert "web child" not in page and "web flag" not in page


def test_dates_and_page_numbers_at_the_ends_of_the_range_get_pages_not_500s(web_server: WebServer) -> None:
    client = web_server.sign_in(DSL)
    for as_of in ("9999-12-31", "0001-01-01T00:00:00+01:00", "0001-01-01"):
        response = client.get(f"/children/{CHILD}", params={"as_of": as_of})
        assert response.status_code == 400, as_of
        assert "Enter a date from 1900 to 2999" in response.text
        assert field_value(response.text, "as-of") == as_of
    response = client.get("/flags", params={"page_no": "99999999999999999999"})
    assert response.status_code == 400 and "There is no such list" in response.text


def test_an_auditor_signs_in_to_the_audit_page_and_my_flags_explains_itself(web_server: WebServer) -> None:
    """Sign-in went to /flags, whose page named the user's agency: an auditor has none, so
    every auditor's sign-in ended on a 500."""
    client = web_server.client()
    form = {"email": AUDITOR, "password": PASSWORD, "csrf_token": signin_csrf(client)}
    landed = client.post("/sign-in", data=form, follow_redirects=True)
    assert landed.status_code == 200 and str(landed.url).endswith("/audit")
    assert "Break-glass reads" in landed.text
    flags = client.get("/flags")
    assert flags.status_code == 403 and "You have no flags" in flags.text
    # A lead still lands on My flags.
    lead = web_server.client()
    form = {"email": POLICE, "password": PASSWORD, "csrf_token": signin_csrf(lead)}
    assert str(lead.post("/sign-in", data=form, follow_redirects=True).url).endswith("/flags")
