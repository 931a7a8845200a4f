"""The web workspace in a real browser: Playwright drives Debian's Chromium against a real
`sgledger serve` process on the demo partnership, and against a real OpenID Connect provider
(npm `oidc-provider`) for single sign-on. axe-core, injected into each page, must find no
serious or critical accessibility violation.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from consumers.alerter.sink import MailSink, free_port
from tests.web.conftest import CHILD, DSL, GP2, PASSWORD, POLICE, WebServer, start_server, stop_server
from tests.web.npm import AXE_CORE, OIDC_PROVIDER, installed

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = "/usr/bin/chromium"
# From /work/shared/notes/web-stack.md: without the background-networking flags Chromium keeps
# trying hosts this machine cannot reach.
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run", "--disable-sync",
]  # fmt: skip
CLIENT_ID, CLIENT_SECRET = "sgledger-web", "test-client-secret-not-for-production"

if not Path(CHROMIUM).exists():
    pytest.skip("no Chromium at /usr/bin/chromium (scripts/services chromium)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api")


@pytest.fixture(scope="module")
def oidc_issuer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    """The provider on a free port; yields its issuer URL and the port the web server must use
    (the provider only redirects to the registered redirect URI)."""
    package = installed(OIDC_PROVIDER)
    script = package.parent.parent / "oidc_provider.mjs"  # beside node_modules: ESM resolves from here
    shutil.copy(Path(__file__).with_name("oidc_provider.mjs"), script)
    port, web_port = free_port(), free_port()
    redirect = f"http://127.0.0.1:{web_port}/sign-in/oidc/callback"
    process = subprocess.Popen(
        ["node", str(script), str(port), CLIENT_ID, CLIENT_SECRET, redirect],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    issuer = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{issuer}/.well-known/openid-configuration", timeout=2).raise_for_status()
                break
            except httpx.HTTPError as exc:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"oidc-provider did not start: {process.stdout and process.stdout.read()}"
                    ) from exc
                time.sleep(0.2)
        yield issuer, web_port
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture(scope="module")
def server(
    demo_state: Path, tmp_path_factory: pytest.TempPathFactory, oidc_issuer: tuple[str, int]
) -> Iterator[WebServer]:
    issuer, port = oidc_issuer
    data_dir = tmp_path_factory.mktemp("web-browser")
    shutil.copytree(demo_state / "demo", data_dir / "demo")
    oidc_config = data_dir / "oidc.toml"
    oidc_config.write_text(
        f'issuer = "{issuer}"\nclient_id = "{CLIENT_ID}"\nclient_secret_env = "SGLEDGER_TEST_OIDC_SECRET"\n'
        'scope = "openid email sgledger"\nlabel = "Sign in with your partnership account"\n'
        '[roles]\n"safeguarding-lead" = "lead"\n"dsl" = "designated-lead"\n',
        encoding="utf-8",
    )
    os.environ["SGLEDGER_TEST_OIDC_SECRET"] = CLIENT_SECRET
    with MailSink() as mail:
        web = start_server(data_dir, mail, "--oidc-config", str(oidc_config), port=port)
        try:
            yield web
        finally:
            stop_server(web)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with sync_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: object) -> Iterator[object]:
    # bypass_csp: axe-core is injected as an inline script, which the pages' own CSP forbids
    # (test_pages_run_under_their_own_csp checks the pages themselves with the CSP in force).
    context = browser.new_context(viewport={"width": 1100, "height": 900}, bypass_csp=True)  # type: ignore[attr-defined]
    try:
        yield context.new_page()
    finally:
        context.close()


EVERY_IMPACT = ("minor", "moderate", "serious", "critical")


def accessible(page: object, impacts: tuple[str, ...] = ("serious", "critical")) -> None:
    """axe-core's violations of these impacts on the page as shown: none allowed."""
    page.add_script_tag(path=str(installed(AXE_CORE) / "axe.min.js"))  # type: ignore[attr-defined]
    violations = page.evaluate("async () => (await axe.run()).violations")  # type: ignore[attr-defined]
    bad = [(v["id"], v["impact"], len(v["nodes"])) for v in violations if v["impact"] in impacts]
    assert not bad, f"{page.url}: {bad}"  # type: ignore[attr-defined]


