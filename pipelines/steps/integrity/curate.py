"""Integrity screening of the corpus and the Great Expectations suite of the curated corpus.

Screening scores every record first and decides second, so thresholds can move without
re-scoring. `screen_records` is the first pass (length bounds and exact duplicates, both
dropped); `curate_records` adds the screens of `pipelines.steps.integrity.screens` (near duplicates,
backdoor triggers and inserted phrases, injections, quality) whose findings quarantine a record
until a steward approves or rejects it by id (`pipelines.steps.integrity.decisions`); a quality
finding quarantines only an unusable record (`CurationConfig.quality_quarantine`), any other
stays a score, and a near copy that no other screen flagged is dropped (one record per cluster
is kept, as for exact duplicates). A dropped or quarantined record keeps its reasons and scores,
and a detail that never quotes text: records in = kept + dropped + quarantined. The suite
reports pass/fail and counts only: Great Expectations results also carry the offending values,
which on this corpus are personal data.
"""

import concurrent.futures
import hashlib
import heapq
import multiprocessing
import re
import threading
import unicodedata
from array import array
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from pipelines.steps.config import CurationConfig
from pipelines.steps.integrity.packed import record_ids, subset
from pipelines.steps.integrity.screens import (
    BACKDOOR,
    DEDUP,
    INJECTION,
    QUALITY,
    Reason,
    backdoor,
    payload,
    quality,
    words,
)
from pipelines.steps.integrity.screens.dedup import (
    NEAR_DUPLICATE,
    score_near_duplicates,
)
from pipelines.steps.integrity.screens.injection import score_injection
from pipelines.steps.offline import enforce_offline
from pipelines.steps.privacy.invisible import INVISIBLE_REGEX
from pipelines.steps.privacy.surrogates import RESERVED_DOMAINS
from pipelines.steps.records import Record

if TYPE_CHECKING:
    from great_expectations.core.batch_definition import BatchDefinition
    from great_expectations.core.expectation_suite import ExpectationSuite

EXACT_DUPLICATE = "exact_duplicate"
TOO_SHORT = "too_short"
TOO_LONG = "too_long"
REASONS = (EXACT_DUPLICATE, TOO_SHORT, TOO_LONG)
KEEP = "keep"
DROP = "drop"
QUARANTINE = "quarantine"
APPROVE = "approve"
REJECT = "reject"
QUARANTINE_CODES = (
    NEAR_DUPLICATE,
    backdoor.TRIGGER_CLUSTER,
    backdoor.RESPONSE_OUTLIER,
    backdoor.INSERTED_PHRASE,
    payload.REPEATED_PAYLOAD,
    "ignore_policy",
    "hidden_text",
    "unrequested_payload",
    quality.EMPTY_RESPONSE,
    quality.LANGUAGE_MISMATCH,
    quality.BOILERPLATE_REPETITION,
    quality.RESPONSE_LENGTH_RATIO,
    quality.GARBLED_TEXT,
    backdoor.ONION,
)

# Residual PII patterns for the suite. Neither matches a pseudonym such as
# <EMAIL_ADDRESS_3fa91c02> or <PHONE_NUMBER_55501230> (no "@", no separators), nor a
# realistic surrogate (pipelines/steps/privacy/surrogates.py): addresses on the RFC 2606 reserved
# domains and US numbers on exchange 555 with lines 0100-0199, which are reserved for fiction.
# A match may only start at the beginning or after a character that cannot be in an address:
# without that guard Python's `re` retries every start inside a long run and goes quadratic.
_RESERVED = "|".join(re.escape(domain) for domain in RESERVED_DOMAINS)
RESIDUAL_EMAIL_REGEX = (
    r"(?:^|[^A-Za-z0-9._%+-])[A-Za-z0-9._%+-]+@"
    rf"(?!(?:{_RESERVED})(?![A-Za-z0-9-]|\.[A-Za-z0-9]))"
    r"[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"
)
HIDDEN_CHARACTER_REGEX = INVISIBLE_REGEX  # one definition: pipelines/steps/privacy/invisible.py
RESIDUAL_PHONE_REGEX = (
    r"(?<!\d)(?:\(\d{3}\)\s?|\d{3}[-.\s])(?!555[-.\s]01\d\d(?!\d))\d{3}[-.\s]\d{4}(?!\d)"
)

# The near-duplicate scores and the quality scores of one corpus, compact for the trip back
# from the second process: per candidate (in order) its near-duplicate similarity, per
# clustered record its representative, the clusters, and per quality code a column of scores.
_DedupAndQuality = tuple[np.ndarray, dict[str, str], list[tuple[str, ...]], dict[str, np.ndarray]]
# The candidates the second process screens: set before it is forked, so that it inherits them
# (a fork shares the parent's pages) instead of receiving them pickled through a pipe (the
# pickle and its memo were a second copy of the corpus in the parent, #21).
_FORKED_CANDIDATES: list[Sequence[Record]] = []


