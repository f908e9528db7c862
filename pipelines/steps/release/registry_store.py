"""Read-only look-ups in a local MLflow registry (its SQLite store), without importing MLflow.

`sovtune report` answers "where is this version's report" in well under a second this way:
importing MLflow (or the Dagster definitions) takes seconds. The store is opened read-only and
read with MLflow's own tables (`model_versions`, `model_version_tags`,
`registered_model_aliases`, `runs`); a tracking server is read through MLflow's client instead
(`resources/registry.py`). Both give the same answer (tests/test_report_location.py).
"""

import sqlite3
from pathlib import Path

DELETED_STAGE = "Deleted_Internal"
"""MLflow's stage of a soft-deleted model version: never listed."""
REPORT_TAG = "sovtune.report"


class RegistryStoreError(ValueError):
    """The store, the model or the version does not exist; the message names which."""


def sqlite_store(uri: str) -> Path | None:
    """The database file of a `sqlite:///` tracking URI; None for any other store."""
    prefix = "sqlite:///"
    return Path(uri[len(prefix) :]) if uri.startswith(prefix) else None


def report_location(db: Path, model: str, version: str | None = None) -> dict[str, str]:
    """Where a version's compliance report is (the latest version when `version` is None).

    Returns the same mapping as `MLflowRegistry.report_location`: model, version, aliases
    (comma-separated), report_html and mlflow_artifacts.

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
    return {
        "model": model,
        "version": str(chosen),
        "aliases": ",".join(sorted(aliases)),
        "report_html": tag[0] if tag else "",
        "mlflow_artifacts": f"{run[0] if run else ''}/report",
    }


def _known(version: str, versions: list[int], model: str) -> int:
    if not version.isdigit() or int(version) not in versions:
        known = ", ".join(str(v) for v in versions)
        raise RegistryStoreError(f"model {model!r} has no version {version} (versions: {known})")
    return int(version)
