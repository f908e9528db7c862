"""A Parquet compression bomb against ingestion (issue #16 point 6).

Writes a zstd Parquet file of 500,000 identical 720-character rows (about 39 kB on disk, 360 MB
decoded) in batches, then ingests it with the default `ingest.limits` and prints the outcome,
the time and the process's peak memory before and after ingestion.

    .venv/bin/python benchmarks/parquet_bomb.py [--rows 500000]
"""

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=500_000)
    args = parser.parse_args()
    import pyarrow as pa
    import pyarrow.parquet as pq

    from pipelines.steps.ingest.landing import ingest_landing

    text = "Please reset the password of my laptop, it stopped working. " * 12
    with tempfile.TemporaryDirectory() as folder:
        landing = Path(folder) / "landing"
        landing.mkdir()
        path = landing / "bomb.parquet"
        batch = pa.table({"text": pa.array([text] * 10_000)})
        with pq.ParquetWriter(path, batch.schema, compression="zstd") as writer:
            for _ in range(args.rows // 10_000):
                writer.write_table(batch)
        decoded = args.rows * len(text)
        print(f"bomb: {os.path.getsize(path):,} bytes on disk, {args.rows:,} rows, "
              f"{decoded / 1e6:.0f} MB decoded")  # fmt: skip
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        start = time.perf_counter()
        result = ingest_landing(landing, languages=["en"], max_record_chars=20_000)
        seconds = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"ingest: {seconds:.2f} s, accepted {len(result.accepted)}, "
          f"quarantined {result.quarantine_counts()}")  # fmt: skip
    for q in result.quarantined:
        print(f"  {q.reason}: {q.detail}")
    print(f"peak memory: {before:.0f} MiB before ingestion, {after:.0f} MiB after")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
