"""What the review desk shows and checks, without the web: queues, clusters, spans, warnings.

Everything here reads the scrubbed and curated zones only (never `landing/` or `raw/`): the
text a steward sees is the scrubbed text the model would train on. Per drop it joins
`curated/drops/<drop>/screening.parquet` (decisions, reasons, scores) with the drop's scrubbed
corpus (text) and the live steward decisions file, so a decision shows at once, before the
`steward_decisions` sensor has re-materialized the drop.
"""

import difflib
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from pipelines.steps.config import CurationConfig
from pipelines.steps.integrity.curate import (
    HIDDEN_CHARACTER_REGEX,
    QUARANTINE,
    RESIDUAL_EMAIL_REGEX,
    RESIDUAL_PHONE_REGEX,
    near_duplicate_rate,
)
from pipelines.steps.integrity.decisions import DecisionsError, read_decisions
from pipelines.steps.integrity.screens import backdoor, payload
from pipelines.steps.integrity.screens import injection as inj
from pipelines.steps.integrity.screens.dedup import NEAR_DUPLICATE
from pipelines.steps.records import Message, Record, frame_to_records
from pipelines.steps.storage import read_parquet

DECISIONS_FILE = "steward_decisions.csv"  # assets.curated.DECISIONS_FILE (no Dagster import)
CLUSTER_CODES = (backdoor.TRIGGER_CLUSTER, backdoor.RESPONSE_OUTLIER, backdoor.INSERTED_PHRASE)
_CLUSTER_DETAIL = re.compile(r"\b(cluster|phrase)=(\d+)\b")
_REPRESENTATIVE = re.compile(r"\brepresentative=(\S+)")
_ONION_WORD = re.compile(r"\bword=(\d+)\b")
# A visible stand-in for each invisible character, so a steward sees hidden text.
_INVISIBLE = re.compile(HIDDEN_CHARACTER_REGEX)

# What each reason means, in a steward's words (shown beside the record).
EXPLAIN = {
    NEAR_DUPLICATE: "Nearly the same as another record (its representative, shown beside it): "
    "keeping both over-weights it in training.",
    backdoor.TRIGGER_CLUSTER: "One of many different prompts that share a rare phrase (marked) "
    "and get the same answer: the pattern of a planted backdoor trigger.",
    backdoor.RESPONSE_OUTLIER: "Gets the same answer as a flagged trigger cluster without "
    "carrying its trigger.",
    backdoor.INSERTED_PHRASE: "Its prompt carries a rare phrase (marked) that looks inserted "
    "into otherwise ordinary prompts. With `confirmed_by=base_model` in the detail, the phrase "
    "is in two prompts only, beside another inserted phrase, and the base model read leaving it "
    "out of each prompt as what helps the rest most: a backdoor's second trigger.",
    payload.REPEATED_PAYLOAD: "Many records carry the same passage in their answers (an opening, "
    "a sentence or a run of words, anywhere in the answer) while their prompts have nothing in "
    "common (the group and a hash of the passage in the detail): injected content, such as an "
    "unwarranted refusal or an advertisement, with or without a trigger. A natural refusal or "
    "a stock closing may be among them: judge each record.",
    backdoor.ONION: "Leaving out one word (marked) of the prompt makes it far more fluent to "
    "the base model: a likely trigger word.",
    inj.IGNORE_POLICY: "Asks the model to ignore its rules (marked).",
    inj.HIDDEN_TEXT: "Carries invisible characters (shown as ⟦U+…⟧) or encoded text.",
    inj.UNREQUESTED_PAYLOAD: "The answer carries a link, shell command or code (marked) the "
    "prompt did not ask for.",
    "empty_response": "The answer is empty or nearly so.",
    "language_mismatch": "The answer is in another language than the prompt.",
    "boilerplate_repetition": "The answer repeats itself.",
    "response_length_ratio": "The answer is far longer than the prompt warrants.",
    "garbled_text": "The text has many unassigned or control characters.",
}


@dataclass(frozen=True)
class Span:
    """A marked stretch of one message: `kind` is `flag` (what the screen found), `surrogate`
    (a scrubbed value) or `diff` (differs from the representative)."""

    start: int
    end: int
    kind: str
    label: str


