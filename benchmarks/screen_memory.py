"""Peak memory and time of `sovtune screen` at 20k / 100k (/ 1M) synthetic records (#21.1).

Each size is a corpus from the bundled generator (`generate_corpus`, seed 7: its chat JSONL,
cached under `benchmarks/out/screen_memory/`), screened by the `sovtune screen` command in a
child process of its own, so the numbers are the command's whole cost: reading the file, every
screen (the near-duplicate and quality screens run in a second, forked process on a large
corpus) and writing the decisions. Printed per size:

- peak RSS: the largest sum of the resident memory of the command and its children, sampled
  every 50 ms with psutil (the two processes run at the same time; pages the forked child
  shares with its parent count twice, so this is an upper bound), the same for PSS (shared
  pages split between the processes), and the kernel's `ru_maxrss` of the largest single
  process (`getrusage(RUSAGE_CHILDREN)`, the largest of any size run so far);
- wall time and CPU time (user + system of the command and its children): the machine is shared,
  so CPU time is the figure to compare;
- RSS per record and the sha256 of the decisions written (to compare two versions of the code),
  and per pair of sizes the ratios time(N2) / time(N1) (wall and CPU), the record ratio
  N2 / N1 (linear time gives equal ratios) and the memory each further decision costs
  ((RSS(N2) - RSS(N1)) / (decisions(N2) - decisions(N1)), RSS and PSS): the slope that
  decides what a larger corpus needs, where RSS / decisions also carries the fixed cost of
  the interpreter and its imports.

    nice -n 10 .venv/bin/python benchmarks/screen_memory.py [--records 20000 100000]
        [--exchanges 1] [--max-rss-gib 6] [--cgroup-gib 4] [--breakdown | --phases]

`--cgroup-gib G` runs the command in a memory cgroup of its own limited to G GiB (its forked
second process included), after dropping the page cache, as `drop_memory.py --cgroup-gib`
does (root): the limit a Kubernetes pod enforces. Printed: OOM kills, the largest charge of
anonymous and shared memory (every page once), the same with the mapped files (libraries),
and the peak charge with the page cache; a size the kernel killed stops the benchmark.

With `--exchanges K` (K > 1), the generated records are joined K at a time, in file order,
into conversations of K exchanges (the first record's id, source, subject and system turn,
then each record's user and assistant turns; a malformed line stays as it is), and those are
screened instead: the same text as the single records in K times fewer, longer records, the
kind the repeated-payload screen reads exchange by exchange. `--records` still counts the
generated records (exchanges), so a size's text is the same whatever K.

With `--phases`, each size is instead screened by `curate_records` in this process (records
packed as the command packs them, the second process forked as there) while a thread samples
the RSS of this process and of its child every 100 ms: printed are the screens' start and end
times and the RSS of each process every 5 s, so that the peak can be charged to the screens
running at that moment.

With `--breakdown`, each size is instead screened step by step in this process under
tracemalloc (slower): per step, the bytes it leaves allocated and its peak above them, per
record (the records themselves, each screen, the score table, the decision lines). The
tokenizer's cache is turned off for it, so that each step is charged its own tokens.
"""

import argparse
import contextlib
import hashlib
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import psutil

from pipelines.steps.synthetic.corpus import JSONL_FILE, generate_corpus

OUT = Path(__file__).resolve().parent / "out" / "screen_memory"
SAMPLE_S = 0.05


def corpus(records: int, seed: int) -> Path:
    """The chat JSONL of a generated corpus of `records` records (generated once, then reused)."""
    folder = OUT / f"corpus-{records}-{seed}"
    path = folder / JSONL_FILE
    if not path.is_file():
        started = time.perf_counter()
        generate_corpus(folder, records=records, seed=seed)
        print(f"generated {records} records in {time.perf_counter() - started:.0f} s: {path}")
    return path


def conversations(path: Path, exchanges: int) -> Path:
    """The records of `path` joined `exchanges` at a time into conversations (written once)."""
    if exchanges <= 1:
        return path
    out = path.with_name(f"conversations-{exchanges}.jsonl")
    if out.is_file():
        return out
    batch: list[dict] = []
    with path.open("rb") as lines, out.open("wb") as sink:

        def flush() -> None:
            if not batch:
                return
            first = batch[0]
            messages = [m for m in first["messages"] if m.get("role") == "system"][:1]
            for record in batch:
                messages += [m for m in record["messages"] if m.get("role") != "system"]
            joined = {**first, "messages": messages}
            sink.write(json.dumps(joined, ensure_ascii=False).encode() + b"\n")
            batch.clear()

        for line in lines:
            try:
                record = json.loads(line)
                messages = record.get("messages") if isinstance(record, dict) else None
                well_formed = isinstance(messages, list) and all(
                    isinstance(m, dict) for m in messages
                )
            except ValueError:  # not JSON, or not UTF-8: left for the screen to quarantine
                well_formed = False
            if not well_formed:
                sink.write(line if line.endswith(b"\n") else line + b"\n")
                continue
            batch.append(record)
            if len(batch) == exchanges:
                flush()
        flush()
    return out