class ScoreTable(Mapping[str, dict[str, float]]):
    """Per record id, every score measured (reason code -> score), stored as columns.

    One float64 column per reason code and a mask of the records it scored, where a dict of
    floats per record took 1.7 KB a record (#21); reading a record id gives its plain dict
    (codes it was not scored on are absent), so the table compares equal to the dict of dicts it
    replaces.
    """

    def __init__(self, ids: Iterable[str]) -> None:
        self._row = {record_id: row for row, record_id in enumerate(ids)}
        self._values: dict[str, np.ndarray] = {}
        self._scored: dict[str, np.ndarray] = {}

    def put(self, record_id: str, code: str, value: float) -> None:
        """Set the score of `code` for one record (raises KeyError for an unknown id)."""
        row = self._row[record_id]
        if code not in self._values:
            self._values[code] = np.zeros(len(self._row))
            self._scored[code] = np.zeros(len(self._row), dtype=bool)
        self._values[code][row] = value
        self._scored[code][row] = True

    def __getitem__(self, record_id: str) -> dict[str, float]:
        row = self._row[record_id]
        return {
            code: float(values[row])
            for code, values in self._values.items()
            if self._scored[code][row]
        }

    def __iter__(self) -> Iterator[str]:
        return iter(self._row)

    def __len__(self) -> int:
        return len(self._row)

    def __repr__(self) -> str:
        return f"ScoreTable({len(self._row)} records, {len(self._values)} codes)"


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
class ScreenedRecord:
    """The decision on one record, its reasons (screen, code, score) and the steward's word.

    Attributes:
        id: Record id.
        decision: `keep`, `drop` or `quarantine` (what the screens decided).
        reasons: Every threshold the record crossed; empty for a clean record.
        steward: `approve` or `reject` when a steward decided on a quarantined record, else "".
    """

    id: str
    decision: str
    reasons: tuple[Reason, ...] = ()
    steward: str = ""

    @property
    def kept(self) -> bool:
        """Kept for training: clean, or quarantined and approved by a steward."""
        return self.decision == KEEP or (self.decision == QUARANTINE and self.steward == APPROVE)


@dataclass(frozen=True)
class CurationResult:
    """The curated corpus and the audit trail of every record, in input order.

    Attributes:
        kept: Records to train on (clean ones and steward-approved ones): a list, or a view of
            the `PackedRecords` screened.
        screened: One decision per input record.
        scores: Per record id, every score measured (reason code -> score), crossed or not
            (a `ScoreTable`: reading an id gives its dict).
        near_duplicate_clusters: Clusters of near-duplicate records, representative first.
        trigger_clusters: Response clusters flagged for a backdoor trigger.
        unmatched_decisions: Steward decisions naming no quarantined record.
        onion_scored: Records ONION scored (those a backdoor or injection screen flagged); None
            when ONION did not run (no perplexity function given).
        siblings: What the base model said of the sibling phrases that waited on it
            (`backdoor.confirm_siblings`); None when none waited or no model was given.
    """

    kept: Sequence[Record]
    screened: list[ScreenedRecord]
    scores: Mapping[str, dict[str, float]] = field(repr=False)
    near_duplicate_clusters: list[tuple[str, ...]]
    trigger_clusters: list[tuple[str, ...]]
    unmatched_decisions: int = 0
    onion_scored: int | None = None
    siblings: backdoor.SiblingCheck | None = None

    def counts(self) -> dict[str, int]:
        """records_in, kept, dropped, quarantined, approved, rejected and pending."""
        decisions = Counter(s.decision for s in self.screened)
        steward = Counter(s.steward for s in self.screened if s.decision == QUARANTINE)
        return {
            "records_in": len(self.screened),
            "kept": len(self.kept),
            "dropped": decisions[DROP],
            "quarantined": decisions[QUARANTINE],
            "approved": steward[APPROVE],
            "rejected": steward[REJECT],
            "pending": steward[""],
        }

    def reason_counts(self) -> dict[str, dict[str, int]]:
        """Per `screen/code`, how many records it sent to each decision (a record may count
        under several reasons)."""
        table: dict[str, Counter[str]] = {}
        for screened in self.screened:
            for reason in screened.reasons:
                table.setdefault(f"{reason.screen}/{reason.code}", Counter())[
                    screened.decision
                ] += 1
        return {key: dict(sorted(value.items())) for key, value in sorted(table.items())}


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


def screen_records(records: Sequence[Record], cfg: CurationConfig) -> ScreenResult:
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
    rows, filtered = _first_pass(records, cfg)
    return ScreenResult(kept=[records[row] for row in rows], filtered=filtered)


