"""Find personal data with Presidio and replace it with stable, keyed pseudonyms.

The analyzer runs offline: the spaCy model must be an installed package (nothing is downloaded)
and tldextract, which Presidio's email recognizer calls, uses its bundled public suffix list.
A pseudonym is `<ENTITY_TYPE_hex8>`, the first 8 hex digits of an HMAC-SHA256 of the entity type
and value under a secret key: the same value gets the same pseudonym in every record and run,
and without the key a pseudonym cannot be linked back to its value by guessing candidates.

Routing (issue #15): a record's pack comes from its script (`ingest.language.language_verdict`);
NER reads every sentence of every text that holds a letter of its model's script; a Chinese
text is also read by the English pack (Latin names, and every pattern recognizer whatever the
script), keeping its findings that hold no Han and overlap nothing the Chinese pack found; a
text in a script no pack reads is refused upstream, and `scan_refused` still reports what the
English pack's patterns find in it.

No function here logs or raises with a PII value; findings carry offsets, types and scores only.
"""

import bisect
import copy
import itertools
import logging
import multiprocessing
import os
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path

import spacy.util
import tldextract.tldextract
from presidio_analyzer import AnalyzerEngine, RecognizerRegistry, RecognizerResult
from presidio_analyzer.context_aware_enhancers import LemmaContextAwareEnhancer
from presidio_anonymizer import AnonymizerEngine
from presidio_anonymizer.entities import EngineResult, OperatorConfig
from presidio_anonymizer.entities import RecognizerResult as AnonymizerResult

from pipelines.steps.config import PIIConfig
from pipelines.steps.ingest.language import HAN, HAN_PACK, UNDETERMINED
from pipelines.steps.offline import offline_tldextract
from pipelines.steps.privacy import surrogates
from pipelines.steps.privacy.invisible import INVISIBLE_REGEX
from pipelines.steps.privacy.normalize import normalize
from pipelines.steps.privacy.recognizers import (
    RECOGNIZERS_FILE,
    RecognizerConfigError,
    load_recognizers,
)
from pipelines.steps.privacy.recognizers.base import (
    ScanTimeout,
    Spans,
    check_deadline,
    scan_deadline,
)
from pipelines.steps.privacy.recognizers.cn_lac import CnModelMissing
from pipelines.steps.privacy.recognizers.cn_names import (
    FORMS_OF_ADDRESS,
    addressed_surnames,
    inside_a_longer_word,
)
from pipelines.steps.privacy.recognizers.en_keyed_ids import FALLBACK_ENTITIES
from pipelines.steps.privacy.recognizers.en_names import PARTICLES, english_words, is_english
from pipelines.steps.privacy.recognizers.en_ner import NerRecognizer
from pipelines.steps.privacy.recognizers.en_other_script import OTHER_SCRIPT_RUN
from pipelines.steps.privacy.recognizers.nlp_engine import CHUNK, PackNlpEngine
from pipelines.steps.records import Message, Record

LANGUAGE = "en"
PATTERNS_ONLY = "patterns"
"""Pseudo-language of `scan_text`: the English pack without NER, for a text in a script no
pack reads (`scan_refused`): its e-mails, phones, cards, IBANs, ids and secrets are found."""
EVERY_SCRIPT = frozenset({"USER_HANDLE"})
"""Types whose recognizers read Han in every pack (a pattern, not NER)."""
_SCRIPT_OF_NER = {LANGUAGE: re.compile(r"[A-Za-z\u00c0-\u024f\u1e00-\u1eff]")}
"""Per pack with NER: letters its model reads; a text without one gets no NER pass."""
PARALLEL_PROCESSES = 2
PARALLEL_MIN_TEXTS = 64
"""From this many distinct texts on, half of them are analyzed in a forked child process.

Forking costs tens of milliseconds; 64 short texts take about a quarter of a second."""
PSEUDONYM_PATTERN = re.compile(r"<[A-Z][A-Z0-9_]*_[0-9a-f]{8}>")
"""Matches our own pseudonym tokens, e.g. `<EMAIL_ADDRESS_3fa91c02>`."""
MIN_KEY_BYTES = 16
PRESIDIO_LOGGERS = ("presidio-analyzer", "presidio-anonymizer", "decision_process")
SCAN_TIMEOUT = "scan_timeout"
"""Reason code of a record whose scan ran past `pii.scan_budget_seconds` (quarantined)."""
RESIDUAL_TIMEOUT = "SCAN_TIMEOUT"
"""What `residual_pii` counts for a record its re-scan could not finish: the gate fails."""
LONG_TEXT = CHUNK
"""Texts longer than this go through spaCy one at a time, in chunks, under their budget."""


class PIIEngineError(RuntimeError):
    """The PII engine cannot be built as configured; no text may pass unscanned."""


@dataclass(frozen=True)
class Finding:
    """One detected entity: where it is and what it is, never its value.

    Attributes:
        field: The message field the offsets refer to, e.g. `text` or `messages[2].content`.
        start: Start offset (Python code points) into that field's text.
        end: End offset (exclusive).
        entity_type: Presidio entity type, e.g. `EMAIL_ADDRESS`.
        score: Presidio confidence in [0, 1].
    """

    field: str
    start: int
    end: int
    entity_type: str
    score: float


@dataclass(frozen=True)
class ScrubResult:
    """Scrubbed records and what was replaced in them.

    Attributes:
        records: New records, same ids and order, every message content pseudonymized.
        entity_counts: Number of replaced entities per entity type.
        records_with_pii: Number of records with at least one replaced entity.
    """

    records: list[Record]
    entity_counts: dict[str, int]
    records_with_pii: int
    timed_out: tuple[str, ...] = ()
    """Ids of records whose scan ran past `pii.scan_budget_seconds` (in any pass): they are
    not in `records` and must be quarantined as `scan_timeout` by the caller."""


def build_analyzer(cfg: PIIConfig) -> AnalyzerEngine:
    """Build the Presidio analyzer with our recognizer packs (English and Chinese).

    The recognizers are the ones `cfg.recognizers_file` (default
    `pipelines/config/recognizers.yaml`) configures, added to an empty Presidio registry; the
    NLP engine is spaCy (`cfg.spacy_model`, NER only) for English and a character tokenizer for
    Chinese. Also points tldextract at its bundled suffix list so no recognizer opens a socket.

    Args:
        cfg: The `pii` section of the pipeline configuration.

    Returns:
        An analyzer engine supporting every language of the recognizer file.

    Raises:
        PIIEngineError: The spaCy model is not an installed package (it is never downloaded),
            the recognizer file is invalid, or an entity in `cfg.entities` has no recognizer.
    """
    if not spacy.util.is_package(cfg.spacy_model):
        raise PIIEngineError(
            f"pii.spacy_model: spaCy model package {cfg.spacy_model!r} is not installed; "
            "install it into the environment (models are never downloaded at run time)"
        )
    use_offline_tldextract()
    withhold_presidio_log_text()
    try:
        packs = load_recognizers(Path(cfg.recognizers_file or RECOGNIZERS_FILE))
    except RecognizerConfigError as exc:
        raise PIIEngineError(f"pii.recognizers_file: {exc}") from None
    except CnModelMissing as exc:  # the Chinese pack never scans without its NER model
        raise PIIEngineError(f"Chinese pack (cn_person, cn_location): {exc}") from None
    languages = sorted(packs)
    registry = _FixedRegistry(supported_languages=languages)
    for recognizers in packs.values():
        for recognizer in recognizers:
            registry.add_recognizer(_within_deadline(recognizer))
    nlp_engine = PackNlpEngine(cfg.spacy_model)
    nlp_engine.load()
    analyzer = AnalyzerEngine(
        registry=registry,
        nlp_engine=nlp_engine,
        supported_languages=languages,
        context_aware_enhancer=_OwnContextFirstEnhancer(),
    )
    supported = {e for language in languages for e in analyzer.get_supported_entities(language)}
    unsupported = sorted(set(cfg.entities) - supported)
    if unsupported:
        # Presidio would only warn and skip them: those values would pass through unscrubbed.
        raise PIIEngineError(f"pii.entities: no recognizer for {', '.join(unsupported)}")
    for language in [language for language in languages if language in WARM_UP]:
        # Presidio compiles each pattern on its first match attempt (its URL pattern, a long
        # alternation of domains, takes a tenth of a second), phonenumbers loads metadata per
        # region and LAC its model: done once here, every forked worker inherits them.
        analyzer.analyze(text=WARM_UP[language], language=language, score_threshold=1.0)
    return analyzer


