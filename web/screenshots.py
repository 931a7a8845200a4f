"""Take the README's screenshots of the web workspace from the demo partnership.

    python -m web.screenshots [--output docs/screenshots]

Runs `sgledger demo` in a temporary directory, creates a lead account for the police force,
serves it with `sgledger serve --demo` and photographs *My flags* and *Child* with Debian's
Chromium (Playwright; needs the test extra). Viewport-sized PNGs keep each file small.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from playwright.sync_api import sync_playwright

from consumers.alerter.sink import free_port
from web.accounts import Accounts

CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run", "--disable-sync",
]  # fmt: skip
LEAD, PASSWORD = "safeguarding.lead@police.example", "demo password, not for real use"


def sgledger(data_dir: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "sgledger", "--data-dir", str(data_dir), *args]


def take(output: Path) -> list[Path]:
    output.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        subprocess.run(sgledger(data, "demo"), check=True, capture_output=True)
        accounts = Accounts(f"sqlite:///{data / 'demo' / 'ledger.sqlite'}")
        accounts.add_user(LEAD, "police/avon-somerset", "lead", PASSWORD)
        accounts.close()
        port = free_port()
        server = subprocess.Popen(sgledger(data, "serve", "--demo", "--port", str(port)))
        base = f"http://127.0.0.1:{port}"
        try:
            for _ in range(300):
                try:
                    if httpx.get(f"{base}/sign-in", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.2)
            return _photograph(base, output)
        finally:
            server.terminate()
            server.wait(timeout=30)


def _photograph(base: str, output: Path) -> list[Path]:
    taken = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1024, "height": 1500})
        page.goto(f"{base}/sign-in")
        page.fill("#email", LEAD)
        page.fill("#password", PASSWORD)
        page.click("button:has-text('Sign in')")
        for name, path in (("my-flags.png", "/flags"), ("child.png", "/children/C-CH-1")):
            page.goto(base + path)
            target = output / name
            page.screenshot(path=str(target))
            taken.append(target)
        browser.close()
    return taken


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, default=Path("docs/screenshots"))
    for path in take(parser.parse_args().output):
        print(f"{path} ({path.stat().st_size // 1024} KB)")


if __name__ == "__main__":
    main()
