"""One scrub pass's PII scan as a Ray Data pipeline: blocks of records, one analyzer per worker.

The records go out as blocks of `execution.batch_size` rows (`ray.data.from_arrow`), each block
is scanned by `pii.scan_messages` in a Ray worker (`map_batches`, at most `execution.workers`
at a time, one CPU each), and what comes back is offsets, types and scores per message and
whether the record ran past `pii.scan_budget_seconds`: no value of a finding. A record's result
depends on that record alone, so the findings equal the local engine's whatever the blocks.

The analyzer is built once per worker process and kept there (`_ANALYZERS`): the scrub runs up
to three passes, each a Ray Data execution; an actor pool (`map_batches` with a class) would be
started anew by each of them, and building the analyzer costs 8 to 20 s on this host. Ray keeps
its task workers between executions, so a worker builds it on its first block only.
"""

import json

import pandas as pd
import pyarrow as pa

from pipelines.steps.config import ExecutionConfig, PIIConfig
from pipelines.steps.execution.ray_cluster import run_on_cluster
from pipelines.steps.offline import enforce_offline
from pipelines.steps.privacy import pii
from pipelines.steps.records import RECORD_COLUMNS, Record, frame_to_records, records_to_frame

_ANALYZERS: dict[str, object] = {}
"""Per worker process: the analyzer built for each model, recognizer file and entity list."""


class RayScanError(RuntimeError):
    """A scan on Ray did not return exactly one result per record: nothing may pass."""


def ray_message_scan(
    cfg: PIIConfig, execution: ExecutionConfig, *, every_pack: bool = False
) -> "pii.MessageScan":
    """`pii.scrub_records`' scan of each pass (with `every_pack`, `pii.residual_pii`'s re-scan
    by every language pack), run on the connected Ray cluster.

    Args:
        cfg: The `pii` section (entities, threshold, per-record budget); for the re-scan,
            `pii.residual_config` of it.
        execution: Workers and block size (`execution.workers`, `execution.batch_size`).
        every_pack: Scan every message with every pack, not its record's.

    Returns:
        A `pii.MessageScan`: findings per record and message, in input order, and the indices
        of the records over the budget.
    """
    cfg_json = cfg.model_dump_json()

    def scan(records: list[Record], only: list[list] | None):
        if not records:
            return [], set()
        frame = records_to_frame(records)
        frame.insert(0, "position", range(len(records)))
        frame["only"] = [
            json.dumps(None if only is None else [bool(marked) for marked in only[i]])
            for i in range(len(records))
        ]
        table = pa.Table.from_pandas(frame, preserve_index=False)
        scanned = run_on_cluster(
            scan_pipeline, table, cfg_json, execution.workers, execution.batch_size, every_pack
        ).sort_values("position", kind="stable")
        if scanned["position"].tolist() != list(range(len(records))):
            raise RayScanError(
                f"the Ray scan returned {len(scanned)} results for {len(records)} records"
            )
        per_record = [_decode(findings) for findings in scanned["findings"]]
        late = {
            int(p) for p, over in zip(scanned["position"], scanned["late"], strict=True) if over
        }
        return per_record, late

    return scan


def scan_pipeline(
    table: pa.Table, cfg_json: str, workers: int, size: int, every_pack: bool = False
) -> pd.DataFrame:
    """The Ray Data pipeline of one pass (run on the cluster): blocks of `size` records,
    `scan_block` on at most `workers` task workers; one row per record, in any order."""
    import ray.data

    blocks = [table.slice(start, size) for start in range(0, table.num_rows, size)]
    return (
        ray.data.from_arrow(blocks)
        .map_batches(
            scan_block,
            fn_kwargs={"cfg_json": cfg_json, "every_pack": every_pack},
            batch_size=None,  # one block is one batch
            batch_format="pandas",
            compute=ray.data.TaskPoolStrategy(size=workers),
            num_cpus=1,
        )
        .to_pandas()
    )


def scan_block(batch: pd.DataFrame, cfg_json: str, every_pack: bool = False) -> pd.DataFrame:
    """Scan one block of records in a Ray worker (`ray_message_scan`); no text comes back."""
    enforce_offline()
    # Ray runs the workers in parallel: the scanner must not fork a second process of its own
    # (it would count as one worker's CPU, and forking a Ray worker can hang on its threads).
    pii.PARALLEL_MIN_TEXTS = float("inf")
    cfg = PIIConfig.model_validate_json(cfg_json)
    # What `build_analyzer` reads; the threshold and the budget are applied per scan.
    built_from = json.dumps([cfg.spacy_model, cfg.recognizers_file, sorted(cfg.entities)])
    if built_from not in _ANALYZERS:
        _ANALYZERS[built_from] = pii.build_analyzer(cfg)
    records = frame_to_records(batch[RECORD_COLUMNS])
    marks = [json.loads(only) for only in batch["only"]]
    only = None if all(m is None for m in marks) else marks
    per_record, late = pii.scan_messages(
        records, _ANALYZERS[built_from], cfg, only=only, every_pack=every_pack
    )
    return pd.DataFrame(
        {
            "position": batch["position"].to_numpy(),
            "findings": [_encode(per_message) for per_message in per_record],
            "late": [index in late for index in range(len(records))],
        }
    )


def _encode(per_message: list[list[pii.Finding]]) -> str:
    # JSON floats round-trip exactly (shortest repr), so scores come back bit-equal.
    return json.dumps(
        [
            [[f.field, f.start, f.end, f.entity_type, f.score] for f in found]
            for found in per_message
        ]
    )


def _decode(text: str) -> list[list[pii.Finding]]:
    return [[pii.Finding(*finding) for finding in found] for found in json.loads(text)]
