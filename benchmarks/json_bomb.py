"""A LLaMA-Factory JSON array bomb against ingestion (issue #16 point 6).

Writes a dataset folder whose `a.json` is `[{},{},...]` (5,000,000 empty objects, 15 MB by
default: over the default `ingest.limits.max_file_rows`), then measures, each in a fresh
process so that peak memory is its own:

- `streamed`: ingestion as it is (`ingest_landing`, ijson: a counting pass, then element by
  element);
- `whole`: the baseline, what `data_slots` did before: read the file up to
  `max_file_bytes` and `json.loads` it, then compare its length with `max_file_rows`.

Prints the outcome, the time and the peak resident memory added by each (ru_maxrss after minus
before, MiB), and their ratio.

    .venv/bin/python benchmarks/json_bomb.py [--elements 5000000]
"""

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _measure(mode: str, landing: Path) -> None:
    from pipelines.steps.config import IngestLimits
    from pipelines.steps.ingest.landing import ingest_landing

    limits = IngestLimits()
    before = _rss_mib()
    start = time.perf_counter()
    if mode == "streamed":
        result = ingest_landing(landing, languages=["en"], max_record_chars=20_000)
        outcome = f"quarantined {result.quarantine_counts()}, accepted {len(result.accepted)}"
    else:
        with open(landing / "lf" / "a.json", "rb") as handle:
            data = handle.read(limits.max_file_bytes + 1)
        elements = json.loads(data)
        outcome = (
            f"{len(elements):,} elements > max_file_rows: {len(elements) > limits.max_file_rows}"
        )
    seconds = time.perf_counter() - start
    print(json.dumps({"mode": mode, "seconds": seconds, "added_mib": _rss_mib() - before,
                      "outcome": outcome}))  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--elements", type=int, default=5_000_000)
    parser.add_argument("--measure", choices=["streamed", "whole"], help=argparse.SUPPRESS)
    parser.add_argument("--landing", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        _measure(args.measure, args.landing)
        return 0
    with tempfile.TemporaryDirectory() as folder:
        landing = Path(folder) / "landing"
        (landing / "lf").mkdir(parents=True)
        with open(landing / "lf" / "a.json", "wb") as handle:
            handle.write(b"[")
            for _ in range(args.elements // 1000 - 1):
                handle.write(b"{}," * 1000)
            handle.write(b"{}," * 999 + b"{}]")
        info = {"a": {"file_name": "a.json"}}
        (landing / "lf" / "dataset_info.json").write_text(json.dumps(info))
        size = (landing / "lf" / "a.json").stat().st_size
        print(f"bomb: {size / 1e6:.1f} MB, {args.elements:,} elements")
        results = {}
        for mode in ("whole", "streamed"):
            out = subprocess.run(
                [sys.executable, __file__, "--measure", mode, "--landing", str(landing)],
                capture_output=True, text=True, check=True,
            )  # fmt: skip
            results[mode] = json.loads(out.stdout.strip().splitlines()[-1])
            r = results[mode]
            print(f"{mode:>8}: {r['seconds']:.2f} s, peak memory +{r['added_mib']:.0f} MiB "
                  f"({r['outcome']})")  # fmt: skip
    ratio = results["whole"]["added_mib"] / max(results["streamed"]["added_mib"], 1)
    print(f"peak memory added: whole / streamed = {ratio:.0f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
