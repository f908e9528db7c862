"""The Kubernetes deployment, checked as far as a machine without a cluster allows (#21.4).

- Manifests (`docs/deploy/*.yaml` with a `kind`): `kubectl kustomize` builds every object
  (apiVersion, kind, metadata, YAML); the server's OpenAPI schema, and with it
  `kubectl create --dry-run=client`, needs a cluster.
- Dagster's Helm values: `helm lint` / `helm template` need a Helm engine and Dagster's chart,
  which is on no package registry, so CI cannot render them: benchmarks/helm_render_check.py
  does where the chart is available (docs/operations.md). Here the values are checked against
  what the project itself decides (versions pinned in constraints.txt, the instance settings in
  docs/deploy/dagster.yaml, the code location's module, offline and no-ingress settings) and
  against what the chart's render showed (`concurrency.enabled`).
"""

import importlib.util
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "docs" / "deploy"
VALUES = DEPLOY / "helm-values.yaml"
KUBECTL = shutil.which("kubectl")


def _pins() -> dict[str, str]:
    text = (ROOT / "constraints.txt").read_text(encoding="utf-8")
    return dict(re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)", text, flags=re.MULTILINE))


def _manifests() -> list[Path]:
    return sorted(
        p
        for p in DEPLOY.glob("*.yaml")
        if any("kind" in d for d in yaml.safe_load_all(p.read_text()) if d)
    )


def _kustomize(folder: Path, *manifests: Path) -> subprocess.CompletedProcess:
    """`kubectl kustomize` over copies of the manifests in `folder`: builds every object
    offline (kind, apiVersion, metadata.name required). `kubectl create --dry-run=client`
    asks a server for the kinds (RayCluster is a custom resource), and there is none here."""
    for path in manifests:
        shutil.copy(path, folder / path.name)
    resources = "".join(f"- {p.name}\n" for p in manifests)
    (folder / "kustomization.yaml").write_text(f"resources:\n{resources}", encoding="utf-8")
    return subprocess.run(
        [KUBECTL, "kustomize", str(folder)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed")
def test_when_the_manifests_are_built_by_kubectl_then_every_object_is_accepted(
    tmp_path: Path,
) -> None:
    manifests = _manifests()
    done = _kustomize(tmp_path, *manifests)

    assert done.returncode == 0, done.stderr.strip()
    built = [d for d in yaml.safe_load_all(done.stdout) if d]
    expected = [d for p in manifests for d in yaml.safe_load_all(p.read_text()) if d]
    assert sorted((d["kind"], d["metadata"]["name"]) for d in built) == sorted(
        (d["kind"], d["metadata"]["name"]) for d in expected
    )


@pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed")
def test_when_a_manifest_lacks_its_kind_then_kubectl_refuses_it(tmp_path: Path) -> None:
    # The failing fixture of the check above: an object without `kind` cannot be built.
    broken = tmp_path / "broken.yaml"
    broken.write_text("apiVersion: v1\nmetadata:\n  name: sovtune-data\n", encoding="utf-8")
    out = tmp_path / "out"
    out.mkdir()
    assert _kustomize(out, broken).returncode != 0


def test_when_the_helm_values_are_read_then_they_match_the_project_pins_and_instance() -> None:
    values = yaml.safe_load(VALUES.read_text(encoding="utf-8"))
    instance = yaml.safe_load((DEPLOY / "dagster.yaml").read_text(encoding="utf-8"))
    pins = _pins()
    text = VALUES.read_text(encoding="utf-8")
    guide = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")

    # The chart version is Dagster's own: the one the project pins, in the values and the guide.
    assert f"matching dagster {pins['dagster']}" in text
    assert f"dagster/dagster --version {pins['dagster']}" in guide
    # dagster-k8s in the image matches the other Dagster libraries (dagster-postgres' series).
    assert f"dagster-k8s=={pins['dagster-postgres']}" in text
    # The same limits as the single-host instance. Dagster's chart writes the instance's
    # `concurrency:` block only when `concurrency.enabled` is true (its
    # templates/configmap-instance.yaml; the schema's default is false): without it both limits
    # are silently dropped.
    assert values["concurrency"]["enabled"] is True
    # ...and no run-coordinator setting of its own: Dagster rejects an instance with both
    # `concurrency` and a run-coordinator `max_concurrent_runs`, and chart helpers older than
    # Dagster's fix (its chart test for issue #33225) write `max_concurrent_runs: -1` whenever any
    # queuedRunCoordinator value is set, which the chart's defaults do (dequeue threads).
    queued = values["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"]
    assert not any(queued.values()), queued
    assert (
        values["concurrency"]["runs"]["maxConcurrentRuns"]
        == (instance["concurrency"]["runs"]["max_concurrent_runs"])
    )
    assert (
        values["concurrency"]["pools"]["defaultLimit"]
        == (instance["concurrency"]["pools"]["default_limit"])
    )
    assert values["telemetry"]["enabled"] is False and instance["telemetry"]["enabled"] is False
    assert values["dagsterDaemon"]["runCoordinator"]["type"] == "QueuedRunCoordinator"
    assert values["runLauncher"]["type"] == "K8sRunLauncher"


def test_when_the_helm_values_are_read_then_the_code_location_is_offline_and_private() -> None:
    values = yaml.safe_load(VALUES.read_text(encoding="utf-8"))
    (deployment,) = values["dagster-user-deployments"]["deployments"]

    args = deployment["dagsterApiGrpcArgs"]
    assert args[0] == "-m" and importlib.util.find_spec(args[1]) is not None, args
    env = {e["name"]: e["value"] for e in deployment["env"]}
    assert env["HF_HUB_OFFLINE"] == env["TRANSFORMERS_OFFLINE"] == "1"
    assert env["MLFLOW_DISABLE_TELEMETRY"] == env["DO_NOT_TRACK"] == "true"
    # Reached only through the authenticating proxy: no ingress, no public service.
    assert values["ingress"]["enabled"] is False
    assert values["dagsterWebserver"]["service"]["type"] == "ClusterIP"
    # Secrets come from Kubernetes secrets, never from the values file.
    assert values["postgresql"]["enabled"] is False
    assert values["generatePostgresqlPasswordSecret"] is False
    assert {"name": "sovtune-secrets"} in deployment["envSecrets"]
    # No password or token written into the values (the chart takes them from secrets).
    assert not re.search(r"(?im)^\s*[\w-]*(password|token)\s*:\s*\S", VALUES.read_text())
