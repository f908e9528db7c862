"""What the scrub replaces on outside data (../shared/eval), character by character.

`pii_external.py` scores the detector (`scan`); this scores the stage that writes the training
text: `pii.scrub_records` with its later passes (a replacement changes a finding's context, the
messages it changed are scanned again, and a finding over a surrogate grows onto it). Per set,
over the characters that are not blanks:

- recall: the share of personal data's characters replaced (gold spans of the types
  `pii_external.COMPATIBLE` maps our scrubbed types to: names, addresses, places, numbers);
- precision: the share of replaced characters inside such a gold span (CLUENER labels no
  country or city outside an address, so its precision is low for places, not for names);
- the same for one pass only (`max_passes=1`, what the later passes add), and for vanilla
  Presidio (`AnalyzerEngine()` + `AnonymizerEngine`, one call per record: every finding of
  every type replaced, as `anonymize` does with what `analyze` returns).

Where the scrubbed text's kept characters are found in the original in order (the text between
two replacements is the original's), the characters between them are the ones replaced.

    .venv/bin/python benchmarks/scrub_external.py [--lang en zh] [--limit N] [--no-vanilla]
"""

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from pipelines.steps.offline import enforce_offline  # noqa: E402

KEY = b"benchmark-key-0123456789"
SETS = {"en": "pii_en_dev.jsonl", "zh": "pii_zh_dev.jsonl"}


def replaced_spans(original: str, scrubbed: str, spans) -> list[tuple[int, int]] | None:
    """The original's `(start, end)` replaced, from the scrubbed text and its surrogate spans;
    None where the kept text cannot be found in order."""
    if not spans:
        return [] if scrubbed == original else None
    kept, last = [], 0
    for start, end, _ in sorted(spans):
        kept.append(scrubbed[last:start])
        last = end
    kept.append(scrubbed[last:])
    if not original.startswith(kept[0]) or not original.endswith(kept[-1]):
        return None
    out, at = [], len(kept[0])
    for piece in kept[1:-1]:
        found = original.find(piece, at + 1) if piece else at + 1
        if found < 0:
            return None
        out.append((at, found))
        at = found + len(piece)
    tail = len(original) - len(kept[-1])
    if tail < at:
        return None
    out.append((at, tail))
    return out


def character_scores(rows: list[dict], replaced: dict[int, list[tuple[int, int]]]) -> dict:
    from pii_external import COMPATIBLE

    personal = frozenset().union(*COMPATIBLE.values()) - {"NRP"}
    counts = {"replaced": 0, "right": 0, "gold": 0, "covered": 0}
    for i, row in enumerate(rows):
        text = row["text"]
        gold = {
            c
            for span in row["spans"]
            if (span.get("entity_type") or span.get("label")) in personal
            for c in range(span["start"], span["end"])
            if not text[c].isspace()
        }
        done = {c for s, e in replaced.get(i, []) for c in range(s, e) if not text[c].isspace()}
        counts["replaced"] += len(done)
        counts["right"] += len(done & gold)
        counts["gold"] += len(gold)
    return counts


def ours(analyzer, cfg, rows: list[dict], passes: int) -> tuple[dict, int]:
    from pipelines.steps.ingest.language import language_verdict
    from pipelines.steps.privacy import pii
    from pipelines.steps.records import Message, Record

    records = []
    for i, row in enumerate(rows):
        language, accepted = language_verdict(row["text"], ["en", "zh"])
        if accepted:
            message = Message("user", row["text"], "text")
            records.append(Record(str(i), "eval", i, "text", (message,), language=language))
    result = pii.scrub_records(records, analyzer, cfg, key=KEY, max_passes=passes)
    replaced, unmapped = {}, 0
    for record in result.records:
        message = record.messages[0]
        spans = replaced_spans(rows[int(record.id)]["text"], message.content, message.scrub_spans)
        if spans is None:
            unmapped += 1
        else:
            replaced[int(record.id)] = spans
    return replaced, unmapped


def vanilla(rows: list[dict]) -> dict:
    from pii_external import vanilla_scan
    from presidio_analyzer import AnalyzerEngine
    from presidio_analyzer.nlp_engine import NlpEngineProvider

    from pipelines.steps.config import PIIConfig

    model = PIIConfig().spacy_model
    engine = AnalyzerEngine(
        nlp_engine=NlpEngineProvider(
            nlp_configuration={
                "nlp_engine_name": "spacy",
                "models": [{"lang_code": "en", "model_name": model}],
            }
        ).create_engine()
    )
    found = vanilla_scan(engine, [row["text"] for row in rows])
    # `anonymize` replaces every finding it is given, whatever its type
    return {i: [(s, e) for s, e, _ in spans] for i, spans in enumerate(found)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--eval-dir", type=Path, default=REPO.parent / "shared" / "eval")
    parser.add_argument("--lang", nargs="+", choices=tuple(SETS), default=list(SETS))
    parser.add_argument("--limit", type=int, default=0, help="first N records per set (0: all)")
    parser.add_argument("--no-vanilla", action="store_true")
    args = parser.parse_args()
    enforce_offline()
    import json

    from pipelines.steps.config import PIIConfig
    from pipelines.steps.privacy import pii

    cfg = PIIConfig()
    analyzer = pii.build_analyzer(cfg)
    pii.use_offline_tldextract()
    print("| set | scrub | replaced chars | of them personal data | precision | recall |")
    print("|---|---|---:|---:|---:|---:|")
    for lang in args.lang:
        with (args.eval_dir / SETS[lang]).open(encoding="utf-8") as handle:
            rows = [json.loads(line) for line in handle if line.strip()]
        if args.limit:
            rows = rows[: args.limit]
        readings = {}
        for passes in (3, 1):
            replaced, unmapped = ours(analyzer, cfg, rows, passes)
            label = f"ours, {passes} pass{'es' if passes > 1 else ''}"
            readings[label] = (replaced, unmapped)
        if not args.no_vanilla:
            readings["vanilla (analyze + anonymize)"] = (vanilla(rows), 0)
        for label, (replaced, unmapped) in readings.items():
            c = character_scores(rows, replaced)
            note = f" ({unmapped} records not mapped back)" if unmapped else ""
            print(
                f"| {SETS[lang]} | {label}{note} | {c['replaced']:,} | {c['right']:,} | "
                f"{c['right'] / max(c['replaced'], 1):.4f} | "
                f"{c['right'] / max(c['gold'], 1):.4f} ({c['right']:,} / {c['gold']:,}) |",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
