"""deploy/ is validated here, since no cluster is reachable from the build machines: the
Kubernetes manifests against the API's strict schemas, the compose file against the compose
specification, every service's command against the real CLI, and the topic settings against
their one source of truth (deploy/topics.env)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from click.testing import CliRunner

from sgledger.cli import cli

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
MANIFESTS = [d for d in yaml.safe_load_all((DEPLOY / "k8s" / "services.yaml").read_text()) if d]
COMPOSE = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
TOPICS = dict(
    line.split("=", 1) for line in (DEPLOY / "topics.env").read_text().splitlines() if line and line[0] != "#"
)


@pytest.mark.parametrize("manifest", MANIFESTS, ids=lambda m: f"{m['kind']}/{m['metadata']['name']}")
def test_kubernetes_manifest_is_valid_in_strict_mode(manifest: dict[str, Any]) -> None:
    kubernetes_validate.validate(manifest, "1.31.0", strict=True)


def pods() -> list[dict[str, Any]]:
    return [m["spec"]["template"]["spec"] for m in MANIFESTS if m["kind"] in ("Deployment", "Job")]


def test_every_pod_runs_unprivileged_with_readable_keys_and_pinned_images() -> None:
    for pod in pods():
        assert pod["securityContext"]["runAsNonRoot"] and pod["securityContext"]["runAsUser"] != 0
        keys = next(v for v in pod["volumes"] if v["name"] == "keys")
        assert keys["secret"]["defaultMode"] & 0o040 and pod["securityContext"]["fsGroup"]
        for container in containers(pod):
            assert ":" in container["image"] and not container["image"].endswith(":latest")
            assert container["securityContext"]["allowPrivilegeEscalation"] is False
            assert container["resources"]["requests"]


def test_every_long_running_service_has_probes_and_every_configmap_it_uses_exists() -> None:
    defined = {m["metadata"]["name"] for m in MANIFESTS if m["kind"] == "ConfigMap"}
    for manifest in (m for m in MANIFESTS if m["kind"] == "Deployment"):
        pod = manifest["spec"]["template"]["spec"]
        for container in pod["containers"]:
            assert {"livenessProbe", "readinessProbe"} <= container.keys(), manifest["metadata"]["name"]
            named = {p["name"] for p in container["ports"]}
            assert container["readinessProbe"]["httpGet"]["port"] in named
            used = {e["configMapRef"]["name"] for e in container["envFrom"] if "configMapRef" in e}
            assert used <= defined
        used = {v["configMap"]["name"] for v in pod["volumes"] if "configMap" in v}
        assert used <= defined


def test_compose_file_follows_the_compose_specification() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec",
         str(DEPLOY / "compose.yaml")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def containers(pod: dict[str, Any]) -> list[dict[str, Any]]:
    return [*pod.get("initContainers", []), *pod["containers"]]


def commands() -> list[list[str]]:
    found = [c["args"] for pod in pods() for c in containers(pod)]
    for service in COMPOSE["services"].values():
        if service.get("entrypoint") == ["sh", "-c"]:  # "sgledger a && sgledger b": each one
            found += [step.split()[1:] for step in service["command"][0].split("&&")]
        elif "command" in service:
            found.append(service["command"])
    return found


@pytest.mark.parametrize("args", commands(), ids=" ".join)
def test_every_deployed_command_is_a_real_sgledger_command(args: list[str]) -> None:
    result = CliRunner().invoke(cli, [*args, "--help"])
    assert result.exit_code == 0, result.output


def test_topic_settings_come_from_one_source() -> None:
    config = next(m for m in MANIFESTS if m["metadata"]["name"] == "sgledger-config")["data"]
    for name in ("SGLEDGER_KAFKA_PARTITIONS", "SGLEDGER_KAFKA_REPLICATION_FACTOR"):
        assert config[name] == TOPICS[name]
    brokers = [s for name, s in COMPOSE["services"].items() if name.startswith("kafka-")]
    assert len(brokers) == int(TOPICS["SGLEDGER_KAFKA_REPLICATION_FACTOR"]) == 3
    assert all(b["environment"]["KAFKA_MIN_INSYNC_REPLICAS"] == 2 for b in brokers)
    assert "topics.env" in (DEPLOY / "topics.sh").read_text()


def test_the_image_copies_every_package_and_runs_as_the_manifests_uid() -> None:
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    pyproject = (DEPLOY.parent / "pyproject.toml").read_text()
    packages = pyproject.split("[tool.setuptools.packages.find]")[1].split("]")[0].split("[")[1]
    for package in (p.strip().strip('"').rstrip("*") for p in packages.split(",")):
        assert f"COPY {package} {package}" in dockerfile, package
    uids = {pod["securityContext"]["runAsUser"] for pod in pods()}
    assert uids == {10001} and "USER 10001:10001" in dockerfile


def shards(args: list[str]) -> tuple[int, int] | None:
    """(i, n) for `project --stage children --shard i/n`, else None."""
    if args[:1] != ["project"] or "children" not in args:
        return None
    i, n = args[args.index("--shard") + 1].split("/")
    return int(i), int(n)


def test_every_child_shard_runs_in_exactly_one_process() -> None:
    """docs/stages.md: every shard i/n must run, each in one process (two would write the same
    children's rows; a missing one leaves its children unprojected)."""
    compose = [s for service in COMPOSE["services"].values() if (s := shards(service.get("command", [])))]
    assert sorted(compose) == [(1, 2), (2, 2)]
    kube = []
    for manifest in MANIFESTS:
        if manifest["kind"] != "Deployment":
            continue
        for container in manifest["spec"]["template"]["spec"]["containers"]:
            if shard := shards(container["args"]):
                kube.append(shard)
                assert manifest["spec"]["replicas"] == 1
                assert manifest["spec"]["strategy"] == {"type": "Recreate"}  # never two side by side
    assert sorted(kube) == [(1, 2), (2, 2)]
