"""Quality screen: what a data steward expects a training record not to be.

Scores per record:

- `empty_response`: the response's length in characters after stripping, for records with an
  assistant turn (plain-text records have none and score as long enough);
- `language_mismatch`: the difference between the share of Han characters among the prompt's
  letters and the response's (0.0 to 1.0), when both have enough letters to judge;
- `boilerplate_repetition`: the share of the record's word trigrams that repeat an earlier
  trigram of the same record (0.0 to 1.0), for records long enough to judge;
- `response_length_ratio`: response characters per prompt character (extreme lengths);
- `garbled_text`: the share of the record's characters that no text should carry: the
  replacement character, control characters other than tab and line breaks, unassigned and
  private-use code points (a broken decode or a binary blob).

Only an unusable record is quarantined (`CurationConfig.quality_quarantine`: empty, garbled, a
loop of repeated text); a language mismatch or an extreme length ratio is kept as a score for
the steward: real instruction data asks for translations and for long texts from short prompts.
"""

import unicodedata
from collections import Counter
from collections.abc import Sequence

import numpy as np

from pipelines.steps.integrity.screens import (
    han_share,
    has_han,
    has_response,
    letter_count,
    prompt_text,
    record_words,
    response_text,
)
from pipelines.steps.records import Record

EMPTY_RESPONSE = "empty_response"
LANGUAGE_MISMATCH = "language_mismatch"
BOILERPLATE_REPETITION = "boilerplate_repetition"
RESPONSE_LENGTH_RATIO = "response_length_ratio"
GARBLED_TEXT = "garbled_text"
CODES = (
    EMPTY_RESPONSE,
    LANGUAGE_MISMATCH,
    BOILERPLATE_REPETITION,
    RESPONSE_LENGTH_RATIO,
    GARBLED_TEXT,
)
_GARBLED_CATEGORIES = frozenset({"Cc", "Cn", "Co", "Cs"})

MIN_LETTERS_TO_JUDGE = 12
MIN_WORDS_TO_JUDGE = 24


def response_chars(record: Record) -> float:
    """Stripped response length; records without an assistant turn score as unbounded."""
    if not has_response(record):
        return float("inf")
    return float(len(response_text(record).strip()))


def language_mismatch(record: Record) -> float:
    """|Han share of the prompt - Han share of the response| when both can be judged."""
    prompt, response = prompt_text(record), response_text(record)
    if not (has_han(prompt) or has_han(response)):
        return 0.0  # both Han shares are zero
    if min(letter_count(prompt), letter_count(response)) < MIN_LETTERS_TO_JUDGE:
        return 0.0
    return round(abs(han_share(prompt) - han_share(response)), 4)


def repetition(record: Record) -> float:
    """Share of word trigrams that repeat an earlier trigram of the record."""
    tokens = record_words(record)
    if len(tokens) < MIN_WORDS_TO_JUDGE:
        return 0.0
    trigrams = [tuple(tokens[i : i + 3]) for i in range(len(tokens) - 2)]
    return round(1 - len(set(trigrams)) / len(trigrams), 4)


def length_ratio(record: Record) -> float:
    """Response characters per prompt character (0.0 without a response)."""
    response = response_text(record)
    return round(len(response) / max(1, len(prompt_text(record))), 4)


def garbled_share(record: Record) -> float:
    """Share of characters that are replacement, control (not tab or line break), unassigned,
    private-use or surrogate code points."""
    text = record.text
    if not text:
        return 0.0
    # Each distinct character judged once (a record has some tens of them, and hundreds or
    # thousands of characters), counted in C.
    bad = sum(count for ch, count in Counter(text).items() if _garbled(ch))
    return round(bad / len(text), 4)


def _garbled(ch: str) -> bool:
    return ch == "\ufffd" or (
        ch not in "\t\n\r" and unicodedata.category(ch) in _GARBLED_CATEGORIES
    )


_SCORERS = {
    EMPTY_RESPONSE: response_chars,
    LANGUAGE_MISMATCH: language_mismatch,
    BOILERPLATE_REPETITION: repetition,
    RESPONSE_LENGTH_RATIO: length_ratio,
    GARBLED_TEXT: garbled_share,
}


def score_quality(records: list[Record]) -> dict[str, dict[str, float]]:
    """Score every record; returns reason code -> record id -> score."""
    return {
        code: dict(zip((r.id for r in records), column.tolist(), strict=True))
        for code, column in quality_columns(records).items()
    }


def quality_columns(records: Sequence[Record]) -> dict[str, np.ndarray]:
    """Score every record; returns reason code -> scores in record order (float64: 8 bytes a
    score, where a dict of id -> float took some 100, #21). The records are read once, every
    score taken from each (a packed record is built again on each read)."""
    columns = np.empty((len(_SCORERS), len(records)), dtype=np.float64)
    scorers = tuple(_SCORERS.values())
    for row, record in enumerate(records):
        for k, score in enumerate(scorers):
            columns[k, row] = score(record)
    return dict(zip(_SCORERS, columns, strict=True))
