"""Stage 1: landing files become the raw corpus and its quarantine (the raw zone)."""

from collections import Counter

import dagster as dg
import pandas as pd

from assets.metadata import OWNERS_STEWARDS, counts_table
from assets.partitions import data_drops
from pipelines.steps.ingest.drops import DropError, drop_files, drop_fingerprint, find_drop
from pipelines.steps.ingest.erasure import ERASED_REASON, Exclusions, filter_erased
from pipelines.steps.ingest.landing import IngestResult, SourceFile, iter_ingested
from pipelines.steps.privacy.identifiers import (
    IDENTIFIER_MAP,
    IdentifierMap,
    pseudonymize_quarantine,
    pseudonymize_records,
)
from pipelines.steps.records import QuarantinedRecord, Record, records_to_frame
from pipelines.steps.storage import (
    RECORD_SCHEMA,
    ParquetStream,
    batched,
    frame_schema,
    write_json,
)
from resources import CorpusStorage, DataEngine, PIIEngine

REFUSED_ENTRY_REASONS = (
    "symlink_refused",
    "special_file_refused",
    "hardlink_refused",
    "file_too_large",
)


@dg.asset(
    group_name="ingestion",
    kinds={"python", "parquet"},
    owners=OWNERS_STEWARDS,
    code_version="5",
    partitions_def=data_drops,
)
def raw_corpus(
    context: dg.AssetExecutionContext,
    storage: CorpusStorage,
    pii: PIIEngine,
    execution: DataEngine,
) -> dict:
    """Every well-formed record of one data drop, normalized to one record type.

    A drop is one top-level file or folder of the landing zone (the partition key). Raw zone:
    holds personal data and never leaves this machine. Lines that cannot be accepted (bad JSON,
    invalid UTF-8, missing fields, unsupported language, ...) go to the drop's quarantine with a
    reason code; records in = accepted + quarantined + filtered (a record erased on request,
    `sovtune erase`, is filtered here with reason `erased`: its keyed hashes are on
    `raw/erasure/exclusions.json`), and every physical line or row is covered by one of them.
    Symbolic links, special files and hard-linked files are never read: they are quarantined
    as `symlink_refused` / `special_file_refused` / `hardlink_refused` under a hash of their
    name, and files over an
    `ingest.limits` setting as `file_too_large`. The drop's sha256 is recorded and carried
    downstream, so training refuses a drop that changed after it was read.

    Ids, subjects, source labels and file names are replaced by keyed pseudonyms here
    (`rec-…`, `subj-…`, `src-…`, `file-….jsonl`; the map stays in `raw/identifiers.sqlite`):
    nothing this asset writes, returns or reports carries them as they were dropped.
    """
    key = context.partition_key
    try:
        drop = find_drop(storage.landing, key)
    except DropError as exc:
        raise dg.Failure(str(exc), allow_retries=False) from None
    exclusions = Exclusions(storage.raw, pii.pseudonym_key())
    idmap = IdentifierMap(storage.raw / IDENTIFIER_MAP, pii.pseudonym_key())
    out = storage.drop_dir(storage.raw, key)
    corpus_path = out / "raw_corpus.parquet"
    quarantine_path = out / "quarantine.parquet"
    sources: list[SourceFile] = []
    stream = iter_ingested(
        drop_files(drop.path),
        landing=storage.landing,
        languages=list(storage.languages),
        max_record_chars=storage.max_record_chars,
        limits=storage.ingest_limits,
        sources=sources,
    )
    accepted = erased = 0
    by_reason: Counter[str] = Counter()
    languages: Counter[str] = Counter()
    # A batch at a time (#21): read, filtered, pseudonymized and written, the same rows in the
    # same order as the whole drop at once; the files are renamed into place at the end.
    with (
        ParquetStream(corpus_path, RECORD_SCHEMA, empty=records_to_frame([])) as corpus,
        ParquetStream(quarantine_path, QUARANTINE_SCHEMA, empty=quarantine_frame([])) as quarantine,
    ):
        for batch in batched(stream, execution.stream_batch_records):
            # erased on request: filtered before a pseudonym is (re)assigned or anything written
            records, quarantined, erased_here = filter_erased(
                [r for r in batch if isinstance(r, Record)],
                [q for q in batch if not isinstance(q, Record)],
                exclusions,
            )
            records = pseudonymize_records(records, idmap, drop=key)
            quarantined = pseudonymize_quarantine(quarantined, idmap, drop=key)
            corpus.write(records_to_frame(records))
            quarantine.write(quarantine_frame(quarantined))
            accepted += len(records)
            erased += erased_here
            by_reason.update(q.reason for q in quarantined)
            languages.update(r.language for r in records)
        if drop_fingerprint(drop.path) != drop.sha256:
            raise dg.Failure(
                f"drop {key!r} changed while it was read: the data_drops sensor "
                "requests a new run for its new content"
            )
        corpus_sha = corpus.commit()
        quarantine_sha = quarantine.commit()
    result = IngestResult(sources=sources)
    files = idmap.pseudonyms("source_file", [s.name for s in sources] + [drop.name], drop=key)
    sources_out = [{**vars(s), "name": files[s.name]} for s in sources]
    write_json(sources_out, out / "sources.json")
    quarantined_n = sum(by_reason.values())
    by_reason = dict(sorted(by_reason.items()))
    filtered_by_reason = {ERASED_REASON: erased} if erased else {}
    languages = dict(languages)
    context.add_output_metadata(
        {
            "drop": key,
            "drop_sha256": drop.sha256,
            "records_in": result.records_in,
            "physical_lines": result.physical_lines,
            "lines_accounted": result.lines_accounted,
            "accepted": accepted,
            "ingestion_quarantine": quarantined_n,
            "filtered_erased": erased,
            "pseudonym_key_id": idmap.key_id,
            "refused_entries": sum(by_reason.get(r, 0) for r in REFUSED_ENTRY_REASONS),
            "quarantine_by_reason": counts_table(by_reason, key="reason"),
            "languages": counts_table(languages, key="language"),
            "source_files": len(sources_out),
            "sha256": corpus_sha,
            "path": dg.MetadataValue.path(storage.stored(corpus_path)),
        }
    )
    return {
        "drop": key,
        "drop_name": files[drop.name],
        "drop_sha256": drop.sha256,
        "path": str(corpus_path),
        "sha256": corpus_sha,
        "quarantine_path": str(quarantine_path),
        "quarantine_sha256": quarantine_sha,
        "records_in": result.records_in,
        "physical_lines": result.physical_lines,
        "lines_accounted": result.lines_accounted,
        "accepted": accepted,
        "quarantined": quarantined_n,
        "quarantine_by_reason": by_reason,
        "filtered": erased,
        "filtered_by_reason": filtered_by_reason,
        "languages": languages,
        "sources": sources_out,
    }