def tree_memory(process: psutil.Process) -> tuple[int, int]:
    """Resident and proportional (PSS) bytes of a process and all its descendants.

    RSS counts the pages a forked child still shares with its parent twice; PSS splits them.
    """
    rss = pss = 0
    for proc in [process, *process.children(recursive=True)]:
        try:
            info = proc.memory_full_info()
        except psutil.Error:
            continue
        rss += info.rss
        pss += info.pss
    return rss, pss


def measure(
    path: Path, profile: str, max_rss_gib: float, cgroup_gib: float | None = None
) -> dict[str, float]:
    """Run `sovtune screen` on `path` in a child process; its peak RSS, wall and CPU time.

    The command and its children are killed, and the benchmark stops, once their RSS passes
    `max_rss_gib` (the machine is shared: a size that does not fit is reported, not swapped)."""
    decisions = path.with_name(
        "decisions.jsonl" if path.name == JSONL_FILE else f"decisions-{path.stem}.jsonl"
    )
    command = [
        sys.executable,
        "-c",
        "from pipelines.cli import app; app()",
        "screen",
        str(path),
        "--out",
        str(decisions),
        "--profile",
        profile,
    ]
    cgroup = None
    if cgroup_gib:
        from drop_memory import MemoryCgroup, drop_page_cache

        cgroup = MemoryCgroup(f"sovtune-screen-{os.getpid()}", int(cgroup_gib * 2**30))
        print(f"  page cache dropped: {'yes' if drop_page_cache() else 'no (not root)'}")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    child = subprocess.Popen(
        command,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        preexec_fn=cgroup.enter if cgroup else None,  # noqa: PLW1509 (no threads started yet)
    )
    watched = psutil.Process(child.pid)
    peak = peak_pss = charged = charged_mapped = 0
    while child.poll() is None:
        if cgroup:
            with contextlib.suppress(OSError):
                own, mapped = cgroup.in_use()
                charged, charged_mapped = max(charged, own), max(charged_mapped, own + mapped)
        try:
            rss, pss = tree_memory(watched)
        except psutil.Error:
            continue
        peak, peak_pss = max(peak, rss), max(peak_pss, pss)
        if rss > max_rss_gib * 2**30:
            for proc in [*watched.children(recursive=True), watched]:
                with contextlib.suppress(psutil.Error):
                    proc.kill()
            child.wait()
            raise SystemExit(
                f"sovtune screen on {path} passed --max-rss-gib {max_rss_gib} after"
                f" {time.perf_counter() - started:.0f} s: stopped"
            )
        time.sleep(SAMPLE_S)
    wall = time.perf_counter() - started
    stderr = child.stderr.read().decode() if child.stderr else ""
    if cgroup:
        kills, peak_charge = cgroup.oom_kills(), cgroup.peak()
        cgroup.remove()
        print(
            f"  cgroup limit {cgroup_gib:g} GiB: OOM kills {kills}; largest charge of anonymous"
            f" + shared memory {charged / 2**20:.0f} MiB, with the mapped files"
            f" {charged_mapped / 2**20:.0f} MiB; peak charge with the page cache"
            f" {peak_charge / 2**20:.0f} MiB",
            flush=True,
        )
        if kills:
            raise SystemExit(
                f"sovtune screen on {path}: the kernel killed a process at the {cgroup_gib:g}"
                f" GiB cgroup limit (exit {child.returncode})"
            )
    if child.returncode != 0:
        raise SystemExit(f"sovtune screen failed on {path} (exit {child.returncode}): {stderr}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    lines = sum(1 for _ in decisions.open("rb"))
    return {
        "lines": lines,
        "sha256": hashlib.sha256(decisions.read_bytes()).hexdigest(),
        "peak_rss_mib": peak / 2**20,
        "peak_pss_mib": peak_pss / 2**20,
        "maxrss_mib": after.ru_maxrss / 1024,  # kilobytes on Linux; the largest child so far
        "wall_s": wall,
        "cpu_s": cpu,
    }


def read_packed(path: Path, cfg, lines: int | None = None):
    """The records of a chat JSONL file (its first `lines` lines, or all), first of each id,
    packed as `sovtune screen` holds them (malformed lines skipped)."""
    import itertools

    from pipelines.steps.ingest.landing import RecordError, iter_rows, normalize_row
    from pipelines.steps.integrity.packed import PackedRecords

    records, seen = PackedRecords(), set()
    for line_no, row in itertools.islice(iter_rows(path, cfg.ingest.limits), lines):
        try:
            if isinstance(row, RecordError):
                raise row
            record = normalize_row(row, source_file=path.name, source_line=line_no)
        except RecordError:
            continue
        if record.id not in seen:
            seen.add(record.id)
            records.append(record)
    return records


def breakdown(path: Path, profile: str) -> None:
    """Print what each step of `curate_records` holds and its peak (tracemalloc), per record."""
    import gc
    import tracemalloc

    import pipelines.steps.integrity.screens as screens
    from pipelines.steps.config import load_config
    from pipelines.steps.integrity import curate
    from pipelines.steps.integrity.screens import backdoor, payload, quality
    from pipelines.steps.integrity.screens.dedup import score_near_duplicates
    from pipelines.steps.integrity.screens.injection import score_injection

    # No cache: each step pays for its own tokens.
    screens.words = getattr(screens.words, "__wrapped__", screens.words)
    cfg = load_config(profile)
    c = cfg.curation
    tracemalloc.start()
    records = read_packed(path, cfg)  # as `sovtune screen` holds them
    gc.collect()
    held = tracemalloc.get_traced_memory()[0]
    print(f"  records (packed): {held / len(records):.0f} B/record, {len(records)}")
    candidates = records.take(curate._first_pass(records, c)[0])
    n = len(candidates)

    def step(name, run):
        gc.collect()
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        started = time.process_time()
        out = run()
        gc.collect()
        now, peak = tracemalloc.get_traced_memory()
        print(
            f"  {name:<26} holds {(now - base) / n:7.0f} B/record,"
            f" peak {(peak - base) / n:7.0f} B/record ({(peak - base) / 2**20:6.1f} MiB),"
            f" CPU {time.process_time() - started:5.1f} s",
            flush=True,
        )
        return out

    kept = [
        step(
            "near duplicates",
            lambda: score_near_duplicates(
                candidates,
                threshold=c.near_duplicate_threshold,
                num_perm=c.minhash_permutations,
                shingle_size=c.shingle_words,
            ),
        ),
        step("quality", lambda: quality.score_quality(candidates)),
        step(
            "inserted phrases",
            lambda: backdoor.score_inserted_phrases(
                candidates,
                min_records=c.inserted_phrase_min_records,
                max_share=c.inserted_phrase_max_share,
                max_collocation=c.inserted_phrase_max_collocation,
            ),
        ),
        step(
            "backdoor (response clusters)",
            lambda: backdoor.score_backdoor(
                candidates,
                threshold=c.response_similarity,
                num_perm=c.minhash_permutations,
                min_cluster=c.min_trigger_cluster,
            ),
        ),
        step(
            "repeated payloads",
            lambda: payload.score_repeated_payloads(
                candidates,
                opening_words=payload.OPENING_WORDS,
                min_records=payload.MIN_RECORDS,
                max_share=payload.MAX_SHARE,
            ),
        ),
        step("injection", lambda: score_injection(candidates)),
    ]
    del kept
    serial = c.model_copy(update={"parallel_min_records": 0})
    result = step("curate_records (all)", lambda: curate.curate_records(records, serial))

    def table() -> "curate.ScoreTable":
        scores = curate.ScoreTable(r.id for r in candidates)
        for code in range(15):  # about as many codes as the screens score
            for record in candidates:
                scores.put(record.id, f"code{code}", 0.5)
        return scores

    step("score table (15 codes)", table)
    step("decision lines (list)", lambda: curate.decision_lines(result))


def phases(path: Path, profile: str) -> None:
    """Print when each screen of `curate_records` ran and the RSS of both processes meanwhile."""
    import threading

    from pipelines.steps.config import load_config
    from pipelines.steps.integrity import curate
    from pipelines.steps.integrity.screens import backdoor, payload

    me = psutil.Process()
    started = time.perf_counter()
    samples: list[tuple[float, list[int]]] = []
    marks: list[tuple[float, str]] = []
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            with contextlib.suppress(psutil.Error):
                rss = [p.memory_info().rss for p in [me, *me.children(recursive=True)]]
                samples.append((time.perf_counter() - started, rss))
            time.sleep(0.1)

    def timed(module, name: str) -> None:
        run = getattr(module, name)

        def wrapper(*args, **kwargs):
            marks.append((time.perf_counter() - started, f"{name} starts"))
            try:
                return run(*args, **kwargs)
            finally:
                marks.append((time.perf_counter() - started, f"{name} ends"))

        setattr(module, name, wrapper)

    for module, name in [
        (backdoor, "score_inserted_phrases"),
        (backdoor, "score_backdoor"),
        (backdoor, "response_clusters"),
        (payload, "score_repeated_payloads"),
        (curate, "score_injection"),
        (curate, "_decide"),
    ]:
        timed(module, name)
    cfg = load_config(profile)
    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    records = read_packed(path, cfg)
    marks.append((time.perf_counter() - started, f"{len(records)} records read"))
    curate.curate_records(records, cfg.curation)
    marks.append((time.perf_counter() - started, "curated"))
    done.set()
    thread.join()
    at, peak = max(samples, key=lambda s: sum(s[1]))
    print(
        f"  peak RSS {sum(peak) / 2**20:.0f} MiB at {at:.1f} s"
        f" (this process, then its child: {', '.join(f'{r / 2**20:.0f}' for r in peak)} MiB)"
    )
    for at, mark in marks:
        print(f"  {at:7.1f} s  {mark}")
    last = -5.0
    for at, rss in samples:
        if at - last >= 5:
            print(f"  {at:7.1f} s  RSS MiB: {' + '.join(f'{r / 2**20:.0f}' for r in rss)}")
            last = at


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, nargs="+", default=[20_000, 100_000])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--profile", default="default")
    parser.add_argument(
        "--exchanges",
        type=int,
        default=1,
        help="Join the generated records this many at a time into conversations (1: as generated).",
    )
    parser.add_argument(
        "--max-rss-gib",
        type=float,
        default=6.0,
        help="Stop a size whose command passes this RSS (command and children, GiB).",
    )
    parser.add_argument(
        "--cgroup-gib",
        type=float,
        default=None,
        help="Run the command in a memory cgroup limited to this many GiB (root).",
    )
    parser.add_argument(
        "--phases",
        action="store_true",
        help="When each screen runs and the RSS of both processes meanwhile (this process).",
    )
    parser.add_argument(
        "--breakdown",
        action="store_true",
        help="Per step of the screening, in this process under tracemalloc (slower).",
    )
    args = parser.parse_args()
    rows = []
    for records in args.records:
        path = conversations(corpus(records, args.seed), args.exchanges)
        if args.breakdown or args.phases:
            print(f"{records} records, load {os.getloadavg()[0]:.1f}:", flush=True)
            (breakdown if args.breakdown else phases)(path, args.profile)
            continue
        load = os.getloadavg()[0]
        row = {
            "records": records,
            "load_1min": load,
            **measure(path, args.profile, args.max_rss_gib, args.cgroup_gib),
        }
        rows.append(row)
        print(
            f"{records:>9} records ({args.exchanges} a conversation): {row['lines']} decisions,"
            f" peak RSS {row['peak_rss_mib']:.0f} MiB (PSS {row['peak_pss_mib']:.0f} MiB)"
            f" (largest process {row['maxrss_mib']:.0f} MiB),"
            f" {row['peak_rss_mib'] * 2**20 / row['lines'] / 1000:.1f} KB/decision,"
            f" wall {row['wall_s']:.1f} s, CPU {row['cpu_s']:.1f} s (load {load:.1f}),"
            f" decisions sha256 {row['sha256'][:16]}",
            flush=True,
        )
    for a, b in zip(rows, rows[1:], strict=False):
        print(
            f"{b['records']}/{a['records']} records = {b['records'] / a['records']:.1f}x:"
            f" wall {b['wall_s'] / a['wall_s']:.2f}x, CPU {b['cpu_s'] / a['cpu_s']:.2f}x,"
            f" peak RSS {b['peak_rss_mib'] / a['peak_rss_mib']:.2f}x; each further decision"
            f" {_slope(a, b, 'peak_rss_mib'):.2f} KB RSS, {_slope(a, b, 'peak_pss_mib'):.2f} KB PSS"
        )


def _slope(a: dict, b: dict, key: str) -> float:
    """Kilobytes of `key` (MiB) per decision between two sizes."""
    return (b[key] - a[key]) * 2**20 / max(1, b["lines"] - a["lines"]) / 1000


if __name__ == "__main__":
    main()
