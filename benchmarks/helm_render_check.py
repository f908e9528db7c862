"""Checks docs/deploy/helm-values.yaml against Dagster's own Helm chart: the chart's
values.schema.json, `helm lint` and `helm template`, then what the rendered manifests must say.

Run where the chart is available (it is on no package registry, so CI has none and this is not
part of the test suite):

    helm repo add dagster https://dagster-io.github.io/helm
    helm pull dagster/dagster --version 1.13.27 --untar --untardir /tmp/chart
    .venv/bin/python benchmarks/helm_render_check.py /tmp/chart/dagster

The Helm engine is a `helm` binary on PATH, else PyPI's `helm-python-sdk` (Helm's Go SDK as a C
library) if it is importable, e.g. from a throwaway venv:
`python3 -m venv /tmp/helmvenv && /tmp/helmvenv/bin/pip install helm-python-sdk==0.2.2 jsonschema
pyyaml` and run this script with /tmp/helmvenv/bin/python. Without a chart it prints SKIP and
exits 0; without an engine it validates the schema only and says so.

The schema is validated offline with `jsonschema` over the chart's defaults merged with our
values (as Helm merges them: maps key by key, lists replaced). Dagster's schema points some
definitions at kubernetesjsonschema.dev (Kubernetes object shapes: env vars, volumes, resources);
those remote references cannot be fetched offline, so they are dropped (their count is printed)
and Helm's own schema pass is skipped (`--helm-schema` keeps it where the network is reachable).

Checked in the rendered manifests: the code location's Deployment runs our image with
`dagster api grpc ... -m pipelines.definitions`, the offline and telemetry variables, the
`sovtune-secrets` secret, the data volume and the resources of the values, and hands the same
env, secret and volumes to the run pods (its container context); no Ingress and no Service but
ClusterIP; no generated PostgreSQL password secret; two webservers (one read-only) and a
daemon; the run launcher's and the run pods' service accounts may create Jobs; the instance
ConfigMap's dagster.yaml has PostgreSQL storage, the K8sRunLauncher (with the run pods'
resources), the QueuedRunCoordinator, the run and pool limits and telemetry of
docs/deploy/dagster.yaml, and the pinned Dagster's own instance-config validation accepts it.
Exit status 1 when any check fails.
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
VALUES = ROOT / "docs" / "deploy" / "helm-values.yaml"
INSTANCE = ROOT / "docs" / "deploy" / "dagster.yaml"
SUBCHART = "dagster-user-deployments"
PULL = "helm pull dagster/dagster --version {v} --untar"


def _pinned_dagster() -> str:
    text = (ROOT / "constraints.txt").read_text(encoding="utf-8")
    match = re.search(r"^dagster==(\S+)", text, flags=re.MULTILINE)
    return match.group(1) if match else "?"


def _merge(defaults: Any, override: Any) -> Any:
    """Helm's coalescing: maps merge key by key (a null removes the key), anything else
    (lists included) is replaced by the override."""
    if isinstance(defaults, dict) and isinstance(override, dict):
        out = copy.deepcopy(defaults)
        for key, value in override.items():
            if value is None:
                out.pop(key, None)
            else:
                out[key] = _merge(out.get(key), value)
        return out
    return copy.deepcopy(override)


def _drop_remote_refs(node: Any) -> int:
    """Removes `$ref`s to remote documents in place; returns how many."""
    count = 0
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and not ref.startswith("#"):
            del node["$ref"]
            count += 1
        for value in node.values():
            count += _drop_remote_refs(value)
    elif isinstance(node, list):
        for value in node:
            count += _drop_remote_refs(value)
    return count


class Report:
    def __init__(self) -> None:
        self.failed = 0

    def check(self, ok: bool, what: str, detail: str = "") -> None:
        self.failed += not ok
        print(f"{'PASS' if ok else 'FAIL'}  {what}{f' ({detail})' if detail else ''}")


def _validate_schema(chart: Path, values: dict, report: Report) -> None:
    if importlib.util.find_spec("jsonschema") is None:
        print("SKIP  values schema: jsonschema is not importable")
        return
    import jsonschema

    for label, folder, vals in (
        ("dagster", chart, values),
        (SUBCHART, chart / "charts" / SUBCHART, values.get(SUBCHART, {})),
    ):
        schema_path = folder / "values.schema.json"
        if not schema_path.is_file():
            print(f"SKIP  {label} values schema: {schema_path} is missing")
            continue
        schema = json.loads(schema_path.read_text(encoding="utf-8"))
        dropped = _drop_remote_refs(schema)
        defaults = yaml.safe_load((folder / "values.yaml").read_text(encoding="utf-8")) or {}
        merged = _merge(defaults, vals)
        validator = jsonschema.validators.validator_for(schema)(schema)
        errors = sorted(validator.iter_errors(merged), key=lambda e: list(e.absolute_path))
        detail = "; ".join(
            f"{'.'.join(map(str, e.absolute_path)) or '<top>'}: {e.message[:160]}"
            for e in errors[:8]
        )
        report.check(
            not errors,
            f"{label} values against its values.schema.json "
            f"({dropped} remote Kubernetes refs not checked offline)",
            detail,
        )


def _engine(choice: str) -> str | None:
    if choice in ("auto", "helm") and shutil.which("helm"):
        return "helm"
    if choice in ("auto", "sdk") and importlib.util.find_spec("helm_python") is not None:
        return "sdk"
    return None


def _lint_and_render(
    engine: str, chart: Path, values: dict, helm_schema: bool, report: Report
) -> dict[str, str] | None:
    skip = not helm_schema
    if engine == "helm":
        with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as fh:
            yaml.safe_dump(values, fh)
        extra = ["--skip-schema-validation"] if skip else []
        lint = subprocess.run(
            ["helm", "lint", str(chart), "-f", fh.name, "--with-subcharts", *extra],
            capture_output=True,
            text=True,
            check=False,
        )
        report.check(lint.returncode == 0, "helm lint", lint.stdout.strip()[-600:])
        out = subprocess.run(
            ["helm", "template", "sovtune", str(chart), "-n", "sovtune", "-f", fh.name, *extra],
            capture_output=True,
            text=True,
            check=False,
        )
        report.check(out.returncode == 0, "helm template", out.stderr.strip()[-600:])
        return {"helm-template": out.stdout} if out.returncode == 0 else None

    import helm_python as helm

    print(f"engine: helm-python-sdk (Helm SDK {helm.helm_sdk_version()})")
    lint = helm.lint(
        chart, values, namespace="sovtune", with_subcharts=True, skip_schema_validation=skip
    )
    errors = [m for m in lint["messages"] if m["severity"] >= 3] + lint.get("errors", [])
    warnings = [m for m in lint["messages"] if m["severity"] == 2]
    report.check(
        not errors,
        f"helm lint ({lint['total_charts_linted']} charts, {len(warnings)} warnings)",
        "; ".join(str(e)[:200] for e in (errors + warnings)[:6]),
    )
    if skip:
        # The SDK's render always validates the schema, and Dagster's names remote documents
        # that cannot be fetched offline: render a copy without the schema files (validated
        # above with jsonschema).
        copy_dir = Path(tempfile.mkdtemp()) / chart.name
        shutil.copytree(chart, copy_dir)
        for schema in copy_dir.rglob("values.schema.json"):
            schema.unlink()
        chart = copy_dir
    loaded = helm.Chart.load(chart)
    if helm_schema:
        try:
            loaded.validate_schema(values)
            report.check(True, "Helm's own schema validation")
        except helm.HelmError as exc:
            report.check(False, "Helm's own schema validation", str(exc)[:400])
    try:
        rendered = loaded.render(values, name="sovtune", namespace="sovtune", is_install=True)
    except helm.HelmError as exc:
        report.check(False, "helm template", str(exc)[:600])
        return None
    report.check(True, f"helm template ({len(rendered)} files)")
    return rendered


def _objects(rendered: dict[str, str]) -> list[dict]:
    return [
        doc
        for text in rendered.values()
        for doc in yaml.safe_load_all(text)
        if isinstance(doc, dict) and doc.get("kind")
    ]


def _assert_manifests(objects: list[dict], values: dict, report: Report) -> None:
    instance = yaml.safe_load(INSTANCE.read_text(encoding="utf-8"))
    (ours,) = values[SUBCHART]["deployments"]
    kinds = sorted({o["kind"] for o in objects})
    print(f"rendered: {len(objects)} objects ({', '.join(kinds)})")

    code = [
        o
        for o in objects
        if o["kind"] == "Deployment"
        and o["spec"]["template"]["metadata"].get("labels", {}).get("deployment") == ours["name"]
    ]
    report.check(len(code) == 1, "one Deployment for the code location", f"{len(code)} found")
    if code:
        container = code[0]["spec"]["template"]["spec"]["containers"][0]
        args = container.get("args", [])
        report.check(
            args[:3] == ["dagster", "api", "grpc"] and ours["dagsterApiGrpcArgs"] == args[-2:],
            "code location runs `dagster api grpc ... -m pipelines.definitions`",
            " ".join(args),
        )
        image = ours["image"]
        report.check(
            container["image"] == f"{image['repository']}:{image['tag']}",
            "code location image",
            container["image"],
        )
        env = {e["name"]: e.get("value") for e in container.get("env", [])}
        wanted = {e["name"]: e["value"] for e in ours["env"]}
        missing = {k: v for k, v in wanted.items() if env.get(k) != v}
        report.check(not missing, "offline, telemetry and profile variables set", str(missing))
        secrets = [r["secretRef"]["name"] for r in container.get("envFrom", []) if "secretRef" in r]
        report.check("sovtune-secrets" in secrets, "sovtune-secrets in envFrom", str(secrets))
        mounts = {m["mountPath"] for m in container.get("volumeMounts", [])}
        report.check(
            {m["mountPath"] for m in ours["volumeMounts"]} <= mounts, "data and profile mounts"
        )
        claims = [
            v["persistentVolumeClaim"]["claimName"]
            for v in code[0]["spec"]["template"]["spec"].get("volumes", [])
            if "persistentVolumeClaim" in v
        ]
        report.check("sovtune-data" in claims, "data volume claim", str(claims))
        report.check(
            container.get("resources") == ours["resources"],
            "code location resources as in the values",
            str(container.get("resources")),
        )
        # What the run pods inherit from the code location (dagster-k8s container context).
        k8s = _container_context(code[0])
        run_env = {e["name"]: e.get("value") for e in k8s.get("env", [])}
        report.check(
            all(run_env.get(k) == v for k, v in wanted.items())
            and "sovtune-secrets" in k8s.get("env_secrets", [])
            and {v["name"] for v in ours["volumes"]} <= {v["name"] for v in k8s.get("volumes", [])},
            "run pods inherit the code location's env, secret and volumes",
            f"env {sorted(run_env)}, secrets {k8s.get('env_secrets')}",
        )

    # An offline render may lack the Ingress API the chart's template asks the cluster for, so
    # the values' own switch is checked too.
    report.check(
        not [o for o in objects if o["kind"] == "Ingress"] and not values["ingress"]["enabled"],
        "no Ingress (none rendered, ingress.enabled false)",
    )
    public = [
        o["metadata"]["name"]
        for o in objects
        if o["kind"] == "Service" and o["spec"].get("type", "ClusterIP") != "ClusterIP"
    ]
    report.check(not public, "every Service is ClusterIP", str(public))
    generated = [
        o["metadata"]["name"]
        for o in objects
        if o["kind"] == "Secret" and "postgresql-password" in (o.get("data") or {})
    ]
    report.check(not generated, "no PostgreSQL password secret generated", str(generated))
    webservers = [
        o["metadata"]["name"]
        for o in objects
        if o["kind"] == "Deployment" and "webserver" in o["metadata"]["name"]
    ]
    report.check(len(webservers) == 2, "webserver and read-only webserver", str(webservers))

    daemons = [
        o
        for o in objects
        if o["kind"] == "Deployment"
        and o["spec"]["template"]["metadata"].get("labels", {}).get("component") == "dagster-daemon"
    ]
    command = daemons[0]["spec"]["template"]["spec"]["containers"][0]["command"] if daemons else []
    report.check(
        "dagster-daemon run" in " ".join(command), "daemon Deployment (queue, schedules, sensors)"
    )

    maps = [
        o for o in objects if o["kind"] == "ConfigMap" and "dagster.yaml" in (o.get("data") or {})
    ]
    report.check(len(maps) == 1, "one instance ConfigMap", f"{len(maps)} found")
    if not maps:
        return
    rendered = yaml.safe_load(maps[0]["data"]["dagster.yaml"])
    report.check(
        rendered.get("run_storage", {}).get("module") == "dagster_postgres.run_storage",
        "instance: PostgreSQL run storage",
    )
    launcher = rendered.get("run_launcher", {})
    report.check(launcher.get("class") == "K8sRunLauncher", "instance: K8sRunLauncher")
    run_resources = (
        launcher.get("config", {}).get("run_k8s_config", {}).get("container_config", {})
    ).get("resources")
    wanted_run = values["runLauncher"]["config"]["k8sRunLauncher"]["runK8sConfig"]
    report.check(
        run_resources == wanted_run["containerConfig"]["resources"],
        "instance: run pods' resources as in the values",
        str(run_resources),
    )
    report.check(
        rendered.get("run_coordinator", {}).get("class") == "QueuedRunCoordinator",
        "instance: QueuedRunCoordinator",
    )
    concurrency = rendered.get("concurrency") or {}
    report.check(
        concurrency.get("runs", {}).get("max_concurrent_runs")
        == instance["concurrency"]["runs"]["max_concurrent_runs"]
        and concurrency.get("pools", {}).get("default_limit")
        == instance["concurrency"]["pools"]["default_limit"],
        "instance: run and pool limits of docs/deploy/dagster.yaml",
        str(concurrency),
    )
    report.check(rendered.get("telemetry", {}).get("enabled") is False, "instance: telemetry off")
    report.check(
        not rendered.get("run_retries", {}).get("enabled", False), "instance: no run retries"
    )
    # A volume the run launcher and the code location both name must be the same volume:
    # dagster-k8s merges the two lists (dropping exact duplicates) into the run pod.
    (ours,) = values[SUBCHART]["deployments"]
    theirs = {v["name"]: v for v in launcher.get("config", {}).get("volumes", [])}
    clash = [v["name"] for v in ours["volumes"] if v["name"] in theirs and theirs[v["name"]] != v]
    report.check(not clash, "run pods: no two different volumes of one name", str(clash))
    # Who may create Kubernetes Jobs: the daemon's account launches each run's Job, the run pod's
    # account (the code location's, handed on in its container context) launches step Jobs
    # under k8s_job_executor.
    run_account = _container_context(code[0]).get("service_account_name") if code else None
    for what, account in (
        ("run launcher's", launcher.get("config", {}).get("service_account_name")),
        ("run pods'", run_account),
    ):
        report.check(
            account is not None and _may_create_jobs(objects, account),
            f"RBAC: the {what} service account may create Jobs",
            str(account),
        )
    _validate_instance(maps[0]["data"]["dagster.yaml"], report)


def _container_context(deployment: dict) -> dict:
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    names = ("DAGSTER_CLI_API_GRPC_CONTAINER_CONTEXT", "DAGSTER_CONTAINER_CONTEXT")
    raw = next((e["value"] for e in container.get("env", []) if e["name"] in names), "{}")
    return json.loads(raw).get("k8s", {})


def _may_create_jobs(objects: list[dict], account: str) -> bool:
    roles = {o["metadata"]["name"]: o for o in objects if o["kind"] == "Role"}
    for binding in (o for o in objects if o["kind"] == "RoleBinding"):
        subjects = binding.get("subjects") or []
        if not any(
            s.get("kind") == "ServiceAccount" and s.get("name") == account for s in subjects
        ):
            continue
        for rule in roles.get(binding["roleRef"]["name"], {}).get("rules", []):
            if (
                "batch" in rule.get("apiGroups", [])
                and "jobs" in rule.get("resources", [])
                and {"create", "*"} & set(rule.get("verbs", []))
            ):
                return True
    return False


def _validate_instance(text: str, report: Report) -> None:
    """The rendered dagster.yaml through the pinned Dagster's own instance-config validation
    (here, or with the project's venv when this runs from a throwaway one)."""
    code = (
        "import sys\n"
        "from dagster._core.instance.config import dagster_instance_config\n"
        "dagster_instance_config(sys.argv[1], 'dagster.yaml')\n"
    )
    python = sys.executable
    if importlib.util.find_spec("dagster") is None:
        python = str(ROOT / ".venv" / "bin" / "python")
        if not Path(python).exists():
            print("SKIP  instance: Dagster is not importable (no project venv)")
            return
    with tempfile.TemporaryDirectory() as home:
        (Path(home) / "dagster.yaml").write_text(text, encoding="utf-8")
        out = subprocess.run(
            [python, "-c", code, home], capture_output=True, text=True, check=False
        )
    report.check(
        out.returncode == 0,
        "instance: the pinned Dagster accepts the rendered dagster.yaml",
        out.stderr.strip().splitlines()[-1][:300] if out.returncode else "",
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("chart", nargs="?", type=Path, help="Dagster's chart directory")
    parser.add_argument("--values", type=Path, default=VALUES)
    parser.add_argument("--engine", choices=("auto", "helm", "sdk"), default="auto")
    parser.add_argument(
        "--helm-schema",
        action="store_true",
        help="let Helm validate the schema too (fetches kubernetesjsonschema.dev)",
    )
    args = parser.parse_args()
    pinned = _pinned_dagster()
    if args.chart is None or not (args.chart / "Chart.yaml").is_file():
        print(
            f"SKIP: no Dagster chart given ({args.chart}); run where it is available: "
            f"`{PULL.format(v=pinned)}` and pass the `dagster` folder"
        )
        return 0
    values = yaml.safe_load(args.values.read_text(encoding="utf-8"))
    meta = yaml.safe_load((args.chart / "Chart.yaml").read_text(encoding="utf-8"))
    print(
        f"chart {meta.get('name')} {meta.get('version')} (appVersion {meta.get('appVersion')}), "
        f"dagster pinned {pinned}"
    )
    report = Report()
    if meta.get("version") != pinned:
        print(f"WARN  chart version {meta.get('version')} is not the pinned dagster {pinned}")
    _validate_schema(args.chart, values, report)
    engine = _engine(args.engine)
    if engine is None:
        print("SKIP  lint and template: no `helm` on PATH and helm-python-sdk not importable")
    else:
        rendered = _lint_and_render(engine, args.chart, values, args.helm_schema, report)
        if rendered is not None:
            _assert_manifests(_objects(rendered), values, report)
    print(f"{report.failed} check(s) failed")
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
