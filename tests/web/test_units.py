"""Pure parts of the web workspace and its accounts, without a server."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ledger.private_files import NotPrivate
from ledger.store.ledger import Ledger
from ledger.timeutil import TimeFormatError
from views.flags import concern_rows
from views.models import FlagConcernRow, FlagRow
from views.my_flags import flag_tab, flags_page
from web.accounts import AccountError, Accounts, LoginRefused
from web.handshake import SECRET_ENV, SECRET_FILE, SecretTooShort, handshake_key
from web.oidc import ClaimsRefused, OidcConfig, OidcConfigError, load_oidc_config
from web.pages import action_text, age, parse_as_of, when


def test_an_as_of_date_is_the_end_of_that_london_day() -> None:
    assert parse_as_of("2019-12-10") == datetime(2019, 12, 10, 23, 59, 59, 999999, tzinfo=UTC)
    summer = parse_as_of("2020-07-01")
    assert summer.astimezone(UTC) == datetime(2020, 7, 1, 22, 59, 59, 999999, tzinfo=UTC)
    assert parse_as_of("2019-12-10T12:00:00+00:00") == datetime(2019, 12, 10, 12, tzinfo=UTC)
    for bad in ("10/12/2019", "2019-13-01", "<script>", "2019-12-10T12:00"):
        with pytest.raises(TimeFormatError):
            parse_as_of(bad)


def test_age_and_times_as_a_lead_says_them() -> None:
    on = datetime(2020, 2, 24, tzinfo=UTC)
    assert age("2019-11-08", on) == "3 months"
    assert age("2018-11-08", on) == "1 year 3 months"
    assert age("2020-02-20", on) == "4 days"
    assert age(None, on) == "not known"
    assert when("2019-12-10T21:40:00+00:00") == "Tue 10 Dec 2019 21:40 GMT"
    assert when(datetime(2020, 7, 1, 12, tzinfo=UTC)) == "Wed 1 Jul 2020 13:00 BST"


def test_flag_tabs() -> None:
    assert flag_tab({"status": "open", "acknowledged_by": None}) == "open"
    assert flag_tab({"status": "open", "acknowledged_by": "local:a@b.example"}) == "acknowledged"
    assert flag_tab({"status": "dismissed"}) == flag_tab({"status": "resolved"}) == "resolved"


@pytest.fixture
def accounts(tmp_path: Path) -> Accounts:
    return Accounts(f"sqlite:///{tmp_path / 'ledger.sqlite'}", idle=timedelta(minutes=30))


def test_accounts_refuse_bad_input(accounts: Accounts) -> None:
    with pytest.raises(AccountError, match="not an email"):
        accounts.add_user("nobody", "gp/L1", "lead", "long enough password")
    with pytest.raises(AccountError, match="needs --agency"):
        accounts.add_user("a@b.example", None, "lead", "long enough password")
    with pytest.raises(AccountError, match="too short"):
        accounts.add_user("a@b.example", "gp/L1", "lead", "short")
    accounts.add_user("a@b.example", "gp/L1", "lead", "long enough password")
    with pytest.raises(AccountError, match="already"):
        accounts.add_user("A@b.example", "gp/L1", "lead", "long enough password")


def test_passwords_are_argon2_and_a_disabled_account_cannot_sign_in(accounts: Accounts) -> None:
    row = accounts.add_user("a@b.example", "gp/L1", "lead", "long enough password")
    assert row.password_hash.startswith("$argon2id$") and "long enough" not in row.password_hash
    actor = accounts.authenticate("A@B.example ", "long enough password")
    assert (actor.id, actor.role, actor.agency) == ("local:a@b.example", "lead", "gp/L1")
    session = accounts.start_session(actor, "a@b.example")
    accounts.disable("a@b.example")
    assert accounts.session(session.token) is None
    with pytest.raises(LoginRefused, match="Enter a correct"):
        accounts.authenticate("a@b.example", "long enough password")


@pytest.mark.slow  # nine argon2 verifications: ~1 s on a quiet machine, 15 s on a busy one
def test_the_lock_doubles_and_expires(accounts: Accounts) -> None:
    accounts.add_user("a@b.example", "gp/L1", "lead", "long enough password")
    now = datetime(2026, 1, 1, 12, tzinfo=UTC)
    for _ in range(5):
        with pytest.raises(LoginRefused, match="Enter a correct"):
            accounts.authenticate("a@b.example", "wrong", now)
    with pytest.raises(LoginRefused, match="locked until 12:01"):
        accounts.authenticate("a@b.example", "long enough password", now)
    later = now + timedelta(minutes=2)
    with pytest.raises(LoginRefused, match="Enter a correct"):
        accounts.authenticate("a@b.example", "wrong", later)
    with pytest.raises(LoginRefused, match="locked until 12:04"):  # two minutes this time
        accounts.authenticate("a@b.example", "long enough password", later)
    assert accounts.authenticate("a@b.example", "long enough password", later + timedelta(minutes=3))


def test_sessions_expire_when_idle(accounts: Accounts) -> None:
    accounts.add_user("a@b.example", None, "auditor", "long enough password")
    session = accounts.start_session(accounts.authenticate("a@b.example", "long enough password"), "a")
    now = datetime.now(UTC)
    assert accounts.session(session.token, now + timedelta(minutes=29)) is not None
    assert accounts.session(session.token, now + timedelta(minutes=29 + 31)) is None
    assert accounts.session("made-up-token") is None


def test_the_timeout_warning_asks_without_keeping_the_session_and_stay_keeps_it(accounts: Accounts) -> None:
    """Asking how long is left ("leave") must not keep a forgotten session alive; "Stay signed
    in" ("restart") gives the whole idle time back; the session says when it ends either way."""
    accounts.add_user("a@b.example", None, "auditor", "long enough password")
    actor = accounts.authenticate("a@b.example", "long enough password")
    asked, kept = accounts.start_session(actor, "a"), accounts.start_session(actor, "a")
    now = datetime.now(UTC)
    assert kept.seconds_left(now) == pytest.approx(30 * 60, abs=2)
    later = now + timedelta(minutes=28)
    left = accounts.session(asked.token, later, idle_clock="leave")
    assert left is not None and left.seconds_left(later) == pytest.approx(120, abs=2)
    restarted = accounts.session(kept.token, later, idle_clock="restart")
    assert restarted is not None and restarted.seconds_left(later) == pytest.approx(30 * 60, abs=2)
    after = now + timedelta(minutes=31)
    assert accounts.session(asked.token, after, idle_clock="leave") is None
    assert accounts.session(kept.token, after) is not None