def _first_pass(
    records: Sequence[Record], cfg: CurationConfig
) -> tuple[list[int], list[FilteredRecord]]:
    """`screen_records` as the positions of the records kept (one record scored at a time).

    The content digests are 16 bytes a record in one buffer, and the first record of each is
    found by one sort (#21: a dict of hex digests to ids, two string objects a record, was freed
    just before the second process is forked, and the first process's memory it left
    fragmented counted in both processes).
    """
    by_length: list[tuple[int, FilteredRecord]] = []
    rows = array("q")
    digests = bytearray()
    for row, record in enumerate(records):
        chars = len(record.text)
        if chars < cfg.min_chars:
            by_length.append(
                (
                    row,
                    FilteredRecord(
                        record.id, TOO_SHORT, f"chars={chars} < min_chars={cfg.min_chars}"
                    ),
                )
            )
        elif chars > cfg.max_chars:
            by_length.append(
                (
                    row,
                    FilteredRecord(
                        record.id, TOO_LONG, f"chars={chars} > max_chars={cfg.max_chars}"
                    ),
                )
            )
        else:
            rows.append(row)
            digests += _content_digest(record)
    within = np.frombuffer(rows, dtype=np.int64) if rows else np.empty(0, dtype=np.int64)
    keys = np.frombuffer(bytes(digests), dtype="V16")
    del digests
    # A stable sort: each digest's first index is its first record in input order.
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    first_of = first[inverse.reshape(-1)]
    repeated = np.flatnonzero(first_of != np.arange(len(within)))
    duplicates = [
        (
            int(within[i]),
            FilteredRecord(
                records[int(within[i])].id,
                EXACT_DUPLICATE,
                f"duplicate_of={records[int(within[first_of[i]])].id}",
            ),
        )
        for i in repeated.tolist()
    ]
    kept = np.delete(within, repeated).tolist()
    filtered = [f for _, f in heapq.merge(by_length, duplicates, key=lambda item: item[0])]
    return kept, filtered


def filtered_counts(filtered: list[FilteredRecord]) -> dict[str, int]:
    """Count filtered records per reason; every known reason is present, zero included.

    Args:
        filtered: Output of `screen_records`.

    Returns:
        Reason code to count.
    """
    counts = Counter(f.reason for f in filtered)
    return {reason: counts[reason] for reason in sorted({*REASONS, *counts})}