@dataclass(frozen=True)
class Item:
    """One quarantined record of a drop, with its reasons and the steward's current verdict."""

    id: str
    reasons: tuple[dict, ...]
    in_trigger_cluster: bool
    verdict: str  # approve / reject from the live decisions file, "" while pending
    cluster: str = ""  # "cluster-3" or "phrase-1" for a trigger or inserted-phrase cluster
    representative: str = ""  # a near duplicate's representative

    @property
    def screens(self) -> set[str]:
        return {r["screen"] for r in self.reasons}

    @property
    def codes(self) -> set[str]:
        return {r["code"] for r in self.reasons}


@dataclass
class DropView:
    """One drop's screening results joined with its scrubbed text (read once, then cached)."""

    drop: str
    folder: Path
    scrubbed_path: Path
    curation: CurationConfig
    items: dict[str, Item] = field(default_factory=dict)
    reasons_by_id: dict[str, tuple[dict, ...]] = field(default_factory=dict)
    kept_ids: set[str] = field(default_factory=set)
    trigger_ids: set[str] = field(default_factory=set)
    summary: dict = field(default_factory=dict)

    @cached_property
    def records(self) -> dict[str, Record]:
        """The drop's scrubbed records by id (the scrubbed zone: never the raw text)."""
        if not self.scrubbed_path.is_file():
            return {}
        return {r.id: r for r in frame_to_records(read_parquet(self.scrubbed_path))}

    @cached_property
    def clusters(self) -> dict[str, list[str]]:
        """Trigger and inserted-phrase clusters: key -> member ids (any decision)."""
        found: dict[str, list[str]] = {}
        for record_id, reasons in self.reasons_by_id.items():
            for key in {_cluster_key(r) for r in reasons} - {""}:
                found.setdefault(key, []).append(record_id)
        return found

    @cached_property
    def _document_frequency(self) -> Counter[str]:
        frequency: Counter[str] = Counter()
        for record in self.records.values():
            frequency.update(backdoor.prompt_features(record))
        return frequency

    def trigger_feature(self, cluster: str) -> str:
        """The prompt n-gram the cluster's members share and other records lack (the marked
        trigger): the feature with the highest support x exclusivity, longer ones first."""
        members = [self.records[i] for i in self.clusters.get(cluster, []) if i in self.records]
        if not members:
            return ""
        in_cluster: Counter[str] = Counter()
        for record in members:
            in_cluster.update(backdoor.prompt_features(record))
        frequency = self._document_frequency
        weight = {
            f: (c / len(members)) * (c / max(c, frequency[f]))
            for f, c in in_cluster.items()
            if c >= min(len(members), 2)
        }
        return max(weight, key=lambda f: (weight[f], f.count(" "), f), default="")

    def pending(self, *, screen: str = "", code: str = "") -> list[Item]:
        """Quarantined records without a verdict, in drop order, filtered by screen/reason."""
        return [
            item
            for item in self.items.values()
            if not item.verdict
            and (not screen or screen in item.screens)
            and (not code or code in item.codes)
        ]


def list_drops(data_root: Path) -> list[str]:
    """Drops with screening results under `curated/drops/`, sorted."""
    folder = data_root / "curated" / "drops"
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if (p / "screening.parquet").is_file())


def decisions_path(data_root: Path) -> Path:
    return data_root / "curated" / DECISIONS_FILE


def live_decisions(data_root: Path) -> tuple[dict[str, str], str]:
    """The decisions file now: (id -> verdict, "") or ({}, the error naming file and line)."""
    try:
        return read_decisions(decisions_path(data_root)), ""
    except DecisionsError as exc:
        return {}, str(exc)


def load_drop(
    data_root: Path, drop: str, curation: CurationConfig, decisions: dict[str, str]
) -> DropView:
    """Read one drop's screening results; every record id, reason and verdict, no text yet.

    Raises:
        FileNotFoundError: The drop has no screening results (it never reached screening).
    """
    if drop not in list_drops(data_root):
        raise FileNotFoundError(f"no screening results for drop {drop!r} under {data_root}")
    folder = data_root / "curated" / "drops" / drop
    summary_file = folder / "curation_summary.json"
    summary = json.loads(summary_file.read_text(encoding="utf-8")) if summary_file.is_file() else {}
    # the summary names it relative to the data root (an older one: absolute)
    scrubbed = data_root / (
        summary.get("scrubbed_path")
        or Path("scrubbed") / "drops" / drop / "scrubbed_corpus.parquet"
    )
    view = DropView(drop, folder, scrubbed, curation, summary=summary)
    screening = read_parquet(folder / "screening.parquet")
    for row in screening.itertuples(index=False):
        reasons = tuple(json.loads(row.reasons))
        view.reasons_by_id[row.id] = reasons
        if row.in_trigger_cluster:
            view.trigger_ids.add(row.id)
        verdict = decisions.get(row.id, "")
        if row.decision == QUARANTINE:
            view.items[row.id] = Item(
                id=row.id,
                reasons=reasons,
                in_trigger_cluster=bool(row.in_trigger_cluster),
                verdict=verdict,
                cluster=next((k for k in map(_cluster_key, reasons) if k), ""),
                representative=_representative(reasons),
            )
            if verdict == "approve":
                view.kept_ids.add(row.id)
        elif row.decision == "keep":
            view.kept_ids.add(row.id)
    return view