CONFIG = OidcConfig(
    issuer="https://idp.example",
    client_id="c",
    client_secret="s",
    roles={"safeguarding-lead": "lead", "dsl": "designated-lead"},
)


def test_oidc_claims_map_to_an_actor() -> None:
    actor, display = CONFIG.actor(
        {"sub": "u1", "agency": "gp/L85001", "role": "safeguarding-lead", "email": "x@gp.example"}
    )
    assert (actor.id, actor.role, actor.agency, display) == (
        "oidc:https://idp.example|u1",
        "lead",
        "gp/L85001",
        "x@gp.example",
    )
    assert CONFIG.actor({"sub": "u2", "role": ["safeguarding-lead", "dsl"]})[0].role == "designated-lead"
    with pytest.raises(ClaimsRefused, match="no role"):
        CONFIG.actor({"sub": "u3", "role": "receptionist", "agency": "gp/L1"})
    with pytest.raises(ClaimsRefused, match="needs an agency"):
        CONFIG.actor({"sub": "u4", "role": "safeguarding-lead"})
    with pytest.raises(ClaimsRefused, match="not an agency id"):
        CONFIG.actor({"sub": "u5", "role": "safeguarding-lead", "agency": "<b>"})


def test_oidc_config_keeps_the_secret_out_of_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "oidc.toml"
    path.write_text(
        'issuer = "https://idp.example"\nclient_id = "c"\nclient_secret_env = "OIDC_SECRET"\n'
        '[roles]\n"dsl" = "designated-lead"\n'
    )
    monkeypatch.delenv("OIDC_SECRET", raising=False)
    with pytest.raises(OidcConfigError, match="OIDC_SECRET is not set"):
        load_oidc_config(path)
    monkeypatch.setenv("OIDC_SECRET", "s3cret")
    assert load_oidc_config(path).client_secret == "s3cret"
    path.write_text('issuer = "http://idp.example"\nclient_id = "c"\nclient_secret_env = "OIDC_SECRET"\n')
    with pytest.raises(OidcConfigError, match="must be https"):
        load_oidc_config(path)


def _flag(n: int, concerns: list[str], status: str = "open", acknowledged_by: str | None = None) -> FlagRow:
    due = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(hours=n)
    payload = {
        "id": f"{n:08d}-0000",
        "rule": "r",
        "status": status,
        "severity": "high",
        "due": due.isoformat(),
        "concerns": concerns,
        "acknowledged_by": acknowledged_by,
    }
    return FlagRow(
        id=payload["id"],
        rule="r",
        version=1,
        child=f"C-{n}",
        severity="high",
        status=status,
        due=due,
        payload=json.dumps(payload),
        raised_at=due,
        updated_at=due,
        changes=1,
    )


