"""The IO manager of the pipeline: asset summaries between steps, `path` showing the real file.

Every asset writes its data itself (parquet files, adapters, reports under the data root) and
returns a small summary dict that Dagster pickles for the steps downstream. Dagster's
filesystem IO manager then sets the materialization's `path` metadata to that pickle, hiding
the asset's own `path`; this one keeps the summary's `path` (the parquet file) when it has one.
"""

from typing import Any

import dagster as dg

# Dagster's own pickling IO manager (not exported at the top level); only get_metadata changes.
from dagster._core.storage.fs_io_manager import PickledObjectFilesystemIOManager


class _SummaryPickles(PickledObjectFilesystemIOManager):
    def get_metadata(self, context: dg.OutputContext, obj: Any) -> dict:
        if isinstance(obj, dict) and isinstance(obj.get("path"), str) and obj["path"]:
            return {"path": dg.MetadataValue.path(obj["path"])}
        return {}


class SummaryIOManager(dg.ConfigurableIOManagerFactory):
    """Pickles each asset's summary under the instance's storage folder (as Dagster's default
    does); the `path` metadata is the summary's own `path` (the data file), not the pickle."""

    base_dir: str | None = None

    def create_io_manager(self, context: dg.InitResourceContext) -> _SummaryPickles:
        base_dir = self.base_dir or context.instance.storage_directory()
        return _SummaryPickles(base_dir=base_dir)
