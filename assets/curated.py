"""Stage 3: integrity screening into the curated, trainable corpus, with the steward loop."""

import json
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path

import dagster as dg
import pandas as pd

from assets.metadata import OWNERS_STEWARDS, counts_table
from assets.partitions import data_drops
from pipelines.steps.integrity.curate import QUARANTINE, CurationResult
from pipelines.steps.integrity.decisions import decisions_fingerprint, read_decisions
from pipelines.steps.integrity.packed import PackedRecords
from pipelines.steps.integrity.screens.backdoor import lazy_disruption, lazy_perplexity
from pipelines.steps.memory import release_freed_memory
from pipelines.steps.records import Record, frame_to_records, records_to_frame
from pipelines.steps.storage import (
    RECORD_SCHEMA,
    ParquetStream,
    batched,
    frame_schema,
    iter_parquet_frames,
    write_json,
)
from resources import BaseModelStore, CorpusStorage, DataEngine

DECISIONS_FILE = "steward_decisions.csv"


@dg.asset(
    group_name="screening",
    kinds={"python", "parquet"},
    owners=OWNERS_STEWARDS,
    code_version="3",
    partitions_def=data_drops,
)
def curated_corpus(
    context: dg.AssetExecutionContext,
    scrubbed_corpus: dict,
    storage: CorpusStorage,
    model_store: BaseModelStore,
    execution: DataEngine,
) -> dict:
    """One drop's scrubbed records that passed integrity screening: what the model trains on.

    Records outside the length bounds and exact duplicates (after normalization) are dropped;
    near duplicates, backdoor-trigger clusters, injections and quality findings are quarantined
    until a steward approves (kept from the next materialization on) or rejects them by id in
    `curated/steward_decisions.csv`. Every record not kept keeps its reasons and scores in
    `screening.parquet` (with `curation.onion`, flagged records also carry the base model's
    ONION score). Canaries stay in: they measure memorization in the privacy audit. Under
    `execution.engine: ray` each corpus-wide screen runs as a task on the Ray cluster.
    """
    summary, metadata = _curate_drop(scrubbed_corpus, storage, model_store, execution)
    # The drop's checks run next in this process under `sovtune run`: the screening's records,
    # tokens and signatures are freed by now, and their memory goes back to the system.
    release_freed_memory()
    context.add_output_metadata(metadata)
    return summary


def _curate_drop(
    scrubbed_corpus: dict,
    storage: CorpusStorage,
    model_store: BaseModelStore,
    execution: DataEngine,
) -> tuple[dict, dict]:
    """Screen the drop's scrubbed records and write the curated zone's files: (the summary,
    the asset's metadata)."""
    batch_rows = execution.stream_batch_records
    # Packed, read a batch at a time (#21): about the size of their text, never a whole frame
    # or a list of objects; shared with the second screening process rather than copied.
    records = PackedRecords()
    for frame in iter_parquet_frames(scrubbed_corpus["path"], batch_rows):
        for record in frame_to_records(frame):
            records.append(record)
    cfg = storage.curation
    decisions_path = storage.curated / DECISIONS_FILE
    load = model_store.screening_model()  # loaded only if a screen asks for it
    perplexity = lazy_perplexity(load) if cfg.onion else None
    disruption = lazy_disruption(load) if cfg.inserted_phrase_lm_check else None
    result = execution.curate(
        records,
        cfg,
        read_decisions(decisions_path),
        perplexity=perplexity,
        disruption=disruption,
    )
    out = storage.drop_dir(storage.curated, scrubbed_corpus["drop"])
    path = out / "curated_corpus.parquet"
    sha = _write_records(result.kept, path, batch_rows)
    _write_rows(_screening_rows(result), SCREENING_COLUMNS, out / "screening.parquet", batch_rows)
    filtered_by_reason = _write_rows(
        _filtered_rows(result), FILTERED_COLUMNS, out / "filtered.parquet", batch_rows
    )
    waiting = {s.id for s in result.screened if s.decision == QUARANTINE and not s.steward}
    _write_records((r for r in records if r.id in waiting), out / "quarantine.parquet", batch_rows)
    summary = _curation_summary(
        scrubbed_corpus, result, filtered_by_reason, path, sha, decisions_path
    )
    write_json(storage.portable(summary), out / "curation_summary.json")
    return summary, _curation_metadata(summary, result, out, decisions_path, storage)


