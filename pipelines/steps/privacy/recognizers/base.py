"""What every recognizer of ours shares: regex patterns, a validator and context words.

Presidio's own context enhancer matches context words against spaCy lemmas, which Chinese text
(segmented by jieba) and our trimmed English pipeline (no lemmatizer) do not provide reliably.
Our recognizers therefore look for their context words in a character window around the match
themselves, and raise the score by `CONTEXT_BOOST` when one is there.
"""

import re
import time
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from presidio_analyzer import AnalysisExplanation, EntityRecognizer, RecognizerResult
from presidio_analyzer.nlp_engine import NlpArtifacts
from stdnum import luhn

CONTEXT_BOOST = 0.35
CONTEXT_WINDOW = 64
"""Characters before (and half as many after) a match searched for context words."""


class ScanTimeout(Exception):  # noqa: N818 (a verdict, not a fault of the code)
    """The text's scan ran past its deadline (`pii.scan_budget_seconds`); its record must be
    quarantined as `scan_timeout`, never passed on. Carries no text."""


_DEADLINE: list[float] = []
"""The running scan's deadline (`time.perf_counter` seconds), innermost last; none: unbounded."""


@contextmanager
def scan_deadline(seconds: float | None) -> Iterator[None]:
    """Within the block, `check_deadline` raises `ScanTimeout` once `seconds` have passed.

    The analyzer runs in-process, so the deadline is cooperative: it is checked before and
    after every recognizer (`pii.build_analyzer` wraps them), between the chunks spaCy's NER
    reads a long text in (`nlp_engine.PackNlpEngine.process_long`), between the windows the
    phone recognizer reads (`windows`), per street candidate (`en_street`) and between the
    chunks jieba reads (`cn_names.posseg`); every recognizer is linear in its chunk, so no
    check is ever far away.
    """
    if seconds is None:
        yield
        return
    _DEADLINE.append(time.perf_counter() + seconds)
    try:
        yield
    finally:
        _DEADLINE.pop()


def check_deadline() -> None:
    """Raise `ScanTimeout` when the running scan is past its deadline."""
    if _DEADLINE and time.perf_counter() > _DEADLINE[-1]:
        raise ScanTimeout("PII scan ran past pii.scan_budget_seconds")


WINDOW = 2_000
"""Characters one window of a long text holds (`windows`): the costly parts of a recognizer
(phonenumbers' matcher, an address parser) read bounded pieces, and the deadline is checked
between them."""
WINDOW_OVERLAP = 400
"""Characters two neighbouring windows share: a match up to half of it long, starting in a
window's own part, lies whole inside that window with as many characters of context before."""


def windows(
    start: int, end: int, size: int = WINDOW, overlap: int = WINDOW_OVERLAP
) -> Iterator[tuple[int, int, int, int]]:
    """`(window start, window end, own start, own end)` over `[start, end)`, checking the
    deadline before each window.

    Windows are `size` long and overlap by `overlap`; their own parts tile `[start, end)`
    without overlap, so a match kept only where it starts in its window's own part is kept
    once. A range no longer than `size` is one window.
    """
    step = size - overlap
    half = overlap // 2
    position = start
    while True:
        check_deadline()
        stop = min(end, position + size)
        own_start = start if position == start else position + half
        own_end = end if stop == end else stop - half
        yield position, stop, own_start, own_end
        if stop == end:
            return
        position += step


