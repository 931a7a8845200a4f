"""The web workspace under test: the demo partnership served by a real `sgledger serve` process.

The demo story is built once per test session (`sgledger demo`, ~10 s), with local accounts for
a lead whose agency works with the child, a lead whose agency does not (the father's GP
practice, named in flags but never told), a designated lead and an auditor; then ``root.key`` is
deleted, so every test here proves the web workspace needs only the service key. Each module
serves its own copy, with a real SMTP sink for the break-glass emails.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from consumers.alerter.sink import MailSink, free_port
from web.accounts import Accounts, WebRole

PASSWORD = "correct horse battery"
POLICE = "police.lead@police.example"  # police/avon-somerset: recorded the incidents
GP2 = "gp.lead@l85002.example"  # gp/L85002: the father's practice, never told
DSL = "dsl@partnership.example"  # designated lead: every child
AUDITOR = "auditor@partnership.example"
CHILD = "C-CH-1"
ACCOUNTS: dict[str, tuple[str | None, WebRole]] = {
    POLICE: ("police/avon-somerset", "lead"),
    GP2: ("gp/L85002", "lead"),
    DSL: (None, "designated-lead"),
    AUDITOR: (None, "auditor"),
}


def sgledger(data_dir: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sgledger", "--data-dir", str(data_dir), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )


@pytest.fixture(scope="session")
def demo_state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data directory whose ``demo/`` holds the demo partnership, its accounts, no root.key."""
    base = tmp_path_factory.mktemp("web-demo")
    sgledger(base, "demo")
    accounts = Accounts(f"sqlite:///{base / 'demo' / 'ledger.sqlite'}")
    try:
        for email, (agency, role) in ACCOUNTS.items():
            accounts.add_user(email, agency, role, PASSWORD)
    finally:
        accounts.close()
    (base / "demo" / "keys" / "root.key").unlink()
    return base


@dataclass
class WebServer:
    base_url: str
    data_dir: Path
    mail: MailSink
    process: subprocess.Popen[str]

    @property
    def demo_dir(self) -> Path:
        return self.data_dir / "demo"

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, follow_redirects=False, timeout=30)

    def sign_in(self, email: str, password: str = PASSWORD) -> httpx.Client:
        client = self.client()
        response = client.post(
            "/sign-in", data={"email": email, "password": password, "csrf_token": signin_csrf(client)}
        )
        assert response.status_code == 303, response.text
        return client


def signin_csrf(client: httpx.Client) -> str:
    return csrf_of(client.get("/sign-in").text)


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "no CSRF token in the page"
    return found.group(1)


def start_server(data_dir: Path, mail: MailSink, *extra: str, port: int | None = None) -> WebServer:
    port = port or free_port()
    routing = data_dir / "routing.toml"
    routing.write_text(
        f'web_base_url = "http://127.0.0.1:{port}"\n'
        f'[smtp]\nhost = "127.0.0.1"\nport = {mail.port}\nfrom = "sgledger@partnership.example"\n\n'
        f'[partnership]\nleads_by_severity = {{ high = ["{DSL}"] }}\nfallback = "{DSL}"\n',
        encoding="utf-8",
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "sgledger", "--data-dir", str(data_dir), "serve", "--demo",
         "--port", str(port), "--config", str(routing), *extra],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    base_url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"sgledger serve exited: {process.stdout.read() if process.stdout else ''}")
        try:
            if httpx.get(base_url + "/sign-in", timeout=2).status_code == 200:
                return WebServer(base_url, data_dir, mail, process)
        except httpx.TransportError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError("sgledger serve did not answer within 60 s")


def stop_server(server: WebServer) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.process.kill()


@pytest.fixture(scope="module")
def web_server(demo_state: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebServer]:
    data_dir = tmp_path_factory.mktemp("web")
    shutil.copytree(demo_state / "demo", data_dir / "demo")
    with MailSink() as mail:
        server = start_server(data_dir, mail)
        try:
            yield server
        finally:
            stop_server(server)
