"""Integrity screening of the corpus and the Great Expectations suite of the curated corpus.

Screening scores every record first (its length and a digest of its normalized content) and
decides second, so thresholds can move without re-scoring. A dropped record keeps its reason and
a detail that never quotes text. The suite reports pass/fail and counts only: Great Expectations
results also carry the offending values, which on this corpus are personal data.
"""

import hashlib
import unicodedata
from collections import Counter
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

import pandas as pd

from pipelines.steps.config import CurationConfig
from pipelines.steps.offline import enforce_offline
from pipelines.steps.records import Record

if TYPE_CHECKING:
    from great_expectations.core.batch_definition import BatchDefinition
    from great_expectations.core.expectation_suite import ExpectationSuite

EXACT_DUPLICATE = "exact_duplicate"
TOO_SHORT = "too_short"
TOO_LONG = "too_long"
REASONS = (EXACT_DUPLICATE, TOO_SHORT, TOO_LONG)

# Residual PII patterns for the suite. Neither matches a pseudonym such as
# <EMAIL_ADDRESS_3fa91c02> or <PHONE_NUMBER_55501230>: those have no "@" and no separators.
# A match may only start at the beginning or after a character that cannot be in an address:
# without that guard Python's `re` retries every start inside a long run and goes quadratic.
RESIDUAL_EMAIL_REGEX = (
    r"(?:^|[^A-Za-z0-9._%+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"
)
RESIDUAL_PHONE_REGEX = r"(?<!\d)(?:\(\d{3}\)\s?|\d{3}[-.\s])\d{3}[-.\s]\d{4}(?!\d)"


@dataclass(frozen=True)
class RecordScore:
    """What screening measures on one record, before any threshold is applied.

    Attributes:
        id: Record id.
        chars: Length of `record.text` in code points.
        content_digest: SHA-256 of the record's roles and normalized message contents.
    """

    id: str
    chars: int
    content_digest: str


@dataclass(frozen=True)
class FilteredRecord:
    """A record screened out, with its reason code and a detail that quotes no text."""

    id: str
    reason: str
    detail: str


@dataclass(frozen=True)
class ScreenResult:
    """Records kept and records filtered, both in input order."""

    kept: list[Record]
    filtered: list[FilteredRecord]


@dataclass(frozen=True)
class ExpectationOutcome:
    """Pass/fail and the number of offending rows of one expectation (never the rows)."""

    name: str
    success: bool
    unexpected_count: int


@dataclass(frozen=True)
class SuiteResult:
    """Outcome of the curated-corpus suite."""

    success: bool
    expectations: list[ExpectationOutcome]


def normalize_for_dedup(text: str) -> str:
    """NFKC-normalize, casefold and collapse whitespace runs to single spaces.

    Args:
        text: Any text.

    Returns:
        The normalized text, stripped at both ends.
    """
    # casefold can undo NFKC (ß + combining accent -> "ss" + accent composes to "sś"), so
    # normalize again after it: the result is then a fixed point.
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold())
    return " ".join(folded.split())


def score_records(records: list[Record]) -> list[RecordScore]:
    """Measure every record for screening.

    Args:
        records: Records to score.

    Returns:
        One score per record, in input order.
    """
    return [
        RecordScore(id=record.id, chars=len(record.text), content_digest=_content_digest(record))
        for record in records
    ]


def screen_records(records: list[Record], cfg: CurationConfig) -> ScreenResult:
    """Filter records that are too short, too long, or exact duplicates of a kept record.

    Length is checked first; among the records of acceptable length, the first occurrence of
    each normalized content (roles and message contents) is kept and later ones are filtered
    with `duplicate_of` naming it. Canaries are ordinary records here.

    Args:
        records: Records in input order.
        cfg: Length thresholds.

    Returns:
        Kept and filtered records, each in input order.
    """
    kept: list[Record] = []
    filtered: list[FilteredRecord] = []
    first_id_by_digest: dict[str, str] = {}
    for record, score in zip(records, score_records(records), strict=True):
        if score.chars < cfg.min_chars:
            filtered.append(
                FilteredRecord(
                    record.id, TOO_SHORT, f"chars={score.chars} < min_chars={cfg.min_chars}"
                )
            )
        elif score.chars > cfg.max_chars:
            filtered.append(
                FilteredRecord(
                    record.id, TOO_LONG, f"chars={score.chars} > max_chars={cfg.max_chars}"
                )
            )
        elif score.content_digest in first_id_by_digest:
            first_id = first_id_by_digest[score.content_digest]
            filtered.append(FilteredRecord(record.id, EXACT_DUPLICATE, f"duplicate_of={first_id}"))
        else:
            first_id_by_digest[score.content_digest] = record.id
            kept.append(record)
    return ScreenResult(kept=kept, filtered=filtered)


