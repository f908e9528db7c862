"""Stage 3b: every accepted data drop joined into the one corpus training reads."""

from collections import Counter
from pathlib import Path

import dagster as dg
import pandas as pd

from assets.metadata import OWNERS_STEWARDS, counts_table, require_passing_checks
from assets.partitions import DATA_DROP
from pipelines.steps.audit.planting import PLANTED_FILE, planted_for
from pipelines.steps.ingest.drops import scan_landing, snapshot_fingerprint
from pipelines.steps.ingest.join import concat_parquet, join_curated
from pipelines.steps.storage import write_json, write_parquet
from resources import CorpusStorage, DataEngine, DPTrainer, PrivacyAuditor

DROP_ASSETS = ("raw_corpus", "scrubbed_corpus", "curated_corpus")
# every registered drop, loaded as {drop: summary}; a drop not yet materialized is left out of
# the load and named by the asset's own refusal below, rather than failing inside the loader
_EVERY_DROP = {
    name: dg.AssetIn(
        partition_mapping=dg.AllPartitionMapping(), metadata={"allow_missing_partitions": True}
    )
    for name in DROP_ASSETS
}


@dg.asset(
    group_name="training",
    kinds={"python", "parquet"},
    owners=OWNERS_STEWARDS,
    code_version="2",
    ins=_EVERY_DROP,
)
def training_corpus(
    context: dg.AssetExecutionContext,
    raw_corpus: dict | None,
    scrubbed_corpus: dict | None,
    curated_corpus: dict | None,
    storage: CorpusStorage,
    trainer: DPTrainer,
    auditor: PrivacyAuditor,
    execution: DataEngine,
) -> dict:
    """The curated records of every registered data drop, joined: what the model is trained on.

    Refused while any registered drop is not materialized through screening, changed in the
    landing zone since it was read, or has a blocking check whose latest result is not a pass.
    Exact copies (normalized roles and contents) and colliding ids across drops are removed,
    the first drop in key order keeping its record; each removal is counted by reason and drop
    and listed by id in `curated/cross_drop_removed.parquet`. Records in = kept + filtered +
    quarantined holds over all drops (checked). The drops' files are read and the joined ones
    written `execution.stream_batch_records` records at a time (`pipelines.steps.ingest.join`).

    When no canary list exists (`audit.canaries_file`, by default the bundled generator's
    `raw/ground_truth.json`), `audit.plant_canaries` canaries are planted for the privacy audit
    (`pipelines.steps.audit.planting`): their records are trained on beside the curated corpus,
    never written into it; their list stays in the raw zone (mode 0600), reused while the
    corpus is unchanged; the summary and metadata carry their count and ids only.
    """
    registered = sorted(context.instance.get_dynamic_partitions(DATA_DROP))
    if not registered:
        raise dg.Failure(
            f"no data drop is registered: put files or folders into {storage.landing} (the "
            "data_drops sensor registers each one) or run `sovtune demo`",
            allow_retries=False,
        )
    loaded = {
        name: _by_drop(context, name, value)
        for name, value in (
            ("raw_corpus", raw_corpus),
            ("scrubbed_corpus", scrubbed_corpus),
            ("curated_corpus", curated_corpus),
        )
    }
    _require_current_drops(registered, loaded, storage)
    require_passing_checks(
        context,
        [c for c in trainer.gate_checks if c.split(":", 1)[0] in DROP_ASSETS],
        action="join the data drops for training",
    )
    raw, scrubbed, curated = (loaded[name] for name in DROP_ASSETS)
    # a batch at a time (#21.1): compact state across drops, never a whole drop in memory
    combined = join_curated(
        {key: curated[key]["path"] for key in registered},
        storage.curated / "curated_corpus.parquet",
        execution.stream_batch_records,
    )
    summary = _summary(registered, raw, scrubbed, curated, combined, storage, execution)
    summary["canaries"] = _planted_canaries(auditor, storage, summary["sha256"])
    summary["curated"]["canaries_planted"] = summary["canaries"]["planted"]
    write_json(storage.portable(summary), storage.curated / "training_corpus.json")
    context.add_output_metadata(
        {
            "drops": len(registered),
            "snapshot_sha256": summary["snapshot_sha256"],
            # records in = ingestion quarantine + filtered + trained on (integrity/counts.py)
            "records_in": summary["raw"]["records_in"],
            "ingestion_quarantine": summary["raw"]["quarantined"],
            "filtered": summary["curated"]["filtered"],
            "dropped_by_screening": summary["curated"]["dropped"],
            "screening_quarantine": summary["curated"]["quarantined"],
            "trained_on": summary["curated"]["kept"],
            # records of their own, trained on beside the curated corpus (ids, never secrets)
            "canaries_planted": summary["canaries"]["planted"],
            "cross_drop_removed": len(combined.removed),
            "cross_drop_removed_by_reason": counts_table(
                combined.removed_by_reason(), key="reason"
            ),
            "kept_by_drop": counts_table(
                {d["drop"]: d["kept"] for d in summary["drops"]}, key="drop"
            ),
            "sha256": summary["sha256"],
            "path": dg.MetadataValue.path(storage.stored(summary["path"])),
        }
    )
    return summary


