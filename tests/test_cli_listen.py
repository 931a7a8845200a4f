"""The two commands that serve HTTP refuse an address they cannot listen on, as one line with
its fix and exit 2, before they print where they serve or start anything (uvicorn found out only
afterwards and exited 3, the code the publishing commands keep for "stored but not delivered")."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from tests.test_cli import sgledger


@pytest.mark.parametrize("command", [["gateway", "run", "--agency", "police/avon-somerset"], ["serve"]])
def test_a_port_another_process_listens_on_is_refused_before_anything_starts(
    tmp_path: Path, command: list[str]
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = sgledger(tmp_path / "state", *command, "--host", "127.0.0.1", "--port", str(port), ok=False)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip() == (
        f"error: cannot listen on 127.0.0.1:{port}: another process listens there: stop it or choose "
        "another --port"
    )
    assert result.stdout == "" and not (tmp_path / "state").exists()  # nothing printed, nothing made


def test_a_host_name_that_is_not_this_machines_is_refused(tmp_path: Path) -> None:
    result = sgledger(tmp_path, "serve", "--host", "192.0.2.1", "--port", "8000", ok=False)
    assert result.returncode == 2
    assert result.stderr.strip() == "error: cannot listen on 192.0.2.1:8000: Cannot assign requested address"
