"""The leads' web workspace: FastAPI routes over the view tables, every read audited.

Pages are rendered on the server (Jinja2, GOV.UK Design System markup) and work without
JavaScript; the one script only adds GOV.UK Frontend's progressive enhancements. Who may see
what (``web.policy``) is decided here, before any child data is read for the page; every page
that shows a child records an ``access.recorded`` event through the service key first.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal, cast
from urllib.parse import quote

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.sessions import SessionMiddleware

from consumers.auditor.chronology import build_chronology
from consumers.auditor.chronology_formats import PdfUnavailable, render
from ledger.store.models import AcceptedEvent
from ledger.timeutil import TimeFormatError
from producers.service import Actor, child_target
from views.access_log import break_glass_reads, list_access
from views.flag_ids import FlagIdError, resolve_flag_id, short_flag_id
from views.models import ChildRow, FlagChangeRow, FlagRow
from views.my_flags import TABS, Tab, flags_page
from views.queries import child_view, flags_as_of
from views.relationship import has_relationship
from views.summaries import agency_name, summarise
from web import pages
from web.accounts import LoginRefused, SignedIn
from web.handshake import handshake_key
from web.oidc import ClaimsRefused
from web.services import WebServices

log = logging.getLogger(__name__)
HERE = Path(__file__).parent
SIGNIN_COOKIE = "sgl_signin"  # the sign-in form's CSRF token, before there is a session
# Set when a lead signed in through the identity provider signs out: the next sign-in through it
# from this browser asks the provider to authenticate again (OIDC ``prompt=login``), so the
# next person at a shared computer is not let in as them by the provider's own session, which
# this service does not end (that needs RP-initiated logout and the ID token kept per session).
REAUTHENTICATE_COOKIE = "sgl_reauthenticate"
MAX_REASON = 500
DONE = ("acknowledged", "dismissed", "acknowledged-pending", "dismissed-pending")  # ?done= after a decision
FLAGS_PER_PAGE = 50
MAX_PAGE = 1_000_000  # 50 million flags; a larger page's offset overflowed SQLite's INTEGER (a 500)


class NeedsSignIn(Exception):
    def __init__(self, expired: bool) -> None:
        self.expired = expired


class PageError(Exception):
    """Shown as a GOV.UK error page with ``status``; ``message`` is safe to show."""

    def __init__(self, status: int, title: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.title, self.message, self.extra = status, title, message, extra


def signed_in(request: Request) -> SignedIn:
    """The person behind the session cookie; else off to the sign-in page (saying the session
    ended when there was a cookie whose session is gone)."""
    token = request.cookies.get(request.app.state.cookie_name)
    if not token:
        raise NeedsSignIn(expired=False)
    user = request.app.state.services.accounts.session(token)
    if user is None:
        raise NeedsSignIn(expired=True)
    request.state.user = user
    return user


User = Annotated[SignedIn, Depends(signed_in)]


async def checked_form(request: Request, user: User) -> dict[str, str]:
    """The POSTed form, after its CSRF token matched the session's; else a 403 page."""
    form = await request.form()
    given = form.get("csrf_token")
    if not isinstance(given, str) or not secrets.compare_digest(given, user.csrf):
        raise PageError(
            403,
            "This form cannot be accepted",
            "The form did not come from this service's own page (its security token is missing or "
            "wrong). Nothing was changed. Go back, reload the page and try again.",
        )
    return {k: v for k, v in form.items() if isinstance(v, str)}


CheckedForm = Annotated[dict[str, str], Depends(checked_form)]