def test_my_flags_pages_and_matches_the_agency_exactly(tmp_path: Path) -> None:
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.sqlite'}")
    flags = [_flag(n, ["gp/L1", "police/x"]) for n in range(7)] + [
        _flag(7, ["gp/L10"]),
        _flag(8, ["gp/L1"], acknowledged_by="local:a@b.example"),
        _flag(9, ["gp/L1"], status="dismissed"),
    ]
    with ledger.writer() as session:
        session.add_all(flags)
        session.add_all(  # as views.flags.sync_flags keeps them beside the flags
            FlagConcernRow(**r)
            for f in flags
            for r in concern_rows(f.id, f.rule, f.severity, f.status, f.due, json.loads(f.payload))
        )
    with ledger.read() as session:
        first, more = flags_page(session, "gp/L1", "open", limit=5)
        assert [f["id"][:8] for f in first] == [f"{n:08d}" for n in range(5)] and more
        rest, more = flags_page(session, "gp/L1", "open", offset=5, limit=5)
        assert [f["id"][:8] for f in rest] == ["00000005", "00000006"] and not more
        assert [f["id"][:8] for f in flags_page(session, "gp/L1", "acknowledged")[0]] == ["00000008"]
        assert [f["id"][:8] for f in flags_page(session, "gp/L1", "resolved")[0]] == ["00000009"]
        assert [f["id"][:8] for f in flags_page(session, "gp/L10", "open")[0]] == ["00000007"]
        assert len(flags_page(session, None, "open")[0]) == 8


def test_the_handshake_key_is_shared_by_every_process_and_kept_private(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(SECRET_ENV, raising=False)
    state = tmp_path / "state"
    key = handshake_key(state)
    secret = state / SECRET_FILE
    assert secret.stat().st_mode & 0o777 == 0o600
    assert handshake_key(state) == key  # a second worker, or the server restarted
    assert handshake_key(tmp_path / "other-partnership") != key
    assert key not in secret.read_text()  # the cookie key is derived, not the stored secret
    monkeypatch.setenv(SECRET_ENV, "x" * 40)  # several machines: one configured secret
    configured = handshake_key(state)
    assert configured != key and configured == handshake_key(tmp_path / "elsewhere")
    monkeypatch.setenv(SECRET_ENV, "short")
    with pytest.raises(SecretTooShort, match="at least 32"):
        handshake_key(state)
    monkeypatch.delenv(SECRET_ENV)
    secret.chmod(0o644)
    with pytest.raises(NotPrivate, match="chmod 600"):
        handshake_key(state)


def test_access_actions_read_as_words() -> None:
    assert action_text("web child as of 2020-07-01T22:59:59.999999+00:00") == (
        "Opened the record as it stood on 1 Jul 2020"
    )
    assert action_text("web chronology pdf") == "Downloaded the chronology as PDF"
    assert action_text("web flag 4fb4f940") == "Opened flag 4fb4f940"
    assert action_text("child show") == "child show"  # the command line's own words
    # Read before the as-of year was bounded: shown as recorded, not a 500 on the audit page.
    extreme = "web child as of 0001-01-01T00:00:00+00:00"
    assert action_text(extreme) == extreme


def test_people_are_named_in_words_on_the_pages() -> None:
    """The signed events name people by actor id; the pages by the name they signed in with,
    else what the id itself says."""
    from web.pages import person_name

    oidc = "oidc:https://idp.example|8f3c2a"
    assert person_name(oidc, "lead@police.example") == "lead@police.example"
    assert person_name(oidc, None) == oidc  # never signed in here: shown as it is, traceable
    assert person_name("local:a@b.example", None) == "a@b.example"
    assert person_name("os:amy", None) == "amy (command line)"


def test_a_sign_in_remembers_the_name_an_actor_id_goes_by(accounts: Accounts) -> None:
    from producers.service import Actor

    actor = Actor("oidc:https://idp.example|8f3c2a", "lead", "police/avon-somerset")
    assert accounts.display_name(actor.id) is None
    accounts.start_session(actor, "first@police.example")
    assert accounts.display_name(actor.id) == "first@police.example"
    accounts.end_session(accounts.start_session(actor, "renamed@police.example").token)
    assert accounts.display_name(actor.id) == "renamed@police.example"  # the latest, kept after sign-out
