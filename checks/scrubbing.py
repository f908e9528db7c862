"""Checks on the scrubbed corpus: a re-scan finds no PII."""

import dagster as dg

from assets.scrubbed import scrubbed_corpus
from checks.ingestion import _result
from pipelines.steps import gates
from pipelines.steps.records import frame_to_records
from pipelines.steps.storage import read_parquet
from resources import PIIEngine


@dg.asset_check(asset=scrubbed_corpus, blocking=True)
def no_residual_pii(scrubbed_corpus: dict, pii: PIIEngine) -> dg.AssetCheckResult:
    """A second Presidio pass over the scrubbed corpus finds nothing above the threshold."""
    records = frame_to_records(read_parquet(scrubbed_corpus["path"]))
    gate = gates.no_residual_pii(pii.residual(records))
    return _result(gate)
