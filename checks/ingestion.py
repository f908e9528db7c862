"""Checks on the raw corpus: schema, conservation of records, non-empty."""

import dagster as dg
import pyarrow.parquet as pq

from assets.partitions import data_drops
from assets.raw import raw_corpus
from pipelines.steps.release import gates


def _result(gate: gates.GateResult, severity=dg.AssetCheckSeverity.ERROR) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        passed=gate.passed, severity=severity, description=gate.description, metadata=gate.metadata
    )


@dg.asset_check(asset=raw_corpus, blocking=True, partitions_def=data_drops)
def records_conserved(raw_corpus: dict) -> dg.AssetCheckResult:
    """Records in = accepted + quarantined + filtered (erased on request), and every physical
    line or row of every file is covered by one of them: no line is ever dropped silently (a
    reader that stops early, a CSV row that swallows the lines after it, fails this check)."""
    result = _result(
        gates.conservation(
            records_in=raw_corpus["records_in"],
            accepted=raw_corpus["accepted"],
            quarantined=raw_corpus["quarantined"],
            filtered=raw_corpus.get("filtered", 0),  # erased on request (`sovtune erase`)
        )
    )
    lines, accounted = raw_corpus.get("physical_lines"), raw_corpus.get("lines_accounted")
    if lines is None or lines == accounted:
        return result
    return dg.AssetCheckResult(
        passed=False,
        severity=dg.AssetCheckSeverity.ERROR,
        description=f"{lines} physical lines or rows were read but accepted and quarantined "
        f"records cover {accounted}: lines were lost",
        metadata={**(result.metadata or {}), "physical_lines": lines, "lines_accounted": accounted},
    )


@dg.asset_check(asset=raw_corpus, blocking=True, partitions_def=data_drops)
def raw_corpus_not_empty(raw_corpus: dict) -> dg.AssetCheckResult:
    """At least one record was accepted from the landing zone."""
    return _result(gates.non_empty(count=raw_corpus["accepted"], what="records accepted"))


@dg.asset_check(asset=raw_corpus, blocking=True, partitions_def=data_drops)
def raw_corpus_schema(raw_corpus: dict) -> dg.AssetCheckResult:
    """The raw corpus table has exactly the columns of the record type."""
    schema = pq.read_schema(raw_corpus["path"])
    return _result(gates.schema_matches({f.name: str(f.type) for f in schema}))
