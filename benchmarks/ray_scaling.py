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

The residual re-scan of the `no_residual_pii` check (`DataEngine.residual`: every language pack
at the stricter threshold) is timed the same way on the local engine's scrubbed records; the
output compared is its counts per entity type.

With `--screen-records M`, screening is timed the same way after the scrub: `DataEngine.curate`
(the curated asset's call, default profile's curation settings) on M records of the same
generator (seed 7, unscrubbed), on the local engine (the screens in this process and one forked
second process, `curation.parallel_min_records`) and on Ray with 1 and 2 workers (each
corpus-wide screen a Ray task, at most `workers` at a time); the output compared is every
record's decision and reasons and the kept records, and the peak PSS sum of every process (the
Ray cluster's included) is printed per engine. Ray's workers screen a few records first
(warm-up: numba's compiled functions).

    nice -n 10 .venv/bin/python benchmarks/ray_scaling.py [--records 600] [--batch-size 32]
        [--screen-records 20000]
"""

import argparse
import hashlib
import itertools
import os
import resource
import secrets
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psutil

from pipelines.steps.config import ExecutionConfig, load_config
from pipelines.steps.execution.ray_cluster import connect
from pipelines.steps.ingest.landing import ingest_landing
from pipelines.steps.offline import enforce_offline
from pipelines.steps.records import records_to_frame
from pipelines.steps.synthetic.corpus import generate_corpus
from resources import DataEngine, PIIEngine

KEY_ENV = "SOVTUNE_RAY_BENCH_KEY"


def load() -> float:
    return os.getloadavg()[0]


class CpuMeter:
    """CPU time of this process, its finished children (the local engine's forked processes)
    and every deeper descendant it has seen (the local Ray cluster's processes and task
    workers).

    A Ray worker that ends (the scrub's analyzer holders once their run is over) is reaped by
    the raylet without the kernel adding its time to the raylet's count of reaped children, so
    a sampling thread keeps each descendant's last CPU time (every 0.2 s, and at each reading):
    at most its last 0.2 s is lost when one ends. A direct child is counted only while it lives:
    once this process has reaped it, `RUSAGE_CHILDREN` holds its time."""

    def __init__(self) -> None:
        self._me = psutil.Process()
        self._deeper: dict[tuple[int, float], float] = {}
        self._lock = threading.Lock()
        self._peak_pss = 0
        threading.Thread(target=self._sample_forever, daemon=True).start()

    def _sample(self, memory: bool = True) -> float:
        """Refresh the deeper descendants' times and (with `memory`) the peak PSS sum of this
        process and all its descendants; the live direct children's CPU seconds."""
        direct = 0.0
        pss = _pss(self._me) if memory else 0
        for process in self._me.children(recursive=True):
            try:
                times = process.cpu_times()
                key = (process.pid, process.create_time())
                parent = process.ppid()
            except psutil.Error:
                continue
            if memory:
                pss += _pss(process)
            if parent == self._me.pid:
                direct += times.user + times.system
            else:
                with self._lock:
                    self._deeper[key] = times.user + times.system
        with self._lock:
            self._peak_pss = max(self._peak_pss, pss)
        return direct

    def take_peak_mib(self) -> float:
        """The peak PSS sum (MiB) since the last call; the next peak starts from now."""
        self._sample()
        with self._lock:
            peak, self._peak_pss = self._peak_pss, 0
        return peak / 2**20

    def _sample_forever(self) -> None:
        # PSS every second only: reading it walks each process's page tables (CPU the run pays).
        for tick in itertools.count(1):
            time.sleep(0.2)
            self._sample(memory=tick % 5 == 0)

    def seconds(self) -> float:
        direct = self._sample()
        own = resource.getrusage(resource.RUSAGE_SELF)
        done = resource.getrusage(resource.RUSAGE_CHILDREN)
        with self._lock:
            deeper = sum(self._deeper.values())
        return own.ru_utime + own.ru_stime + done.ru_utime + done.ru_stime + direct + deeper


def _pss(process: psutil.Process) -> int:
    """Proportional set size in bytes (pages shared with other processes, such as Ray's object
    store in shared memory, split between them); 0 for a process that is gone."""
    try:
        return process.memory_full_info().pss
    except psutil.Error:
        return 0


_METER: CpuMeter | None = None


def meter() -> CpuMeter:
    """This run's meter (started at the first reading)."""
    global _METER
    if _METER is None:
        _METER = CpuMeter()
    return _METER


def cpu_seconds() -> float:
    """`CpuMeter.seconds` of this run's meter."""
    return meter().seconds()


def corpus(records: int, folder: Path) -> list:
    generate_corpus(folder / "landing", records=max(records, 100), seed=7)
    ingested = ingest_landing(folder / "landing", languages=["en", "zh"], max_record_chars=20_000)
    return ingested.accepted[:records]


def sha(result) -> str:
    frame = records_to_frame(result.records)
    return hashlib.sha256(frame.to_json(orient="records").encode()).hexdigest()


def screened_sha(result) -> str:
    """sha256 of every record's decision and reasons, in order, and of the kept records."""
    digest = hashlib.sha256()
    for s in result.screened:
        reasons = [(r.screen, r.code, round(r.score, 6), r.detail) for r in s.reasons]
        digest.update(repr((s.id, s.decision, reasons)).encode())
    digest.update(records_to_frame(list(result.kept)).to_json(orient="records").encode())
    return digest.hexdigest()


def timed(call: Callable, *args):
    """`call(*args)`'s result, wall seconds, CPU seconds and load average before/after."""
    before, cpu = load(), cpu_seconds()
    started = time.perf_counter()
    result = call(*args)
    seconds = time.perf_counter() - started
    return result, seconds, cpu_seconds() - cpu, (before, load())


def screen(engine: DataEngine, records: list):
    """`timed` of one `DataEngine.curate`, and the peak PSS sum (MiB) during it."""
    cfg = load_config("default").curation
    meter().take_peak_mib()
    return *timed(engine.curate, records, cfg, None), meter().take_peak_mib()


def table(title: str, records: int, rows: list) -> None:
    header = f"{'wall s':>7} {'CPU s':>7} {'rec/s':>6} {'load before/after':>17}"
    print(f"\n{title}\n{'engine':34} {header}  output")
    for name, seconds, cpu, (before, after), digest in rows:
        same = "= local" if digest == rows[0][-1] else "DIFFERS from local"
        print(
            f"{name:34} {seconds:7.1f} {cpu:7.1f} {records / seconds:6.1f} "
            f"{before:7.2f} / {after:<7.2f}  sha256 {digest[:12]} {same}"
        )
    local_s, one, two = (row[1] for row in rows)
    print(
        f"wall: ray 1 worker / 2 workers {one / two:.2f}x,"
        f" local / ray 2 workers {local_s / two:.2f}x"
    )


def scrub(engine: DataEngine, records: list, folder: Path, pii: PIIEngine | None = None):
    """`timed` of one `DataEngine.scrub` (a fresh surrogate registry under `folder`)."""
    pii = pii or PIIEngine(pseudonym_key_env=KEY_ENV, key_file=str(folder / "secrets" / "k"))
    return timed(engine.scrub, pii, records)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=600)
    parser.add_argument("--batch-size", type=int, default=32, help="records per Ray block")
    parser.add_argument("--screen-records", type=int, default=0, help="also time screening")
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

    table("scrub", len(records), rows)
    same = [row[-1] == rows[0][-1] for row in rows]

    # The residual re-scan (the `no_residual_pii` check's) of the local engine's scrubbed records.
    found = []
    for name, engine in (
        ("local (2 cores: one forked child)", DataEngine()),
        *(
            (f"ray, {w} worker{'s' if w > 1 else ''}", DataEngine(engine="ray", workers=w))
            for w in (1, 2)
        ),
    ):
        counts, *measured = timed(engine.residual, local_pii, local.records)
        found.append((name, *measured, hashlib.sha256(repr(counts).encode()).hexdigest()))
    table("residual re-scan (every pack) of the scrubbed records", len(records), found)
    same += [row[-1] == found[0][-1] for row in found]

    if args.screen_records:
        records = corpus(args.screen_records, work / "screen")
        print(f"\nscreening: {len(records)} records", flush=True)
        screen(DataEngine(engine="ray", workers=2), records[:200])  # warm-up: numba, Ray tasks
        local, *measured, peak = screen(DataEngine(), records)
        found = [("local (screens + one forked process)", *measured, screened_sha(local))]
        peaks = [peak]
        del local
        for workers in (1, 2):
            result, *measured, peak = screen(DataEngine(engine="ray", workers=workers), records)
            name = f"ray, {workers} worker{'s' if workers > 1 else ''}"
            found.append((name, *measured, screened_sha(result)))
            peaks.append(peak)
            del result
        table("screening", len(records), found)
        print(
            "peak PSS sum (MiB; this process, the local engine's forked one, and the Ray cluster's"
            " processes and object store; sampled every second): "
            + ", ".join(
                f"{row[0].split(' (')[0]} {peak:,.0f}"
                for row, peak in zip(found, peaks, strict=True)
            )
        )
        same += [row[-1] == found[0][-1] for row in found]
    sys.exit(0 if all(same) else 1)


if __name__ == "__main__":
    main()
