"""The MLflow model registry, as a small resource around `mlflow.MlflowClient`.

Only safetensors, JSON and text files are ever logged as model artifacts: MLflow can load
pickled models, and a registry that never holds one cannot be tricked into loading one.
"""

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
from pydantic import PrivateAttr

from pipelines.steps.ingest.erasure import LINEAGE_ARTIFACT
from pipelines.steps.offline import enforce_offline
from pipelines.steps.release.registry_store import (
    local_artifact_uri,
    rebase_artifacts,
    sqlite_store,
)
from pipelines.steps.storage import from_stored

ALLOWED_ARTIFACT_SUFFIXES = (".safetensors", ".json", ".md", ".jinja", ".txt", ".html", ".png")


class RegistryError(RuntimeError):
    """The registry refused an artifact or could not be reached."""


@dataclass(frozen=True)
class RegisteredVersion:
    """A model version in the MLflow registry."""

    name: str
    version: str
    run_id: str
    source: str
    tracking_uri: str


def assert_no_pickle(folder: Path) -> None:
    """Refuse any file that is not on the allow-list of safe formats.

    Raises:
        RegistryError: naming the offending file.
    """
    for path in sorted(p for p in Path(folder).rglob("*") if p.is_file()):
        if path.suffix.lower() not in ALLOWED_ARTIFACT_SUFFIXES:
            raise RegistryError(
                f"refusing to register {path.name}: only {', '.join(ALLOWED_ARTIFACT_SUFFIXES)} "
                "files are allowed in the registry (no pickles)"
            )