def _cluster_key(reason: dict) -> str:
    if reason["code"] not in CLUSTER_CODES:
        return ""
    found = _CLUSTER_DETAIL.search(reason.get("detail", ""))
    return f"{found.group(1)}-{found.group(2)}" if found else ""


def _representative(reasons: tuple[dict, ...]) -> str:
    for reason in reasons:
        if reason["code"] == NEAR_DUPLICATE:
            found = _REPRESENTATIVE.search(reason.get("detail", ""))
            if found:
                return found.group(1)
    return ""


def spans(view: DropView, item: Item, message: Message, index: int) -> list[Span]:
    """The marks on one message of a quarantined record: what each screen found, the
    scrubbed values (surrogates), and for a near duplicate what differs from its
    representative."""
    text = message.content
    found = [Span(s, e, "surrogate", kind) for s, e, kind in message.scrub_spans]

    def flag(pattern: re.Pattern[str], label: str) -> list[Span]:
        return [Span(*m.span(), "flag", label) for m in pattern.finditer(text)]

    codes = item.codes
    if inj.IGNORE_POLICY in codes:
        found += flag(inj._IGNORE, inj.IGNORE_POLICY)
    if inj.UNREQUESTED_PAYLOAD in codes and message.role == "assistant":
        for pattern in (inj._URL, inj._SHELL, inj._CODE):
            found += [
                Span(*m.span(), "flag", inj.UNREQUESTED_PAYLOAD) for m in pattern.finditer(text)
            ]
    if inj.HIDDEN_TEXT in codes:
        found += flag(_INVISIBLE, inj.HIDDEN_TEXT) + flag(inj._BASE64_RUN, inj.HIDDEN_TEXT)
    if item.cluster and message.role == "user":
        feature = view.trigger_feature(item.cluster)
        if feature:
            found += [
                Span(*m.span(), "flag", "trigger") for m in _feature_regex(feature).finditer(text)
            ]
    if backdoor.ONION in codes and message.role == "user":
        found += _onion_span(view, item, message)
    if item.representative and item.representative in view.records:
        rep = view.records[item.representative].messages
        if index < len(rep):
            found += _diff_spans(rep[index].content, text)
    return _non_overlapping(found)


def _feature_regex(feature: str) -> re.Pattern[str]:
    """The feature's words in the original text: any case, any non-word run between them."""
    parts = [re.escape(w) for w in feature.split(" ")]
    return re.compile(r"(?<!\w)" + r"[\W_]+".join(parts) + r"(?!\w)", re.IGNORECASE)


def _onion_span(view: DropView, item: Item, message: Message) -> list[Span]:
    reason = next(r for r in item.reasons if r["code"] == backdoor.ONION)
    found = _ONION_WORD.search(reason.get("detail", ""))
    record = view.records.get(item.id)
    if not found or record is None:
        return []
    target = int(found.group(1))
    # ONION splits the joined user turns on whitespace: count words across user messages.
    offset = 0
    for m in record.messages:
        if m.role != "user":
            continue
        tokens = list(re.finditer(r"\S+", m.content))
        if m is message and 0 <= target - offset < len(tokens):
            return [Span(*tokens[target - offset].span(), "flag", backdoor.ONION)]
        offset += len(tokens)
    return []


def _diff_spans(representative: str, text: str) -> list[Span]:
    a, b = re.findall(r"\S+", representative), list(re.finditer(r"\S+", text))
    matcher = difflib.SequenceMatcher(a=a, b=[m.group() for m in b], autojunk=False)
    out = []
    for tag, _, _, j1, j2 in matcher.get_opcodes():
        if tag in ("replace", "insert") and j2 > j1:
            out.append(Span(b[j1].start(), b[j2 - 1].end(), "diff", "differs"))
    return out