def curate_records(
    records: Sequence[Record],
    cfg: CurationConfig,
    decisions: dict[str, str] | None = None,
    *,
    perplexity: Callable[[list[str]], list[float]] | None = None,
    disruption: backdoor.Disruption | None = None,
    run_screens: "ScreenRunner | None" = None,
) -> CurationResult:
    """Screen records and decide: keep, drop (length, exact duplicate) or quarantine.

    Every screen scores every record that survives `screen_records`; a record crossing any
    threshold is quarantined with one `Reason` per crossing (a near copy with no other finding
    is dropped instead, naming its cluster's representative), and a steward's `approve` keeps it
    while `reject` keeps it out. Decisions naming a record that is not quarantined change
    nothing and are counted as unmatched.

    Args:
        records: Records in input order: a list, or `PackedRecords` (#21: about the size of
            their text, and shared with the second screening process rather than copied; the
            result's `kept` is then a view of them).
        cfg: Thresholds.
        decisions: Steward decisions, record id -> `approve` or `reject`.
        perplexity: The base model's perplexity function (`backdoor.causal_lm_perplexity`,
            or `backdoor.lazy_perplexity` to load the model only when a record is flagged):
            when given, ONION scores the records a backdoor or injection screen flagged (no
            other), keeps the score with the others and adds an `onion` reason to those at or
            above `cfg.onion_threshold`. The caller decides from `cfg.onion` whether to give it
            (the curated asset does; `sovtune screen` with `--onion`).
        disruption: The base model's disruption function (`backdoor.causal_lm_disruption`, or
            `backdoor.lazy_disruption` to load the model only when needed): with
            `cfg.inserted_phrase_lm_check`, it reads the prompts of the sibling phrases that
            wait on it (a rare phrase in two prompts beside a phrase that stands on its own)
            and scores those it finds inserted (`backdoor.confirm_siblings`). Without it they
            keep the lower score the corpus counts give them.
        run_screens: Computes the screens' `SCREEN_PARTS` elsewhere (each on a Ray worker:
            `pipelines.steps.execution.ray_screens`); their findings are recorded here in the
            same order as this process records its own, so the result is the same. Without it
            they run in this process and a forked second one (`cfg.parallel_min_records`).

    Returns:
        The curated records and the decision, reasons and scores of every record.
    """
    decisions = decisions or {}
    rows, filtered = _first_pass(records, cfg)
    dropped = {
        f.id: Reason(DEDUP if f.reason == EXACT_DUPLICATE else QUALITY, f.reason, 1.0, f.detail)
        for f in filtered
    }
    del filtered
    candidates = subset(records, rows)
    del rows
    ids = list(record_ids(candidates))
    scores = ScoreTable(ids)
    # A list only for the records a screen flags (#21: an empty list per record of the corpus).
    reasons: dict[str, list[Reason]] = defaultdict(list)
    siblings: list[backdoor.SiblingCheck] = []

    def confirm(phrases: backdoor.InsertedPhrases) -> backdoor.InsertedPhrases:
        if disruption is None or not cfg.inserted_phrase_lm_check or not phrases.pending:
            return phrases
        phrases, check = backdoor.confirm_siblings(
            candidates,
            phrases,
            disruption,
            max_siblings=cfg.inserted_phrase_lm_max_siblings,
        )
        siblings.append(check)
        return phrases

    if run_screens is not None:
        found = run_screens(candidates, cfg)
        if set(found) != set(SCREEN_PARTS):
            raise RuntimeError(f"the screens returned {sorted(found)}, not {list(SCREEN_PARTS)}")
        trigger_clusters = _record_backdoor(found[BACKDOOR_PART], cfg, scores, reasons)
        trigger_clusters += _record_inserted_phrases(
            confirm(found[PHRASES_PART]), cfg, scores, reasons
        )
        _record_repeated_payloads(found[PAYLOAD_PART], scores, reasons)
        _record_injection(found[INJECTION_PART], scores, reasons)
        similarity, representative, near_clusters, quality_scores = found[DEDUP_QUALITY_PART]
        del found
    else:
        trigger_clusters, (similarity, representative, near_clusters, quality_scores) = (
            _screen_here(candidates, cfg, scores, reasons, confirm)
        )
    _screen_quality(ids, quality_scores, cfg, scores, reasons)
    _screen_near_duplicates(ids, similarity, representative, scores, reasons)
    onion_scored = (
        None if perplexity is None else _screen_onion(candidates, perplexity, cfg, scores, reasons)
    )

    del ids
    screened = _decide(records, dropped, reasons, decisions)
    quarantined = {s.id for s in screened if s.decision == QUARANTINE}
    kept_ids = {s.id for s in screened if s.kept}
    release_token_caches()
    return CurationResult(
        # screened[row] is the decision on records[row]: a record whose id was kept is kept.
        kept=subset(records, [row for row, s in enumerate(screened) if s.id in kept_ids]),
        screened=screened,
        scores=scores,
        near_duplicate_clusters=near_clusters,
        trigger_clusters=trigger_clusters,
        unmatched_decisions=sum(1 for record_id in decisions if record_id not in quarantined),
        onion_scored=onion_scored,
        siblings=siblings[0] if siblings else None,
    )


def _screen_here(
    candidates: Sequence[Record],
    cfg: CurationConfig,
    scores: ScoreTable,
    reasons: dict[str, list[Reason]],
    confirm: Callable[[backdoor.InsertedPhrases], backdoor.InsertedPhrases],
) -> tuple[list[tuple[str, ...]], _DedupAndQuality]:
    """Every screen in this process, the near-duplicate and quality screens in a forked second
    one on a large corpus; scores and reasons recorded in `curate_records`' order (the inserted
    phrases after `confirm`).

    Returns:
        The trigger clusters, and the near-duplicate and quality findings.
    """
    second = _SecondProcess(candidates, cfg)
    try:  # a screen that raises must not leave the second process running
        # The inserted phrases are scored first (recorded after the response clusters, in the
        # same order as ever): their peak is small, and the response clusters' MinHash search
        # then runs once the second process is done, never beside its near-duplicate search
        # (#21: the two searches together set the peak of the two processes, 4.3 GiB at 1M
        # records where the near-duplicate search outlasted the inserted phrases).
        phrases = _inserted_phrases(candidates, cfg)
        second.wait()
        trigger_clusters = _record_backdoor(_backdoor_scores(candidates, cfg), cfg, scores, reasons)
        second.poll()
        trigger_clusters += _record_inserted_phrases(confirm(phrases), cfg, scores, reasons)
        del phrases
        _record_repeated_payloads(_repeated_payloads(candidates), scores, reasons)
        second.poll()
        _record_injection(score_injection(candidates), scores, reasons)
        return trigger_clusters, second.result()
    finally:
        second.close()