def _planted_canaries(auditor: PrivacyAuditor, storage: CorpusStorage, corpus_sha256: str):
    """Plant (or reuse) the audit's canaries when no canary list exists; their summary."""
    from pipelines.steps.training.dp_lora import is_heldout

    path = storage.raw / PLANTED_FILE
    if Path(auditor.canaries_file).is_file() or auditor.plant_canaries == 0:
        return {"planted": 0, "canary_ids": [], "record_ids": [], "path": None}
    planted = planted_for(
        path, auditor.plant_canaries, corpus_sha256=corpus_sha256, heldout=is_heldout
    )
    return planted.summary(path)


def _by_drop(context: dg.AssetExecutionContext, name: str, value: dict | None) -> dict[str, dict]:
    # Dagster hands one partition over as the value itself (None when it is missing), several
    # as {partition: value} without the missing ones
    keys = context.asset_partition_keys_for_input(name)
    if len(keys) == 1:
        return {keys[0]: value} if value is not None else {}
    return dict(value or {})


def _require_current_drops(
    registered: list[str], loaded: dict[str, dict[str, dict]], storage: CorpusStorage
) -> None:
    """Refuse, naming the drops, unless every registered drop was read as it is now."""
    missing = {
        name: [k for k in registered if k not in by_drop] for name, by_drop in loaded.items()
    }
    missing = {name: keys for name, keys in missing.items() if keys}
    if missing:
        raise dg.Failure(
            "refusing to join the data drops: not materialized yet: "
            + "; ".join(f"{name} of {', '.join(keys)}" for name, keys in missing.items())
            + " (run the sovtune_drop job for them, or remove them from the landing zone)",
            allow_retries=False,
        )
    landing = {d.key: d.sha256 for d in scan_landing(storage.landing)}
    stale = [
        key
        for key in registered
        if landing.get(key) is None
        or any(loaded[name][key]["drop_sha256"] != landing[key] for name in loaded)
    ]
    if stale:
        raise dg.Failure(
            f"refusing to join the data drops: {', '.join(stale)} changed or left the landing "
            "zone since they were read; their new content must pass ingestion, scrubbing and "
            "screening first (the data_drops sensor requests those runs)",
            allow_retries=False,
        )