def quarantine_frame(quarantined: list[QuarantinedRecord]) -> pd.DataFrame:
    """The rows of a drop's `quarantine.parquet`."""
    return pd.DataFrame([vars(q) for q in quarantined], columns=QUARANTINE_COLUMNS)


QUARANTINE_COLUMNS = ["id", "source_file", "source_line", "reason", "detail", "raw"]
QUARANTINE_SCHEMA = frame_schema(
    quarantine_frame([QuarantinedRecord("id", "file", 1, "reason", "detail", "raw")])
)
"""The columns of `quarantine.parquet` as `write_parquet` writes them."""


@dg.asset(
    group_name="ingestion",
    kinds={"parquet"},
    owners=OWNERS_STEWARDS,
    code_version="2",
    partitions_def=data_drops,
)
def raw_quarantine(
    context: dg.AssetExecutionContext, raw_corpus: dict, storage: CorpusStorage
) -> dict:
    """The quarantine of one drop: every line that was not accepted, with its reason code.

    Raw zone. A steward reviews it by pseudonymous id (`rec-…`, resolved with `sovtune ids
    resolve`); the original line is kept for that review only.
    """
    # the review's columns only: `raw` (the lines as dropped) is never loaded here
    quarantine = pd.read_parquet(
        raw_corpus["quarantine_path"], columns=["id", "source_file", "reason"]
    )
    by_file = dict(Counter(quarantine["source_file"])) if len(quarantine) else {}
    context.add_output_metadata(
        {
            "quarantined": len(quarantine),
            "by_reason": counts_table(raw_corpus["quarantine_by_reason"], key="reason"),
            "by_file": counts_table(by_file, key="file"),
            "quarantine_ids": dg.MetadataValue.md(
                "\n".join(
                    f"- `{i}` ({r})"
                    for i, r in zip(quarantine["id"], quarantine["reason"], strict=True)
                )
                or "none"
            ),
            "path": dg.MetadataValue.path(storage.stored(raw_corpus["quarantine_path"])),
        }
    )
    return {
        "path": raw_corpus["quarantine_path"],
        "sha256": raw_corpus["quarantine_sha256"],
        "by_reason": raw_corpus["quarantine_by_reason"],
    }