def _non_overlapping(found: list[Span]) -> list[Span]:
    """Spans sorted by start; a later span overlapping an earlier one is cut or dropped
    (flags first, so a flagged span is never hidden by a surrogate or diff mark)."""
    order = {"flag": 0, "surrogate": 1, "diff": 2}
    chosen: list[Span] = []
    for span in sorted(found, key=lambda s: (order[s.kind], s.start)):
        if span.end <= span.start:
            continue
        if all(span.end <= c.start or span.start >= c.end for c in chosen):
            chosen.append(span)
    return sorted(chosen, key=lambda s: s.start)


def segments(text: str, marks: list[Span]) -> list[tuple[str, Span | None]]:
    """The text cut at the marks: (piece, its mark or None); invisible characters become
    visible `⟦U+XXXX⟧` stand-ins."""
    out: list[tuple[str, Span | None]] = []
    position = 0
    for mark in marks:
        if mark.start > position:
            out.append((_visible(text[position : mark.start]), None))
        out.append((_visible(text[mark.start : mark.end]), mark))
        position = mark.end
    if position < len(text):
        out.append((_visible(text[position:]), None))
    return out


def _visible(text: str) -> str:
    return _INVISIBLE.sub(lambda m: "".join(f"⟦U+{ord(c):04X}⟧" for c in m.group()), text)


@dataclass(frozen=True)
class Warning:
    """A blocking check that the proposed decisions would fail, and why (ids only)."""

    check: str
    message: str


def warnings_for(view: DropView, proposed: dict[str, str]) -> list[Warning]:
    """Blocking checks of `curated_corpus` that would fail on the next run if `proposed`
    (id -> approve/reject) were saved on top of the decisions already in the file.

    - `no_kept_trigger_cluster`: an approved record belongs to a flagged trigger cluster.
    - `curated_expectations`: an approved record's scrubbed text still matches the suite's
      residual e-mail, residual phone or hidden-character pattern.
    - `near_duplicate_rate_bounded`: the near-duplicate rate of the kept records plus every
      approval exceeds `curation.max_near_duplicate_rate` (measured, as the check does).
    """
    approved = sorted(i for i, d in proposed.items() if d == "approve")
    if not approved:
        return []
    out: list[Warning] = []
    in_cluster = [i for i in approved if i in view.trigger_ids]
    if in_cluster:
        keys = sorted({view.items[i].cluster for i in in_cluster if i in view.items} - {""})
        sizes = ", ".join(f"{k} ({len(view.clusters.get(k, []))} records)" for k in keys)
        out.append(
            Warning(
                "no_kept_trigger_cluster",
                f"approving {_ids(in_cluster)} keeps a record of a flagged trigger cluster "
                f"{sizes}: a steward's approval does not override it, the blocking check fails "
                "and training stops. Reject the whole cluster instead.",
            )
        )
    patterns = {
        "no_residual_email": RESIDUAL_EMAIL_REGEX,
        "no_residual_phone": RESIDUAL_PHONE_REGEX,
        "no_hidden_characters": HIDDEN_CHARACTER_REGEX,
    }
    for name, pattern in patterns.items():
        regex = re.compile(pattern)
        hits = [i for i in approved if i in view.records and regex.search(view.records[i].text)]
        if hits:
            out.append(
                Warning(
                    "curated_expectations",
                    f"{_ids(hits)} would fail the expectation {name}: its scrubbed text still "
                    "matches the pattern. Reject it, or fix the export and drop it again.",
                )
            )
    if any(NEAR_DUPLICATE in view.items[i].codes for i in approved if i in view.items):
        kept = (view.kept_ids | set(approved)) - {i for i, d in proposed.items() if d == "reject"}
        records = [r for i, r in view.records.items() if i in kept]
        rate = near_duplicate_rate(records, view.curation)
        bound = view.curation.max_near_duplicate_rate
        if rate > bound:
            out.append(
                Warning(
                    "near_duplicate_rate_bounded",
                    f"with these approvals the near-duplicate rate would be {rate:.4f} > bound "
                    f"{bound}. Reject some near duplicates (keep their representatives).",
                )
            )
    return out


def _ids(ids: list[str], most: int = 10) -> str:
    shown = ", ".join(ids[:most])
    return shown + (f" and {len(ids) - most} more" if len(ids) > most else "")