SCREENING_COLUMNS = ["id", "decision", "steward", "kept", "in_trigger_cluster", "reasons", "scores"]
FILTERED_COLUMNS = ["id", "reason", "detail"]


def _screening_rows(result: CurationResult) -> Iterator[dict]:
    """One row per screened record: decision, steward, reasons and scores (JSON), no text."""
    trigger_members = {rid for cluster in result.trigger_clusters for rid in cluster}
    for s in result.screened:
        yield {
            "id": s.id,
            "decision": s.decision,
            "steward": s.steward,
            "kept": s.kept,
            "in_trigger_cluster": s.id in trigger_members,
            "reasons": json.dumps([vars(r) for r in s.reasons]),
            "scores": json.dumps(result.scores.get(s.id, {}), sort_keys=True),
        }


def _filtered_rows(result: CurationResult) -> Iterator[dict]:
    """One row per record not kept, with its first reason's code and detail."""
    for s in result.screened:
        if not s.kept:
            yield {"id": s.id, "reason": s.reasons[0].code, "detail": s.reasons[0].detail}


def _write_rows(
    rows: Iterable[dict], columns: list[str], path: Path, batch_rows: int
) -> dict[str, int]:
    """Write rows (dicts with `columns`) a batch at a time, as `write_parquet` writes their
    frame; returns how many rows each `reason` had, when the rows have one."""
    empty = pd.DataFrame([], columns=columns)
    reasons: Counter[str] = Counter()
    with ParquetStream(path, _SCHEMAS[tuple(columns)], empty=empty) as stream:
        for batch in batched(rows, batch_rows):
            frame = pd.DataFrame(batch, columns=columns)
            stream.write(frame)
            if "reason" in frame:
                reasons.update(frame["reason"])
        stream.commit()
    return dict(reasons)


def _write_records(records: Iterable[Record], path: Path, batch_rows: int) -> str:
    """Write records a batch at a time, as `write_parquet(records_to_frame(...))`; its sha256."""
    with ParquetStream(path, RECORD_SCHEMA, empty=records_to_frame([])) as stream:
        for batch in batched(records, batch_rows):
            stream.write(records_to_frame(batch))
        return stream.commit()


_SCHEMAS = {
    tuple(SCREENING_COLUMNS): frame_schema(
        pd.DataFrame(
            [["id", "keep", "steward", True, False, "[]", "{}"]], columns=SCREENING_COLUMNS
        )
    ),
    tuple(FILTERED_COLUMNS): frame_schema(
        pd.DataFrame([["id", "reason", "detail"]], columns=FILTERED_COLUMNS)
    ),
}


def _curation_summary(
    scrubbed_corpus: dict,
    result: CurationResult,
    filtered_by_reason: dict[str, int],
    path: Path,
    sha: str,
    decisions_path: Path,
) -> dict:
    """The asset's output and `curation_summary.json`: counts, steward tallies, cluster sizes."""
    counts = result.counts()
    by_reason = filtered_by_reason
    return {
        "drop": scrubbed_corpus["drop"],
        "drop_sha256": scrubbed_corpus["drop_sha256"],
        "path": str(path),
        "sha256": sha,
        "records_in": counts["records_in"],
        "kept": counts["kept"],
        "filtered": counts["records_in"] - counts["kept"],
        "filtered_by_reason": {str(k): int(v) for k, v in sorted(by_reason.items())},
        "subjects": len({r.subject for r in result.kept if r.subject}),
        "dropped": counts["dropped"],
        "quarantined": counts["quarantined"],
        "quarantine_rate": counts["quarantined"] / max(1, counts["records_in"]),
        "steward": {
            "approved": counts["approved"],
            "rejected": counts["rejected"],
            "pending": counts["pending"],
            "unmatched": result.unmatched_decisions,
            "decisions_sha256": decisions_fingerprint(decisions_path),
        },
        "by_screen": result.reason_counts(),
        "near_duplicate_cluster_sizes": _size_histogram(result.near_duplicate_clusters),
        "trigger_clusters": [len(c) for c in result.trigger_clusters],
        # Sibling phrases the base model read (`curation.inserted_phrase_lm_check`): counts.
        "sibling_phrases": None
        if result.siblings is None
        else {
            "read": result.siblings.checked,
            "confirmed": result.siblings.confirmed,
            "unchecked": result.siblings.unchecked,
        },
        "screening_path": str(path.parent / "screening.parquet"),
        "scrubbed_path": scrubbed_corpus["path"],
    }