def _summary(
    registered, raw, scrubbed, curated, combined, storage: CorpusStorage, execution: DataEngine
) -> dict:
    """Write the joined raw and scrubbed zones (a batch at a time) and sum every drop's counts;
    each view keeps its stage's shape."""
    batch_rows = execution.stream_batch_records
    raw_path = storage.raw / "raw_corpus.parquet"
    raw_sha, _ = concat_parquet([raw[k]["path"] for k in registered], raw_path, batch_rows)
    scrubbed_path = storage.scrubbed / "scrubbed_corpus.parquet"
    scrubbed_sha, scrubbed_rows = concat_parquet(
        [scrubbed[k]["path"] for k in registered], scrubbed_path, batch_rows
    )
    curated_path = storage.curated / "curated_corpus.parquet"
    removed_path = storage.curated / "cross_drop_removed.parquet"
    removed = pd.DataFrame(combined.removed, columns=["drop", "id", "reason"])
    removed_by_drop = combined.removed_by_drop()
    filtered_by_reason = Counter(combined.removed_by_reason())
    by_screen: dict[str, Counter] = {}
    steward: Counter = Counter()
    for key in registered:
        filtered_by_reason.update(curated[key]["filtered_by_reason"])
        filtered_by_reason.update(raw[key].get("filtered_by_reason", {}))
        for screen, counts in curated[key].get("by_screen", {}).items():
            by_screen.setdefault(screen, Counter()).update(counts)
        # a drop's `unmatched` counts the ids of every other drop: not a sum across drops
        steward.update(
            {
                k: v
                for k, v in curated[key]["steward"].items()
                if k in ("approved", "rejected", "pending")
            }
        )
    drops = [
        {
            "drop": key,
            "name": raw[key]["drop_name"],
            "drop_sha256": raw[key]["drop_sha256"],
            "records_in": raw[key]["records_in"],
            "accepted": raw[key]["accepted"],
            # quarantined at ingestion, and by the scrub (scan_timeout, issue #16.3)
            "quarantined": raw[key]["quarantined"] + scrubbed[key].get("quarantined", 0),
            "filtered": curated[key]["filtered"]
            + removed_by_drop.get(key, 0)
            + raw[key].get("filtered", 0),  # erased on request, at ingestion
            "kept": curated[key]["kept"] - removed_by_drop.get(key, 0),
            "cross_drop_removed": removed_by_drop.get(key, 0),
        }
        for key in registered
    ]
    records_in = sum(d["records_in"] for d in drops)
    kept = combined.kept
    raw_view = {
        "path": str(raw_path),
        "sha256": raw_sha,
        "records_in": records_in,
        "accepted": sum(raw[k]["accepted"] for k in registered),
        "quarantined": sum(d["quarantined"] for d in drops),
        "filtered": sum(raw[k].get("filtered", 0) for k in registered),
        "quarantine_by_reason": _sum(
            [raw[k]["quarantine_by_reason"] for k in registered]
            + [scrubbed[k].get("quarantine_by_reason", {}) for k in registered]
        ),
        "languages": _sum(raw[k]["languages"] for k in registered),
        "sources": [{**s, "drop": k} for k in registered for s in raw[k]["sources"]],
    }
    scrubbed_view = {
        "path": str(scrubbed_path),
        "sha256": scrubbed_sha,
        "records": scrubbed_rows,
        "records_with_pii": sum(scrubbed[k]["records_with_pii"] for k in registered),
        "entity_counts": _sum(scrubbed[k]["entity_counts"] for k in registered),
    }
    curated_view = {
        "path": str(curated_path),
        "sha256": combined.sha256,
        "records_in": sum(curated[k]["records_in"] for k in registered),
        "kept": kept,
        "filtered": sum(d["filtered"] for d in drops),
        "filtered_by_reason": dict(sorted(filtered_by_reason.items())),
        "subjects": combined.subjects,
        "dropped": sum(curated[k]["dropped"] for k in registered) + len(combined.removed),
        "quarantined": sum(curated[k]["quarantined"] for k in registered),
        "steward": {**dict(sorted(steward.items())), "decisions_sha256": _decisions(curated)},
        "by_screen": {name: dict(c) for name, c in sorted(by_screen.items())},
        "trigger_clusters": [n for k in registered for n in curated[k]["trigger_clusters"]],
        "cross_drop_removed": len(combined.removed),
        "cross_drop_removed_by_reason": combined.removed_by_reason(),
        "cross_drop_removed_path": str(removed_path),
    }
    write_parquet(removed, removed_path)
    summary = {
        "drops": drops,
        "snapshot_sha256": snapshot_fingerprint({d["drop"]: d["drop_sha256"] for d in drops}),
        "raw": raw_view,
        "scrubbed": scrubbed_view,
        "curated": curated_view,
        "path": curated_view["path"],
        "sha256": curated_view["sha256"],
    }
    write_json(storage.portable(summary), storage.curated / "training_corpus.json")
    return summary


def _sum(tables) -> dict[str, int]:
    total: Counter = Counter()
    for table in tables:
        total.update(table)
    return dict(sorted(total.items()))


def _decisions(curated: dict[str, dict]) -> str | None:
    # every drop reads the same decisions file; differing fingerprints mean a re-run is due
    prints = {c["steward"].get("decisions_sha256") for c in curated.values()}
    return prints.pop() if len(prints) == 1 else None
