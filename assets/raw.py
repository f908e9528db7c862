"""Stage 1: landing files become the raw corpus and its quarantine (the raw zone)."""

from collections import Counter

import dagster as dg
import pandas as pd

from assets.metadata import OWNERS_STEWARDS, counts_table
from assets.partitions import data_drops
from pipelines.steps.ingest.drops import DropError, drop_files, drop_fingerprint, find_drop
from pipelines.steps.ingest.erasure import ERASED_REASON, Exclusions, filter_erased
from pipelines.steps.ingest.landing import ingest_files
from pipelines.steps.privacy.identifiers import (
    IDENTIFIER_MAP,
    IdentifierMap,
    pseudonymize_quarantine,
    pseudonymize_records,
)
from pipelines.steps.records import records_to_frame
from pipelines.steps.storage import write_json, write_parquet
from resources import CorpusStorage, PIIEngine

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
def raw_corpus(context: dg.AssetExecutionContext, storage: CorpusStorage, pii: PIIEngine) -> dict:
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
    result = ingest_files(
        drop_files(drop.path),
        landing=storage.landing,
        languages=list(storage.languages),
        max_record_chars=storage.max_record_chars,
        limits=storage.ingest_limits,
    )
    if drop_fingerprint(drop.path) != drop.sha256:
        raise dg.Failure(
            f"drop {key!r} changed while it was read: the data_drops sensor "
            "requests a new run for its new content"
        )
    # erased on request: filtered before a pseudonym is (re)assigned or anything is written
    accepted, quarantined, erased = filter_erased(
        result.accepted, result.quarantined, Exclusions(storage.raw, pii.pseudonym_key())
    )
    idmap = IdentifierMap(storage.raw / IDENTIFIER_MAP, pii.pseudonym_key())
    accepted = pseudonymize_records(accepted, idmap, drop=key)
    quarantined = pseudonymize_quarantine(quarantined, idmap, drop=key)
    files = idmap.pseudonyms(
        "source_file", [s.name for s in result.sources] + [drop.name], drop=key
    )
    out = storage.drop_dir(storage.raw, key)
    corpus_path = out / "raw_corpus.parquet"
    quarantine_path = out / "quarantine.parquet"
    corpus_sha = write_parquet(records_to_frame(accepted), corpus_path)
    quarantine = pd.DataFrame(
        [vars(q) for q in quarantined],
        columns=["id", "source_file", "source_line", "reason", "detail", "raw"],
    )
    quarantine_sha = write_parquet(quarantine, quarantine_path)
    sources = [{**vars(s), "name": files[s.name]} for s in result.sources]
    write_json(sources, out / "sources.json")
    by_reason = dict(sorted(Counter(q.reason for q in quarantined).items()))
    filtered_by_reason = {ERASED_REASON: erased} if erased else {}
    languages = dict(Counter(r.language for r in accepted))
    context.add_output_metadata(
        {
            "drop": key,
            "drop_sha256": drop.sha256,
            "records_in": result.records_in,
            "physical_lines": result.physical_lines,
            "lines_accounted": result.lines_accounted,
            "accepted": len(accepted),
            "ingestion_quarantine": len(quarantined),
            "filtered_erased": erased,
            "pseudonym_key_id": idmap.key_id,
            "refused_entries": sum(by_reason.get(r, 0) for r in REFUSED_ENTRY_REASONS),
            "quarantine_by_reason": counts_table(by_reason, key="reason"),
            "languages": counts_table(languages, key="language"),
            "source_files": len(sources),
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
        "accepted": len(accepted),
        "quarantined": len(quarantined),
        "quarantine_by_reason": by_reason,
        "filtered": erased,
        "filtered_by_reason": filtered_by_reason,
        "languages": languages,
        "sources": sources,
    }


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
    quarantine = pd.read_parquet(raw_corpus["quarantine_path"])
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