def _curation_metadata(
    summary: dict, result: CurationResult, out: Path, decisions_path: Path, storage: CorpusStorage
) -> dict:
    """Dagster metadata: counts, tables and where the steward reviews and decides."""
    counts = result.counts()
    cluster_sizes = summary["near_duplicate_cluster_sizes"]
    return {
        "drop": summary["drop"],
        "drop_sha256": summary["drop_sha256"],
        # the vocabulary of pipelines/steps/integrity/counts.py: records in = filtered +
        # trained on (the drop's ingestion quarantine is counted on raw_corpus)
        "records_in": counts["records_in"],
        "trained_on": counts["kept"],
        "filtered": counts["records_in"] - counts["kept"],
        "dropped_by_screening": counts["dropped"],
        "screening_quarantine": counts["quarantined"],
        "steward_approved": counts["approved"],
        "steward_rejected": counts["rejected"],
        "steward_awaiting_review": counts["pending"],
        "steward_unmatched": result.unmatched_decisions,
        "filtered_by_reason": counts_table(summary["filtered_by_reason"], key="reason"),
        "by_screen": dg.MetadataValue.md(_screen_table(summary["by_screen"])),
        "near_duplicate_cluster_sizes": counts_table(
            {str(k): v for k, v in cluster_sizes.items()}, key="cluster size", value="clusters"
        ),
        "trigger_clusters": len(result.trigger_clusters),
        "sibling_phrases": dg.MetadataValue.md(_siblings_line(summary["sibling_phrases"])),
        "sha256": summary["sha256"],
        "path": dg.MetadataValue.path(storage.stored(summary["path"])),
        "quarantine_review": dg.MetadataValue.path(storage.stored(out / "quarantine.parquet")),
        "screening_scores": dg.MetadataValue.path(storage.stored(summary["screening_path"])),
        "steward_decisions": dg.MetadataValue.md(
            f"{counts['pending']} records await review in the review desk (`make desk`, "
            "http://127.0.0.1:3100), which shows each one scrubbed with what was flagged "
            f"(files: `{storage.stored(out / 'quarantine.parquet')}`, "
            f"`{storage.stored(out / 'screening.parquet')}`, under the data root). Decisions "
            f"go to `{storage.stored(decisions_path)}` "
            "(`id,decision[,steward,decided_at,note]`); the "
            "`steward_decisions` sensor re-materializes every drop when the file changes."
            + (
                f" **{result.unmatched_decisions} decision(s) name no quarantined record of "
                "this drop** (a mistyped id, or a record of another drop)."
                if result.unmatched_decisions
                else ""
            )
        ),
    }


def _siblings_line(siblings: dict | None) -> str:
    """What the base model said of the sibling phrases, in a steward's words."""
    if siblings is None:
        return "No sibling phrase waited on the base model (it was not loaded)."
    line = (
        f"The base model read {siblings['read']} sibling phrase(s) (a rare phrase in two "
        f"prompts beside one that stands on its own) and found {siblings['confirmed']} inserted "
        "in every prompt: their records are quarantined as `inserted_phrase`."
    )
    if siblings["unchecked"]:
        line += (
            f" **{siblings['unchecked']} more were not read** "
            "(`curation.inserted_phrase_lm_max_siblings`): they keep their lower score."
        )
    return line


def _size_histogram(clusters: list[tuple[str, ...]]) -> dict[int, int]:
    sizes: dict[int, int] = {}
    for cluster in clusters:
        sizes[len(cluster)] = sizes.get(len(cluster), 0) + 1
    return dict(sorted(sizes.items()))


def _screen_table(by_screen: dict[str, dict[str, int]]) -> str:
    rows = ["| screen / reason | keep | drop | quarantine |", "|---|---:|---:|---:|"]
    rows += [
        f"| `{name}` | {c.get('keep', 0)} | {c.get('drop', 0)} | {c.get('quarantine', 0)} |"
        for name, c in by_screen.items()
    ] or ["| none | 0 | 0 | 0 |"]
    return "\n".join(rows)
