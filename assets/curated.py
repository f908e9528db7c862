"""Stage 3: integrity screening into the curated, trainable corpus, with the steward loop."""

import json
from pathlib import Path

import dagster as dg
import pandas as pd

from assets.metadata import OWNERS_STEWARDS, counts_table
from assets.partitions import data_drops
from pipelines.steps.integrity.curate import QUARANTINE, CurationResult
from pipelines.steps.integrity.decisions import decisions_fingerprint, read_decisions
from pipelines.steps.records import frame_to_records, records_to_frame
from pipelines.steps.storage import read_parquet, write_json, write_parquet
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
    `execution.engine: ray` the MinHash signatures are computed on the Ray cluster.
    """
    records = frame_to_records(read_parquet(scrubbed_corpus["path"]))
    cfg = storage.curation
    decisions_path = storage.curated / DECISIONS_FILE
    perplexity = model_store.onion_perplexity() if cfg.onion else None
    result = execution.curate(records, cfg, read_decisions(decisions_path), perplexity=perplexity)
    out = storage.drop_dir(storage.curated, scrubbed_corpus["drop"])
    path = out / "curated_corpus.parquet"
    sha = write_parquet(records_to_frame(result.kept), path)
    write_parquet(_screening_frame(result), out / "screening.parquet")
    filtered = _filtered_frame(result)
    write_parquet(filtered, out / "filtered.parquet")
    waiting = {s.id for s in result.screened if s.decision == QUARANTINE and not s.steward}
    write_parquet(
        records_to_frame([r for r in records if r.id in waiting]),
        out / "quarantine.parquet",
    )
    summary = _curation_summary(scrubbed_corpus, result, filtered, path, sha, decisions_path)
    write_json(storage.portable(summary), out / "curation_summary.json")
    context.add_output_metadata(_curation_metadata(summary, result, out, decisions_path, storage))
    return summary


def _screening_frame(result: CurationResult) -> pd.DataFrame:
    """One row per screened record: decision, steward, reasons and scores (JSON), no text."""
    trigger_members = {rid for cluster in result.trigger_clusters for rid in cluster}
    return pd.DataFrame(
        [
            {
                "id": s.id,
                "decision": s.decision,
                "steward": s.steward,
                "kept": s.kept,
                "in_trigger_cluster": s.id in trigger_members,
                "reasons": json.dumps([vars(r) for r in s.reasons]),
                "scores": json.dumps(result.scores.get(s.id, {}), sort_keys=True),
            }
            for s in result.screened
        ],
        columns=["id", "decision", "steward", "kept", "in_trigger_cluster", "reasons", "scores"],
    )


def _filtered_frame(result: CurationResult) -> pd.DataFrame:
    """One row per record not kept, with its first reason's code and detail."""
    return pd.DataFrame(
        [
            {"id": s.id, "reason": s.reasons[0].code, "detail": s.reasons[0].detail}
            for s in result.screened
            if not s.kept
        ],
        columns=["id", "reason", "detail"],
    )


def _curation_summary(
    scrubbed_corpus: dict,
    result: CurationResult,
    filtered: pd.DataFrame,
    path: Path,
    sha: str,
    decisions_path: Path,
) -> dict:
    """The asset's output and `curation_summary.json`: counts, steward tallies, cluster sizes."""
    counts = result.counts()
    by_reason = filtered["reason"].value_counts().to_dict()
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