def sign_in(page: object, server: WebServer, email: str) -> None:
    page.goto(f"{server.base_url}/sign-in")  # type: ignore[attr-defined]
    accessible(page)
    page.fill("#email", email)  # type: ignore[attr-defined]
    page.fill("#password", PASSWORD)  # type: ignore[attr-defined]
    page.click("button:has-text('Sign in')")  # type: ignore[attr-defined]


def test_a_lead_signs_in_sees_their_flags_opens_a_child_and_decides(page: object, server: WebServer) -> None:
    p = page  # type: ignore[assignment]
    sign_in(p, server, POLICE)
    assert p.url.endswith("/flags")  # type: ignore[attr-defined]
    assert p.locator("h1").inner_text() == "My flags"  # type: ignore[attr-defined]
    accessible(p)
    rows = p.locator("tbody tr")  # type: ignore[attr-defined]
    assert rows.count() > 2
    rows.nth(0).locator("a").click()
    assert "/flags/" in p.url  # type: ignore[attr-defined]
    accessible(p)
    p.fill("#ack-reason", "Called the GP practice")  # type: ignore[attr-defined]
    p.click("button:has-text('Acknowledge flag')")  # type: ignore[attr-defined]
    assert "You acknowledged this flag" in p.locator(".govuk-notification-banner").inner_text()  # type: ignore[attr-defined]
    assert f"acknowledged by {POLICE}" in p.content()  # type: ignore[attr-defined]  # a name, not local:...
    p.goto(f"{server.base_url}/flags")  # type: ignore[attr-defined]
    p.locator("tbody tr").nth(0).locator("a").click()  # type: ignore[attr-defined]
    p.click("button:has-text('Dismiss flag')")  # type: ignore[attr-defined]
    assert "Enter why this flag needs no action" in p.locator(".govuk-error-summary").inner_text()  # type: ignore[attr-defined]
    accessible(p)
    p.fill("#dismiss-reason", "Incident was shared by phone on the day")  # type: ignore[attr-defined]
    p.click("button:has-text('Dismiss flag')")  # type: ignore[attr-defined]
    assert "You dismissed this flag" in p.content()  # type: ignore[attr-defined]
    p.goto(f"{server.base_url}/flags?tab=resolved")  # type: ignore[attr-defined]
    accessible(p)
    p.click("text=Find a child")  # type: ignore[attr-defined]
    accessible(p)
    p.fill("#child", CHILD)  # type: ignore[attr-defined]
    p.click("button:has-text('Search')")  # type: ignore[attr-defined]
    assert p.locator("h1").inner_text() == CHILD  # type: ignore[attr-defined]
    assert "Police recorded a domestic-abuse incident INC-CH-1" in p.content()  # type: ignore[attr-defined]
    accessible(p)
    p.fill("#as-of", "not a date")  # type: ignore[attr-defined]
    p.click("button:has-text('Show')")  # type: ignore[attr-defined]
    assert "There is a problem" in p.locator(".govuk-error-summary").inner_text()  # type: ignore[attr-defined]
    accessible(p)


