"""What pseudonymizing ids, subjects, sources and file names adds to the raw stage (#16 point 5).

Ingests the bundled generator's corpus (`--records`, default 2,000) as `raw_corpus` does, then
times, in the same run: ingestion itself (the baseline), `pseudonymize_records` into a fresh
identifier map (every value new: the first run of a drop), and again into the same map (every
value known: a re-run). Prints seconds, the ratios to ingestion and the map's size.

    .venv/bin/python benchmarks/field_pseudonyms.py --records 2000
"""

import argparse
import secrets
import tempfile
import time
from pathlib import Path

from pipelines.steps.ingest.landing import ingest_landing
from pipelines.steps.privacy.identifiers import IdentifierMap, pseudonymize_records
from pipelines.steps.synthetic.corpus import generate_corpus


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        landing = Path(tmp) / "landing"
        generate_corpus(landing, records=args.records, seed=7)
        start = time.perf_counter()
        records = ingest_landing(landing, languages=["en", "zh"], max_record_chars=20_000).accepted
        ingest_s = time.perf_counter() - start
        idmap = IdentifierMap(Path(tmp) / "identifiers.sqlite", secrets.token_bytes(32))
        start = time.perf_counter()
        first = pseudonymize_records(records, idmap, drop="bench")
        first_s = time.perf_counter() - start
        start = time.perf_counter()
        again = pseudonymize_records(records, idmap, drop="bench")
        again_s = time.perf_counter() - start
        assert first == again
        size = idmap.path.stat().st_size
    print(f"records              {len(records)}")
    print(f"ingest (baseline)    {ingest_s:.3f} s")
    print(f"pseudonymize, new    {first_s:.3f} s  ({first_s / ingest_s:.3f}x ingest)")
    print(f"pseudonymize, known  {again_s:.3f} s  ({again_s / ingest_s:.3f}x ingest)")
    print(f"identifier map       {size / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
