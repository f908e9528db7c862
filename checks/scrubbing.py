"""Checks on the scrubbed corpus: a stricter re-scan finds no PII."""

from collections import Counter

import dagster as dg

from assets.metadata import counts_table
from assets.partitions import data_drops
from assets.scrubbed import scrubbed_corpus
from pipelines.steps.records import frame_to_records
from pipelines.steps.release import gates
from pipelines.steps.storage import iter_parquet_frames
from resources import DataEngine, PIIEngine


@dg.asset_check(asset=scrubbed_corpus, blocking=True, partitions_def=data_drops)
def no_residual_pii(
    scrubbed_corpus: dict, pii: PIIEngine, execution: DataEngine
) -> dg.AssetCheckResult:
    """A second, independent pass over the scrubbed corpus with every language pack, at the
    lower `pii.residual_score_threshold`, finds nothing outside the spans the scrubber wrote
    (counts per entity type, never values). Read `execution.stream_batch_records` records at a
    time: a record's findings depend on no other record, so the batches' counts add up to the
    whole corpus's. Under `execution.engine: ray` the re-scan runs on the cluster, as the
    scrub's scans do."""
    found: Counter[str] = Counter()
    for frame in iter_parquet_frames(scrubbed_corpus["path"], execution.stream_batch_records):
        found.update(execution.residual(pii, frame_to_records(frame)))
    residual = dict(sorted(found.items()))
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