def test_outside_the_relationship_the_glass_is_broken_with_a_reason_and_audited(
    page: object, server: WebServer
) -> None:
    p = page  # type: ignore[assignment]
    sign_in(p, server, GP2)
    p.goto(f"{server.base_url}/children/{CHILD}")  # type: ignore[attr-defined]
    assert p.locator("h1").inner_text() == "You need a reason to open this record"  # type: ignore[attr-defined]
    accessible(p)
    reason = "The father disclosed abuse at his appointment this morning"
    p.fill("#reason", reason)  # type: ignore[attr-defined]
    p.click("button:has-text('Open the record')")  # type: ignore[attr-defined]
    assert p.locator("h1").inner_text() == CHILD  # type: ignore[attr-defined]
    p.click("button:has-text('Sign out')")  # type: ignore[attr-defined]
    sign_in(p, server, DSL)
    deadline = time.monotonic() + 30
    while True:
        p.goto(f"{server.base_url}/audit")  # type: ignore[attr-defined]
        if reason in p.content() or time.monotonic() > deadline:  # type: ignore[attr-defined]
            break
        time.sleep(0.5)
    assert reason in p.locator("table").inner_text()  # type: ignore[attr-defined]
    accessible(p)
    p.click(f"table >> text={CHILD}")  # type: ignore[attr-defined]
    assert "break glass" in p.content()  # type: ignore[attr-defined]
    accessible(p)


def idp_sign_in(p: object, server: WebServer, account: str) -> None:
    p.goto(f"{server.base_url}/sign-in")  # type: ignore[attr-defined]
    p.click("text=Sign in with your partnership account")  # type: ignore[attr-defined]
    p.fill("input[name=login]", account)  # type: ignore[attr-defined]
    p.fill("input[name=password]", "anything")  # type: ignore[attr-defined]
    p.click("button[type=submit]")  # type: ignore[attr-defined]
    p.click("button[type=submit]")  # type: ignore[attr-defined]  # the provider's consent page


def test_a_lead_signs_in_with_the_partnerships_identity_provider(page: object, server: WebServer) -> None:
    p = page  # type: ignore[assignment]
    idp_sign_in(p, server, "idp-police-lead")
    assert p.url.endswith("/flags")  # type: ignore[attr-defined]
    header = p.locator(".app-account").inner_text()  # type: ignore[attr-defined]
    assert "oidc.police@police.example" in header and "police/avon-somerset" in header
    # The signed decision names the lead by the provider's subject (oidc:ISSUER|SUBJECT); the
    # pages name them by the email they signed in with.
    p.locator("tbody tr").nth(0).locator("a").click()  # type: ignore[attr-defined]
    p.fill("#ack-reason", "Spoke to the school")  # type: ignore[attr-defined]
    p.click("button:has-text('Acknowledge flag')")  # type: ignore[attr-defined]
    status = p.locator(".govuk-summary-list").inner_text()  # type: ignore[attr-defined]
    assert "acknowledged by oidc.police@police.example" in status and "oidc:" not in status
    decision = "oidc.police@police.example acknowledged flag"  # the signed decision's sentence
    assert decision in p.content() and "oidc:http" not in p.content()  # type: ignore[attr-defined]
    p.goto(f"{server.base_url}/children/{CHILD}")  # type: ignore[attr-defined]
    assert p.locator("h1").inner_text() == CHILD  # type: ignore[attr-defined]


def test_after_signing_out_the_identity_provider_asks_for_the_password_again(
    page: object, server: WebServer
) -> None:
    """The workspace ends its own session, not the provider's: pressing the sign-in button
    again let the next person at this browser in as the lead without a password. Now the next
    sign-in through the provider from this browser asks it to authenticate again (prompt=login),
    and the signed-out page says what is still open (the provider's own session)."""
    p = page  # type: ignore[assignment]
    idp_sign_in(p, server, "idp-police-lead")
    p.click("button:has-text('Sign out')")  # type: ignore[attr-defined]
    banner = p.locator(".govuk-notification-banner").inner_text()  # type: ignore[attr-defined]
    assert "You have signed out" in banner and "asks for its password again" in banner
    accessible(p, EVERY_IMPACT)
    p.click("a.govuk-button--start")  # type: ignore[attr-defined]
    p.wait_for_selector("input[name=login]")  # type: ignore[attr-defined]  # the provider's login form
    assert not p.url.startswith(server.base_url)  # type: ignore[attr-defined]
    p.fill("input[name=login]", "idp-dsl")  # type: ignore[attr-defined]  # the next person, as themselves
    p.fill("input[name=password]", "anything")  # type: ignore[attr-defined]
    p.click("button[type=submit]")  # type: ignore[attr-defined]
    for _ in range(3):  # the provider's consent page comes only for an account's first sign-in
        p.wait_for_load_state("networkidle")  # type: ignore[attr-defined]
        if p.url.startswith(server.base_url):  # type: ignore[attr-defined]
            break
        p.click("button[type=submit]")  # type: ignore[attr-defined]
    assert "oidc.dsl@partnership.example" in p.locator(".app-account").inner_text()  # type: ignore[attr-defined]
    p.click("button:has-text('Sign out')")  # type: ignore[attr-defined]
    p.click("a.govuk-button--start")  # type: ignore[attr-defined]  # asked again after every sign-out
    p.wait_for_selector("input[name=login]")  # type: ignore[attr-defined]