class MLflowRegistry(dg.ConfigurableResource):
    """MLflow tracking + model registry; SQLite and a local artifact store by default."""

    tracking_uri: str | None = None
    data_root: str = "var"
    model_name: str = "sovtune-dp-lora"
    experiment: str = "sovtune"
    gate_checks: list[str] = []
    """Checks (`asset:check`) whose latest result must be a pass before a version is registered."""
    report_checks: list[str] = []
    """Checks (`asset:check`) listed in the compliance report."""

    _client = PrivateAttr(default=None)

    @property
    def resolved_uri(self) -> str:
        if self.tracking_uri:
            return self.tracking_uri
        db = Path(self.data_root).resolve() / "mlflow" / "mlflow.db"
        db.parent.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{db}"

    @property
    def artifact_root(self) -> str | None:
        """Local artifact store; None for a tracking server, whose configured root applies."""
        if self.tracking_uri and self.tracking_uri.startswith(("http://", "https://")):
            return None
        return (Path(self.data_root).resolve() / "mlflow" / "artifacts").as_uri()

    @property
    def client(self):
        if self._client is None:
            enforce_offline()
            from mlflow import MlflowClient

            db = sqlite_store(self.resolved_uri)
            if db is not None and not self.tracking_uri:
                # a data root moved as a whole: MLflow's absolute artifact locations follow it
                rebase_artifacts(db, Path(self.data_root).resolve())

            self._client = MlflowClient(
                tracking_uri=self.resolved_uri, registry_uri=self.resolved_uri
            )
        return self._client

    def _experiment_id(self) -> str:
        found = self.client.get_experiment_by_name(self.experiment)
        if found is not None:
            return found.experiment_id
        return self.client.create_experiment(self.experiment, artifact_location=self.artifact_root)

    def register_adapter(
        self,
        *,
        adapter_dir: Path,
        tokenizer_dir: Path,
        model_card: str,
        params: dict[str, str],
        tags: dict[str, str],
        step_metrics: dict[str, list[tuple[int, float]]],
        run_name: str,
        lineage: dict | None = None,
    ) -> RegisteredVersion:
        """Log the adapter, tokenizer and model card to a new run and register a version.

        The new version gets the alias `candidate`. `lineage` (sha256 of every record and
        subject pseudonym trained on, `erasure.lineage_hashes`) is logged as
        `lineage/training_records.json`: an erasure request finds the versions it affects
        there.
        """
        assert_no_pickle(adapter_dir)
        client = self.client
        run = client.create_run(self._experiment_id(), run_name=run_name, tags=tags)
        run_id = run.info.run_id
        try:
            for key, value in params.items():
                client.log_param(run_id, key, value)
            for key, series in step_metrics.items():
                for step, value in series:
                    client.log_metric(run_id, key, float(value), step=int(step))
            with tempfile.TemporaryDirectory(prefix="sovtune-register-") as tmp:
                bundle = Path(tmp) / "model"
                shutil.copytree(adapter_dir, bundle / "adapter")
                tok = bundle / "tokenizer"
                tok.mkdir(parents=True)
                for path in sorted(Path(tokenizer_dir).iterdir()):
                    if path.is_file() and (
                        path.name.startswith("tokenizer")
                        or path.name.endswith(".jinja")
                        or path.name == "special_tokens_map.json"
                    ):
                        shutil.copy2(path, tok / path.name)
                (bundle / "README.md").write_text(model_card, encoding="utf-8")
                assert_no_pickle(bundle)
                client.log_artifacts(run_id, str(bundle), artifact_path="model")
                if lineage is not None:
                    folder = Path(tmp) / "lineage"
                    folder.mkdir()
                    path = folder / Path(LINEAGE_ARTIFACT).name
                    path.write_text(json.dumps(lineage, sort_keys=True), encoding="utf-8")
                    client.log_artifacts(run_id, str(folder), artifact_path="lineage")
            client.set_terminated(run_id, status="FINISHED")
        except Exception:
            client.set_terminated(run_id, status="FAILED")
            raise
        try:
            client.create_registered_model(self.model_name)
        except Exception as exc:  # noqa: BLE001 — already exists is the common case
            if "RESOURCE_ALREADY_EXISTS" not in str(getattr(exc, "error_code", exc)):
                raise
        version = client.create_model_version(
            self.model_name,
            source=f"{run.info.artifact_uri}/model",
            run_id=run_id,
            tags=tags,
            description=f"DP-LoRA adapter from Sovereign Tune run {run_name}",
        )
        client.set_registered_model_alias(self.model_name, "candidate", version.version)
        return RegisteredVersion(
            name=self.model_name,
            version=str(version.version),
            run_id=run_id,
            source=version.source,
            tracking_uri=self.resolved_uri,
        )

    def log_report(self, run_id: str, files: list[Path]) -> str:
        """Log report files into `report/` of the version's run; returns the artifact URI."""
        with tempfile.TemporaryDirectory(prefix="sovtune-report-") as tmp:
            for path in files:
                shutil.copy2(path, Path(tmp) / path.name)
            assert_no_pickle(Path(tmp))
            self.client.log_artifacts(run_id, tmp, artifact_path="report")
        run = self.client.get_run(run_id)
        return f"{run.info.artifact_uri}/report"

    def approve(self, version: str) -> None:
        """Point the `approved` alias at a version (only after every gate passed)."""
        self.client.set_registered_model_alias(self.model_name, "approved", version)

    def report_location(self, version: str | None = None) -> dict[str, str]:
        """Where a version's compliance report is (latest version when None).

        Raises:
            RegistryError: naming the model or version that does not exist.
        """
        try:
            versions = self.client.search_model_versions(f"name='{self.model_name}'")
        except Exception as exc:  # noqa: BLE001 — an empty or missing store
            raise RegistryError(f"no registry at {self.resolved_uri}: {exc}") from None
        if not versions:
            raise RegistryError(f"model {self.model_name!r} has no version in {self.resolved_uri}")
        if version is None:
            chosen = max(versions, key=lambda v: int(v.version))
        else:
            matches = [v for v in versions if str(v.version) == str(version)]
            if not matches:
                known = ", ".join(sorted((str(v.version) for v in versions), key=int))
                raise RegistryError(
                    f"model {self.model_name!r} has no version {version} (versions: {known})"
                )
            chosen = matches[0]
        chosen = self.client.get_model_version(self.model_name, str(chosen.version))
        run = self.client.get_run(chosen.run_id)
        aliases = list(chosen.aliases or [])
        return {
            "model": self.model_name,
            "version": str(chosen.version),
            "aliases": ",".join(sorted(aliases)),
            "report_html": from_stored(chosen.tags.get("sovtune.report", ""), self._root),
            "mlflow_artifacts": f"{self._artifacts(run.info.artifact_uri)}/report",
        }

    @property
    def _root(self) -> Path:
        return Path(self.data_root).resolve()

    def _artifacts(self, uri: str) -> str:
        """A local artifact URI inside this data root (MLflow stores them absolute)."""
        return local_artifact_uri(uri, self._root) if not self.tracking_uri else uri

    def versions(self) -> list[dict[str, str]]:
        """Every registered version of the model (none when nothing was registered): version,
        run id and the `sovtune.*` tags."""
        try:
            found = self.client.search_model_versions(f"name='{self.model_name}'")
        except Exception:  # noqa: BLE001 — an empty or missing store
            return []
        return [
            {"version": str(v.version), "run_id": v.run_id, **dict(v.tags or {})}
            for v in sorted(found, key=lambda v: int(v.version))
        ]

    def training_lineage(self, run_id: str) -> dict | None:
        """A version's stored training lineage (`lineage/training_records.json` of its run);
        None for a version registered before lineage was stored."""
        import mlflow.artifacts

        with tempfile.TemporaryDirectory(prefix="sovtune-lineage-") as tmp:
            try:
                base = self._artifacts(self.client.get_run(run_id).info.artifact_uri)
                path = mlflow.artifacts.download_artifacts(
                    artifact_uri=f"{base}/{LINEAGE_ARTIFACT}",
                    dst_path=tmp,
                    tracking_uri=self.resolved_uri,
                )
            except Exception:  # noqa: BLE001 — MLflow raises its own errors for a missing file
                return None
            return json.loads(Path(path).read_text(encoding="utf-8"))

    def set_version_tags(self, version: str, tags: dict[str, str]) -> None:
        for key, value in tags.items():
            self.client.set_model_version_tag(self.model_name, version, key, value)

    def download(self, version: str, dst: Path) -> Path:
        """Download a version's bundle (adapter, tokenizer, card) into `dst`."""
        import mlflow.artifacts

        mv = self.client.get_model_version(self.model_name, version)
        os.makedirs(dst, exist_ok=True)
        return Path(
            mlflow.artifacts.download_artifacts(
                artifact_uri=self._artifacts(mv.source),
                dst_path=str(dst),
                tracking_uri=self.resolved_uri,
            )
        )