def has_context(text: str, start: int, end: int, words: Iterable[str]) -> bool:
    """Whether any of `words` occurs near `text[start:end]` (case-insensitive)."""
    window = (
        text[max(0, start - CONTEXT_WINDOW) : start] + " " + text[end : end + CONTEXT_WINDOW // 2]
    )
    window = window.lower()
    return any(word.lower() in window for word in words)


class RegexRecognizer(EntityRecognizer):
    """Regex candidates, confirmed by `validate` and scored up by nearby context words.

    Subclasses set `ENTITY`, `PATTERNS` as `(regex, base score)` pairs, `CONTEXT` and, where the
    format has one, a checksum in `validate`. A candidate scoring below `MIN_SCORE` even with
    context is not reported; `REQUIRES_CONTEXT` drops candidates that have no context word.
    """

    ENTITY = ""
    PATTERNS: tuple[tuple[str, float], ...] = ()
    CONTEXT: tuple[str, ...] = ()
    REQUIRES_CONTEXT = False
    FLAGS = re.IGNORECASE

    def __init__(self, *, language: str, context: list[str] | None = None) -> None:
        self.words = tuple(context) if context is not None else self.CONTEXT
        self._compiled = [(re.compile(p, self.FLAGS), s) for p, s in self.PATTERNS]
        super().__init__(
            supported_entities=[self.ENTITY],
            supported_language=language,
            name=f"{type(self).__name__}_{language}",
        )

    def load(self) -> None:  # patterns are compiled in __init__
        pass

    def validate(self, value: str) -> bool:
        """Whether the matched value passes the format's check (override with a checksum)."""
        return True

    def analyze(
        self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None
    ) -> list[RecognizerResult]:
        if self.ENTITY not in entities:
            return []
        results: list[RecognizerResult] = []
        seen: set[tuple[int, int]] = set()
        for pattern, score in self._compiled:
            for match in pattern.finditer(text):
                start, end = match.span("value") if "value" in pattern.groupindex else match.span()
                if (start, end) in seen or not self.validate(text[start:end]):
                    continue
                context = bool(self.words) and has_context(text, start, end, self.words)
                if self.REQUIRES_CONTEXT and not context:
                    continue
                seen.add((start, end))
                final = min(1.0, score + (CONTEXT_BOOST if context else 0.0))
                results.append(self._result(start, end, final, pattern.pattern))
        return results

    def _result(self, start: int, end: int, score: float, why: str) -> RecognizerResult:
        return RecognizerResult(
            entity_type=self.ENTITY,
            start=start,
            end=end,
            score=score,
            analysis_explanation=AnalysisExplanation(
                recognizer=self.name, original_score=score, pattern=why
            ),
            recognition_metadata={
                RecognizerResult.RECOGNIZER_NAME_KEY: self.name,
                RecognizerResult.RECOGNIZER_IDENTIFIER_KEY: self.id,
                # Our own window check replaces Presidio's lemma-based enhancer.
                RecognizerResult.IS_SCORE_ENHANCED_BY_CONTEXT_KEY: True,
            },
        )


def luhn_valid(digits: str) -> bool:
    """The Luhn (mod 10) check (python-stdnum) over the digits of `digits`, separators ignored."""
    numbers = "".join(c for c in digits if c.isdigit())
    return len(numbers) >= 12 and luhn.is_valid(numbers)


class Spans:
    """`(start, end)` spans, asked in O(log n) whether one overlaps or contains a range.

    The name rules test every candidate against every NER entity or name found so far: a
    pairwise `any(...)` is quadratic when a text repeats a name thousands of times (#16.3).
    """

    def __init__(self, spans: Iterable[tuple[int, int]]) -> None:
        ordered = sorted(spans)
        self._starts = [start for start, _ in ordered]
        self._reach: list[int] = []  # the furthest end among the spans up to each one
        furthest = -1
        for _, end in ordered:
            furthest = max(furthest, end)
            self._reach.append(furthest)

    def overlaps(self, start: int, end: int) -> bool:
        """Whether a span shares a character with `[start, end)`."""
        count = bisect_left(self._starts, end)  # spans starting before `end`
        return count > 0 and self._reach[count - 1] > start

    def contains(self, start: int, end: int) -> bool:
        """Whether a span holds all of `[start, end)`."""
        count = bisect_right(self._starts, start)  # spans starting at or before `start`
        return count > 0 and self._reach[count - 1] >= end