DEDUP_QUALITY_PART = "dedup_and_quality"
PHRASES_PART = "inserted_phrases"
PAYLOAD_PART = "repeated_payloads"
BACKDOOR_PART = "response_clusters"
INJECTION_PART = "injection"
SCREEN_PARTS = (DEDUP_QUALITY_PART, PHRASES_PART, PAYLOAD_PART, BACKDOOR_PART, INJECTION_PART)
"""The screens' corpus-wide computations, each a function of the candidates and the settings
alone (`screen_part`), costliest first (at 100k records: 19 + 5, 19, 18, 15 and 3 CPU-s): a
`ScreenRunner` may compute them anywhere and in any order."""

ScreenRunner = Callable[[Sequence[Record], CurationConfig], Mapping[str, Any]]
"""Computes `screen_part(name, candidates, cfg)` for every name of `SCREEN_PARTS`, by name."""


def screen_part(name: str, candidates: Sequence[Record], cfg: CurationConfig) -> Any:
    """The findings of one of `SCREEN_PARTS` on the candidates (what `curate_records` records).

    Raises:
        KeyError: `name` is not one of `SCREEN_PARTS`.
    """
    if name == DEDUP_QUALITY_PART:
        return _dedup_and_quality(candidates, *_dedup_args(cfg))
    if name == PHRASES_PART:
        return _inserted_phrases(candidates, cfg)
    if name == PAYLOAD_PART:
        return _repeated_payloads(candidates)
    if name == BACKDOOR_PART:
        return _backdoor_scores(candidates, cfg)
    if name == INJECTION_PART:
        return score_injection(candidates)
    raise KeyError(f"no screen part {name!r}: one of {', '.join(SCREEN_PARTS)}")


def release_token_caches() -> None:
    """Empty the screens' bounded token caches (`screens.words`, `payload._token_hash`) once a
    screening is over.

    Their entries are few (16,384 and 65,536 at most) but were allocated among the tokens of
    every record read, so they keep those memory arenas from being returned (#21: a bare
    process screening 100k records kept 278 MiB above its start, 131 MiB with them emptied).
    Under `sovtune run` the drop's checks run next in the same process; a later screening only
    warms the caches again.
    """
    words.cache_clear()
    payload.token_hash_cache_clear()


def _dedup_args(cfg: CurationConfig) -> tuple[float, int, int]:
    """The near-duplicate settings `_dedup_and_quality` takes after the records."""
    return (cfg.near_duplicate_threshold, cfg.minhash_permutations, cfg.shingle_words)


class _SecondProcess:
    """The near-duplicate and quality screens of `curate_records`: in a forked process on a
    large corpus (`_start_dedup_and_quality`), else in this one when their result is asked for.

    A thread ends the process as soon as its result is in (#21: `poll` between two screens
    of this process took it minutes late at 1M records, the finished process holding its
    memory meanwhile); `poll` and `result` take the result.
    """

    def __init__(self, candidates: Sequence[Record], cfg: CurationConfig) -> None:
        self._candidates, self._cfg = candidates, cfg
        self._lock = threading.Lock()
        self._pool, self._pending = _start_dedup_and_quality(candidates, cfg)
        self._result: _DedupAndQuality | None = None
        self._ender: threading.Thread | None = None
        if self._pending is not None:
            self._ender = threading.Thread(
                target=self._end_when_done, name="second-screening-process", daemon=True
            )
            self._ender.start()

    def _end_when_done(self) -> None:
        pending = self._pending
        if pending is not None:
            concurrent.futures.wait([pending])
        self._shut_down()

    def _shut_down(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(cancel_futures=True)
            _FORKED_CANDIDATES.clear()

    def wait(self) -> None:
        """Wait for the process's result and take it (nothing to wait for without one)."""
        self._take()

    def poll(self) -> None:
        """Take the result if it is done (the process is then ended, or ends now)."""
        if self._pending is not None and self._pending.done():
            self._take()

    def _take(self) -> None:
        pending, self._pending = self._pending, None
        if pending is not None:
            try:
                self._result = pending.result()
            finally:
                self.close()

    def result(self) -> _DedupAndQuality:
        """The scores: the process's (waited for) or, without one, computed here."""
        self._take()
        if self._result is None:
            self._result = _dedup_and_quality(self._candidates, *_dedup_args(self._cfg))
        return self._result

    def close(self) -> None:
        """Shut the process down (cancelling its work if still running)."""
        self._shut_down()
        if self._ender is not None:
            self._ender.join()
            self._ender = None
        self._pending = None
        _FORKED_CANDIDATES.clear()


def _start_dedup_and_quality(
    candidates: Sequence[Record], cfg: CurationConfig
) -> tuple[ProcessPoolExecutor | None, Future[_DedupAndQuality] | None]:
    """Start the near-duplicate and quality screens in a second process on a large corpus.

    Returns:
        The pool to shut down and the pending result, or (None, None) when the corpus is below
        `cfg.parallel_min_records` or no process could be started: the caller then computes the
        same scores in this process.
    """
    # On a large corpus the near-duplicate and quality screens run in a second process while
    # this one runs the backdoor and injection screens: the stage has 2 cores to use, and the
    # two halves cost about the same.
    if not len(candidates) >= cfg.parallel_min_records > 0:
        return None, None
    pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("fork"))
    _FORKED_CANDIDATES[:] = [candidates]  # the worker is forked by `submit`: it inherits them
    try:
        return pool, pool.submit(_forked_dedup_and_quality, *_dedup_args(cfg))
    except (AssertionError, OSError):
        # A daemonic worker may not have children, or no process can be forked: the same
        # scores are then computed in this process.
        pool.shutdown()
        return None, None


