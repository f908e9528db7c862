"""The IO manager of the pipeline: asset summaries between steps, `path` showing the real file.

Every asset writes its data itself (parquet files, adapters, reports under the data root) and
returns a small summary dict that Dagster pickles for the steps downstream. Dagster's
filesystem IO manager then sets the materialization's `path` metadata to that pickle, hiding
the asset's own `path`; this one keeps the summary's `path` (the parquet file) when it has one.

What it stores names files relative to the data root (`pipelines/steps/storage.portable`): the
pickled summaries, the `path` metadata and its log lines. Steps get them back absolute, resolved
through the data root they run on, so a data root moved as a whole keeps working.
"""

from typing import Any

import dagster as dg

# Dagster's own pickling IO manager (not exported at the top level); only get_metadata changes.
from dagster._core.storage.fs_io_manager import PickledObjectFilesystemIOManager

from pipelines.steps.storage import portable, resolved, to_stored


class _SummaryPickles(PickledObjectFilesystemIOManager):
    def __init__(self, base_dir: str, data_root: str | None):
        super().__init__(base_dir=base_dir)
        self.data_root = data_root

    def dump_to_path(self, context: dg.OutputContext, obj: Any, path) -> None:
        if self.data_root:
            obj = portable(obj, self.data_root)
        super().dump_to_path(context, obj, path)

    def load_from_path(self, context: dg.InputContext, path) -> Any:
        obj = super().load_from_path(context, path)
        return resolved(obj, self.data_root) if self.data_root else obj

    def get_metadata(self, context: dg.OutputContext, obj: Any) -> dict:
        if isinstance(obj, dict) and isinstance(obj.get("path"), str) and obj["path"]:
            path = obj["path"]
        elif obj is not None:  # the pickle itself, as Dagster's own metadata would name it
            if context.has_asset_partitions:
                path = str(next(iter(self._get_paths_for_partitions(context).values())))
            else:
                path = str(self._get_path(context))
        else:
            return {}
        return {
            "path": dg.MetadataValue.path(
                to_stored(path, self.data_root) if self.data_root else path
            )
        }

    def _short(self, path) -> str:
        # the pickle's place inside the instance's storage folder, not the absolute path
        return str(path).removeprefix(str(self._base_path)).lstrip("/") or str(path)

    def get_loading_input_log_message(self, path) -> str:
        return f"Loading {self._short(path)} from the instance's storage"

    def get_writing_output_log_message(self, path) -> str:
        return f"Writing {self._short(path)} to the instance's storage"

    def get_loading_input_partition_log_message(self, path, partition_key: str) -> str:
        return f"Loading partition {partition_key} from {self._short(path)} (instance storage)"


class SummaryIOManager(dg.ConfigurableIOManagerFactory):
    """Pickles each asset's summary under the instance's storage folder (as Dagster's default
    does); the `path` metadata is the summary's own `path` (the data file), not the pickle.
    With `data_root`, paths under it are stored relative to it and resolved on load."""

    base_dir: str | None = None
    data_root: str | None = None

    def create_io_manager(self, context: dg.InitResourceContext) -> _SummaryPickles:
        base_dir = self.base_dir or context.instance.storage_directory()
        return _SummaryPickles(base_dir=base_dir, data_root=self.data_root)
