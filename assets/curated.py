"""Stage 3: integrity screening into the curated, trainable corpus."""

import dagster as dg
import pandas as pd

from assets.metadata import OWNERS_STEWARDS, counts_table
from pipelines.steps.config import CurationConfig
from pipelines.steps.integrity import filtered_counts, screen_records
from pipelines.steps.records import frame_to_records, records_to_frame
from pipelines.steps.storage import read_parquet, write_parquet
from resources import CorpusStorage


@dg.asset(
    group_name="screening",
    kinds={"python", "parquet"},
    owners=OWNERS_STEWARDS,
    code_version="1",
)
def curated_corpus(
    context: dg.AssetExecutionContext, scrubbed_corpus: dict, storage: CorpusStorage
) -> dict:
    """The scrubbed records that passed integrity screening: what the model is trained on.

    Exact duplicates (after normalization) keep their first occurrence; records outside the
    length bounds are filtered. Every filtered record keeps its id and reason. Canaries stay in:
    they measure memorization in the privacy audit.
    """
    records = frame_to_records(read_parquet(scrubbed_corpus["path"]))
    cfg = CurationConfig(min_chars=storage.min_chars, max_chars=storage.max_chars)
    result = screen_records(records, cfg)
    path = storage.curated / "curated_corpus.parquet"
    sha = write_parquet(records_to_frame(result.kept), path)
    filtered = pd.DataFrame(
        [{"id": f.id, "reason": f.reason, "detail": f.detail} for f in result.filtered],
        columns=["id", "reason", "detail"],
    )
    write_parquet(filtered, storage.curated / "filtered.parquet")
    by_reason = filtered_counts(result.filtered)
    context.add_output_metadata(
        {
            "records_in": len(records),
            "kept": len(result.kept),
            "filtered": len(result.filtered),
            "filtered_by_reason": counts_table(by_reason, key="reason"),
            "sha256": sha,
            "path": dg.MetadataValue.path(str(path)),
        }
    )
    return {
        "path": str(path),
        "sha256": sha,
        "records_in": len(records),
        "kept": len(result.kept),
        "filtered": len(result.filtered),
        "filtered_by_reason": by_reason,
        "subjects": len({r.subject for r in result.kept if r.subject}),
    }
