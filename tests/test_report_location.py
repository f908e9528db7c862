"""`sovtune report` reads a local registry's SQLite store directly: the same answer as MLflow's
client (resources/registry.py), without importing MLflow or loading a model."""

import subprocess
import sys

import pytest

from pipelines.steps.release.registry_store import RegistryStoreError, report_location


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory):
    from mlflow import MlflowClient

    root = tmp_path_factory.mktemp("registry")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    experiment = client.create_experiment("sovtune", artifact_location=(root / "a").as_uri())
    client.create_registered_model("m")
    for n in (1, 2, 3):
        run = client.create_run(experiment)
        client.create_model_version("m", f"{run.info.artifact_uri}/adapter", run.info.run_id)
        client.set_model_version_tag("m", str(n), "sovtune.report", f"/reports/m/v{n}/report.html")
    client.set_registered_model_alias("m", "approved", "2")
    client.set_registered_model_alias("m", "candidate", "2")
    client.delete_model_version("m", "3")  # soft-deleted: never listed
    return root, uri


@pytest.mark.parametrize("version", [None, "1", "2"])
def test_the_sqlite_answer_is_the_mlflow_clients(store, version):
    from resources.registry import MLflowRegistry

    root, uri = store
    expected = MLflowRegistry(tracking_uri=uri, model_name="m").report_location(version)
    assert report_location(root / "mlflow.db", "m", version) == expected
    assert expected["version"] == (version or "2")


def test_when_the_version_or_model_or_store_is_missing_then_the_message_names_it(store):
    root, _ = store
    with pytest.raises(RegistryStoreError, match=r"no version 3 \(versions: 1, 2\)"):
        report_location(root / "mlflow.db", "m", "3")
    with pytest.raises(RegistryStoreError, match="model 'other' has no version"):
        report_location(root / "mlflow.db", "other")
    with pytest.raises(RegistryStoreError, match="no registry at sqlite:///"):
        report_location(root / "nope.db", "m")


def test_when_report_runs_then_neither_mlflow_nor_dagster_nor_torch_is_imported(store, tmp_path):
    root, _ = store
    profile = tmp_path / "p.yaml"
    profile.write_text(
        f"data_root: {tmp_path}\nregistry:\n  tracking_uri: sqlite:///{root}/mlflow.db\n"
    )
    code = (
        "import sys; from typer.testing import CliRunner; from pipelines.cli import app; "
        f"r = CliRunner().invoke(app, ['report', 'm', '--profile', {str(profile)!r}]); "
        "print(r.output); "
        "heavy = ('mlflow', 'dagster', 'torch', 'transformers'); "
        "print(sorted(m for m in heavy if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "m version 2 (aliases: approved,candidate)" in out.stdout
    assert "/reports/m/v2/report.html" in out.stdout
    assert out.stdout.strip().endswith("[]")