def _backdoor_scores(candidates: Sequence[Record], cfg: CurationConfig) -> backdoor.BackdoorScores:
    """The response clusters' trigger and outlier scores (`_record_backdoor` records them)."""
    return backdoor.score_backdoor(
        candidates,
        threshold=cfg.response_similarity,
        num_perm=cfg.minhash_permutations,
        min_cluster=cfg.min_trigger_cluster,
    )


def _record_backdoor(
    trigger: backdoor.BackdoorScores,
    cfg: CurationConfig,
    scores: ScoreTable,
    reasons: dict[str, list[Reason]],
) -> list[tuple[str, ...]]:
    """Add each candidate's trigger-cluster scores and a reason per flagged member.

    Returns:
        The response clusters at or above `cfg.trigger_threshold`.
    """
    flagged = {i for i, score in enumerate(trigger.cluster_score) if score >= cfg.trigger_threshold}
    for record_id in scores:  # every candidate's id, in order
        trigger_score = trigger.trigger_score[record_id]
        outlier_score = trigger.outlier_score[record_id]
        scores.put(record_id, backdoor.TRIGGER_CLUSTER, trigger_score)
        scores.put(record_id, backdoor.RESPONSE_OUTLIER, outlier_score)
        cluster = trigger.cluster_of.get(record_id)
        if cluster not in flagged:
            continue
        detail = f"cluster={cluster} size={len(trigger.clusters[cluster])}"
        if trigger_score >= cfg.trigger_threshold:
            reasons[record_id].append(
                Reason(BACKDOOR, backdoor.TRIGGER_CLUSTER, trigger_score, detail)
            )
        elif outlier_score >= cfg.outlier_threshold:
            reasons[record_id].append(
                Reason(BACKDOOR, backdoor.RESPONSE_OUTLIER, outlier_score, detail)
            )
        else:
            # Any member of a flagged cluster shares the planted answer: never kept unreviewed.
            best = trigger.cluster_score[cluster]
            reasons[record_id].append(
                Reason(BACKDOOR, backdoor.TRIGGER_CLUSTER, trigger_score, f"{detail} best={best}")
            )
    return [trigger.clusters[i] for i in sorted(flagged)]


def _inserted_phrases(
    candidates: Sequence[Record], cfg: CurationConfig
) -> backdoor.InsertedPhrases:
    """The inserted-phrase scores of the candidates (`_record_inserted_phrases` records them)."""
    return backdoor.score_inserted_phrases(
        candidates,
        min_records=cfg.inserted_phrase_min_records,
        max_share=cfg.inserted_phrase_max_share,
        max_collocation=cfg.inserted_phrase_max_collocation,
    )


def _record_inserted_phrases(
    phrases: backdoor.InsertedPhrases,
    cfg: CurationConfig,
    scores: ScoreTable,
    reasons: dict[str, list[Reason]],
) -> list[tuple[str, ...]]:
    """Add each candidate's inserted-phrase score and a reason per carrier of a phrase at or
    above `cfg.inserted_phrase_threshold`.

    Returns:
        The records of each flagged phrase (a trigger cluster: none may be kept unreviewed).
    """
    flagged = [
        i for i, score in enumerate(phrases.cluster_score) if score >= cfg.inserted_phrase_threshold
    ]
    cluster_of = {rid: i for i in reversed(flagged) for rid in phrases.clusters[i]}
    for record_id in scores:  # every candidate's id, in order
        score = phrases.score[record_id]
        scores.put(record_id, backdoor.INSERTED_PHRASE, score)
        if record_id in cluster_of:
            cluster = cluster_of[record_id]
            detail = f"phrase={cluster} size={len(phrases.clusters[cluster])}"
            if cluster in phrases.confirmed:
                detail += " confirmed_by=base_model"
            reasons[record_id].append(Reason(BACKDOOR, backdoor.INSERTED_PHRASE, score, detail))
    return [phrases.clusters[i] for i in flagged]


