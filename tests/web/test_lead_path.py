"""A safeguarding lead's path through the workspace over real HTTP, where it went wrong for one:
what they see when they edit an address, mistype a date, come back after their session ended,
or read a time (a real `sgledger serve` process on the demo partnership)."""

from __future__ import annotations

import re

from tests.web.conftest import CHILD, DSL, POLICE, WebServer


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
