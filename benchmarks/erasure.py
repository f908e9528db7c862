"""What erasure on request costs (#19 point 3): one request, and the check at every ingestion.

Ingests the bundled generator's corpus (`--records`, default 2,000) as `raw_corpus` does and
writes it, pseudonymized, into the raw, scrubbed and curated zones (a drop's files and the
joined corpus: six Parquet files) with its landing files. Then times, in the same run:

- ingestion itself (the baseline);
- the ingestion-time check against an exclusion list holding one erased subject
  (`filter_erased`: two keyed hashes per record, id and subject, and the text for a record
  without a subject);
- one erasure request for the subject with the most records (`Erasure.run`: landing rewritten,
  every zone's files searched and rewritten, the identifier map vacuumed).

Prints seconds and the ratios to ingestion.

    .venv/bin/python benchmarks/erasure.py --records 2000
"""

import argparse
import secrets
import tempfile
import time
from collections import Counter
from pathlib import Path

from pipelines.steps.ingest.erasure import Erasure, Exclusions, filter_erased
from pipelines.steps.ingest.landing import ingest_files, ingest_landing
from pipelines.steps.privacy.identifiers import IDENTIFIER_MAP, IdentifierMap, pseudonymize_records
from pipelines.steps.records import records_to_frame
from pipelines.steps.storage import write_parquet
from pipelines.steps.synthetic.corpus import generate_corpus

LANGUAGES = ["en", "zh"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        landing = root / "landing"
        generate_corpus(landing / "bench", records=args.records, seed=7)
        key = secrets.token_bytes(32)
        start = time.perf_counter()
        result = ingest_landing(landing, languages=LANGUAGES, max_record_chars=20_000)
        ingest_s = time.perf_counter() - start
        subject, count = Counter(r.subject for r in result.accepted if r.subject).most_common(1)[0]
        idmap = IdentifierMap(root / "raw" / IDENTIFIER_MAP, key)
        frame = records_to_frame(pseudonymize_records(result.accepted, idmap, drop="bench"))
        for zone, name in (("raw", "raw"), ("scrubbed", "scrubbed"), ("curated", "curated")):
            write_parquet(frame, root / zone / "drops" / "bench" / f"{name}_corpus.parquet")
            write_parquet(frame, root / zone / f"{name}_corpus.parquet")

        exclusions = Exclusions(root / "raw", key)
        exclusions.add("subject", [subject])
        start = time.perf_counter()
        _, _, filtered = filter_erased(result.accepted, result.quarantined, exclusions)
        check_s = time.perf_counter() - start

        def read(files: list[Path]):
            one = ingest_files(files, landing=landing, languages=LANGUAGES, max_record_chars=20_000)
            return one.accepted, one.quarantined

        start = time.perf_counter()
        outcome = Erasure(root, key, subjects=[subject], ids=[], ingest=read).run(
            reason="data_subject_request"
        )
        erase_s = time.perf_counter() - start
    print(f"records                   {len(result.accepted)} accepted")
    print(f"erased subject            {count} records ({filtered} filtered by the check)")
    print(f"ingest (baseline)         {ingest_s:.3f} s")
    print(f"exclusion check           {check_s:.3f} s  ({check_s / ingest_s:.3f}x ingest)")
    print(f"one erasure request       {erase_s:.3f} s  ({erase_s / ingest_s:.3f}x ingest)")
    print(f"  removed                 {dict(sorted(outcome.removed.items()))}")


if __name__ == "__main__":
    main()
