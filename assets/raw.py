"""Stage 1: landing files become the raw corpus and its quarantine (the raw zone)."""

from collections import Counter

import dagster as dg
import pandas as pd

from assets.metadata import OWNERS_STEWARDS, counts_table
from pipelines.steps.ingest import ingest_landing
from pipelines.steps.records import records_to_frame
from pipelines.steps.storage import write_json, write_parquet
from resources import CorpusStorage


@dg.asset(
    group_name="ingestion",
    kinds={"python", "parquet"},
    owners=OWNERS_STEWARDS,
    code_version="1",
)
def raw_corpus(context: dg.AssetExecutionContext, storage: CorpusStorage) -> dict:
    """Every well-formed record from the landing zone, normalized to one record type.

    Raw zone: holds personal data and never leaves this machine. Lines that cannot be accepted
    (bad JSON, invalid UTF-8, missing fields, unsupported language, ...) go to the quarantine
    with a reason code; records in = accepted + quarantined.
    """
    if not storage.landing.is_dir() or not any(storage.landing.iterdir()):
        raise dg.Failure(
            f"landing zone {storage.landing} is empty: drop JSONL, CSV or Parquet "
            "files there (or run `sovtune demo` to write the synthetic corpus)"
        )
    result = ingest_landing(
        storage.landing,
        languages=list(storage.languages),
        max_record_chars=storage.max_record_chars,
    )
    corpus_path = storage.raw / "raw_corpus.parquet"
    quarantine_path = storage.raw / "quarantine.parquet"
    corpus_sha = write_parquet(records_to_frame(result.accepted), corpus_path)
    quarantine = pd.DataFrame(
        [vars(q) for q in result.quarantined],
        columns=["id", "source_file", "source_line", "reason", "detail", "raw"],
    )
    quarantine_sha = write_parquet(quarantine, quarantine_path)
    sources = [vars(s) for s in result.sources]
    write_json(sources, storage.raw / "sources.json")
    by_reason = result.quarantine_counts()
    languages = dict(Counter(r.language for r in result.accepted))
    context.add_output_metadata(
        {
            "records_in": result.records_in,
            "accepted": len(result.accepted),
            "quarantined": len(result.quarantined),
            "quarantine_by_reason": counts_table(by_reason, key="reason"),
            "languages": counts_table(languages, key="language"),
            "source_files": len(sources),
            "sha256": corpus_sha,
            "path": dg.MetadataValue.path(str(corpus_path)),
        }
    )
    return {
        "path": str(corpus_path),
        "sha256": corpus_sha,
        "quarantine_path": str(quarantine_path),
        "quarantine_sha256": quarantine_sha,
        "records_in": result.records_in,
        "accepted": len(result.accepted),
        "quarantined": len(result.quarantined),
        "quarantine_by_reason": by_reason,
        "languages": languages,
        "sources": sources,
    }


@dg.asset(
    group_name="ingestion",
    kinds={"parquet"},
    owners=OWNERS_STEWARDS,
    code_version="1",
)
def raw_quarantine(context: dg.AssetExecutionContext, raw_corpus: dict) -> dict:
    """The quarantine: every landing line that was not accepted, with its reason code.

    Raw zone. A steward reviews it by id; the original line is kept for that review only.
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
            "path": dg.MetadataValue.path(raw_corpus["quarantine_path"]),
        }
    )
    return {
        "path": raw_corpus["quarantine_path"],
        "sha256": raw_corpus["quarantine_sha256"],
        "by_reason": raw_corpus["quarantine_by_reason"],
    }
