"""The gateway as a real process: `sgledger gateway run` (uvicorn) on a loopback port, driven
with httpx like any agency system would drive it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from ledger.keystore import Keystore
from producers.gateway.tokens import TokenStore
from producers.outbox import Outbox
from transport.broker import free_port

AGENCY = "police/avon-somerset"
INCIDENT = {
    "incident_ref": "INC-1",
    "children_present": True,
    "domestic_abuse": True,
    "parties": [{"person": "P-m", "role": "victim"}],
}


def draft(**overrides: object) -> dict[str, object]:
    return {
        "type": "incident.reported",
        "subject": "C-1",
        "time": "2024-03-05T21:40:00+00:00",
        "data": INCIDENT,
        **overrides,
    }


@dataclass
class GatewayProcess:
    data_dir: Path
    port: int
    process: subprocess.Popen[bytes]
    log: Path
    token: str = ""
    scheme: str = "http"

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    @property
    def outbox_url(self) -> str:
        return f"sqlite:///{self.data_dir / 'outbox.sqlite'}"

    def client(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.token if token is None else token}"}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60)

    def outbox_rows(self) -> int:
        outbox = Outbox(self.outbox_url)
        try:
            return len(outbox.events(AGENCY))
        finally:
            outbox.close()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_gateway(
    data_dir: Path,
    *options: str,
    port: int | None = None,
    env: dict[str, str] | None = None,
    ready: Callable[[str], bool] | None = None,
) -> GatewayProcess:
    """Start `sgledger gateway run` and wait until it answers (fails with its log if it dies)."""
    port = port or free_port()
    log = data_dir / f"gateway-{port}.log"
    global_options = [o for o in options if o.startswith(("--bootstrap", "--topic", "--outbox-url"))]
    run_options = [o for o in options if o not in global_options]
    command = [
        sys.executable, "-m", "sgledger", "--data-dir", str(data_dir), *_pairs(options, global_options),
        "gateway", "run", "--agency", AGENCY, "--port", str(port), *_pairs(options, run_options),
    ]  # fmt: skip
    with log.open("ab") as out:
        process = subprocess.Popen(
            command,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )
    tls = any(o.startswith("--tls-cert") for o in options)
    gateway = GatewayProcess(data_dir, port, process, log, scheme="https" if tls else "http")
    answers = ready or (lambda url: httpx.get(f"{url}/openapi.json", timeout=1).status_code == 200)
    deadline = time.monotonic() + 30
    while True:
        if process.poll() is not None:
            raise AssertionError(f"gateway exited {process.returncode}: {log.read_text()[-2000:]}")
        try:
            if answers(gateway.url):
                return gateway
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            gateway.stop()
            raise AssertionError(f"gateway did not answer in 30 s: {log.read_text()[-2000:]}")
        time.sleep(0.1)


def _pairs(options: tuple[str, ...], wanted: list[str]) -> list[str]:
    """Options given as "--name=value" strings, passed through as they are."""
    return [o for o in options if o in wanted]


def new_token(
    data_dir: Path, system: str = "records-system", valid_for: timedelta = timedelta(days=1)
) -> str:
    store = TokenStore(f"sqlite:///{data_dir / 'outbox.sqlite'}")
    try:
        return store.create(system, valid_for)[0]
    finally:
        store.close()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """A data directory with a partnership root key and the police force's key."""
    directory = tmp_path / "agency"
    directory.mkdir(mode=0o700)  # the services refuse a data directory open to others
    keystore = Keystore(directory / "keys")
    keystore.init_root("partnership/test")
    keystore.create_agency_key(AGENCY)
    return directory


@pytest.fixture
def gateway(data_dir: Path) -> Iterator[GatewayProcess]:
    process = start_gateway(data_dir, "--outbox-busy-timeout=1")
    process.token = new_token(data_dir)
    yield process
    process.stop()