WARM_UP = {
    "en": "Warm-up: Jane Doe, jane@example.com, https://www.example.com/a, +1 212-555-0101.",
    "zh": "预热：王秀英，手机13800138000，邮箱 wang@example.com，网址 https://www.example.com。",
}
"""A text per language pack that reaches every costly first-use path of its recognizers."""


def _within_deadline(recognizer):
    """The recognizer, its `analyze` checking the running scan's deadline before and after.

    The analyzer runs in this process, so the per-record budget is cooperative: a recognizer
    is not interrupted from outside, but every one is linear (tests/test_scan_budget.py), the
    costly ones read long texts in windows that check the deadline themselves, and spaCy reads
    a long text in chunks with a check between them (`_nlp_artifacts`)."""
    analyze = recognizer.analyze

    def checked(*args, **kwargs):
        check_deadline()
        results = analyze(*args, **kwargs)
        check_deadline()
        return results

    recognizer.analyze = checked
    return recognizer


class _OwnContextFirstEnhancer(LemmaContextAwareEnhancer):
    """Presidio's context enhancer, given only the results that have not weighed their context.

    Our recognizers check their context words themselves and mark their results as enhanced,
    which Presidio's enhancer then leaves alone, but only after deep-copying every result of
    the text. It gets the others (those of Presidio's own recognizers) alone; the enhancer
    weighs each result on its own, so the outcome is the same.
    """

    def enhance_using_context(
        self,
        text: str,
        raw_results: list[RecognizerResult],
        nlp_artifacts,
        recognizers: list,
        context: list[str] | None = None,
    ) -> list[RecognizerResult]:
        enhanced = RecognizerResult.IS_SCORE_ENHANCED_BY_CONTEXT_KEY
        pending = [r for r in raw_results if not r.recognition_metadata.get(enhanced)]
        if not pending:
            return raw_results
        done = [r for r in raw_results if r.recognition_metadata.get(enhanced)]
        return done + super().enhance_using_context(
            text, pending, nlp_artifacts, recognizers, context
        )

    _token_ends: tuple[object, list[int]] | None = None
    _keywords: tuple[object, frozenset[str]] | None = None

    def _add_n_words_forward(self, index, n_words, lemmas, lemmatized_filtered_keywords):
        return self._add_n_words(
            index, n_words, lemmas, self._set_of(lemmatized_filtered_keywords), False
        )

    def _add_n_words_backward(self, index, n_words, lemmas, lemmatized_filtered_keywords):
        return self._add_n_words(
            index, n_words, lemmas, self._set_of(lemmatized_filtered_keywords), True
        )

    def _set_of(self, keywords: list[str]) -> frozenset[str]:
        """The text's context keywords as a set, made once per text: Presidio tests each lemma
        against their list, for every result (the square of a long text's length again)."""
        cached = self._keywords
        if cached is None or cached[0] is not keywords:
            cached = self._keywords = (keywords, frozenset(keywords))
        return cached[1]

    def _find_index_of_match_token(self, word, start, tokens, tokens_indices) -> int:
        """The first token that ends after `start`, as Presidio's own method finds it, but by
        a binary search over the text's token ends computed once per text: Presidio walks the
        tokens from the first for every result, so a text of thousands of findings (a table
        of 4,000 ids) cost the square of its length (7 s at 88,000 characters)."""
        cached = self._token_ends  # read once: the pair is replaced whole, never changed
        if cached is None or cached[0] is not tokens:
            ends = [at + len(token) for at, token in zip(tokens_indices, tokens, strict=True)]
            cached = self._token_ends = (tokens, ends)
        index = bisect.bisect_right(cached[1], start)
        if index == len(cached[1]):
            raise ValueError(
                f"Did not find word '{word}' in the list of tokens although it is expected"
            )
        return index


class _FixedRegistry(RecognizerRegistry):
    """A registry that is not changed after `build_analyzer`, so its lookups are remembered.

    Presidio filters every recognizer per entity on every `analyze` call (and logs a warning
    per entity a language lacks): about a millisecond per text.
    """

    def get_recognizers(
        self,
        language: str,
        entities: list[str] | None = None,
        all_fields: bool = False,
        ad_hoc_recognizers: list | None = None,
    ) -> list:
        if ad_hoc_recognizers:
            return super().get_recognizers(language, entities, all_fields, ad_hoc_recognizers)
        cache = self.__dict__.setdefault("_lookups", {})
        key = (language, tuple(entities or ()), all_fields, len(self.recognizers))
        if key not in cache:
            cache[key] = super().get_recognizers(language, entities, all_fields)
        return list(cache[key])


def residual_config(cfg: PIIConfig) -> PIIConfig:
    """The stricter configuration of the residual re-scan: `pii.residual_score_threshold`."""
    threshold = min(cfg.score_threshold, cfg.residual_score_threshold)
    return cfg.model_copy(update={"score_threshold": threshold})


def use_offline_tldextract() -> None:
    """Make `tldextract.extract` (used by Presidio's email recognizer) use the bundled list.

    The module-level extractor otherwise fetches the public suffix list over HTTP on first use.
    """
    tldextract.tldextract.TLD_EXTRACTOR = offline_tldextract()


def withhold_presidio_log_text() -> None:
    """Replace the text of every Presidio log record; level and source location stay.

    Presidio logs context words around matches at DEBUG and the text of a failed IBAN check at
    ERROR: both are personal data.
    """
    for name in PRESIDIO_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _WithholdLogText) for f in logger.filters):
            logger.addFilter(_WithholdLogText())