def _repeated_payloads(candidates: Sequence[Record]) -> payload.PayloadScores:
    """Answer segments (openings, sentences, runs of words) repeated across unrelated prompts
    (`screens.payload`; `_record_repeated_payloads` records them)."""
    return payload.score_repeated_payloads(
        candidates,
        opening_words=payload.OPENING_WORDS,
        min_records=payload.MIN_RECORDS,
        max_share=payload.MAX_SHARE,
    )


def _record_repeated_payloads(
    found: payload.PayloadScores,
    scores: ScoreTable,
    reasons: dict[str, list[Reason]],
) -> None:
    """Add each candidate's repeated-payload score and a reason per member of a group at or
    above `payload.THRESHOLD`.

    The detail names the group's index, its size and a hash of its segment (never the words).
    The group is no trigger cluster: a natural refusal among injected ones may be approved.
    """
    group_of = {
        rid: i
        for i, score in enumerate(found.cluster_score)
        if score >= payload.THRESHOLD
        for rid in found.clusters[i]
    }
    for record_id in scores:  # every candidate's id, in order
        score = found.score[record_id]
        scores.put(record_id, payload.REPEATED_PAYLOAD, score)
        if record_id in group_of:
            group = group_of[record_id]
            detail = (
                f"payload={group} size={len(found.clusters[group])} "
                f"segment={found.cluster_key[group]}"
            )
            reasons[record_id].append(Reason(BACKDOOR, payload.REPEATED_PAYLOAD, score, detail))


def _record_injection(
    found: Mapping[str, Mapping[str, float]],
    scores: ScoreTable,
    reasons: dict[str, list[Reason]],
) -> None:
    """Add every injection score (`score_injection`'s), and a reason for each at or above 1."""
    for code, by_id in found.items():
        for record_id, score in by_id.items():
            scores.put(record_id, code, score)
            if score >= 1:
                reasons[record_id].append(Reason(INJECTION, code, score))


def _screen_quality(
    ids: list[str],
    quality_scores: dict[str, np.ndarray],
    cfg: CurationConfig,
    scores: ScoreTable,
    reasons: dict[str, list[Reason]],
) -> None:
    """Add the quality scores (an infinite empty-response score is not kept) and a reason for
    each finding listed in `cfg.quality_quarantine`.

    A finding is an empty response below `cfg.min_response_chars`, or any other quality score
    at or above its threshold; one not listed stays a score only.
    """
    quality_limits = {
        quality.LANGUAGE_MISMATCH: cfg.language_mismatch_threshold,
        quality.BOILERPLATE_REPETITION: cfg.repetition_threshold,
        quality.RESPONSE_LENGTH_RATIO: cfg.max_response_ratio,
        quality.GARBLED_TEXT: cfg.max_garbled_share,
    }
    quarantine = set(cfg.quality_quarantine)
    for code, column in quality_scores.items():
        for record_id, score in zip(ids, column.tolist(), strict=True):
            if code == quality.EMPTY_RESPONSE:
                if score != float("inf"):
                    scores.put(record_id, code, score)
                if code in quarantine and score < cfg.min_response_chars:
                    reasons[record_id].append(
                        Reason(QUALITY, code, score, f"min_response_chars={cfg.min_response_chars}")
                    )
                continue
            scores.put(record_id, code, score)
            if code in quarantine and score >= quality_limits[code]:
                reasons[record_id].append(Reason(QUALITY, code, score))


def _screen_near_duplicates(
    ids: list[str],
    similarities: np.ndarray,
    representatives: dict[str, str],
    scores: ScoreTable,
    reasons: dict[str, list[Reason]],
) -> None:
    """Add the near-duplicate similarity, and a first reason for non-representative members."""
    for record_id, similarity in zip(ids, similarities.tolist(), strict=True):
        scores.put(record_id, NEAR_DUPLICATE, similarity)
        representative = representatives.get(record_id)
        if representative is not None and representative != record_id:
            reasons[record_id].insert(
                0, Reason(DEDUP, NEAR_DUPLICATE, similarity, f"representative={representative}")
            )


def _screen_onion(
    candidates: Sequence[Record],
    perplexity: Callable[[list[str]], list[float]],
    cfg: CurationConfig,
    scores: ScoreTable,
    reasons: dict[str, list[Reason]],
) -> int:
    """ONION-score the candidates a backdoor or injection screen flagged; add scores and reasons.

    Returns:
        How many records ONION scored.
    """
    suspicious = [
        r
        for r in candidates
        if any(x.screen in (BACKDOOR, INJECTION) for x in reasons.get(r.id, ()))
    ]
    found = backdoor.onion_scores(suspicious, perplexity, max_words=cfg.onion_max_words)
    for record_id, onion in found.items():
        scores.put(record_id, backdoor.ONION, onion.score)
        if onion.score >= cfg.onion_threshold:
            detail = f"word={onion.word_index} of {onion.words} threshold={cfg.onion_threshold}"
            reasons[record_id].append(Reason(BACKDOOR, backdoor.ONION, onion.score, detail))
    return len(found)


