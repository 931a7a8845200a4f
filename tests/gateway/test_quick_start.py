"""docs/gateway.md's "Quick start for an agency developer", run as written: its shell blocks, in
order, by bash, with the real `sgledger`, `curl` and `jq` (only the port is changed, to a free
one)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from transport.broker import free_port

GATEWAY_MD = Path(__file__).parents[2] / "docs" / "gateway.md"


def quick_start() -> str:
    section = GATEWAY_MD.read_text("utf-8").split("## Quick start for an agency developer", 1)[1]
    section = section.split("\n## ", 1)[0]
    return "\n".join(re.findall(r"```bash\n(.*?)```", section, re.DOTALL))


@pytest.mark.skipif(not (shutil.which("curl") and shutil.which("jq")), reason="needs curl and jq")
def test_the_quick_start_runs_as_written(tmp_path: Path) -> None:
    script = quick_start().replace("8750", str(free_port()))
    assert "sgledger gateway run" in script and "kill %1" in script
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SGLEDGER_")}
    process = subprocess.Popen(
        ["bash", "-e", "-o", "pipefail", "-c", script], cwd=tmp_path, env={**env, "PATH": path},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        out, err = process.communicate(timeout=180)
    finally:
        with contextlib.suppress(ProcessLookupError):  # the script stopped it, as the doc says
            os.killpg(process.pid, signal.SIGTERM)  # the gateway, should the script not reach kill
    assert process.returncode == 0, out + err
    receipt, status, refusal = [json.loads(line) for line in re.sub(r"\}\{", "}\n{", out).splitlines()[-3:]]
    assert receipt["sequence"] == 1 and receipt["status"] == "queued"
    assert status["id"] == receipt["id"] and status["status"] == "queued"
    assert refusal["status"] == 422
    assert [p["path"] for p in refusal["problems"]] == ["/data/dob", "/data/sex"]
    assert (tmp_path / "gateway-trial" / "outbox.sqlite").exists()  # the scratch directory, as said
