"""Read-only look-ups in a local MLflow registry (its SQLite store), without importing MLflow.

`sovtune report` answers "where is this version's report" in well under a second this way:
importing MLflow (or the Dagster definitions) takes seconds. The store is opened read-only and
read with MLflow's own tables (`model_versions`, `model_version_tags`,
`registered_model_aliases`, `runs`); a tracking server is read through MLflow's client instead
(`resources/registry.py`). Both give the same answer (tests/test_report_location.py).
"""

import sqlite3
from pathlib import Path

from pipelines.steps.storage import from_stored

DELETED_STAGE = "Deleted_Internal"
"""MLflow's stage of a soft-deleted model version: never listed."""
REPORT_TAG = "sovtune.report"


class RegistryStoreError(ValueError):
    """The store, the model or the version does not exist; the message names which."""


def sqlite_store(uri: str) -> Path | None:
    """The database file of a `sqlite:///` tracking URI; None for any other store."""
    prefix = "sqlite:///"
    return Path(uri[len(prefix) :]) if uri.startswith(prefix) else None


def report_location(
    db: Path, model: str, version: str | None = None, *, data_root: Path | None = None
) -> dict[str, str]:
    """Where a version's compliance report is (the latest version when `version` is None).

    Returns the same mapping as `MLflowRegistry.report_location`: model, version, aliases
    (comma-separated), report_html and mlflow_artifacts, both resolved through `data_root`
    (default: the folder above the store's `mlflow/`): the report tag is stored relative to it,
    and MLflow's absolute artifact URIs are mapped into it when the root was moved.

    Raises:
        RegistryStoreError: naming the store, model or version that does not exist.
    """
    uri = f"sqlite:///{db}"
    if not db.is_file():
        raise RegistryStoreError(f"no registry at {uri}: nothing was registered yet")
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
            versions = sorted(
                int(v)
                for (v,) in con.execute(
                    "SELECT version FROM model_versions WHERE name = ? AND current_stage != ?",
                    (model, DELETED_STAGE),
                )
            )
            if not versions:
                raise RegistryStoreError(f"model {model!r} has no version in {uri}")
            chosen = versions[-1] if version is None else _known(version, versions, model)
            (run_id,) = con.execute(
                "SELECT run_id FROM model_versions WHERE name = ? AND version = ?",
                (model, chosen),
            ).fetchone()
            tag = con.execute(
                "SELECT value FROM model_version_tags WHERE name = ? AND version = ? AND key = ?",
                (model, chosen, REPORT_TAG),
            ).fetchone()
            aliases = [
                a
                for (a,) in con.execute(
                    "SELECT alias FROM registered_model_aliases WHERE name = ? AND version = ?",
                    (model, chosen),
                )
            ]
            run = con.execute(
                "SELECT artifact_uri FROM runs WHERE run_uuid = ?", (run_id,)
            ).fetchone()
    except sqlite3.Error as exc:
        raise RegistryStoreError(f"no registry at {uri}: {exc}") from None
    root = data_root or db.resolve().parent.parent
    return {
        "model": model,
        "version": str(chosen),
        "aliases": ",".join(sorted(aliases)),
        "report_html": from_stored(tag[0], root) if tag else "",
        "mlflow_artifacts": f"{local_artifact_uri(run[0], root) if run else ''}/report",
    }


ARTIFACTS = "mlflow/artifacts"
"""The local artifact store under a data root (`MLflowRegistry.artifact_root`)."""


def local_artifact_uri(uri: str, data_root: Path) -> str:
    """An artifact URI of the local store, inside `data_root`'s `mlflow/artifacts`.

    MLflow stores artifact locations as absolute URIs (an experiment's `artifact_location`, a
    run's `artifact_uri`, a version's `source`); after the data root was moved they still name
    the old place. Everything after `mlflow/artifacts/` is kept; a URI of a tracking server or
    of another store is returned unchanged.
    """
    marker = f"/{ARTIFACTS}/"
    if not uri.startswith("file://") or marker not in uri:
        return uri
    rest = uri.rpartition(marker)[2]
    return (Path(data_root).resolve() / ARTIFACTS / rest).as_uri()


def rebase_artifacts(db: Path, data_root: Path) -> int:
    """Point a moved data root's MLflow store at its own artifacts: rewrite the absolute
    locations MLflow stored (experiments, runs, model versions) that name another
    `mlflow/artifacts`, so the MLflow UI and new runs use this root's. Returns the rows changed;
    0 when nothing moved (the common case: one read, no write).
    """
    if not db.is_file():
        return 0
    columns = (
        ("experiments", "artifact_location", "experiment_id"),
        ("runs", "artifact_uri", "run_uuid"),
        ("model_versions", "source", "rowid"),
        ("model_versions", "storage_location", "rowid"),
    )
    changed = 0
    with sqlite3.connect(db) as con:
        for table, column, key in columns:
            try:
                rows = con.execute(f"SELECT {key}, {column} FROM {table}").fetchall()  # noqa: S608
            except sqlite3.Error:
                continue  # a store MLflow has not made yet
            for row_key, value in rows:
                if not value:
                    continue
                moved = (
                    local_artifact_uri(value + "/", data_root).rstrip("/")
                    if value.endswith(f"/{ARTIFACTS}")
                    else local_artifact_uri(value, data_root)
                )
                if moved != value:
                    con.execute(
                        f"UPDATE {table} SET {column} = ? WHERE {key} = ?",  # noqa: S608
                        (moved, row_key),
                    )
                    changed += 1
    return changed


def _known(version: str, versions: list[int], model: str) -> int:
    if not version.isdigit() or int(version) not in versions:
        known = ", ".join(str(v) for v in versions)
        raise RegistryStoreError(f"model {model!r} has no version {version} (versions: {known})")
    return int(version)
