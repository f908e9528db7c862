"""Which records make a curated-corpus gate fail: ids only, for a check to name with the fix.

A failing check that only counts leaves a steward joining parquet files to find the records.
These helpers return the offending record ids (never text) for the blocking checks of
`checks/curation.py`; the check names them, a few at a time, beside what to do.
"""

import re

import pandas as pd

from pipelines.steps.config import CurationConfig
from pipelines.steps.integrity.curate import (
    HIDDEN_CHARACTER_REGEX,
    RESIDUAL_EMAIL_REGEX,
    RESIDUAL_PHONE_REGEX,
)
from pipelines.steps.integrity.screens.dedup import score_near_duplicates
from pipelines.steps.records import Record

# The expectation names of `validate_curated_frame` -> pattern an offending text matches.
_PATTERNS = {
    "no_residual_email": RESIDUAL_EMAIL_REGEX,
    "no_residual_phone": RESIDUAL_PHONE_REGEX,
    "no_hidden_characters": HIDDEN_CHARACTER_REGEX,
}


def kept_in_trigger_cluster(screening: pd.DataFrame) -> list[str]:
    """Ids kept for training although in a flagged trigger cluster (`screening.parquet`)."""
    return sorted(screening.loc[screening["kept"] & screening["in_trigger_cluster"], "id"])


def expectation_offenders(frame: pd.DataFrame, cfg: CurationConfig) -> dict[str, list[str]]:
    """Per expectation of the curated suite, the ids of the records that break it."""
    text = frame["text"]
    lengths = text.fillna("").str.len()
    out = {
        "ids_unique": sorted(set(frame.loc[frame["id"].duplicated(keep=False), "id"])),
        "text_not_null": sorted(frame.loc[text.isna(), "id"]),
        "text_length_in_range": sorted(
            frame.loc[text.notna() & ((lengths < cfg.min_chars) | (lengths > cfg.max_chars)), "id"]
        ),
    }
    for name, pattern in _PATTERNS.items():
        regex = re.compile(pattern)
        pairs = zip(frame["id"], text, strict=True)
        out[name] = sorted(i for i, t in pairs if isinstance(t, str) and regex.search(t))
    return out


def near_duplicate_extras(records: list[Record], cfg: CurationConfig) -> list[str]:
    """Ids of kept records that are a non-representative member of a near-duplicate cluster
    (what `near_duplicate_rate` counts)."""
    near = score_near_duplicates(
        records,
        threshold=cfg.near_duplicate_threshold,
        num_perm=cfg.minhash_permutations,
        shingle_size=cfg.shingle_words,
    )
    return sorted(
        rid for cluster in near.clusters for rid in cluster if near.representative[rid] != rid
    )


def name_ids(ids: list[str], most: int = 10) -> str:
    """`rec-1, rec-2 and 3 more`: ids for a check's description."""
    shown = ", ".join(ids[:most])
    return shown + (f" and {len(ids) - most} more" if len(ids) > most else "")