def filtered_counts(filtered: list[FilteredRecord]) -> dict[str, int]:
    """Count filtered records per reason; every known reason is present, zero included.

    Args:
        filtered: Output of `screen_records`.

    Returns:
        Reason code to count.
    """
    counts = Counter(f.reason for f in filtered)
    return {reason: counts[reason] for reason in sorted({*REASONS, *counts})}


def validate_curated_frame(frame: pd.DataFrame, cfg: CurationConfig) -> SuiteResult:
    """Run the curated-corpus expectations on a frame from `records_to_frame`.

    Expectations: `ids_unique`, `text_not_null`, `text_length_in_range` (cfg.min_chars to
    cfg.max_chars), `no_residual_email`, `no_residual_phone`. Only pass/fail and counts are
    read from Great Expectations; the offending values are never kept.

    Args:
        frame: Curated corpus with at least `id` and `text` columns.
        cfg: Length thresholds.

    Returns:
        Overall success and one outcome per expectation, in suite order.

    Raises:
        ValueError: The frame lacks the `id` or `text` column.
        RuntimeError: An expectation could not be evaluated (the suite fails closed).
    """
    missing = sorted({"id", "text"} - set(frame.columns))
    if missing:
        raise ValueError(f"curated frame lacks column(s) {', '.join(missing)}")
    batch_definition, suite = _curated_suite(cfg.min_chars, cfg.max_chars)
    validation = batch_definition.get_batch(batch_parameters={"dataframe": frame}).validate(
        suite, result_format={"result_format": "BASIC", "partial_unexpected_count": 0}
    )
    by_name: dict[str, Any] = {r.expectation_config.meta["name"]: r for r in validation.results}
    outcomes = []
    for expectation in suite.expectations:
        name = expectation.meta["name"]
        result = by_name[name]
        if result.exception_info.get("raised_exception"):
            raise RuntimeError(f"curated corpus expectation {name} could not be evaluated")
        outcomes.append(
            ExpectationOutcome(
                name=name,
                success=bool(result.success),
                unexpected_count=int(result.result.get("unexpected_count", 0)),
            )
        )
    return SuiteResult(success=all(o.success for o in outcomes), expectations=outcomes)


def _content_digest(record: Record) -> str:
    digest = hashlib.sha256()
    for message in record.messages:
        digest.update(f"{message.role}\x1f{normalize_for_dedup(message.content)}\x1e".encode())
    return digest.hexdigest()


@cache
def _curated_suite(min_chars: int, max_chars: int) -> tuple["BatchDefinition", "ExpectationSuite"]:
    """Build the context, data source and suite once per threshold pair."""
    # Analytics must be off before the import; importing takes seconds, so only the suite pays.
    enforce_offline()
    import great_expectations as gx
    import great_expectations.expectations as gxe
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    context = gx.get_context(
        mode="ephemeral",
        project_config=DataContextConfig(
            analytics_enabled=False,
            progress_bars=ProgressBarsConfig(globally=False),
            store_backend_defaults=InMemoryStoreBackendDefaults(),
        ),
    )
    batch_definition = (
        context.data_sources.add_pandas("curated_corpus")
        .add_dataframe_asset("curated_frame")
        .add_batch_definition_whole_dataframe("whole_frame")
    )
    suite = gx.ExpectationSuite(
        name="curated_corpus",
        expectations=[
            gxe.ExpectColumnValuesToBeUnique(column="id", meta={"name": "ids_unique"}),
            gxe.ExpectColumnValuesToNotBeNull(column="text", meta={"name": "text_not_null"}),
            gxe.ExpectColumnValueLengthsToBeBetween(
                column="text",
                min_value=min_chars,
                max_value=max_chars,
                meta={"name": "text_length_in_range"},
            ),
            gxe.ExpectColumnValuesToNotMatchRegex(
                column="text", regex=RESIDUAL_EMAIL_REGEX, meta={"name": "no_residual_email"}
            ),
            gxe.ExpectColumnValuesToNotMatchRegex(
                column="text", regex=RESIDUAL_PHONE_REGEX, meta={"name": "no_residual_phone"}
            ),
        ],
    )
    return batch_definition, suite