def test_an_identity_without_a_known_role_is_refused(page: object, server: WebServer) -> None:
    p = page  # type: ignore[assignment]
    idp_sign_in(p, server, "idp-nobody")
    assert p.locator("h1").inner_text() == "You could not be signed in"  # type: ignore[attr-defined]
    assert "no role this service knows" in p.content()  # type: ignore[attr-defined]


def test_a_sign_in_started_on_one_server_process_completes_on_another(
    page: object, server: WebServer
) -> None:
    """Two processes behind one address (a second worker, or the server restarted mid-sign-in):
    the handshake cookie the first set must be accepted by the one the provider sends the
    person back to. Here a second `sgledger serve` on the same state starts the sign-in, with
    the first one's address as its base URL, so the provider's redirect reaches the first."""
    oidc_config = server.data_dir / "oidc.toml"
    with MailSink() as mail:
        other = start_server(
            server.data_dir, mail, "--oidc-config", str(oidc_config), "--base-url", server.base_url
        )
        try:
            p = page  # type: ignore[assignment]
            p.goto(f"{other.base_url}/sign-in")  # type: ignore[attr-defined]
            p.click("text=Sign in with your partnership account")  # type: ignore[attr-defined]
            p.fill("input[name=login]", "idp-police-lead")  # type: ignore[attr-defined]
            p.fill("input[name=password]", "anything")  # type: ignore[attr-defined]
            p.click("button[type=submit]")  # type: ignore[attr-defined]
            p.click("button[type=submit]")  # type: ignore[attr-defined]  # the provider's consent page
            assert p.url == f"{server.base_url}/flags", p.content()  # type: ignore[attr-defined]
            assert "oidc.police@police.example" in p.locator(".app-account").inner_text()  # type: ignore[attr-defined]
        finally:
            stop_server(other)


def test_pages_run_under_their_own_csp(browser: object, server: WebServer) -> None:
    """With the Content-Security-Policy in force, GOV.UK Frontend's script runs (it marks the
    body) and nothing on the pages is blocked."""
    context = browser.new_context()  # type: ignore[attr-defined]
    try:
        p = context.new_page()
        errors: list[str] = []
        p.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        p.on("pageerror", lambda e: errors.append(str(e)))
        sign_in_without_axe = [("#email", POLICE), ("#password", PASSWORD)]
        p.goto(f"{server.base_url}/sign-in")
        for selector, value in sign_in_without_axe:
            p.fill(selector, value)
        p.click("button:has-text('Sign in')")
        p.goto(f"{server.base_url}/children/{CHILD}")
        assert p.evaluate("document.body.classList.contains('govuk-frontend-supported')")
        assert errors == []
    finally:
        context.close()


