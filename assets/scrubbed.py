"""Stage 2: personal data replaced by realistic keyed surrogates, secrets redacted."""

import dagster as dg

from assets.metadata import OWNERS_PRIVACY, counts_table
from assets.partitions import data_drops
from pipelines.steps.privacy.pii import SCAN_TIMEOUT
from pipelines.steps.records import frame_to_records, records_to_frame
from pipelines.steps.storage import read_parquet, write_parquet
from resources import CorpusStorage, DataEngine, PIIEngine


@dg.asset(
    group_name="scrubbing",
    kinds={"presidio", "spacy", "parquet"},
    owners=OWNERS_PRIVACY,
    code_version="2",
    partitions_def=data_drops,
)
def scrubbed_corpus(
    context: dg.AssetExecutionContext,
    raw_corpus: dict,
    storage: CorpusStorage,
    pii: PIIEngine,
    execution: DataEngine,
) -> dict:
    """One drop's accepted records with every PII finding replaced by a realistic surrogate.

    Presidio's analyzer scans every message with its language's pack (spaCy NER and our English
    recognizers, or the Chinese pack; secrets in both); each finding is replaced by the operator
    its type has in `pii.operators`: by default a realistic keyed surrogate of the same kind and
    format (a fake name, an address on a reserved domain, a 555-01xx number), seeded by an HMAC
    of the value under the local pseudonym key, so the same person gets the same surrogate
    everywhere without the value being stored; `<TYPE>` placeholders where configured; secrets
    are always `[REDACTED]`. Every replacement's span is kept in the message (offsets and type).
    A record whose scan runs past `pii.scan_budget_seconds` is quarantined as `scan_timeout`
    into the raw zone (`scan_quarantine.parquet`), never passed on unscanned. Under
    `execution.engine: ray` the scans run on the Ray cluster; the output is the same.
    """
    records = frame_to_records(read_parquet(raw_corpus["path"]))
    result = execution.scrub(pii, records)
    late = set(result.timed_out)
    quarantine = records_to_frame([r for r in records if r.id in late])
    quarantine["reason"] = SCAN_TIMEOUT
    quarantine["detail"] = f"scan over pii.scan_budget_seconds ({pii.scan_budget_seconds} s)"
    raw_dir = storage.drop_dir(storage.raw, raw_corpus["drop"])
    write_parquet(quarantine, raw_dir / "scan_quarantine.parquet")
    path = storage.drop_dir(storage.scrubbed, raw_corpus["drop"]) / "scrubbed_corpus.parquet"
    sha = write_parquet(records_to_frame(result.records), path)
    context.add_output_metadata(
        {
            "drop": raw_corpus["drop"],
            "drop_sha256": raw_corpus["drop_sha256"],
            "engine": execution.engine,
            "records": len(result.records),
            "records_with_pii": result.records_with_pii,
            "quarantined_scan_timeout": len(late),
            "pseudonym_key_id": pii.pseudonym_key_id(),
            "findings_replaced": sum(result.entity_counts.values()),
            "pii_by_entity_type": counts_table(
                result.entity_counts, key="entity type", value="replaced"
            ),
            "sha256": sha,
            "path": dg.MetadataValue.path(storage.stored(path)),
        }
    )
    return {
        "drop": raw_corpus["drop"],
        "drop_sha256": raw_corpus["drop_sha256"],
        "path": str(path),
        "sha256": sha,
        "records": len(result.records),
        "records_with_pii": result.records_with_pii,
        "entity_counts": dict(sorted(result.entity_counts.items())),
        "quarantined": len(late),
        "quarantine_by_reason": {SCAN_TIMEOUT: len(late)} if late else {},
    }
