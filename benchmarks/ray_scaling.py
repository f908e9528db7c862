"""Scrubbing N records on the local engine and on Ray with 1 and 2 workers, in one run (#21.2).

The records are the bundled generator's (`generate_corpus`, seed 7, every format it writes),
ingested as a drop would be. One local Ray cluster of 2 CPUs serves both Ray runs; each run
scrubs all N records through `DataEngine.scrub` (the scrub asset's call) with a fresh surrogate
registry and the same pseudonym key. Ray's workers build their analyzers on a warm-up scrub of
a few records first (printed as `warm-up`), so the timed runs compare the scanning itself; the
local engine's analyzer is built before its timed run too. Printed per run: wall seconds, CPU
seconds (this process, its finished children and its live descendants: the local Ray cluster's
raylet, GCS and task workers), records per second, the 1-minute load average before and after
(the 2 cores are shared: compare the ratios of one run), and whether the scrubbed output's
sha256 equals the local engine's (the exit status is 1 when one differs).

    nice -n 10 .venv/bin/python benchmarks/ray_scaling.py [--records 600] [--batch-size 32]
"""

import argparse
import hashlib
import os
import resource
import secrets
import sys
import tempfile
import time
from pathlib import Path

import psutil

from pipelines.steps.config import ExecutionConfig
from pipelines.steps.execution.ray_cluster import connect
from pipelines.steps.ingest.landing import ingest_landing
from pipelines.steps.offline import enforce_offline
from pipelines.steps.records import records_to_frame
from pipelines.steps.synthetic.corpus import generate_corpus
from resources import DataEngine, PIIEngine

KEY_ENV = "SOVTUNE_RAY_BENCH_KEY"


def load() -> float:
    return os.getloadavg()[0]


def cpu_seconds() -> float:
    """CPU time of this process, its finished children (the local engine's forked scanner) and
    its live descendants (the local Ray cluster's processes; its task workers stay alive)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    done = resource.getrusage(resource.RUSAGE_CHILDREN)
    total = own.ru_utime + own.ru_stime + done.ru_utime + done.ru_stime
    for child in psutil.Process().children(recursive=True):
        try:
            times = child.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def corpus(records: int, folder: Path) -> list:
    generate_corpus(folder / "landing", records=max(records, 100), seed=7)
    ingested = ingest_landing(folder / "landing", languages=["en", "zh"], max_record_chars=20_000)
    return ingested.accepted[:records]


def sha(result) -> str:
    frame = records_to_frame(result.records)
    return hashlib.sha256(frame.to_json(orient="records").encode()).hexdigest()


def scrub(engine: DataEngine, records: list, folder: Path, pii: PIIEngine | None = None):
    """Wall seconds, CPU seconds and load average before/after of one `DataEngine.scrub`."""
    pii = pii or PIIEngine(pseudonym_key_env=KEY_ENV, key_file=str(folder / "secrets" / "k"))
    before, cpu = load(), cpu_seconds()
    started = time.perf_counter()
    result = engine.scrub(pii, records)
    seconds = time.perf_counter() - started
    return result, seconds, cpu_seconds() - cpu, (before, load())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=600)
    parser.add_argument("--batch-size", type=int, default=32, help="records per Ray block")
    args = parser.parse_args()
    enforce_offline()
    os.environ[KEY_ENV] = secrets.token_hex(32)
    work = Path(tempfile.mkdtemp(prefix="ray_scaling-"))
    records = corpus(args.records, work)
    print(f"{len(records)} records, {sum(len(r.text) for r in records):,} characters", flush=True)

    local_pii = PIIEngine(pseudonym_key_env=KEY_ENV, key_file=str(work / "local" / "secrets" / "k"))
    assert local_pii.analyzer is not None  # built before the timed run, like the Ray workers'
    local, *measured = scrub(DataEngine(), records, work / "local", local_pii)
    rows = [("local (2 cores: one forked child)", *measured, sha(local))]

    connect(ExecutionConfig(engine="ray", address="local", workers=2))
    warm = DataEngine(engine="ray", workers=2, batch_size=2)
    _, warm_s, *_ = scrub(warm, records[:8], work / "warm")
    print(f"warm-up: 8 records on 2 Ray workers, analyzers built: {warm_s:.1f} s", flush=True)
    for workers in (1, 2):
        engine = DataEngine(engine="ray", workers=workers, batch_size=args.batch_size)
        result, *measured = scrub(engine, records, work / f"ray{workers}")
        rows.append((f"ray, {workers} worker{'s' if workers > 1 else ''}", *measured, sha(result)))

    print(
        f"\n{'engine':34} {'wall s':>7} {'CPU s':>7} {'rec/s':>6} {'load before/after':>17}  output"
    )
    for name, seconds, cpu, (before, after), digest in rows:
        same = "= local" if digest == rows[0][-1] else "DIFFERS from local"
        print(
            f"{name:34} {seconds:7.1f} {cpu:7.1f} {len(records) / seconds:6.1f} "
            f"{before:7.2f} / {after:<7.2f}  sha256 {digest[:12]} {same}"
        )
    local_s, one, two = (row[1] for row in rows)
    print(
        f"\nwall: ray 1 worker / 2 workers {one / two:.2f}x, "
        f"local / ray 2 workers {local_s / two:.2f}x"
    )
    sys.exit(0 if all(row[-1] == rows[0][-1] for row in rows) else 1)


if __name__ == "__main__":
    main()