def test_every_page_state_a_lead_reaches_has_no_accessibility_violation(
    page: object, server: WebServer
) -> None:
    """axe-core, every rule and every impact (best practices too: a signed-in page's account bar
    sat outside every landmark), on each page and error state a lead can reach."""
    p = page  # type: ignore[assignment]
    base = server.base_url

    def check(path: str | None = None) -> None:
        if path is not None:
            p.goto(base + path)  # type: ignore[attr-defined]
        accessible(p, EVERY_IMPACT)

    check("/sign-in")
    p.fill("#email", GP2)  # type: ignore[attr-defined]
    p.fill("#password", "not the password")  # type: ignore[attr-defined]
    p.click("button:has-text('Sign in')")  # type: ignore[attr-defined]
    check()  # the sign-in form with its error
    sign_in(p, server, GP2)
    for path in ("/flags", "/flags?tab=acknowledged", "/flags?tab=resolved", "/search",
                 "/search?child=C-NOBODY", f"/children/{CHILD}", "/children/C-NOBODY",
                 "/flags?page_no=two", "/no-such-page", "/audit"):  # fmt: skip
        check(path)
    p.goto(f"{base}/children/{CHILD}")  # type: ignore[attr-defined]
    p.click("button:has-text('Open the record')")  # type: ignore[attr-defined]
    check()  # the break-glass form with its error
    p.click("button:has-text('Sign out')")  # type: ignore[attr-defined]
    check()  # "You have signed out"
    check("/sign-in?expired=1")
    sign_in(p, server, DSL)
    p.goto(f"{base}/flags")  # type: ignore[attr-defined]
    p.locator("tbody tr").nth(0).locator("a").click()  # type: ignore[attr-defined]
    check()  # a flag
    p.click("button:has-text('Dismiss flag')")  # type: ignore[attr-defined]
    check()  # dismissing without a reason
    for path in (f"/children/{CHILD}", f"/children/{CHILD}?as_of=2019-12-10",
                 f"/children/{CHILD}?as_of=10/12/2019", "/audit", f"/audit/children/{CHILD}"):  # fmt: skip
        check(path)


def test_a_lead_is_warned_before_the_session_ends_and_can_stay_signed_in(
    page: object, demo_state: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """GOV.UK's timeout warning: before the idle limit a modal says when the lead will be
    signed out; "Stay signed in" gives the whole idle time back (the page's own requests do
    not: the idle clock restarts at most once a minute), and doing nothing ends on the sign-in
    page saying the session ended, which leads back to the page. Here a 12 s session, warned
    6 s before its end."""
    p = page  # type: ignore[assignment]
    data_dir = tmp_path_factory.mktemp("web-timeout")
    shutil.copytree(demo_state / "demo", data_dir / "demo")
    with MailSink() as mail:
        server = start_server(data_dir, mail, "--session-minutes", "0.2")
        try:
            sign_in(p, server, POLICE)
            assert p.url.endswith("/flags")  # type: ignore[attr-defined]
            warning = p.locator("#timeout-warning")  # type: ignore[attr-defined]
            assert not warning.is_visible()
            warning.wait_for(state="visible", timeout=12_000)
            assert "You will be signed out soon" in warning.inner_text()
            assert p.evaluate("document.activeElement.closest('#timeout-warning') !== null")  # type: ignore[attr-defined]
            countdown = warning.locator(".app-timeout-warning__countdown").inner_text()
            assert countdown.endswith(("seconds", "second")), countdown
            accessible(p, EVERY_IMPACT)
            kept = time.monotonic()
            warning.locator("button:has-text('Stay signed in')").click()
            warning.wait_for(state="hidden", timeout=5_000)
            time.sleep(max(0.0, kept + 8 - time.monotonic()))  # past the end of the session without it
            p.reload()  # type: ignore[attr-defined]
            assert p.url.endswith("/flags")  # type: ignore[attr-defined]
            assert p.locator("h1").inner_text() == "My flags"  # type: ignore[attr-defined]
            # Nothing done this time: the warning, then the sign-in page, which returns here.
            p.wait_for_url("**/sign-in?expired=1&next=%2Fflags", timeout=20_000)  # type: ignore[attr-defined]
            assert "Your session has ended" in p.locator(".govuk-notification-banner").inner_text()  # type: ignore[attr-defined]
        finally:
            stop_server(server)
