"""npm packages the browser tests need (axe-core, oidc-provider), installed once into a cache
outside the repository with the ordinary npm client. `scripts/services web` installs them ahead
of time (``python3 tests/web/npm.py``: standard library only, it runs before any virtualenv); a
test whose package cannot be had is skipped with the reason, never run half-way."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

AXE_CORE = "axe-core@4.14.1"
OIDC_PROVIDER = "oidc-provider@9.13.3"


class NpmUnavailable(RuntimeError):
    """npm is missing or could not install the package; the message says which."""


def cache_dir() -> Path:
    return Path(os.environ.get("SGLEDGER_NPM_CACHE", Path.home() / ".cache" / "sgledger-tests" / "npm"))


def install(spec: str) -> Path:
    """The package's folder (``node_modules/<name>``), installed with its dependencies into its
    own prefix under the cache on first use."""
    name = spec.rpartition("@")[0]
    prefix = cache_dir() / spec.replace("/", "+")
    package = prefix / "node_modules" / name
    if (package / "package.json").exists():
        return package
    if shutil.which("npm") is None:
        raise NpmUnavailable(f"{spec} is not in {prefix} and npm is not installed (run scripts/services web)")
    prefix.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        ["npm", "install", "--no-audit", "--no-fund", "--prefix", str(prefix), spec],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    if result.returncode != 0 or not (package / "package.json").exists():
        raise NpmUnavailable(f"npm could not install {spec}: {result.stderr.strip()[-300:]}")
    return package


def installed(spec: str) -> Path:
    """``install`` for a test: skipped, with the reason, when the package cannot be had."""
    import pytest

    try:
        return install(spec)
    except NpmUnavailable as exc:
        pytest.skip(str(exc))


if __name__ == "__main__":
    for spec in (AXE_CORE, OIDC_PROVIDER):
        print(f"services: {spec} in {install(spec)}")
