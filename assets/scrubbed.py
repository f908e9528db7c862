"""Stage 2: personal data replaced by realistic keyed surrogates, secrets redacted."""

from collections import Counter

import dagster as dg
import pandas as pd

from assets.metadata import OWNERS_PRIVACY, counts_table
from assets.partitions import data_drops
from pipelines.steps.memory import release_freed_memory
from pipelines.steps.privacy.pii import SCAN_TIMEOUT
from pipelines.steps.records import Record, frame_to_records, records_to_frame
from pipelines.steps.storage import (
    RECORD_SCHEMA,
    SAMPLE_RECORD,
    ParquetStream,
    frame_schema,
    iter_parquet_frames,
)
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
    raw_dir = storage.drop_dir(storage.raw, raw_corpus["drop"])
    path = storage.drop_dir(storage.scrubbed, raw_corpus["drop"]) / "scrubbed_corpus.parquet"
    detail = f"scan over pii.scan_budget_seconds ({pii.scan_budget_seconds} s)"
    batches = (
        frame_to_records(frame)
        for frame in iter_parquet_frames(raw_corpus["path"], execution.stream_batch_records)
    )
    records_out = records_with_pii = late = 0
    entity_counts: Counter[str] = Counter()
    # A batch at a time (#21): read, scrubbed and written, the same rows as a whole drop at once.
    with (
        ParquetStream(
            raw_dir / "scan_quarantine.parquet", SCAN_QUARANTINE_SCHEMA, empty=_late_frame([], "")
        ) as quarantine,
        ParquetStream(path, RECORD_SCHEMA, empty=records_to_frame([])) as scrubbed,
    ):
        for records, result in execution.scrub_batches(pii, batches):
            timed_out = set(result.timed_out)
            quarantine.write(_late_frame([r for r in records if r.id in timed_out], detail))
            scrubbed.write(records_to_frame(result.records))
            records_out += len(result.records)
            records_with_pii += result.records_with_pii
            entity_counts.update(result.entity_counts)
            late += len(timed_out)
        quarantine.commit()
        sha = scrubbed.commit()
    entity_counts = Counter(dict(sorted(entity_counts.items())))
    # Screening runs next in this process under `sovtune run`: what the scan freed (spaCy's
    # docs, each batch's frames and findings) goes back to the system first.
    release_freed_memory()
    context.add_output_metadata(
        {
            "drop": raw_corpus["drop"],
            "drop_sha256": raw_corpus["drop_sha256"],
            "engine": execution.engine,
            "records": records_out,
            "records_with_pii": records_with_pii,
            "quarantined_scan_timeout": late,
            "pseudonym_key_id": pii.pseudonym_key_id(),
            "findings_replaced": sum(entity_counts.values()),
            "pii_by_entity_type": counts_table(
                dict(entity_counts), key="entity type", value="replaced"
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
        "records": records_out,
        "records_with_pii": records_with_pii,
        "entity_counts": dict(entity_counts),
        "quarantined": late,
        "quarantine_by_reason": {SCAN_TIMEOUT: late} if late else {},
    }


def _late_frame(records: list[Record], detail: str) -> pd.DataFrame:
    """`scan_quarantine.parquet`'s rows: the records whose scan ran out of time, as read."""
    frame = records_to_frame(records)
    frame["reason"] = SCAN_TIMEOUT
    frame["detail"] = detail
    return frame


SCAN_QUARANTINE_SCHEMA = frame_schema(_late_frame([SAMPLE_RECORD], "detail"))
"""The columns of `scan_quarantine.parquet` as `write_parquet` writes them."""
