"""Java 17 signs the test vectors byte for byte and verifies Python's (interop/java)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).parents[2]
VECTORS = REPO / "docs" / "test-vectors" / "chain.json"


@pytest.mark.slow
def test_java_signs_the_vectors_byte_for_byte_and_verifies_pythons(tmp_path: Path) -> None:
    if shutil.which("java") is None or shutil.which("mvn") is None:
        pytest.skip("java/mvn not installed")
    project = tmp_path / "java"
    shutil.copytree(REPO / "interop" / "java", project, ignore=shutil.ignore_patterns("target"))
    built = subprocess.run(
        ["mvn", "-q", "-B", "compile", "dependency:build-classpath", "-Dmdep.outputFile=target/cp.txt"],
        cwd=project, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert built.returncode == 0, built.stdout[-3000:]
    classpath = f"{project / 'target' / 'classes'}:{(project / 'target' / 'cp.txt').read_text().strip()}"
    result = subprocess.run(
        ["java", "-cp", classpath, "sgledger.CheckVectors", str(VECTORS)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout) == {"events": 3, "failures": []}
