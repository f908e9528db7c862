"""Checks on the curated corpus: the Great Expectations suite."""

import dagster as dg

from assets.curated import curated_corpus
from pipelines.steps.config import CurationConfig
from pipelines.steps.integrity import validate_curated_frame
from pipelines.steps.storage import read_parquet
from resources import CorpusStorage


@dg.asset_check(asset=curated_corpus, blocking=True)
def curated_expectations(curated_corpus: dict, storage: CorpusStorage) -> dg.AssetCheckResult:
    """Great Expectations suite: unique ids, non-empty text within the length bounds, and no
    residual email or phone pattern. Only counts are kept, never an offending value."""
    cfg = CurationConfig(min_chars=storage.min_chars, max_chars=storage.max_chars)
    suite = validate_curated_frame(read_parquet(curated_corpus["path"]), cfg)
    failed = [e.name for e in suite.expectations if not e.success]
    return dg.AssetCheckResult(
        passed=suite.success,
        severity=dg.AssetCheckSeverity.ERROR,
        description="all expectations met" if suite.success else f"failed: {', '.join(failed)}",
        metadata={e.name: e.unexpected_count for e in suite.expectations},
    )