class _WithholdLogText(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = "Presidio log text withheld (it may contain personal data)"
        record.args = ()
        return True


def scan_text(
    analyzer: AnalyzerEngine,
    text: str,
    cfg: PIIConfig,
    *,
    field: str = "text",
    language: str = LANGUAGE,
) -> list[Finding]:
    """Find the configured entities in one text (normalized first, offsets into `text`).

    Args:
        analyzer: An engine from `build_analyzer`.
        text: The text to scan.
        cfg: Entities to look for and the score threshold.
        field: Field name recorded in each finding.
        language: Which pack scans it (`en`, `zh`).

    Returns:
        Non-overlapping findings at or above the threshold, ordered by start offset.

    Raises:
        ScanTimeout: The scan ran past `cfg.scan_budget_seconds` (nothing is returned: the
            text must be treated as unscanned).
    """
    [results], [seconds] = _analyze_texts(analyzer, [text], [language], cfg, batch_size=1)
    if seconds > cfg.scan_budget_seconds:
        raise ScanTimeout("PII scan ran past pii.scan_budget_seconds")
    return _resolve(results, text, field, cfg)


def scan_refused(
    analyzer: AnalyzerEngine, text: str, cfg: PIIConfig, *, field: str = "text"
) -> list[Finding]:
    """The pattern findings of a text that no pack can read whole (`unsupported_language`).

    Such a record is quarantined (fail closed: a name in its script would pass unscanned), but
    what the English pack's patterns and rules find in it (e-mails, phones, cards, IBANs, ids,
    secrets, Latin-script names) is still reported, e.g. by `sovtune scan`; the words of the
    unreadable script themselves are not listed as findings (the whole record is refused).
    """
    return [
        finding
        for finding in scan_text(analyzer, text, cfg, field=field, language=PATTERNS_ONLY)
        if not OTHER_SCRIPT_RUN.fullmatch(text, finding.start, finding.end)
    ]


def scan_records(
    records: list[Record],
    analyzer: AnalyzerEngine,
    cfg: PIIConfig,
    *,
    batch_size: int = 64,
    timed_out: set[str] | None = None,
) -> list[tuple[str, list[Finding]]]:
    """Scan every message of every record, batching texts through spaCy.

    Args:
        records: Records to scan.
        analyzer: An engine from `build_analyzer`.
        cfg: Entities to look for, the score threshold and the per-record time budget.
        batch_size: Texts per spaCy batch.
        timed_out: Where the ids of records whose scan ran past `cfg.scan_budget_seconds`
            are added (their findings are then empty: unscanned, not clean). Without it, such
            a record raises.

    Returns:
        One `(record id, findings)` pair per record, in input order; each finding's `field` is
        the message's `field`, or `messages[i].content` where the message has none.

    Raises:
        ScanTimeout: A record ran past its budget and no `timed_out` set was given.
    """
    per_record, late = _scan_messages(records, analyzer, cfg, batch_size)
    if late and timed_out is None:
        raise ScanTimeout(f"the PII scan of {len(late)} record(s) ran past pii.scan_budget_seconds")
    if timed_out is not None:
        timed_out.update(records[index].id for index in late)
    return [
        (
            record.id,
            []
            if index in late
            else [finding for message_findings in per_message for finding in message_findings],
        )
        for index, (record, per_message) in enumerate(zip(records, per_record, strict=True))
    ]


MessageScan = Callable[
    [list[Record], list[list] | None], tuple[list[list[list[Finding]]], set[int]]
]
"""One scrub pass's scan, as `scan_messages` does it: findings per record and message of the
records (only the messages whose entry in `only` is true, default every one) and the indices of the
records that ran past `pii.scan_budget_seconds`. An engine that scans elsewhere (on Ray,
`pipelines.steps.execution`) gives `scrub_records` its own."""


def scan_messages(
    records: list[Record],
    analyzer: AnalyzerEngine,
    cfg: PIIConfig,
    *,
    batch_size: int = 64,
    only: list[list] | None = None,
    every_pack: bool = False,
) -> tuple[list[list[list[Finding]]], set[int]]:
    """The scan of one `scrub_records` pass: findings per record, per message, by its record's
    pack (with `every_pack`, by every pack: the residual re-scan's), and the indices of the
    records over `cfg.scan_budget_seconds` (their findings are empty: unscanned, not clean).
    Each record's result depends on that record alone."""
    return _scan_messages(records, analyzer, cfg, batch_size, only=only, every_pack=every_pack)


def pseudonym(entity_type: str, value: str, *, key: bytes) -> str:
    """The stable, realistic pseudonym of one entity value, e.g. `William Harris` for a name.

    A surrogate of the same type, format and language (see `pipelines.steps.privacy.surrogates`),
    seeded by an HMAC-SHA256 of the type and value under `key`. A type without a surrogate generator
    gets its placeholder (`<TYPE>`) and a secret gets the redaction mark: never the value.

    Args:
        entity_type: Entity type; part of the HMAC input, so equal strings of different types
            get unrelated pseudonyms.
        value: The entity's text.
        key: Secret HMAC key.

    Returns:
        The surrogate, placeholder or redaction mark.
    """
    if surrogates.has_surrogate(entity_type):
        return surrogates.surrogate(entity_type, value, key=key)
    if surrogates.is_secret(entity_type):
        return surrogates.REDACTED
    return surrogates.placeholder(entity_type)


def scrub_records(
    records: list[Record],
    analyzer: AnalyzerEngine | None,
    cfg: PIIConfig,
    *,
    key: bytes,
    batch_size: int = 64,
    max_passes: int = 3,
    remember: Callable[[str, str, str], None] | None = None,
    scan: MessageScan | None = None,
) -> ScrubResult:
    """Replace every finding in every message by the operator configured for its type.

    Operators (`cfg.operators`, see `surrogates.operator_for`): `pseudonym` writes the keyed
    realistic surrogate, `placeholder` writes `<TYPE>`, `redact` writes `[REDACTED]` (always so
    for secrets). Every replacement is recorded as a span in its message's `scrub_spans`, so a
    re-scan does not count a realistic surrogate as residual personal data; a finding only
    partly inside such a span is replaced together with the span.

    Args:
        records: Records to scrub.
        analyzer: An engine from `build_analyzer`.
        cfg: Entities to replace, the score threshold and the operators.
        key: Secret HMAC key (from the variable named by `cfg.pseudonym_key_env`).
        batch_size: Texts per spaCy batch.
        max_passes: Scan-and-replace passes over records that changed in the previous pass.
        remember: Called with `(entity_type, surrogate, original)` for every pseudonymized
            value, e.g. `Vault.add`; nothing else sees the original.
        scan: Each pass's scan (default: `scan_messages` with `analyzer` here; `analyzer` may
            then be None). Replacements stay here: surrogates are claimed in order in one
            registry (`surrogates.registry_session`).

    Returns:
        The scrubbed records (new objects, same ids and order) and replacement counts; a
        record whose scan ran past `cfg.scan_budget_seconds` in any pass is left out of
        `records` and listed in `timed_out` (the caller quarantines it as `scan_timeout`).

    Raises:
        ValueError: The key is shorter than `MIN_KEY_BYTES`.
    """
    if len(key) < MIN_KEY_BYTES:
        raise ValueError(
            f"pseudonym key must be at least {MIN_KEY_BYTES} bytes; "
            f"set a longer secret in ${cfg.pseudonym_key_env} (pii.pseudonym_key_env)"
        )
    anonymizer = AnonymizerEngine()
    operators = _operators(cfg, key)
    found_in: dict[int, Counter[str]] = {}
    with_pii: set[int] = set()
    scrubbed = list(records)
    # Replacing a finding changes its context, and NER may then see a name it missed before;
    # messages changed by one pass are re-scanned until a pass finds nothing new (bounded).
    # The first pass scans everything; a later pass only the messages the previous one changed,
    # each exactly as the first pass scans it, so when a pass finds nothing new the residual
    # gate's reading with the same pack at the same threshold finds nothing either (the gate
    # stays a separate scan with every pack, at a lower threshold).
    pending = list(range(len(records)))
    changed_at: dict[int, list[list[tuple[int, int]]]] = {}
    late: set[int] = set()
    for pass_number in range(max_passes):
        if not pending:
            break
        batch = [scrubbed[i] for i in pending]
        only = None if pass_number == 0 else [changed_at[i] for i in pending]
        if scan is None:
            per_record, late_in_batch = _scan_messages(batch, analyzer, cfg, batch_size, only=only)
        else:
            per_record, late_in_batch = scan(batch, only)
        late |= {pending[position] for position in late_in_batch}
        changed, changed_at = [], {}
        for index, record, per_message in zip(pending, batch, per_record, strict=True):
            if index in late:
                continue
            fresh = [
                _outside_scrub_spans(findings, message.scrub_spans, message.content)
                for message, findings in zip(record.messages, per_message, strict=True)
            ]
            found = [finding.entity_type for findings in fresh for finding in findings]
            if not found:
                continue
            found_in.setdefault(index, Counter()).update(found)
            operators |= _operators(cfg, key, set(found) - operators.keys())
            with_pii.add(index)
            changed.append(index)
            replaced = [
                _replace_and_mark(anonymizer, message, findings, operators, remember)
                for message, findings in zip(record.messages, fresh, strict=True)
            ]
            scrubbed[index] = record.with_messages(tuple(message for message, _ in replaced))
            changed_at[index] = [spans for _, spans in replaced]
        pending = changed
    # A quarantined record's findings of earlier passes are not counts of the scrubbed corpus.
    entity_counts = sum((found_in[i] for i in sorted(found_in) if i not in late), Counter())
    kept = [i for i in range(len(records)) if i not in late]
    return ScrubResult(
        records=[scrubbed[i] for i in kept],
        entity_counts=dict(sorted(entity_counts.items())),
        records_with_pii=len(with_pii - late),
        timed_out=tuple(records[i].id for i in sorted(late)),
    )


def residual_pii(
    records: list[Record],
    analyzer: AnalyzerEngine | None,
    cfg: PIIConfig,
    *,
    batch_size: int = 64,
    scan: MessageScan | None = None,
) -> dict[str, int]:
    """Count findings left in (scrubbed) records, per entity type, scanning with every pack.

    Stricter than the scrub, and independent of its routing: every message is scanned whole,
    NER included, by every language pack of the analyzer (a Chinese id card number in an
    English record is found by the Chinese pack), at `cfg.score_threshold` (the caller passes
    `residual_config`). A finding entirely inside a span the scrubber recorded
    (`Message.scrub_spans`: our own surrogate, placeholder or mark) is not counted, nor one
    across recorded spans side by side with nothing but what joins values between them
    (punctuation, one short word); any other finding is, including one that overlaps a
    recorded span only in part, and the text between two spans that is more than a join.

    Args:
        records: Records to re-scan, normally the output of `scrub_records`.
        analyzer: An engine from `build_analyzer`.
        cfg: Entities to look for and the score threshold.
        batch_size: Texts per spaCy batch.
        scan: The re-scan made elsewhere, by every pack at `cfg`'s threshold (on Ray:
            `ray_message_scan(residual_config(...), ..., every_pack=True)`); default
            `scan_messages` with `analyzer` here (`analyzer` may then be None).

    Returns:
        Findings per entity type, sorted by type; empty when nothing is left. A record whose
        re-scan ran past `cfg.scan_budget_seconds` counts once as `SCAN_TIMEOUT`: what could
        not be re-read is not clean, and the gate fails.
    """
    counts: Counter[str] = Counter()
    if scan is not None:
        per_record, late = scan(records, None)
    elif analyzer is None:
        raise PIIEngineError("residual_pii needs an analyzer or a scan")
    else:
        per_record, late = _scan_messages(records, analyzer, cfg, batch_size, every_pack=True)
    counts.update({RESIDUAL_TIMEOUT: len(late)} if late else {})
    for index, (record, per_message) in enumerate(zip(records, per_record, strict=True)):
        if index in late:
            continue
        for message, findings in zip(record.messages, per_message, strict=True):
            # read as the scrub reads its passes: a finding across surrogates side by side
            # (a town's, then an IBAN's `GB…` read as its country) is what joins them, if
            # anything (`_outside_scrub_spans`)
            counts.update(
                finding.entity_type
                for finding in _outside_scrub_spans(findings, message.scrub_spans, message.content)
            )
    return dict(sorted(counts.items()))


def _scan_messages(
    records: list[Record],
    analyzer: AnalyzerEngine,
    cfg: PIIConfig,
    batch_size: int,
    *,
    every_pack: bool = False,
    only: list[list] | None = None,
) -> tuple[list[list[list[Finding]]], set[int]]:
    """Findings per record, per message: by its record's language pack, or by every pack;
    and the indices of the records whose scan ran past `cfg.scan_budget_seconds` (the time of
    all their messages and packs together; their findings are not to be trusted).

    `only`, per record and message, says which messages to scan (a true value: scan it); the
    others get no findings. Default: every message.
    """
    places = [
        (r, m)
        for r, record in enumerate(records)
        for m in range(len(record.messages))
        if only is None or only[r][m]
    ]
    texts = [records[r].messages[m].content for r, m in places]
    # A short reply is also read after the question it answers ("… your date of birth?" then
    # "14/02/1988"); a later pass reads surrogates, the residual gate each message alone.
    asked = [] if only is not None or every_pack else _answers(records)
    read = places + [place for place, _ in asked]
    texts += [question + records[r].messages[m].content for (r, m), question in asked]
    packs = sorted(analyzer.supported_languages) if every_pack else [None]
    merged: dict[tuple[int, int], list[RecognizerResult]] = {place: [] for place in places}
    spent: Counter[int] = Counter()
    for pack in packs:
        languages = [pack or records[r].language for r, _ in read]
        found, seconds = _analyze_texts(analyzer, texts, languages, cfg, batch_size=batch_size)
        read_alone = len(places)
        for place, more, cost in zip(places, found[:read_alone], seconds[:read_alone], strict=True):
            merged[place] += more
            spent[place[0]] += cost
        for (place, question), more, cost in zip(
            asked, found[read_alone:], seconds[read_alone:], strict=True
        ):
            merged[place] += _after(more, len(question))
            spent[place[0]] += cost
    late = {r for r, cost in spent.items() if cost > cfg.scan_budget_seconds}
    found = [
        [
            _resolve(merged.get((r, m), ()), message.content, _field_name(message, m), cfg)
            for m, message in enumerate(record.messages)
        ]
        for r, record in enumerate(records)
    ]
    carry = "PERSON" in cfg.entities and MESSAGE_REPEAT_SCORE >= cfg.score_threshold
    if carry and only is None and not every_pack:
        # a later pass reads surrogates and the residual gate what is left: neither carries a
        # name from one message to another
        found = [_names_across_messages(r, f) for r, f in zip(records, found, strict=True)]
    if only is None and not every_pack:
        found = [_values_across_messages(r, f) for r, f in zip(records, found, strict=True)]
    return found, late


MAX_ANSWER_CHARS = 120
"""A reply this long at most is read after the question before it (a value given in answer:
a date, an id, an address, not a message of its own)."""
MAX_QUESTION_CHARS = 200
"""The question's last characters read before the reply (its key is at its end)."""
_CONVERSING = frozenset({"user", "assistant"})
_ASKS = re.compile(r"(?i)[?？:：]$|(?:^|[,，;；]\s*)(?:please|kindly|请|請|麻烦|麻煩)")
"""A sentence that asks for something: a question, a field's label (ends in a colon), a
request (a clause that opens with please, 请 ...)."""


def _answers(records: list[Record]) -> list[tuple[tuple[int, int], str]]:
    """The short replies that answer a question, each with the question to read it after.

    A reply is a message of `MAX_ANSWER_CHARS` or fewer by the other party (user after
    assistant, or assistant after user); the question is the previous message's last sentence
    when it asks (`_ASKS`: ends in a question mark or a colon, or opens with a request), at
    most its last `MAX_QUESTION_CHARS` characters without its closing mark, and a line break
    (the key next to the answer, as a form writes it): read so, "14/02/1988"
    after "can you confirm your date of birth?" is the date of birth the question names, as a
    person reading the conversation takes it.
    """
    asked = []
    for r, record in enumerate(records):
        for m in range(1, len(record.messages)):
            before, reply = record.messages[m - 1], record.messages[m]
            if (
                not reply.content.strip()
                or len(reply.content) > MAX_ANSWER_CHARS
                or {before.role, reply.role} != _CONVERSING
            ):
                continue
            sentence = _last_sentence(before.content)
            if sentence and _ASKS.search(sentence):
                # the key next to the answer, as a form writes it ("身分證字號" then the value)
                asked.append(((r, m), sentence.rstrip(_CLOSING) + "\n"))
    return asked


_SENTENCE_ENDS = "\n.!?。！？"
_CLOSING = ".!?。！？:： "


def _last_sentence(text: str) -> str:
    """The last sentence of `text`, at most its last `MAX_QUESTION_CHARS` characters."""
    tail = text.rstrip()[-MAX_QUESTION_CHARS:]
    body = tail.rstrip(_SENTENCE_ENDS)
    return tail[max(body.rfind(end) for end in _SENTENCE_ENDS) + 1 :].strip()


_READ_ALONE = frozenset({"PERSON", "LOCATION"})
"""Types the reply is read for alone: names and places are found by their own words (and NER's
context), not by a question's key; read after a question, NER only tags the reply's words
differently (restaurants in a reply to "… 好吗？" read as persons)."""


def _after(results: list[RecognizerResult], start: int) -> list[RecognizerResult]:
    """The results that lie after `start` (in the reply read after its question), moved to the
    reply's own offsets; not of the types a reply is read for alone (`_READ_ALONE`)."""
    moved = []
    for result in results:
        if result.start >= start and result.entity_type not in _READ_ALONE:
            result.start -= start
            result.end -= start
            moved.append(result)
    return moved


def _names_across_messages(record: Record, found: list[list[Finding]]) -> list[list[Finding]]:
    """A person's name found in one message of a conversation, wherever it comes again in the
    record's other messages ("my name is kishan" ... "raghunathan's account flagged").

    Each message is read alone, and a name a reply repeats without what made it a name (an
    introduction, a title, a capital) stays in the text; the conversation is one document.
    Carried: a Latin word of a found name that is neither a particle nor an English word (a
    name that is also a word, `Will`, `Grace`, is not carried: a reply's "Will you" is no
    name), in any case; a whole Han name of two to four characters, not inside a longer
    common word (高强 of 高强度); the surname of any Chinese full name found, before a form of
    address (`cn_names.addressed_surnames`: 张 of 张建国 in 张先生; alone, a surname with a title
    is a position, as in news). Each new finding is a
    PERSON at `MESSAGE_REPEAT_SCORE`, where no finding of that message covers it.
    """
    if len(record.messages) < 2:
        return found
    english = None
    latin: set[str] = set()  # casefolded
    han: set[str] = set()
    for message, findings in zip(record.messages, found, strict=True):
        for finding in findings:
            if finding.entity_type != "PERSON" or finding.score < CARRIED_EVIDENCE:
                continue
            value = message.content[finding.start : finding.end]
            if _HAN_NAME.fullmatch(value):
                han.add(value)
                continue
            for word in _NAME_WORD.findall(value):
                if len(word) < 3 or word.lower() in PARTICLES or HAN.search(word):
                    continue
                english = english if english is not None else english_words(None)
                if not is_english(word.lower(), english):
                    latin.add(word.lower())
    persons = {
        message.content[finding.start : finding.end]
        for message, findings in zip(record.messages, found, strict=True)
        for finding in findings
        if finding.entity_type == "PERSON"
    }
    if not latin and not han and not persons:
        return found
    carried = []
    for message, findings, m in zip(record.messages, found, range(len(found)), strict=True):
        text, taken = message.content, Spans((f.start, f.end) for f in findings)
        more = [
            (match.start(), match.end())
            for match in _NAME_WORD.finditer(text)
            if match.group().lower() in latin
        ]
        more += [
            (at.start(), at.end())
            for name in han
            for at in re.finditer(re.escape(name), text)
            if not inside_a_longer_word(text, at.start(), at.end())  # 高强 of 高强度
        ]
        # 张 of 张建国 in 张先生, not in 主张 + 总体
        more += [
            (start, end)
            for start, end, address_end in addressed_surnames(text, persons, FORMS_OF_ADDRESS)
            if not inside_a_longer_word(text, start, address_end)
        ]
        new = [
            Finding(_field_name(message, m), start, end, "PERSON", MESSAGE_REPEAT_SCORE)
            for start, end in sorted(set(more))
            if not taken.overlaps(start, end)
        ]
        carried.append(sorted(findings + new, key=lambda f: f.start) if new else findings)
    return carried


MIN_CARRIED_VALUE = 6
"""Characters a found value must have to be found again wherever it is written in its record."""
_NOT_CARRIED = frozenset({"PERSON", "AGE"})
"""Types not carried as values: names have their own reading (`_names_across_messages`); an
age is a small number that other numbers repeat."""
_CARRIED_CHARACTER = re.compile(r"[\d@]")
_WORD_CHARACTER = re.compile(r"[A-Za-z0-9_]")
"""What a carried value may not stand beside (inside a longer token); a Han character may (an
identifier glued to Chinese text, 订单号DD2024…已发货, is whole)."""


def _values_across_messages(record: Record, found: list[list[Finding]]) -> list[list[Finding]]:
    """A value found in the record (an identifier, a number, an address with its number, a
    secret) wherever it is written again in the record's messages: "employee ID EMP-20931" ...
    "I can see the record for EMP-20931"; "username mrossi2" ... "I've unlocked mrossi2".

    The recognizer found it by its key or its context, which the other mention lacks; left
    there, the scrubbed record would still hold the value it replaced once. Carried: the text
    of each finding of `MIN_CARRIED_VALUE` characters or more that holds a digit or an `@` (a
    word without one, such as a secret read in a schema's `"type": "string"`, would carry a
    false finding everywhere), not a name or an age (`_NOT_CARRIED`), found again in any case
    where it stands as a whole (no letter, digit or underscore beside it) and no finding of
    that message covers it; each new finding has the type and score of the one it repeats (of
    the highest-scored one, where the value was found as several).
    """
    values: dict[str, tuple[str, float]] = {}
    for message, findings in zip(record.messages, found, strict=True):
        for finding in findings:
            value = message.content[finding.start : finding.end]
            if (
                finding.entity_type in _NOT_CARRIED
                or len(value) < MIN_CARRIED_VALUE
                or not _CARRIED_CHARACTER.search(value)
            ):
                continue
            key = value.casefold()
            if key not in values or finding.score > values[key][1]:
                values[key] = (finding.entity_type, finding.score)
    if not values:
        return found
    # the longest value first where two start at the same place
    pattern = re.compile(
        "|".join(re.escape(value) for value in sorted(values, key=len, reverse=True)),
        re.IGNORECASE,
    )
    carried = []
    for m, (message, findings) in enumerate(zip(record.messages, found, strict=True)):
        text, taken = message.content, Spans((f.start, f.end) for f in findings)
        new = []
        for match in pattern.finditer(text):
            start, end = match.span()
            whole = not (
                _WORD_CHARACTER.match(text, start - 1) if start else False
            ) and not _WORD_CHARACTER.match(text, end)
            repeated = values.get(match.group().casefold())
            if whole and repeated and not taken.overlaps(start, end):
                new.append(Finding(_field_name(message, m), start, end, *repeated))
        carried.append(sorted(findings + new, key=lambda f: f.start) if new else findings)
    return carried


MESSAGE_REPEAT_SCORE = 0.6
"""A name carried from another message: as a word of a name repeated in one text."""
CARRIED_EVIDENCE = 0.9
"""The score of a name found by what only names a person (a title, a self-introduction, a
relation): only such a name is carried to the other messages. NER's fixed 0.85 is not enough:
it reads a sentence's first word as a name ("Blockchain is ..."), and a reply's every
"blockchain" would follow."""
_HAN_NAME = re.compile(r"[\u4e00-\u9fff]{2,4}")


def _analyze_texts(
    analyzer: AnalyzerEngine,
    texts: list[str],
    languages: list[str],
    cfg: PIIConfig,
    *,
    batch_size: int,
) -> tuple[list[list[RecognizerResult]], list[float]]:
    """Presidio results per text, in original offsets, each text analyzed by its language pack,
    and the seconds each text took (infinite where it ran past `cfg.scan_budget_seconds`).

    Texts are normalized (`pipelines.steps.privacy.normalize`) and pushed through the NLP engine in
    batches per language, on two cores for larger batches; results on the normalized text are
    mapped back to spans of the original text.

    Raises:
        PIIEngineError: A text's language has no pack (it must never pass unscanned).
    """
    languages = [_pack_language(lang) for lang in languages]
    supported = set(analyzer.supported_languages)
    unknown = sorted(
        {LANGUAGE if lang == PATTERNS_ONLY else lang for lang in languages} - supported
    )
    if unknown:
        raise PIIEngineError(
            f"no PII recognizer pack for language(s) {', '.join(unknown)} "
            f"(configured: {', '.join(sorted(supported))}; see pii.recognizers_file)"
        )
    normalized = [normalize(text) for text in texts]
    packs = [_packs_for(language, supported) for language in languages]
    # Identical texts (system prompts, templates) are analyzed once per pack.
    keys = sorted(
        {
            (pack, n.text)
            for n, text_packs in zip(normalized, packs, strict=True)
            for pack in text_packs
        }
    )
    unique = _analyze_unique_texts(analyzer, keys, cfg, batch_size)
    out: list[list[RecognizerResult]] = []
    costs: list[float] = []
    for mapping, text_packs in zip(normalized, packs, strict=True):
        first, *others = text_packs
        results = [copy.copy(r) for r in unique[(first, mapping.text)][0]]
        for other in others:
            kept = [r for r in results if r.entity_type in cfg.entities]
            results += _beside(kept, unique[(other, mapping.text)][0], mapping.text)
        if mapping.changed:
            for result in results:
                result.start, result.end = mapping.to_original(result.start, result.end)
        out.append(results)
        costs.append(sum(unique[(pack, mapping.text)][1] for pack in text_packs))
    return out, costs


def _packs_for(language: str, supported: set[str]) -> tuple[str, ...]:
    """The packs that read a text routed to `language`, the routed one first.

    A Chinese text is also read by the English pack: the Latin words in it (names, addresses)
    and every pattern recognizer of that pack (cards, phones, SSNs) whatever the script.
    `PATTERNS_ONLY` is the English pack without NER (a text in a script with no pack).
    """
    if language == HAN_PACK and LANGUAGE in supported:
        return (HAN_PACK, LANGUAGE)
    return (language,)


def _beside(
    first: list[RecognizerResult], more: list[RecognizerResult], text: str
) -> list[RecognizerResult]:
    """Copies of another pack's results that neither overlap the routed pack's results `first`
    (of configured types: one that is never kept vetoes nothing) nor hold a Han character (the
    English pack's NER and name rules do not read Han)."""
    return [
        copy.copy(r)
        for r in more
        if not HAN.search(text, r.start, r.end)
        and all(r.end <= k.start or k.end <= r.start for k in first)
    ]


_FORKED_ANALYZER: AnalyzerEngine | None = None
"""The analyzer a forked child process uses: set before the fork, inherited, never pickled."""


def _analyze_unique_texts(
    analyzer: AnalyzerEngine,
    keys: list[tuple[str, str]],
    cfg: PIIConfig,
    batch_size: int,
) -> dict[tuple[str, str], tuple[list[RecognizerResult], float]]:
    """Results and seconds spent per `(language, normalized text)`, using two cores when there
    is enough work.

    From `PARALLEL_MIN_TEXTS` texts on, every other text goes to one forked child process (it
    inherits the built analyzer: nothing is loaded again) while this process analyzes the rest;
    spaCy, the regexes and jieba are CPU-bound Python, so threads would not run in parallel.
    A child that fails raises here: no text passes unscanned.
    """
    global _FORKED_ANALYZER
    if len(keys) < PARALLEL_MIN_TEXTS or _cores() < PARALLEL_PROCESSES:
        return _analyze_chunk(analyzer, keys, cfg, batch_size)
    # Interleaved halves: both get their share of long and short, English and Chinese texts.
    mine, theirs = keys[0::2], keys[1::2]
    context = multiprocessing.get_context("fork")
    receive, send = context.Pipe(duplex=False)
    _FORKED_ANALYZER = analyzer
    try:
        child = context.Process(
            target=_analyze_chunk_in_child, args=(send, theirs, cfg, batch_size), daemon=True
        )
        child.start()
    finally:
        _FORKED_ANALYZER = None
        send.close()
    try:
        unique = _analyze_chunk(analyzer, mine, cfg, batch_size)
        try:
            status, payload = receive.recv()
        except EOFError:
            child.join(timeout=CHILD_EXIT_SECONDS)
            raise PIIEngineError(
                f"the forked PII worker ended without a result (exit code {child.exitcode})"
            ) from None
    finally:
        receive.close()
        # The child ends itself once its result is sent; one that does not is killed. (A
        # pool's SIGTERM once left a worker alive and the scrub waiting on it for good.)
        child.join(timeout=CHILD_EXIT_SECONDS)
        if child.is_alive():
            child.kill()
            child.join()
    if status != "ok":
        raise PIIEngineError(f"the forked PII worker failed: {payload}")
    unique.update(payload)
    return unique


CHILD_EXIT_SECONDS = 10.0
"""How long a forked PII worker may take to end after sending its result before it is killed."""


def _analyze_chunk_in_child(
    send, keys: list[tuple[str, str]], cfg: PIIConfig, batch_size: int
) -> None:
    """The forked worker: its half's results (or the error's type, never a text) through
    `send`, then `os._exit`: nothing inherited from the parent (exit handlers, finalizers,
    signal handlers) runs or waits in it."""
    try:
        if _FORKED_ANALYZER is None:  # only reachable through a fork of `_analyze_unique_texts`
            raise PIIEngineError("no analyzer in the forked PII worker")
        result = ("ok", _analyze_chunk(_FORKED_ANALYZER, keys, cfg, batch_size))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which raises
        result = ("error", type(exc).__name__)
    try:
        send.send(result)
        send.close()
    finally:
        os._exit(0)


def _analyze_chunk(
    analyzer: AnalyzerEngine,
    keys: list[tuple[str, str]],
    cfg: PIIConfig,
    batch_size: int,
) -> dict[tuple[str, str], tuple[list[RecognizerResult], float]]:
    """Results and seconds per key: the text's share of spaCy, then Presidio's analysis under
    the deadline of what is left of `cfg.scan_budget_seconds` (infinite seconds: it ran over,
    and its results are dropped)."""
    unique: dict[tuple[str, str], tuple[list[RecognizerResult], float]] = {}
    # Each pack's texts are read inside its spaCy memory zone: what spaCy learns of a drop's
    # words is freed after each chunk, so a long scrub does not grow with them.
    for pack in sorted({pack for pack, _ in keys}):
        language = LANGUAGE if pack == PATTERNS_ONLY else pack
        with analyzer.nlp_engine.memory_zone(language):
            _analyze_pack(
                analyzer, pack, [text for key, text in keys if key == pack], cfg, batch_size, unique
            )
    return unique


def _analyze_pack(
    analyzer: AnalyzerEngine,
    pack: str,
    batch: list[str],
    cfg: PIIConfig,
    batch_size: int,
    unique: dict[tuple[str, str], tuple[list[RecognizerResult], float]],
) -> None:
    """`_analyze_chunk` for the texts one pack reads, results into `unique` (plain offsets,
    types and scores: nothing of spaCy's outlives the pack's memory zone)."""
    budget = cfg.scan_budget_seconds
    language = LANGUAGE if pack == PATTERNS_ONLY else pack
    # The configured entities this language has recognizers for (Presidio skips the
    # others the same way, but logs a warning for each on every text).
    supported = set(analyzer.get_supported_entities(language))
    entities = [entity for entity in cfg.entities if entity in supported]
    # spaCy NER reads every text with a letter of its script (names in any sentence);
    # the others (digits, symbols, Han for the English model) get tokens alone.
    reads = _SCRIPT_OF_NER.get(language)
    needs_ner = (
        [text for text in batch if reads is None or reads.search(text)]
        if pack != PATTERNS_ONLY and _ner_recognizers(analyzer, language)
        else []
    )
    artifacts = _nlp_artifacts(analyzer, needs_ner, language, batch_size, budget)
    with_ner = set(needs_ner)
    for text in batch:
        if text not in with_ner:
            started = time.perf_counter()
            tokens = analyzer.nlp_engine.tokens_only(text, language)
            artifacts.append((text, tokens, time.perf_counter() - started))
    for text, nlp_artifacts, nlp_seconds in artifacts:
        if nlp_artifacts is None:  # its NER ran past the budget
            unique[(pack, text)] = ([], float("inf"))
            continue
        started = time.perf_counter()
        try:
            with scan_deadline(budget - nlp_seconds):
                check_deadline()
                # (an empty list would mean every entity to Presidio)
                results = (
                    analyzer.analyze(
                        text=text,
                        language=language,
                        entities=entities,
                        score_threshold=cfg.score_threshold,
                        nlp_artifacts=nlp_artifacts,
                    )
                    if entities
                    else []
                )
        except ScanTimeout:
            unique[(pack, text)] = ([], float("inf"))
            continue
        # Only the Han pack reads Han: another pack's NER over Han characters is noise
        # (the English model labels runs of Chinese as PERSON), in the scrub and the gate.
        # A handle reads every script (@小雨 in a refused record with kana is still one).
        if language != HAN_PACK:
            results = [
                r
                for r in results
                if r.entity_type in EVERY_SCRIPT or not HAN.search(text, r.start, r.end)
            ]
        unique[(pack, text)] = (results, nlp_seconds + time.perf_counter() - started)


def _nlp_artifacts(
    analyzer: AnalyzerEngine,
    texts: list[str],
    language: str,
    batch_size: int,
    budget: float = float("inf"),
) -> list[tuple[str, object, float]]:
    """spaCy's artifacts of each text and the seconds it took: shorter ones in batches, each
    charged an equal share of its batch; a text over `LONG_TEXT` alone, read in chunks under
    its `budget` (artifacts None and infinite seconds where it ran past it: the deadline is
    checked between chunks, so NER on one long text is never more than a chunk over)."""
    out: list[tuple[str, object, float]] = []
    for text in texts:
        if len(text) > LONG_TEXT:
            started = time.perf_counter()
            try:
                with scan_deadline(budget):
                    doc = analyzer.nlp_engine.process_long(text, language)
            except ScanTimeout:
                out.append((text, None, float("inf")))
                continue
            out.append((text, doc, time.perf_counter() - started))
    short = [text for text in texts if len(text) <= LONG_TEXT]
    groups = [short[i : i + batch_size] for i in range(0, len(short), batch_size)]
    for group in groups:
        started = time.perf_counter()
        docs = list(analyzer.nlp_engine.process_texts(group, language, batch_size=batch_size))
        share = (time.perf_counter() - started) / len(group)
        out += [(text, doc, share) for text, doc in zip(group, docs, strict=True)]
    return out


def _ner_recognizers(analyzer: AnalyzerEngine, language: str) -> list[NerRecognizer]:
    return [
        recognizer
        for recognizer in analyzer.registry.recognizers
        if isinstance(recognizer, NerRecognizer) and recognizer.supported_language == language
    ]


def _pack_language(language: str | None) -> str:
    """The pack that scans a record of `language`: a text without letters ("und") holds only
    digits and symbols, which the English pack's patterns cover. `PATTERNS_ONLY` stays."""
    return LANGUAGE if language in (None, "", UNDETERMINED) else language


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _field_name(message: Message, index: int) -> str:
    return message.field or f"messages[{index}].content"


def _resolve(
    results: Iterable[RecognizerResult], text: str, field: str, cfg: PIIConfig
) -> list[Finding]:
    """Keep configured, confident findings outside pseudonyms; drop the weaker of overlaps of
    different types (a `FALLBACK_ENTITIES` finding is weaker than any other) and join
    overlaps of one type into one finding over both."""
    tokens = [match.span() for match in PSEUDONYM_PATTERN.finditer(text)]
    candidates = [
        r
        for r in results
        if r.entity_type in cfg.entities
        and r.score >= cfg.score_threshold
        and not any(start <= r.start and r.end <= end for start, end in tokens)
    ]
    # A name, a place or a phone read wholly inside an identifier's value is a misreading of
    # its characters (`reg KD19 XRT`: XRT no person): the identifier keeps them.
    fallbacks = Spans((r.start, r.end) for r in candidates if r.entity_type in FALLBACK_ENTITIES)
    values = {(r.start, r.end) for r in candidates if r.entity_type in FALLBACK_ENTITIES}
    candidates = [
        r
        for r in candidates
        if r.entity_type not in _INSIDE_AN_IDENTIFIER
        or not fallbacks.contains(r.start, r.end)
        # a licence read on the value's own characters is the value's type (`Driver license
        # S3354635`); only one read on part of it is a misreading
        or (r.entity_type in _PART_OF_AN_IDENTIFIER and (r.start, r.end) in values)
    ]
    # A fallback type (an identifier read from its name alone) fills gaps: any other finding
    # on the same characters wins whatever the scores, and keeps its own surrogate.
    candidates.sort(
        key=lambda r: (
            r.entity_type in FALLBACK_ENTITIES,
            -r.score,
            -(r.end - r.start),
            r.start,
            r.entity_type,
        )
    )
    held = _Disjoint()
    for result in candidates:
        overlapping = held.overlapping(result.start, result.end)
        if not overlapping:
            held.add(result)
        elif all(k.entity_type == result.entity_type for k in overlapping):
            # One reading of the same thing found more of it (a greeting's "David" and NER's
            # "David Lee"): the finding covers both, so no part of the name is left behind.
            joined = RecognizerResult(
                entity_type=result.entity_type,
                start=min(result.start, *(k.start for k in overlapping)),
                end=max(result.end, *(k.end for k in overlapping)),
                score=max(k.score for k in overlapping),
            )
            held.remove(overlapping)
            held.add(joined)
        else:
            # A weaker reading of other characters too ("Dreux Joly\nPaxata\nPSC" read as a
            # name over the first word of "PSC 3294, Box 9168 APO AA 61487"): what no stronger
            # finding covers stays found under its own type, or it would be left in the text.
            if result.entity_type in _REMAINDER_TYPES:
                for piece in _remainders(text, result, overlapping):
                    held.add(piece)
    kept = _name_parts_again(text, held.items)
    kept = _whole_codes(text, kept)
    kept.sort(key=lambda r: r.start)
    return [Finding(field, r.start, r.end, r.entity_type, r.score) for r in kept]


class _Disjoint:
    """The findings `_resolve` keeps, which never overlap one another, in order of their start:
    those overlapping a span are one slice, found by two binary searches (a text of thousands
    of findings, a table of ids, was read in the square of their number)."""

    def __init__(self) -> None:
        self.starts: list[int] = []
        self.ends: list[int] = []
        self.items: list[RecognizerResult] = []

    def overlapping(self, start: int, end: int) -> list[RecognizerResult]:
        low = bisect.bisect_right(self.ends, start)  # the first that ends after `start`
        high = bisect.bisect_left(self.starts, end)  # the first that starts at `end` or later
        return self.items[low:high]

    def add(self, result: RecognizerResult) -> None:
        at = bisect.bisect_left(self.starts, result.start)
        self.starts.insert(at, result.start)
        self.ends.insert(at, result.end)
        self.items.insert(at, result)

    def remove(self, results: list[RecognizerResult]) -> None:
        for result in results:
            at = bisect.bisect_left(self.starts, result.start)
            while self.items[at] is not result:
                at += 1
            del self.starts[at], self.ends[at], self.items[at]


_INSIDE_AN_IDENTIFIER = frozenset(
    {"PERSON", "LOCATION", "PHONE_NUMBER", "CN_PHONE_NUMBER", "US_DRIVER_LICENSE"}
)
"""Readings that an identifier's value holding them outranks (`_resolve`): a name in its
letters (KD19 XRT), a phone in its digits (证件号码E98765432, 会员卡号VIP88012345), a driver's
licence guessed from its digits alone (`Applicant ID 24-UG-118302`: the 118302)."""
_PART_OF_AN_IDENTIFIER = frozenset({"US_DRIVER_LICENSE"})
"""Of those, the readings that keep a value's whole span as their own (a licence announced as
one)."""
_WHOLE_TOKEN_TYPES = frozenset({"US_DRIVER_LICENSE", "ID_NUMBER", "US_BANK_NUMBER"})
"""Identifiers read from part of a code: the finding takes the whole code it stands in."""
_CODE_CHARACTER = rf"(?:[A-Za-z0-9]|{INVISIBLE_REGEX})"
_CODE = re.compile(rf"{_CODE_CHARACTER}+(?:[-_/]{_CODE_CHARACTER}+)*")
"""A code: letters and digits, in groups joined by one hyphen, underscore or slash, no space
(`HMQ-7730291`, `LP-00938812`, `24-UG-118302`); an invisible character inside stays inside
(`HMQ-773` + a zero-width space + `0291`), as normalization reads it."""


def _whole_codes(text: str, kept: list[RecognizerResult]) -> list[RecognizerResult]:
    """An identifier read from part of a code takes the whole code (`HMQ-` + 7730291, a
    driver's licence pattern's digits): the prefix is as much the identifier as the digits,
    and the part left beside the surrogate would still point at it. Never over another
    finding."""
    kept = sorted(kept, key=lambda r: r.start)
    out = []
    for index, result in enumerate(kept):
        if result.entity_type in _WHOLE_TOKEN_TYPES:
            low = max(0, result.start - MAX_CODE_CHARS)
            for match in _CODE.finditer(text, low, min(len(text), result.end + MAX_CODE_CHARS)):
                start, end = match.span()
                if start > result.start:
                    break
                if result.end > end or (start, end) == (result.start, result.end):
                    continue
                # the findings around it end before the code and begin after it (kept do
                # not overlap one another, so the neighbours in order are the ones to ask)
                before = out[-1].end if out else 0
                after = kept[index + 1].start if index + 1 < len(kept) else len(text)
                if before <= start and end <= after:
                    result = RecognizerResult(result.entity_type, start, end, result.score)
                break
        out.append(result)
    return out


MAX_CODE_CHARS = 40
"""How far a code may reach beyond its read part (a bounded look, whatever the text's length)."""
_REMAINDER_TYPES = frozenset({"LOCATION", *FALLBACK_ENTITIES})
"""Types whose rest outside a stronger finding is kept (`_remainders`): an address's lines and
an identifier's groups. A URL's or a name's rest is the other reading's own text as often
(a link run on into the sentence after it)."""


def _remainders(
    text: str, result: RecognizerResult, stronger: list[RecognizerResult]
) -> list[RecognizerResult]:
    """The parts of `result` outside every `stronger` finding it overlaps, each trimmed to its
    first and last letter or digit, that hold a digit or two words: an address's or an
    identifier's rest. One word is the other reading's own ("Hong Kong" + "-based", "Florida"
    + "Marlins") as often as a name's rest, and is left as the stronger finding decided."""
    parts, position = [], result.start
    for other in sorted(stronger, key=lambda r: r.start):
        if other.start > position:
            parts.append((position, other.start))
        position = max(position, other.end)
    if position < result.end:
        parts.append((position, result.end))
    found = []
    for start, end in parts:
        while start < end and not text[start].isalnum():
            start += 1
        while end > start and not text[end - 1].isalnum():
            end -= 1
        rest = text[start:end]
        if sum(map(str.isalnum, rest)) >= 2 and (
            any(c.isdigit() for c in rest) or len(rest.split()) > 1
        ):
            found.append(
                RecognizerResult(
                    entity_type=result.entity_type, start=start, end=end, score=result.score
                )
            )
    return found


_NAME_WORD = re.compile(r"[^\W\d_]+(?:['’-][^\W\d_]+)*")


def _name_parts_again(text: str, kept: list[RecognizerResult]) -> list[RecognizerResult]:
    """`kept` with a given or family name of a full name found in the text where it comes
    again alone ("Glenn Hoddle ... Hoddle said"): the same person, whom the surrogate of the
    full name would otherwise leave named; where NER read that word alone as a place
    ("Magnus spent a year ... as the assistant to Magnus Poulsen"), it is the person's.
    Latin-script words of a capital letter only, written as in the full name, neither an
    ordinary English word ("Will Smith" does not make every "Will" a name) nor a particle;
    Chinese surnames are `cn_names._addressed_again`'s. One pass over the text's words."""
    parts: dict[str, float] = {}
    for result in kept:
        if result.entity_type != "PERSON":
            continue
        words = _NAME_WORD.findall(text, result.start, result.end)
        if len(words) < 2:
            continue  # a full name only: one word alone is no evidence for another
        for word in words:
            if len(word) >= 2 and word[0].isupper() and word.lower() not in PARTICLES:
                parts[word] = max(parts.get(word, 0.0), result.score)
    if parts:  # the lexicon is read only where a Latin full name was found
        english = english_words(None)
        parts = {w: s for w, s in parts.items() if not is_english(w, english)}
    if not parts:
        return kept
    kept = [
        RecognizerResult("PERSON", k.start, k.end, k.score)
        if k.entity_type == "LOCATION" and text[k.start : k.end] in parts
        else k
        for k in kept
    ]
    taken = Spans((k.start, k.end) for k in kept)
    return kept + [
        RecognizerResult("PERSON", match.start(), match.end(), parts[match.group()])
        for match in _NAME_WORD.finditer(text)
        if match.group() in parts and not taken.overlaps(match.start(), match.end())
    ]


def _pseudonymizer(entity_type: str, key: bytes) -> Callable[[str], str]:
    return lambda value: pseudonym(entity_type, value, key=key)


def _anonymize(
    anonymizer: AnonymizerEngine,
    text: str,
    findings: list[Finding],
    operators: dict[str, OperatorConfig],
) -> str:
    if not findings:
        return text
    return _anonymize_items(anonymizer, text, findings, operators).text


def _anonymize_items(
    anonymizer: AnonymizerEngine,
    text: str,
    findings: list[Finding],
    operators: dict[str, OperatorConfig],
) -> EngineResult:
    results = [AnonymizerResult(f.entity_type, f.start, f.end, f.score) for f in findings]
    # Findings are already disjoint; merging neighbours would make counts and pseudonyms
    # disagree with the findings.
    return anonymizer.anonymize(
        text, results, operators=operators, merge_entities_with_spaces=False
    )


def _operators(cfg: PIIConfig, key: bytes, types: Iterable[str] = ()) -> dict[str, OperatorConfig]:
    """One Presidio operator per entity type, as `surrogates.operator_for` chooses.

    Covers `cfg.entities`, the types in `cfg.operators` and `types` (types a recognizer pack
    reported beyond those); a type still without an entry would get Presidio's default
    operator, the placeholder `<TYPE>`: never the value.
    """
    operators = {}
    for entity_type in {*cfg.entities, *cfg.operators, *types}:
        chosen = surrogates.operator_for(entity_type, cfg.operators)
        if chosen == surrogates.PSEUDONYM:
            operators[entity_type] = OperatorConfig(
                "custom", {"lambda": _pseudonymizer(entity_type, key)}
            )
        else:
            mark = surrogates.REDACTED if chosen == surrogates.REDACT else None
            operators[entity_type] = OperatorConfig(
                "replace", {"new_value": mark or surrogates.placeholder(entity_type)}
            )
    return operators


def _outside_scrub_spans(
    findings: list[Finding], spans: tuple[tuple[int, int, str], ...], text: str
) -> list[Finding]:
    """Findings not entirely inside a recorded span; one partly inside grows to cover it.

    A finding over two or more recorded spans is read across values already replaced side by
    side ("Nick Ortiz and Amy Lee", "Ann, Bob, Cy" of surrogates read as one name): what
    joins them (punctuation, one word in lower case, one Han character) stays, as the pass
    before read it between two findings; any other text between them is a finding of its own
    (a name the pass before missed in a list); what the finding holds before the first span
    and after the last grows onto that span.
    """
    pieces: list[Finding] = []
    for finding in findings:
        over = sorted((s, e) for s, e, _ in spans if s < finding.end and finding.start < e)
        if len(over) < 2:
            pieces.append(finding)
            continue
        pieces.append(replace(finding, end=over[0][1]))
        for (_, gap_start), (gap_end, _) in itertools.pairwise(over):
            gap = text[gap_start:gap_end]
            if not _JOINING.fullmatch(gap):
                start = gap_start + len(gap) - len(gap.lstrip(_EDGES))
                end = gap_end - (len(gap) - len(gap.rstrip(_EDGES)))
                pieces.append(replace(finding, start=start, end=end))
        pieces.append(replace(finding, start=over[-1][0]))
    kept: list[Finding] = []
    for finding in sorted(pieces, key=lambda piece: piece.start):
        finding = _no_unit_before_a_chinese_place(finding, spans, text)
        if _inside_a_span(finding, spans):
            continue
        start, end = finding.start, finding.end
        for s, e, _ in spans:
            if s < end and start < e:
                start, end = min(start, s), max(end, e)
        grown = replace(finding, start=start, end=end)
        if kept and grown.start < kept[-1].end:  # two findings grew over one span: merge them
            last = kept.pop()
            grown = replace(last, start=min(last.start, start), end=max(last.end, end))
        kept.append(grown)
    return kept


def _no_unit_before_a_chinese_place(
    finding: Finding, spans: tuple[tuple[int, int, str], ...], text: str
) -> Finding:
    """A place read over a Chinese place's surrogate does not take the words before it.

    A Chinese address runs from its largest unit to its smallest: what stands before a place
    the pass before found whole is no part of it unless it is a larger unit (广东省 before a
    city). A later pass that reads the surrogate with the words before it (星展 + a city, 一个
    + a city, 票房 + a city: LAC's word joined across the new characters) reads the surrogate,
    not the text; what it reads after the surrogate (1号, 一楼, 路) may go on with the address.
    """
    if finding.entity_type != "LOCATION":
        return finding
    for s, _, _ in spans:
        before = text[finding.start : s]
        if (
            finding.start < s < finding.end
            and HAN.match(text, s)
            and HAN.search(before)
            and not before.endswith(_ADMINISTRATIVE_UNITS)
        ):
            return replace(finding, start=s)
    return finding


_ADMINISTRATIVE_UNITS = tuple("省市县区州盟旗镇乡")


_JOINING = re.compile(r"[\W_]*(?:[a-z]{1,4}|[\u4e00-\u9fff])?[\W_]*")
"""What joins two values in a list or a sentence: punctuation and at most one short word in
lower case ("and", "or", "by") or one Han character (和, 与)."""
_EDGES = " \t\n,;:、，；："
"""What a value between two others does not begin or end with (the list's separators)."""


def _inside_a_span(finding: Finding, spans: Iterable[tuple[int, int, str]]) -> bool:
    return any(s <= finding.start and finding.end <= e for s, e, _ in spans)


def _replace_findings(
    anonymizer: AnonymizerEngine,
    message: Message,
    findings: list[Finding],
    operators: dict[str, OperatorConfig],
    remember: Callable[[str, str, str], None] | None,
) -> Message:
    """The message with its findings replaced and every replacement recorded in `scrub_spans`.

    Earlier spans move with the text; spans that a finding grew over are replaced with it.
    """
    return _replace_and_mark(anonymizer, message, findings, operators, remember)[0]


def _replace_and_mark(
    anonymizer: AnonymizerEngine,
    message: Message,
    findings: list[Finding],
    operators: dict[str, OperatorConfig],
    remember: Callable[[str, str, str], None] | None,
) -> tuple[Message, list[tuple[int, int]]]:
    """`_replace_findings`, and the `(start, end)` of the replacements it wrote."""
    if not findings:
        return message, []
    text = message.content
    findings = sorted(findings, key=lambda f: f.start)
    written = sorted(
        _anonymize_items(anonymizer, text, findings, operators).items, key=lambda i: i.start
    )
    pieces, spans, marks, last, shift = [], [], [], 0, 0
    old = list(message.scrub_spans)
    for finding, item in zip(findings, written, strict=True):
        new = item.text
        operator = operators.get(finding.entity_type)
        if remember is not None and operator is not None and operator.operator_name == "custom":
            remember(finding.entity_type, new, text[finding.start : finding.end])
        spans += [(s + shift, e + shift, t) for s, e, t in old if last <= s and e <= finding.start]
        pieces += [text[last : finding.start], new]
        start = finding.start + shift
        spans.append((start, start + len(new), finding.entity_type))
        marks.append((start, start + len(new)))
        shift += len(new) - (finding.end - finding.start)
        last = finding.end
    spans += [(s + shift, e + shift, t) for s, e, t in old if last <= s]
    pieces.append(text[last:])
    return replace(message, content="".join(pieces), scrub_spans=tuple(spans)), marks
