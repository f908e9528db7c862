"""Checks on the curated corpus: near-duplicate rate, trigger clusters, quarantine rate and the
Great Expectations suite. All four block training. A failing one names the offending record ids
(ids only, never text) and what a steward does about it."""

import dagster as dg

from assets.curated import curated_corpus
from assets.partitions import data_drops
from pipelines.steps.config import CurationConfig
from pipelines.steps.integrity.batches import read_packed, validate_curated_file
from pipelines.steps.integrity.curate import near_duplicate_rate
from pipelines.steps.integrity.offenders import (
    kept_in_trigger_cluster,
    name_ids,
    near_duplicate_extras,
)
from pipelines.steps.storage import read_parquet
from resources import CorpusStorage, DataEngine

# Where a steward decides: the review desk, or the decisions file it writes.
DECIDE = "in the review desk (make desk, http://127.0.0.1:3100) or curated/steward_decisions.csv"
MAX_IDS = 50  # ids kept in a check's metadata


def _cfg(storage: CorpusStorage) -> CurationConfig:
    return storage.curation


@dg.asset_check(asset=curated_corpus, blocking=True, partitions_def=data_drops)
def curated_expectations(
    curated_corpus: dict, storage: CorpusStorage, execution: DataEngine
) -> dg.AssetCheckResult:
    """Great Expectations suite: unique ids, non-empty text within the length bounds, no
    residual email or phone pattern and no invisible control characters. Only counts are kept,
    never an offending value. Read `execution.stream_batch_records` records at a time."""
    suite, offenders = validate_curated_file(
        curated_corpus["path"], _cfg(storage), execution.stream_batch_records
    )
    failed = [e.name for e in suite.expectations if not e.success]
    metadata: dict = {e.name: e.unexpected_count for e in suite.expectations}
    if suite.success:
        return dg.AssetCheckResult(
            passed=True,
            severity=dg.AssetCheckSeverity.ERROR,
            description="all expectations met",
            metadata=metadata,
        )
    ids = sorted({i for name in failed for i in offenders.get(name, [])})
    metadata["offending_ids"] = dg.MetadataValue.json(ids[:MAX_IDS])
    return dg.AssetCheckResult(
        passed=False,
        severity=dg.AssetCheckSeverity.ERROR,
        description=f"failed: {', '.join(failed)}; records {name_ids(ids)}. Fix: reject them "
        f"{DECIDE} (a steward approved them), or fix the export and drop it again",
        metadata=metadata,
    )


@dg.asset_check(asset=curated_corpus, blocking=True, partitions_def=data_drops)
def near_duplicate_rate_bounded(
    curated_corpus: dict, storage: CorpusStorage, execution: DataEngine
) -> dg.AssetCheckResult:
    """Near duplicates left in the curated corpus (re-measured on it, steward approvals
    included) stay under `curation.max_near_duplicate_rate`."""
    cfg = _cfg(storage)
    # packed, read a batch at a time (#21.1): about the size of their text, as screening reads
    records = read_packed(curated_corpus["path"], execution.stream_batch_records)
    rate = near_duplicate_rate(records, cfg)
    passed = rate <= cfg.max_near_duplicate_rate
    metadata: dict = {"near_duplicate_rate": rate, "bound": cfg.max_near_duplicate_rate}
    description = (
        f"near-duplicate rate {rate:.4f} {'<=' if passed else '>'} bound "
        f"{cfg.max_near_duplicate_rate}"
    )
    if not passed:
        ids = near_duplicate_extras(records, cfg)
        metadata["offending_ids"] = dg.MetadataValue.json(ids[:MAX_IDS])
        description += (
            f"; near copies kept: {name_ids(ids)}. Fix: reject approved near duplicates "
            f"{DECIDE} (their representatives stay)"
        )
    return dg.AssetCheckResult(
        passed=passed,
        severity=dg.AssetCheckSeverity.ERROR,
        description=description,
        metadata=metadata,
    )


@dg.asset_check(asset=curated_corpus, blocking=True, partitions_def=data_drops)
def no_kept_trigger_cluster(curated_corpus: dict) -> dg.AssetCheckResult:
    """No kept record shares its response with a flagged backdoor-trigger cluster (a steward's
    approval does not override this: the cluster must be resolved, e.g. rejected)."""
    screening = read_parquet(curated_corpus["screening_path"])
    leaked = kept_in_trigger_cluster(screening)
    description = f"{len(leaked)} kept record(s) in a flagged trigger cluster"
    if leaked:
        description += (
            f": {name_ids(leaked)}. Fix: reject them with the rest of their cluster {DECIDE}; "
            "an approval never overrides a flagged cluster"
        )
    return dg.AssetCheckResult(
        passed=not leaked,
        severity=dg.AssetCheckSeverity.ERROR,
        description=description,
        metadata={
            "kept_in_trigger_cluster": len(leaked),
            "trigger_clusters": len(curated_corpus["trigger_clusters"]),
            "offending_ids": dg.MetadataValue.json(leaked[:MAX_IDS]),
        },
    )


@dg.asset_check(asset=curated_corpus, blocking=True, partitions_def=data_drops)
def quarantine_rate_bounded(curated_corpus: dict, storage: CorpusStorage) -> dg.AssetCheckResult:
    """The share of records quarantined stays under `curation.max_quarantine_rate`: a sudden
    rise is itself an alarm (a poisoned or broken export), so it fails loudly."""
    bound = _cfg(storage).max_quarantine_rate
    rate = float(curated_corpus["quarantine_rate"])
    passed = rate <= bound
    return dg.AssetCheckResult(
        passed=passed,
        severity=dg.AssetCheckSeverity.ERROR,
        description=f"quarantine rate {rate:.4f} {'<=' if passed else '>'} bound {bound}"
        + (
            ""
            if passed
            else ": investigate the landing export before training (the queue is in the "
            "review desk, make desk); raise curation.max_quarantine_rate only once the drop is "
            "understood"
        ),
        metadata={
            "quarantine_rate": rate,
            "bound": bound,
            "screening_quarantine": curated_corpus["quarantined"],
        },
    )