def create_app(services: WebServices) -> FastAPI:
    config = services.config

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        services.start()
        try:
            yield
        finally:
            services.close()

    app = FastAPI(lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.services = services
    templates = Jinja2Templates(directory=HERE / "templates")
    person = pages.person_namer(services.accounts.display_name)
    pages.install_filters(templates.env, person)
    templates.env.globals.update(partnership=config.partnership_name, oidc=config.oidc)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    cookie_name = "__Host-sgl_session" if config.secure else "sgl_session"
    app.state.cookie_name = cookie_name
    if config.oidc is not None:
        # Only Authlib's OIDC handshake (state, nonce) lives in this signed cookie, for the few
        # minutes between leaving for the provider and coming back; the session is server-side.
        # Its key is the same in every process of the partnership (web.handshake).
        app.add_middleware(
            SessionMiddleware,
            secret_key=handshake_key(services.settings.data_dir),
            session_cookie="sgl_oidc",
            max_age=600,
            same_site="lax",
            https_only=config.secure,
        )

    @app.middleware("http")
    async def security_headers(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        h = response.headers
        h["Content-Security-Policy"] = (
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
            "font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; "
            "form-action 'self'; frame-ancestors 'none'"
        )
        h["X-Content-Type-Options"] = "nosniff"
        h["X-Frame-Options"] = "DENY"
        h["Referrer-Policy"] = "no-referrer"
        h["Cross-Origin-Opener-Policy"] = "same-origin"
        if config.secure:
            h["Strict-Transport-Security"] = "max-age=31536000"
        if not request.url.path.startswith("/static/"):
            # Every page may show a child or a flag: nothing is kept by the browser or a proxy.
            h["Cache-Control"] = "no-store"
        return response

    def page(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
        """Render ``template``; the signed-in person (set on the request by ``signed_in``) is
        always in the context, for the header and the forms' CSRF token."""
        context.setdefault("user", getattr(request.state, "user", None))
        return templates.TemplateResponse(request, template, context, status_code=status)

    @app.exception_handler(NeedsSignIn)
    async def _needs_sign_in(request: Request, exc: NeedsSignIn) -> Response:
        if request.method == "GET":
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        else:
            # Every form posts to its page's address plus an action (/flags/ID/acknowledge):
            # after signing in, back to that page. The action's own address answers only POST,
            # so returning there showed "Not allowed" to a lead whose session ran out mid-form.
            target = request.url.path.rsplit("/", 1)[0] or "/"
        query = f"?next={quote(target, safe='')}" + ("&expired=1" if exc.expired else "")
        response = RedirectResponse(f"/sign-in{query}", status_code=303)
        if exc.expired:
            response.delete_cookie(cookie_name, path="/")
        return response

    @app.exception_handler(PageError)
    async def _page_error(request: Request, exc: PageError) -> Response:
        return page(request, "error.html", exc.status, title=exc.title, message=exc.message, **exc.extra)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        titles = {404: "Page not found", 405: "Not allowed"}
        # An address no route matched ran no ``signed_in``: look the session up here, so a
        # signed-in lead keeps the menu and is not offered "Sign in" as the way on.
        user = getattr(request.state, "user", None)
        token = request.cookies.get(cookie_name)
        if user is None and token:
            user = services.accounts.session(token)
        return page(
            request,
            "error.html",
            exc.status_code,
            title=titles.get(exc.status_code, "Error"),
            message=str(exc.detail),
            user=user,
        )

    @app.exception_handler(RequestValidationError)
    async def _malformed(request: Request, exc: RequestValidationError) -> Response:
        # FastAPI's default is a JSON list of pydantic errors: not a page a lead can act on.
        # Only query parameters are typed (page numbers, flags), so the address was edited by hand.
        return page(
            request,
            "error.html",
            400,
            title="There is a problem with the address",
            message="Part of the page's address is not what this service makes. Use the links on "
            "the page instead of editing the address.",
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.exception("error on %s", request.url.path)
        return page(
            request,
            "error.html",
            500,
            title="Sorry, there is a problem with the service",
            message="The error has been logged. Try again later.",
            user=None,
        )

    def may_read_child(user: SignedIn, child: str, session: Session | None = None) -> bool:
        """``session``: answer inside the caller's read transaction (the Child page reads
        everything in one) instead of opening one."""
        if user.role == "designated-lead" or child in user.glass:
            return True
        if user.role != "lead" or user.actor.agency is None:
            return False
        if session is not None:
            return has_relationship(session, user.actor.agency, child)
        with services.ledger.read() as own:
            return has_relationship(own, user.actor.agency, child)

    def child_exists(child: str) -> bool:
        """A child is someone the projector keeps a view of (not any event subject: access
        events about the partnership are filed under its id)."""
        with services.ledger.read() as session:
            return session.get(ChildRow, child) is not None

    def require_auditor(user: SignedIn) -> None:
        if user.role not in ("designated-lead", "auditor"):
            raise PageError(
                403,
                "You cannot see this page",
                "Audit pages are for the partnership's designated leads and auditors.",
            )

    # --- sign in and out ----------------------------------------------------------------------

    @app.get("/sign-in", response_class=HTMLResponse)
    def sign_in_page(request: Request, next: str = "/", expired: int = 0, signed_out: str = "") -> Response:
        token = secrets.token_urlsafe(32)
        response = page(
            request,
            "sign_in.html",
            csrf=token,
            next=_safe_next(next),
            expired=bool(expired),
            signed_out=signed_out,
            errors=[],
            email="",
        )
        _set_signin_cookie(response, token)
        return response

    @app.post("/sign-in", response_class=HTMLResponse)
    async def sign_in(request: Request) -> Response:
        form = await request.form()
        email, password = str(form.get("email", "")), str(form.get("password", ""))
        next_url = _safe_next(str(form.get("next", "/")))
        expected = request.cookies.get(SIGNIN_COOKIE)
        given = str(form.get("csrf_token", ""))
        if not expected or not secrets.compare_digest(given, expected):
            raise PageError(
                403,
                "This form cannot be accepted",
                "The sign-in form did not come from this service's own page. Nothing was "
                "changed. Go back, reload the page and try again.",
            )
        try:
            actor = services.accounts.authenticate(email, password)
        except LoginRefused as exc:
            token = secrets.token_urlsafe(32)
            response = page(
                request,
                "sign_in.html",
                401,
                csrf=token,
                next=next_url,
                expired=False,
                errors=[{"text": str(exc), "href": "#email"}],
                email=email,
            )
            _set_signin_cookie(response, token)
            return response
        return _start(actor, email.strip().lower(), next_url)

    def _start(actor: Actor, display: str, next_url: str) -> Response:
        user = services.accounts.start_session(actor, display)
        response = RedirectResponse(next_url, status_code=303)
        response.set_cookie(
            cookie_name,
            user.token,
            max_age=int(config.session_absolute.total_seconds()),
            path="/",
            secure=config.secure,
            httponly=True,
            samesite="lax",
        )
        response.delete_cookie(SIGNIN_COOKIE, path="/")
        return response

    def _set_signin_cookie(response: Response, token: str) -> None:
        response.set_cookie(
            SIGNIN_COOKIE,
            token,
            max_age=1800,
            path="/",
            secure=config.secure,
            httponly=True,
            samesite="strict",
        )

    # -- the timeout warning (web/static/app.js): how long is left, and "Stay signed in" ----------
    @app.get("/session")
    def session_left(request: Request) -> JSONResponse:
        """Seconds until this browser's session ends, asked by the warning before it shows and
        before it signs the page out (another tab may have kept the session alive meanwhile).
        Asking leaves the idle clock alone, or an open tab would keep a forgotten session alive;
        no session is 0, not a redirect: the script then sends the page to the sign-in."""
        token = request.cookies.get(cookie_name)
        user = services.accounts.session(token, idle_clock="leave") if token else None
        return JSONResponse({"seconds_left": user.seconds_left() if user else 0})

    @app.post("/session")
    def session_kept(user: User, form: CheckedForm) -> JSONResponse:
        """The timeout warning's "Stay signed in": the whole idle time again (up to the absolute limit)."""
        kept = services.accounts.session(user.token, idle_clock="restart")
        return JSONResponse({"seconds_left": kept.seconds_left() if kept else 0})

    @app.post("/sign-out")
    def sign_out(user: User, form: CheckedForm) -> Response:
        services.accounts.end_session(user.token)
        # Said on the page, so a lead leaving a shared computer knows the session is over; and,
        # after a sign-in through the identity provider, that the next one here asks for the
        # password again (REAUTHENTICATE_COOKIE) while the provider's own session lives on.
        through_provider = user.actor.id.startswith("oidc:")
        how = "oidc" if through_provider else "1"
        response = RedirectResponse(f"/sign-in?signed_out={how}", status_code=303)
        response.delete_cookie(cookie_name, path="/")
        if through_provider:
            response.set_cookie(
                REAUTHENTICATE_COOKIE, "1", max_age=int(config.session_absolute.total_seconds()),
                path="/", secure=config.secure, httponly=True, samesite="lax",
            )  # fmt: skip
        return response

    if config.oidc is not None:
        from authlib.integrations.starlette_client import OAuth, OAuthError

        oidc = config.oidc
        oauth = OAuth()
        oauth.register(
            "partnership",
            client_id=oidc.client_id,
            client_secret=oidc.client_secret,
            server_metadata_url=oidc.metadata_url,
            client_kwargs={"scope": oidc.scope, "code_challenge_method": "S256"},
        )

        @app.get("/sign-in/oidc")
        async def oidc_start(request: Request, next: str = "/") -> Response:
            request.session["next"] = _safe_next(next)
            client = oauth.create_client("partnership")
            again = {"prompt": "login"} if request.cookies.get(REAUTHENTICATE_COOKIE) else {}
            redirect: Response = await client.authorize_redirect(
                request, config.base_url.rstrip("/") + "/sign-in/oidc/callback", **again
            )
            return redirect

        @app.get("/sign-in/oidc/callback")
        async def oidc_callback(request: Request) -> Response:
            client = oauth.create_client("partnership")
            try:
                token = await client.authorize_access_token(request)
                # The ID token is verified by Authlib (signature, issuer, audience, nonce); many
                # providers put the claims of extra scopes only in the userinfo response.
                claims = dict(token.get("userinfo") or {})
                extra = await client.userinfo(token=token)
                if extra.get("sub") == claims.get("sub"):
                    claims = {**extra, **claims}
                actor, display = oidc.actor(claims)
            except (OAuthError, ClaimsRefused) as exc:
                message = exc.description if isinstance(exc, OAuthError) else str(exc)
                raise PageError(403, "You could not be signed in", f"Sign-in was refused: {message}") from exc
            response = _start(actor, display, _safe_next(request.session.pop("next", "/")))
            response.delete_cookie(REAUTHENTICATE_COOKIE, path="/")
            return response

    # --- pages ---------------------------------------------------------------------------------

    @app.get("/")
    def home(user: User) -> Response:
        # Sign-in lands here unless a page sent the person to it: each role's own start page.
        # (It went to /flags, which has nothing for an auditor: every auditor's sign-in was a 500.)
        return RedirectResponse("/audit" if user.role == "auditor" else "/flags", status_code=303)

    @app.get("/flags", response_class=HTMLResponse)
    def my_flags(request: Request, user: User, tab: str = "open", page_no: int = 1) -> Response:
        if user.role not in ("lead", "designated-lead"):
            raise PageError(
                403,
                "You have no flags",
                "My flags lists the gap flags that concern a safeguarding lead's agency. "
                "As an auditor, start from the Audit page.",
            )
        if tab not in TABS or not 1 <= page_no <= MAX_PAGE:
            raise PageError(400, "There is no such list", "Choose open, acknowledged or resolved.")
        scope = "all" if user.role == "designated-lead" else (user.actor.agency or "none")
        with services.recording_access(user.actor, f"web flags {tab}", f"flags:{scope}"):
            agency = None if user.role == "designated-lead" else user.actor.agency
            with services.ledger.read() as session:
                rows, more = flags_page(
                    session,
                    agency,
                    cast(Tab, tab),
                    offset=(page_no - 1) * FLAGS_PER_PAGE,
                    limit=FLAGS_PER_PAGE,
                )
        return page(request, "flags.html", flags=rows, tab=tab, tabs=TABS, page_no=page_no, more=more)

    @app.get("/flags/{flag_ref}", response_class=HTMLResponse)
    def flag_page(request: Request, user: User, flag_ref: str, done: str | None = None) -> Response:
        flag, evidence, history, decisions = load_flag(user, flag_ref)
        return page(
            request,
            "flag.html",
            flag=flag,
            evidence=evidence,
            history=history,
            decisions=decisions,
            # Only what ``decide`` sends: any other text would be shown to the lead as "You ...
            # this flag. The decision is signed", words a crafted link could choose.
            done=done if done in DONE else None,
            may_open_child=flag["child"] and may_read_child(user, flag["child"]),
        )

    def load_flag(
        user: SignedIn, flag_ref: str
    ) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
        with services.ledger.read() as session:
            try:
                flag_id = resolve_flag_id(session, flag_ref)
            except FlagIdError as exc:
                # Not FlagIdError's own words: they send a command-line user to `sgledger flags
                # list`, which a lead in the browser has no way to run.
                raise PageError(
                    404,
                    "Flag not found",
                    "This address names no flag. Open the flag from My flags or from the child's record.",
                ) from exc
            row = session.get(FlagRow, flag_id)
            assert row is not None  # resolved just now, in this transaction
            flag = json.loads(row.payload)
            allowed = user.role == "designated-lead" or (
                user.role == "lead" and user.actor.agency in flag["concerns"]
            )
            if not allowed and not (flag["child"] and may_read_child(user, flag["child"])):
                raise PageError(403, "You cannot see this flag", "This flag does not concern your agency.")
            evidence_rows = session.scalars(
                select(AcceptedEvent)
                .where(AcceptedEvent.event_id.in_(flag["evidence"]))
                .order_by(AcceptedEvent.time)
            )
            evidence = [
                {
                    "id": e.event_id,
                    "source": e.source,
                    "type": e.type,
                    "time": e.time,
                    "summary": summarise(e.type, e.source, json.loads(e.envelope)["data"]),
                }
                for e in evidence_rows
            ]
            changes = session.scalars(
                select(FlagChangeRow).where(FlagChangeRow.flag_id == flag_id).order_by(FlagChangeRow.id)
            )
            history = [{"change": c.change, "at": c.changed_at} for c in changes]
            # The flag keeps only who acknowledged or dismissed it; what they wrote ("what you
            # have done", the form asks) is in their signed decision, filed under the flag's
            # child (or the partnership), and shown here so the next lead can read it.
            decided = session.scalars(
                select(AcceptedEvent)
                .where(
                    AcceptedEvent.subject == (flag["child"] or services.producer.partnership),
                    AcceptedEvent.type.in_(("flag.acknowledged", "flag.dismissed")),
                )
                .order_by(AcceptedEvent.time)
            )
            decided_data = [
                (e, data) for e in decided if (data := json.loads(e.envelope)["data"])["flag"] == flag_id
            ]
            names = pages.people_in((data for _, data in decided_data), person)
            decisions = [
                {"time": e.time, "summary": summarise(e.type, e.source, data, names=names)}
                for e, data in decided_data
            ]
        target = child_target(flag["child"]) if flag["child"] else f"flag:{flag_id}"
        services.record_access(user.actor, f"web flag {short_flag_id(flag_id)}", target)
        return flag, evidence, history, decisions

    @app.post("/flags/{flag_ref}/acknowledge")
    def acknowledge(user: User, form: CheckedForm, flag_ref: str) -> Response:
        return decide(user, flag_ref, "flag.acknowledged", form.get("reason", "").strip() or None)

    @app.post("/flags/{flag_ref}/dismiss", response_class=HTMLResponse)
    def dismiss(request: Request, user: User, form: CheckedForm, flag_ref: str) -> Response:
        reason = form.get("reason", "").strip()
        if not reason:
            flag, evidence, history, decisions = load_flag(user, flag_ref)
            return page(
                request,
                "flag.html",
                400,
                flag=flag,
                evidence=evidence,
                history=history,
                decisions=decisions,
                done=None,
                may_open_child=flag["child"] and may_read_child(user, flag["child"]),
                errors=[{"text": "Enter why this flag needs no action", "href": "#dismiss-reason"}],
            )
        return decide(user, flag_ref, "flag.dismissed", reason)

    def decide(
        user: SignedIn,
        flag_ref: str,
        decision: Literal["flag.acknowledged", "flag.dismissed"],
        reason: str | None,
    ) -> Response:
        if user.role not in ("lead", "designated-lead"):
            raise PageError(
                403,
                "You cannot decide on flags",
                "Only safeguarding leads acknowledge or dismiss flags.",
            )
        if reason is not None and len(reason) > MAX_REASON:
            raise PageError(400, "Reason too long", f"Give a reason of at most {MAX_REASON} characters.")
        flag, *_ = load_flag(user, flag_ref)
        if flag["status"] != "open":
            raise PageError(
                409,
                "This flag is closed",
                f"The flag is {flag['status']}: there is nothing to decide.",
            )
        shown = services.decide_flag(
            user.actor, decision, flag["id"], flag["child"], reason, flag["evidence"]
        )
        done = ("acknowledged" if decision == "flag.acknowledged" else "dismissed") + (
            "" if shown else "-pending"
        )
        return RedirectResponse(f"/flags/{short_flag_id(flag['id'])}?done={done}", status_code=303)

    @app.get("/search", response_class=HTMLResponse)
    def search(request: Request, user: User, child: str | None = None) -> Response:
        if child is None:
            return page(request, "search.html", query="", errors=[])
        query = child.strip()
        if not query:
            return page(
                request,
                "search.html",
                400,
                query=child,
                errors=[{"text": "Enter the child's id", "href": "#child"}],
            )
        if len(query) <= 128 and child_exists(query):
            return RedirectResponse(f"/children/{quote(query, safe='')}", status_code=303)
        return page(
            request,
            "search.html",
            404,
            query=child,
            errors=[{"text": "No child has that id. Check the id and try again.", "href": "#child"}],
        )

    @app.get("/children/{child}", response_class=HTMLResponse)
    def child_page(request: Request, user: User, child: str, as_of: str | None = None) -> Response:
        when = None
        if as_of:
            try:
                when = pages.parse_as_of(as_of)
            except TimeFormatError as exc:
                raise PageError(
                    400,
                    "There is a problem with the date",
                    str(exc),
                    errors=[{"text": str(exc), "href": "#as-of"}],
                    child=child,
                    as_of=as_of,  # kept in the field, to be corrected rather than typed again
                ) from exc
        # One read transaction for the checks and the view; the access record is committed
        # meanwhile, and the page is shown only once it is (services.recording_access).
        action = "web child" + (f" as of {when.isoformat()}" if when else "")
        with services.ledger.read() as session:
            if session.get(ChildRow, child) is None:
                raise PageError(
                    404, "Child not found", "No events about a child with this id are in the ledger."
                )
            if not may_read_child(user, child, session):
                return page(request, "refused.html", 403, child=child, errors=[])
            with services.recording_access(user.actor, action, child_target(child)):
                view = child_view(session, child)
        assert view is not None  # checked above, in the same transaction
        if when is not None:
            view = pages.view_as_of(
                view, flags_as_of(services.ledger, services.root, when, child=child), when
            )
        return page(request, "child.html", view=pages.child_page(view, when, person), as_of=as_of or "")

    @app.post("/children/{child}/break-glass", response_class=HTMLResponse)
    def break_glass(request: Request, user: User, form: CheckedForm, child: str) -> Response:
        reason = form.get("reason", "").strip()
        if not reason or len(reason) > MAX_REASON:
            text = (
                "Enter why you need to open this record"
                if not reason
                else f"Give at most {MAX_REASON} characters"
            )
            return page(
                request,
                "refused.html",
                400,
                child=child,
                errors=[{"text": text, "href": "#reason"}],
            )
        if not child_exists(child):
            raise PageError(404, "Child not found", "No events about a child with this id are in the ledger.")
        services.record_access(user.actor, "break glass", child_target(child), reason)
        services.accounts.grant_glass(user.token, child)
        if services.mailer is not None:
            services.mailer.send(user.actor, child, reason, datetime.now(UTC).isoformat(timespec="seconds"))
        return RedirectResponse(f"/children/{quote(child, safe='')}", status_code=303)

    @app.get("/children/{child}/chronology.{fmt}")
    def chronology(user: User, child: str, fmt: str) -> Response:
        media = {
            "html": "text/html; charset=utf-8",
            "pdf": "application/pdf",
            "csv": "text/csv; charset=utf-8",
        }
        if fmt not in media:
            raise PageError(404, "Page not found", "The chronology is available as HTML, PDF or CSV.")
        if not child_exists(child):
            raise PageError(404, "Child not found", "No events about a child with this id are in the ledger.")
        if not may_read_child(user, child):
            raise PageError(403, "You cannot see this record", "Open the child's page to ask for access.")
        services.record_access(user.actor, f"web chronology {fmt}", child_target(child))
        try:
            body = render(build_chronology(services.ledger, services.root, child, datetime.now(UTC)), fmt)
        except PdfUnavailable as exc:
            raise PageError(503, "The PDF cannot be made on this server", str(exc)) from exc
        # HTML opens in the browser, for printing; PDF and CSV are files to keep.
        headers = (
            {"Content-Disposition": f'attachment; filename="chronology-{child}.{fmt}"'}
            if fmt != "html"
            else {}
        )
        return Response(body, media_type=media[fmt], headers=headers)

    @app.get("/audit", response_class=HTMLResponse)
    def audit(request: Request, user: User) -> Response:
        require_auditor(user)
        services.record_access(user.actor, "web audit break-glass", "audit:break-glass")
        with services.ledger.read() as session:
            reads = break_glass_reads(session)
        return page(request, "audit.html", reads=reads)

    @app.get("/audit/children/{child}", response_class=HTMLResponse)
    def audit_child(request: Request, user: User, child: str) -> Response:
        if user.role not in ("designated-lead", "auditor") and not may_read_child(user, child):
            raise PageError(
                403,
                "You cannot see this page",
                "You can see who looked at the records of children your agency works with.",
            )
        if not child_exists(child):
            raise PageError(404, "Child not found", "No events about a child with this id are in the ledger.")
        services.record_access(user.actor, "web audit child", child_target(child))
        return page(request, "audit_child.html", child=child, reads=list_access(services.ledger, child))

    templates.env.globals.update(agency_name=agency_name, short_flag_id=short_flag_id)
    return app


def _safe_next(target: str) -> str:
    """Only a path on this site: an open redirect would let a phishing link borrow our sign-in."""
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target
