"""Checks on the curated corpus: near-duplicate rate, trigger clusters, quarantine rate and the
Great Expectations suite. All four block training."""

import dagster as dg

from assets.curated import curated_corpus
from assets.partitions import data_drops
from pipelines.steps.config import CurationConfig
from pipelines.steps.integrity.curate import near_duplicate_rate, validate_curated_frame
from pipelines.steps.records import frame_to_records
from pipelines.steps.storage import read_parquet
from resources import CorpusStorage


def _cfg(storage: CorpusStorage) -> CurationConfig:
    return storage.curation


@dg.asset_check(asset=curated_corpus, blocking=True, partitions_def=data_drops)
def curated_expectations(curated_corpus: dict, storage: CorpusStorage) -> dg.AssetCheckResult:
    """Great Expectations suite: unique ids, non-empty text within the length bounds, no
    residual email or phone pattern and no invisible control characters. Only counts are kept,
    never an offending value."""
    suite = validate_curated_frame(read_parquet(curated_corpus["path"]), _cfg(storage))
    failed = [e.name for e in suite.expectations if not e.success]
    return dg.AssetCheckResult(
        passed=suite.success,
        severity=dg.AssetCheckSeverity.ERROR,
        description="all expectations met" if suite.success else f"failed: {', '.join(failed)}",
        metadata={e.name: e.unexpected_count for e in suite.expectations},
    )


@dg.asset_check(asset=curated_corpus, blocking=True, partitions_def=data_drops)
def near_duplicate_rate_bounded(
    curated_corpus: dict, storage: CorpusStorage
) -> dg.AssetCheckResult:
    """Near duplicates left in the curated corpus (re-measured on it, steward approvals
    included) stay under `curation.max_near_duplicate_rate`."""
    cfg = _cfg(storage)
    rate = near_duplicate_rate(frame_to_records(read_parquet(curated_corpus["path"])), cfg)
    passed = rate <= cfg.max_near_duplicate_rate
    return dg.AssetCheckResult(
        passed=passed,
        severity=dg.AssetCheckSeverity.ERROR,
        description=f"near-duplicate rate {rate:.4f} "
        f"{'<=' if passed else '>'} bound {cfg.max_near_duplicate_rate}",
        metadata={"near_duplicate_rate": rate, "bound": cfg.max_near_duplicate_rate},
    )


@dg.asset_check(asset=curated_corpus, blocking=True, partitions_def=data_drops)
def no_kept_trigger_cluster(curated_corpus: dict) -> dg.AssetCheckResult:
    """No kept record shares its response with a flagged backdoor-trigger cluster (a steward's
    approval does not override this: the cluster must be resolved, e.g. rejected)."""
    screening = read_parquet(curated_corpus["screening_path"])
    leaked = int((screening["kept"] & screening["in_trigger_cluster"]).sum())
    return dg.AssetCheckResult(
        passed=leaked == 0,
        severity=dg.AssetCheckSeverity.ERROR,
        description=f"{leaked} kept record(s) in a flagged trigger cluster",
        metadata={
            "kept_in_trigger_cluster": leaked,
            "trigger_clusters": len(curated_corpus["trigger_clusters"]),
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
        + ("" if passed else ": investigate the landing export before training"),
        metadata={
            "quarantine_rate": rate,
            "bound": bound,
            "quarantined": curated_corpus["quarantined"],
        },
    )