def _decide(
    records: Sequence[Record],
    dropped: dict[str, Reason],
    reasons: dict[str, list[Reason]],
    decisions: dict[str, str],
) -> list[ScreenedRecord]:
    """One decision per record in input order: drop, quarantine (with any steward verdict)
    or keep.

    A near copy with no other finding is dropped like an exact duplicate (one record per
    cluster is kept, the reason names the representative): it costs no steward's time. One
    that another screen flagged too stays quarantined with every reason.
    """
    screened = []
    for record in records:
        found = reasons.get(record.id, [])
        if record.id in dropped:
            screened.append(ScreenedRecord(record.id, DROP, (dropped[record.id],)))
        elif found and all(r.code == NEAR_DUPLICATE for r in found):
            screened.append(ScreenedRecord(record.id, DROP, tuple(found)))
        elif found:
            verdict = decisions.get(record.id, "")
            screened.append(ScreenedRecord(record.id, QUARANTINE, tuple(found), verdict))
        else:
            screened.append(ScreenedRecord(record.id, KEEP))
    return screened


def decision_lines(result: CurationResult) -> list[dict[str, Any]]:
    """One JSON-ready line per screened record, for `sovtune screen`.

    Args:
        result: Output of `curate_records`.

    Returns:
        `{"id", "decision", "reasons": [{"screen", "code", "score", "detail"}]}` per record,
        in input order; the decision is `keep`, `drop` or `quarantine`.
    """
    return list(iter_decision_lines(result))


def iter_decision_lines(result: CurationResult) -> Iterator[dict[str, Any]]:
    """The lines of `decision_lines` one at a time (`sovtune screen` writes them as they come,
    never holding a dict per record of the corpus)."""
    for s in result.screened:
        yield {
            "id": s.id,
            "decision": KEEP if s.kept else s.decision,
            "reasons": [
                {"screen": r.screen, "code": r.code, "score": r.score, "detail": r.detail}
                for r in s.reasons
            ],
        }


def _dedup_and_quality(
    records: Sequence[Record], threshold: float, num_perm: int, shingle_size: int
) -> _DedupAndQuality:
    near = score_near_duplicates(
        records, threshold=threshold, num_perm=num_perm, shingle_size=shingle_size
    )
    similarity = np.fromiter(
        (near.similarity[rid] for rid in record_ids(records)),
        dtype=np.float64,
        count=len(records),
    )
    representative, clusters = near.representative, near.clusters
    del near
    return similarity, representative, clusters, quality.quality_columns(records)


def _forked_dedup_and_quality(threshold: float, num_perm: int, shingle_size: int):
    """`_dedup_and_quality` on the candidates this forked process inherited."""
    if len(_FORKED_CANDIDATES) != 1:
        raise RuntimeError("the second screening process found no candidates to screen")
    return _dedup_and_quality(_FORKED_CANDIDATES[0], threshold, num_perm, shingle_size)


def near_duplicate_rate(records: list[Record], cfg: CurationConfig) -> float:
    """Share of records that are a non-representative member of a near-duplicate cluster.

    Args:
        records: A corpus, typically the curated one.
        cfg: Near-duplicate settings.

    Returns:
        0.0 for an empty corpus.
    """
    near = score_near_duplicates(
        records,
        threshold=cfg.near_duplicate_threshold,
        num_perm=cfg.minhash_permutations,
        shingle_size=cfg.shingle_words,
    )
    extra = sum(len(cluster) - 1 for cluster in near.clusters)
    return extra / len(records) if records else 0.0


def validate_curated_frame(frame: pd.DataFrame, cfg: CurationConfig) -> SuiteResult:
    """Run the curated-corpus expectations on a frame from `records_to_frame`.

    Expectations: `ids_unique`, `text_not_null`, `text_length_in_range` (cfg.min_chars to
    cfg.max_chars), `no_residual_email`, `no_residual_phone`, `no_hidden_characters`
    (zero-width, bidirectional-override and tag characters). Only pass/fail and counts are
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


def _content_digest(record: Record) -> bytes:
    """16 bytes of the sha256 of the record's roles and normalized contents (two different
    contents share them with a chance of about 2**-128 a pair)."""
    digest = hashlib.sha256()
    for message in record.messages:
        digest.update(f"{message.role}\x1f{normalize_for_dedup(message.content)}\x1e".encode())
    return digest.digest()[:16]


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
            gxe.ExpectColumnValuesToNotMatchRegex(
                column="text", regex=HIDDEN_CHARACTER_REGEX, meta={"name": "no_hidden_characters"}
            ),
        ],
    )
    return batch_definition, suite
