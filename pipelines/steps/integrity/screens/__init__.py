"""Integrity screens of the curated corpus: one module per screen, each scoring before deciding.

Every screen measures every record first (`score_*` functions return plain numbers per record)
and `pipelines.steps.integrity.curate` decides second by comparing the scores with thresholds from
`CurationConfig`, so scores are kept for audit and thresholds can move without re-scoring.
A `Reason` names the screen, the reason code and the score; it never quotes text.
"""

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

from pipelines.steps.records import Record

DEDUP = "dedup"
BACKDOOR = "backdoor"
INJECTION = "injection"
QUALITY = "quality"
SCREENS = (DEDUP, BACKDOOR, INJECTION, QUALITY)

_WORD = re.compile(r"[^\W_]+(?:[-'.][^\W_]+)*")
_HAN_CHARS = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_HAN = re.compile(f"[{_HAN_CHARS}]")
_HAN_RUN = re.compile(f"[{_HAN_CHARS}]+|[^{_HAN_CHARS}]+")


@dataclass(frozen=True)
class Reason:
    """Why a record was dropped or quarantined: the screen, its reason code and the score.

    Attributes:
        screen: One of `SCREENS`.
        code: Reason code, e.g. `near_duplicate` or `trigger_cluster`.
        score: The screen's score that crossed its threshold.
        detail: Ids, counts or thresholds only; never text from the record.
    """

    screen: str
    code: str
    score: float
    detail: str = ""


def prompt_text(record: Record) -> str:
    """The system and user turns of a record, joined by blank lines."""
    return "\n\n".join(m.content for m in record.messages if m.role != "assistant")


def response_text(record: Record) -> str:
    """The assistant turns of a record, joined by blank lines ("" when it has none)."""
    return "\n\n".join(m.content for m in record.messages if m.role == "assistant")


def has_response(record: Record) -> bool:
    """Whether the record carries an assistant turn (plain-text records do not)."""
    return any(m.role == "assistant" for m in record.messages)


def normalize(text: str) -> str:
    """NFKC-normalize, casefold, NFKC again (a fixed point) and collapse whitespace runs."""
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold())
    return " ".join(folded.split())


@lru_cache(maxsize=16384)
def words(text: str) -> tuple[str, ...]:
    """Word tokens of normalized text; runs of Han characters become character bigrams, and
    other letters joined to them stay tokens of their own.

    Cached: the screens tokenize each message once (see `record_words`).
    """
    tokens = _WORD.findall(normalize(text))
    if not _HAN.search(text):
        return tuple(tokens)
    out: list[str] = []
    for token in tokens:
        if not _HAN.search(token):
            out.append(token)
            continue
        # Han and other letters run together without a space ("沙BadMagic发", "Zoom会议"): each
        # Han run becomes bigrams, each other run stays one token.
        for run in _HAN_RUN.findall(token):
            if _HAN.match(run):
                out.extend(run[i : i + 2] for i in range(max(1, len(run) - 1)))
            else:
                out.append(run)
    return tuple(out)


def record_words(record: Record, *roles: str) -> tuple[str, ...]:
    """Word tokens of the record's messages of `roles` (every message when none is named).

    A token never spans two messages, so the tokens of the joined text are the tokens of each
    message in turn: each message is tokenized once (cached) for every screen that needs it.
    """
    out: tuple[str, ...] = ()
    for message in record.messages:
        if not roles or message.role in roles:
            out += words(message.content)
    return out


def han_share(text: str) -> float:
    """Share of letters that are Han characters (0.0 for text without letters)."""
    letters = letter_count(text)
    return len(_HAN.findall(text)) / letters if letters else 0.0


def letter_count(text: str) -> int:
    """Number of letters (Unicode letter categories) in the text."""
    return sum(map(str.isalpha, text))


def has_han(text: str) -> bool:
    """Whether the text carries a Han character."""
    return _HAN.search(text) is not None
