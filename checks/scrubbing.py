"""Checks on the scrubbed corpus: a stricter re-scan finds no PII."""

import dagster as dg

from assets.metadata import counts_table
from assets.partitions import data_drops
from assets.scrubbed import scrubbed_corpus
from pipelines.steps.records import frame_to_records
from pipelines.steps.release import gates
from pipelines.steps.storage import read_parquet
from resources import PIIEngine


@dg.asset_check(asset=scrubbed_corpus, blocking=True, partitions_def=data_drops)
def no_residual_pii(scrubbed_corpus: dict, pii: PIIEngine) -> dg.AssetCheckResult:
    """A second, independent pass over the scrubbed corpus with every language pack, at the
    lower `pii.residual_score_threshold`, finds nothing outside the spans the scrubber wrote
    (counts per entity type, never values)."""
    records = frame_to_records(read_parquet(scrubbed_corpus["path"]))
    residual = pii.residual(records)
    gate = gates.no_residual_pii(residual)
    return dg.AssetCheckResult(
        passed=gate.passed,
        severity=dg.AssetCheckSeverity.ERROR,
        description=gate.description,
        metadata={
            **gate.metadata,
            "score_threshold": min(pii.score_threshold, pii.residual_score_threshold),
            "residual_by_entity_type": counts_table(residual, key="entity type", value="findings"),
        },
    )
