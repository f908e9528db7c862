"""Peak memory and time of one data drop's stages at 20k / 100k synthetic records (#21.1).

Each size is the bundled generator's corpus (`generate_corpus`, seed 7: its chat JSONL and
alpaca CSV, the files `benchmarks/screen_memory.py` caches under
`benchmarks/out/screen_memory/corpus-N-7/`), copied as one drop folder into the landing zone of
a fresh data root (`benchmarks/out/drop_memory/root-N/`, the default profile with a fixed
pseudonym key, so two runs write the same pseudonyms). A child process registers the drop and
materializes its data stages one after the other with Dagster's in-process executor:
`raw_corpus`, `raw_quarantine`, `scrubbed_corpus`, `curated_corpus`. With `--checks`, the
blocking checks of a `sovtune_drop` run on those assets follow, each run alone and measured as
a stage (`check:no_residual_pii`, the residual PII re-scan; `check:curated_expectations`, the
Great Expectations suite; `check:near_duplicate_rate_bounded`; and the cheaper ones). With
`--join`, the body of `training_corpus` (the join of every drop's raw, scrubbed and curated
files, as the asset does it, without its refusals, checks and canaries) runs on two drops of
N/2 records each: the drop's three files split in halves, so nothing is scrubbed again.
Printed per size and stage:

- peak RSS: the largest sum of the resident memory of the child and its children (the second
  screening process of `curated_corpus`), sampled every 50 ms with psutil by a thread of the
  child while the stage runs, and over the whole child by this process;
- peak PSS per stage: the same sum in proportional memory, sampled by this process (pages
  the forked scanning or screening process shares with its parent are split, not counted
  twice as in the RSS sum);
- CPU time (user + system of the child and its finished children) and wall time per stage:
  the machine is shared, so CPU time is the figure to compare;
- per stage, the sha256 of each Parquet file it wrote and a digest of its content (every
  row as JSON, column by column: equal when two files hold the same rows even if their
  row groups or schema metadata differ), to show that a change of the code changes nothing;
- per pair of sizes, the ratios N2 / N1 of records, CPU, wall and peak RSS (linear time gives
  equal record and time ratios, bounded memory an RSS ratio near 1).

    nice -n 10 .venv/bin/python benchmarks/drop_memory.py [--records 20000 100000]
        [--batch-records 8192] [--max-rss-gib 8] [--checks] [--join] [--unscrubbed]
        [--cgroup-gib 4]

`--cgroup-gib G` runs each size's child in a memory cgroup of its own limited to G GiB (as a
Kubernetes pod's `resources.limits.memory` is enforced; cgroup v1 or v2, which must be
writable: as root, or delegated), with no swap on the machine a hard cap: a stage that needs
more is killed by the kernel, and the run fails saying so. Printed per size: the limit, the
OOM kills (0 when it fit), the largest anonymous plus shared memory charged to the cgroup
(sampled with the other figures: every page once, however many processes map it), the same
with the file pages mapped into the processes (libraries), and the peak charge with the page
cache (which the kernel reclaims before it kills).

`--unscrubbed` measures what follows the PII scan at sizes the scan cannot reach here (1M
records would take some 6 hours to scrub on 2 cores): `raw_corpus` is materialized, then
`curated_corpus` is given the raw records as its input in place of `scrubbed_corpus`'s output
(the raw file copied to the scrubbed zone, its summary stored as the IO manager stores one), and
the checks that read the scrubbed text (`no_residual_pii`) are left out. The screens read
unscrubbed text (names and numbers where the scrub writes surrogates of about the same length),
so the screening figures are those of the same records' shape, not of the scrubbed corpus. Its
data root is `root-N-unscrubbed`, apart from the full runs'.

The code measured is the one Python imports: `PYTHONPATH=/path/to/other/tree` measures another
commit's stages with this script (the check and join stages run through Dagster and the
asset module's own functions, whichever signatures that commit has).

PII scanning runs at about 150 records/s on 2 cores: 100k records take 11+ minutes.
"""

import argparse
import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "benchmarks" / "out" / "drop_memory"
CORPORA = REPO / "benchmarks" / "out" / "screen_memory"
STAGES = ("raw_corpus", "raw_quarantine", "scrubbed_corpus", "curated_corpus")
STAGE_FILES = {
    "raw_corpus": ("raw", ("raw_corpus.parquet", "quarantine.parquet")),
    "raw_quarantine": ("raw", ()),
    "scrubbed_corpus": ("scrubbed", ("scrubbed_corpus.parquet",)),
    "curated_corpus": (
        "curated",
        ("curated_corpus.parquet", "screening.parquet", "filtered.parquet", "quarantine.parquet"),
    ),
}
EXTRA_FILES = {"scrubbed_corpus": ("raw", ("scan_quarantine.parquet",))}
# The blocking checks of a sovtune_drop run on the drop's assets, in the order they run.
CHECKS = (
    ("raw_corpus", "records_conserved"),
    ("raw_corpus", "raw_corpus_not_empty"),
    ("raw_corpus", "raw_corpus_schema"),
    ("scrubbed_corpus", "no_residual_pii"),
    ("curated_corpus", "curated_expectations"),
    ("curated_corpus", "near_duplicate_rate_bounded"),
    ("curated_corpus", "no_kept_trigger_cluster"),
    ("curated_corpus", "quarantine_rate_bounded"),
)
JOIN_FILES = (
    ("raw", "raw_corpus.parquet"),
    ("scrubbed", "scrubbed_corpus.parquet"),
    ("curated", "curated_corpus.parquet"),
    ("curated", "cross_drop_removed.parquet"),
)
SAMPLE_S = 0.05
KEY = hashlib.sha256(b"sovtune benchmarks: drop_memory's fixed pseudonym key").digest()


def corpus_files(records: int, seed: int) -> list[Path]:
    """The generator's files for `records` records (generated once, then reused)."""
    from pipelines.steps.synthetic.corpus import CSV_FILE, JSONL_FILE, generate_corpus

    folder = CORPORA / f"corpus-{records}-{seed}"
    files = [folder / JSONL_FILE, folder / CSV_FILE]
    if not all(f.is_file() for f in files):
        started = time.perf_counter()
        generate_corpus(folder, records=records, seed=seed)
        print(f"generated {records} records in {time.perf_counter() - started:.0f} s: {folder}")
    return files


def root_of(records: int, unscrubbed: bool) -> Path:
    return OUT / (f"root-{records}-unscrubbed" if unscrubbed else f"root-{records}")


def fresh_root(records: int, seed: int, unscrubbed: bool = False) -> tuple[Path, str]:
    """A new data root whose landing zone holds one drop (a folder): (root, drop name)."""
    root = root_of(records, unscrubbed)
    shutil.rmtree(root, ignore_errors=True)
    drop = f"corpus-{records}-{seed}"
    landing = root / "landing" / drop
    landing.mkdir(parents=True)
    for path in corpus_files(records, seed):
        shutil.copyfile(path, landing / path.name)  # a copy: hard links are refused
    secrets = root / "secrets"
    secrets.mkdir(mode=0o700)
    fd = os.open(secrets / "pseudonym.key", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(KEY)
    return root, drop


def stage_file(root: Path, reuse: str | None) -> Path:
    """Where the child names the stage it runs, for the parent's PSS sampling (one per reused
    stage, so that a `--reuse` run beside a full run of the same size does not mix them up)."""
    return root / (f"stage-{reuse}" if reuse else "stage")


def tree_rss(process: psutil.Process) -> int:
    """Resident bytes of a process and all its descendants."""
    total = 0
    for proc in [process, *process.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            total += proc.memory_info().rss
    return total


def tree_pss(process: psutil.Process) -> int:
    """Proportional bytes (PSS) of a process and its descendants: pages a forked child still
    shares with its parent split between them, not counted twice as in the RSS sum."""
    total = 0
    for proc in [process, *process.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            total += proc.memory_full_info().pss
    return total


def content_digest(path: Path) -> str:
    """sha256 over every row of a Parquet file as JSON (column name -> value), in order."""
    import pyarrow.parquet as pq

    digest = hashlib.sha256()
    for batch in pq.ParquetFile(path).iter_batches(batch_size=4096):
        for row in batch.to_pylist():
            digest.update(json.dumps(row, sort_keys=True, default=str).encode())
            digest.update(b"\n")
    return digest.hexdigest()


# --- the child: one drop's stages, in process --------------------------------------------------


def child(
    root: Path,
    drop: str,
    batch_records: int | None,
    report: Path,
    checks: bool,
    join: bool,
    reuse: str | None = None,
    unscrubbed: bool = False,
) -> None:
    import dagster as dg

    from pipelines.definitions import ASSET_MODULES, CHECK_MODULES, build_resources
    from pipelines.drops import register_drops
    from pipelines.steps.config import load_config
    from pipelines.steps.offline import enforce_offline

    enforce_offline()
    cfg = load_config("default").model_copy(update={"data_root": str(root)})
    resources = build_resources(cfg)
    if batch_records:
        resources["execution"] = resources["execution"].model_copy(
            update={"stream_batch_records": batch_records}
        )
    assets = dg.load_assets_from_modules(ASSET_MODULES)
    asset_checks = [  # those of the drop's (partitioned) assets
        c
        for c in (dg.load_asset_checks_from_modules(CHECK_MODULES) if checks or reuse else [])
        if all(k.asset_key.path[-1] in STAGES for k in c.check_keys)
    ]
    dagster_dir = root / ("dagster-reuse" if reuse else "dagster")
    if reuse:
        shutil.rmtree(dagster_dir, ignore_errors=True)
    instance = dg.DagsterInstance.ephemeral(tempdir=str(dagster_dir))
    [registered] = register_drops(instance, root / "landing")  # the one drop
    me = psutil.Process()
    rows = []
    summaries: dict[str, dict] = {}

    def measured(stage: str, work) -> None:
        """Run `work()` (it returns the stage's outputs) and keep its row of the report."""
        stage_file(root, reuse).write_text(stage)  # for the parent's PSS sampling
        peak, done = [0], threading.Event()

        def sample(peak=peak, done=done) -> None:
            while not done.is_set():
                peak[0] = max(peak[0], tree_rss(me))
                time.sleep(SAMPLE_S)

        sampler = threading.Thread(target=sample, daemon=True)
        at_start = tree_rss(me)
        before, started = me.cpu_times(), time.perf_counter()
        sampler.start()
        try:
            outputs = work()
        finally:
            done.set()
            sampler.join()
        wall, after = time.perf_counter() - started, me.cpu_times()
        cpu = sum(after[:4]) - sum(before[:4])  # user, system, children's user and system
        rows.append(
            {
                "stage": stage,
                "rss_at_start": at_start,
                "peak_rss": peak[0],
                "cpu_s": cpu,
                "wall_s": wall,
                "outputs": outputs,
            }
        )
        print(f"  {stage}: {wall:.1f} s", file=sys.stderr, flush=True)

    def run(selection, label: str):
        result = dg.materialize(
            assets,
            selection=selection,
            partition_key=registered.key,
            instance=instance,
            resources=resources,
            raise_on_error=False,
        )
        if not result.success:
            failures = [
                e.event_specific_data.error.message.strip()[:500]
                for e in result.all_events
                if e.event_type_value == "STEP_FAILURE" and e.event_specific_data.error
            ]
            raise SystemExit(f"{label} failed: {failures}")
        return result

    def stage_work(stage: str):
        def work() -> dict:
            result = run([stage], stage)
            summaries[stage] = result.output_for_node(stage)
            zone, names = STAGE_FILES[stage]
            files = [(zone, name) for name in names]
            extra_zone, extra = EXTRA_FILES.get(stage, ("", ()))
            files += [(extra_zone, name) for name in extra]
            return {
                f"{zone}/{name}": file_digests(root / zone / "drops" / registered.key / name)
                for zone, name in files
            }

        return work

    by_name = {key.name: c for c in asset_checks for key in c.check_keys}

    def check_work(asset: str, name: str):
        def work() -> dict:
            # called as a test calls it (a run of a check alone cannot take a partition key):
            # the asset's value and the resources it names, whichever that commit's are
            check = by_name[name]
            needs = {k: resources[k] for k in check.required_resource_keys - {"io_manager"}}
            evaluation = check(summaries[asset], **needs)
            metadata = {k: str(getattr(v, "value", v)) for k, v in evaluation.metadata.items()}
            said = json.dumps([evaluation.passed, evaluation.description, metadata], sort_keys=True)
            # what the check said, as a digest (its metadata holds counts and ids only)
            return {
                "result": {
                    "sha256": hashlib.sha256(said.encode()).hexdigest(),
                    "content": "passed" if evaluation.passed else "failed",
                }
            }

        return work

    if reuse:  # the earlier run's asset values, as its IO manager stored them
        import pickle

        from pipelines.steps.storage import resolved

        for stage in ("raw_corpus", "scrubbed_corpus", "curated_corpus"):
            stored = root / "dagster" / "storage" / stage / registered.key
            summaries[stage] = resolved(pickle.loads(stored.read_bytes()), root)
        if reuse == "join":
            drops = split_drop(root, registered.key, summaries)
            measured("training_corpus join", lambda: join_drops(root, drops, resources))
        else:
            [(asset, name)] = [(a, n) for a, n in CHECKS if n == reuse]
            measured(f"check:{name}", check_work(asset, name))
        report.write_text(json.dumps(rows, indent=2))
        return
    for stage in STAGES:
        if unscrubbed and stage == "scrubbed_corpus":
            summaries[stage] = raw_as_scrubbed(root, registered.key, summaries["raw_corpus"])
            continue
        measured(stage, stage_work(stage))
    if checks:
        for asset, name in CHECKS:
            if unscrubbed and asset == "scrubbed_corpus":
                continue  # it reads the scrubbed text, which this run does not have
            measured(f"check:{name}", check_work(asset, name))
    if join:
        drops = split_drop(root, registered.key, summaries)
        measured("training_corpus join", lambda: join_drops(root, drops, resources))
    report.write_text(json.dumps(rows, indent=2))


def raw_as_scrubbed(root: Path, key: str, raw: dict) -> dict:
    """`--unscrubbed`: the raw records stand in for the scrubbed ones. The raw file is copied to
    the scrubbed zone and a summary naming it is stored where the IO manager keeps
    `scrubbed_corpus`'s output, so that `curated_corpus` (and `--reuse` later) reads it."""
    import pickle

    from pipelines.steps.storage import portable, sha256_file

    source = root / "raw" / "drops" / key / "raw_corpus.parquet"
    target = root / "scrubbed" / "drops" / key / "scrubbed_corpus.parquet"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    summary = {
        "drop": raw["drop"],
        "drop_sha256": raw["drop_sha256"],
        "path": str(target),
        "sha256": sha256_file(target),
        "records": raw["accepted"],
        "records_with_pii": 0,
        "entity_counts": {},
        "quarantined": 0,
        "quarantine_by_reason": {},
        "unscrubbed": True,
    }
    stored = root / "dagster" / "storage" / "scrubbed_corpus" / key
    stored.parent.mkdir(parents=True, exist_ok=True)
    stored.write_bytes(pickle.dumps(portable(summary, root)))
    return summary


def file_digests(path: Path) -> dict:
    return {
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "content": content_digest(path),
    }


def split_drop(root: Path, key: str, summaries: dict[str, dict]) -> dict[str, dict[str, dict]]:
    """Two drops (`half-a`, `half-b`) of the drop's raw, scrubbed and curated files, each file
    split in halves by rows: {stage: {drop: its summary, pointing at its half}}. Their counts
    are the whole drop's (the join sums them; what is measured is the files)."""
    import pyarrow.parquet as pq

    out: dict[str, dict[str, dict]] = {}
    for stage, zone, name in (
        ("raw_corpus", "raw", "raw_corpus.parquet"),
        ("scrubbed_corpus", "scrubbed", "scrubbed_corpus.parquet"),
        ("curated_corpus", "curated", "curated_corpus.parquet"),
    ):
        # Streamed a batch at a time, so that the join measured next does not start with the
        # whole files' tables in this process's memory pool.
        source = pq.ParquetFile(root / zone / "drops" / key / name)
        middle = source.metadata.num_rows // 2
        paths = {half: root / "join" / half / zone / name for half in ("half-a", "half-b")}
        writers = {}
        seen = 0
        for batch in source.iter_batches(batch_size=8192):
            cut = max(0, min(batch.num_rows, middle - seen))
            for half, part in (("half-a", batch.slice(0, cut)), ("half-b", batch.slice(cut))):
                if part.num_rows:
                    if half not in writers:
                        paths[half].parent.mkdir(parents=True, exist_ok=True)
                        writers[half] = pq.ParquetWriter(
                            paths[half], source.schema_arrow, compression="zstd"
                        )
                    writers[half].write_batch(part)
            seen += batch.num_rows
        for half, path in paths.items():
            if half in writers:
                writers[half].close()
            else:  # an empty half: the schema alone
                path.parent.mkdir(parents=True, exist_ok=True)
                pq.write_table(source.schema_arrow.empty_table(), path, compression="zstd")
            out.setdefault(stage, {})[half] = {**summaries[stage], "path": str(path)}
    return out


def join_drops(root: Path, drops: dict[str, dict[str, dict]], resources: dict) -> dict:
    """The join of `training_corpus` over `drops`, as the asset module in use does it: its
    streamed join when it has one (`join_curated`), else `combine_drops` over every drop's
    records read whole."""
    import inspect

    from assets import training_corpus as asset

    raw, scrubbed, curated = (drops[s] for s in ("raw_corpus", "scrubbed_corpus", "curated_corpus"))
    registered = sorted(curated)
    storage = resources["storage"]
    if hasattr(asset, "join_curated"):
        execution = resources["execution"]
        combined = asset.join_curated(
            {k: curated[k]["path"] for k in registered},
            storage.curated / "curated_corpus.parquet",
            execution.stream_batch_records,
        )
    else:
        combined = asset.combine_drops(
            {k: asset.frame_to_records(asset.read_parquet(curated[k]["path"])) for k in registered}
        )
    extra = (
        [resources["execution"]] if len(inspect.signature(asset._summary).parameters) > 6 else []
    )
    summary = asset._summary(registered, raw, scrubbed, curated, combined, storage, *extra)
    outputs = {f"{zone}/{name}": file_digests(root / zone / name) for zone, name in JOIN_FILES}
    outputs["summary sha256"] = {"sha256": summary["sha256"], "content": summary["sha256"]}
    return outputs


# --- a memory cgroup around the child (--cgroup-gib) -----------------------------------------

_CGROUP_V1 = Path("/sys/fs/cgroup/memory")
_CGROUP_V2 = Path("/sys/fs/cgroup")


class MemoryCgroup:
    """A memory cgroup limited to `limit` bytes, for one child process (and its children).

    cgroup v1 (`/sys/fs/cgroup/memory`) where mounted, else v2 (`/sys/fs/cgroup` with the
    memory controller). `enter` (run in the child before it executes Python) moves the
    calling process into it; `working_set` is what is charged less the page cache, shared
    memory included; `peak`, the largest charge with the page cache; `oom_kills`."""

    def __init__(self, name: str, limit: int) -> None:
        if (_CGROUP_V1 / "memory.limit_in_bytes").is_file():
            self.v1, self.path = True, _CGROUP_V1 / name
        elif "memory" in (_CGROUP_V2 / "cgroup.controllers").read_text(errors="replace").split():
            self.v1, self.path = False, _CGROUP_V2 / name
        else:
            raise SystemExit("--cgroup-gib: no memory cgroup controller on this machine")
        try:
            self.path.mkdir(exist_ok=True)
            limit_file = "memory.limit_in_bytes" if self.v1 else "memory.max"
            (self.path / limit_file).write_text(str(limit))
            if self.v1:
                with contextlib.suppress(OSError):  # absent without swap accounting
                    (self.path / "memory.memsw.limit_in_bytes").write_text(str(limit))
        except OSError as error:
            raise SystemExit(
                f"--cgroup-gib: cannot create or limit {self.path} ({error.strerror}): run as"
                " root, or in a cgroup delegated to this user"
            ) from None

    def enter(self) -> None:
        (self.path / "cgroup.procs").write_text(str(os.getpid()))

    def _stat(self) -> dict[str, int]:
        rows = (line.split() for line in (self.path / "memory.stat").read_text().splitlines())
        return {row[0]: int(row[1]) for row in rows if len(row) == 2}

    def in_use(self) -> tuple[int, int]:
        """`(anonymous and shared memory, file pages mapped into the processes)` charged now:
        the first is the processes' own data (what PSS counts of it, every page once), the
        second the libraries and memory-mapped files they run with (charged only for pages this
        cgroup brought into memory: `drop_page_cache` first)."""
        stat = self._stat()
        if self.v1:
            own = stat.get("total_rss", stat.get("rss", 0)) + stat.get("total_shmem", 0)
            return own, stat.get("total_mapped_file", stat.get("mapped_file", 0))
        return stat.get("anon", 0) + stat.get("shmem", 0), stat.get("file_mapped", 0)

    def peak(self) -> int:
        name = "memory.max_usage_in_bytes" if self.v1 else "memory.peak"
        with contextlib.suppress(OSError, ValueError):
            return int((self.path / name).read_text())
        return 0

    def oom_kills(self) -> int:
        name = "memory.oom_control" if self.v1 else "memory.events"
        for line in (self.path / name).read_text().splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill":
                return int(value)
        return 0

    def remove(self) -> None:
        with contextlib.suppress(OSError):
            self.path.rmdir()


def drop_page_cache() -> bool:
    """Write back and drop the machine's clean page cache (root only), so that the files the
    child maps (libraries, models) are charged to its cgroup when it reads them, as in a fresh
    container, rather than to whichever process read them first."""
    os.sync()
    try:
        Path("/proc/sys/vm/drop_caches").write_text("3")
    except OSError:
        return False
    return True


# --- the parent ------------------------------------------------------------------------------


def measure(
    records: int,
    seed: int,
    batch_records: int | None,
    max_rss_gib: float,
    checks: bool = False,
    join: bool = False,
    reuse: str | None = None,
    unscrubbed: bool = False,
    cgroup_gib: float | None = None,
) -> dict:
    if reuse:  # one stage on the outputs of an earlier run
        root = root_of(records, unscrubbed)
        [drop] = [p.name for p in (root / "landing").iterdir() if not p.name.startswith(".")]
        stage_file(root, reuse).unlink(missing_ok=True)
        report = root / f"report-{reuse}.json"
    else:
        root, drop = fresh_root(records, seed, unscrubbed)
        report = root / "report.json"
    command = [sys.executable, __file__, "--child", str(root), drop, str(report)]
    if batch_records:
        command += ["--batch-records", str(batch_records)]
    command += ["--checks"] * checks + ["--join"] * join + ["--reuse", reuse] * bool(reuse)
    command += ["--unscrubbed"] * unscrubbed
    started = time.perf_counter()
    log = (root / f"child{'-' + reuse if reuse else ''}.log").open("wb")  # Dagster's event log
    cgroup = (
        MemoryCgroup(f"sovtune-drop-{records}-{os.getpid()}", int(cgroup_gib * 2**30))
        if cgroup_gib
        else None
    )
    if cgroup:
        dropped = drop_page_cache()
        print(f"  page cache dropped before the child: {'yes' if dropped else 'no (not root)'}")
    proc = subprocess.Popen(
        command,
        stdout=subprocess.DEVNULL,
        stderr=log,
        preexec_fn=cgroup.enter if cgroup else None,  # noqa: PLW1509 (no threads started yet)
    )
    watched = psutil.Process(proc.pid)
    peak = charged = charged_mapped = 0
    pss: dict[str, int] = {}  # the largest PSS sum of the child and its children, per stage
    while proc.poll() is None:
        rss = tree_rss(watched)
        peak = max(peak, rss)
        if cgroup:
            with contextlib.suppress(OSError):
                own, mapped = cgroup.in_use()
                charged = max(charged, own)
                charged_mapped = max(charged_mapped, own + mapped)
        with contextlib.suppress(OSError):
            stage = stage_file(root, reuse).read_text()
            pss[stage] = max(pss.get(stage, 0), tree_pss(watched))
        if rss > max_rss_gib * 2**30:
            for p in [*watched.children(recursive=True), watched]:
                with contextlib.suppress(psutil.Error):
                    p.kill()
            proc.wait()
            raise SystemExit(f"{records} records passed --max-rss-gib {max_rss_gib}: stopped")
        time.sleep(SAMPLE_S)
    log.close()
    limited = {}
    if cgroup:
        limited = {
            "limit_gib": cgroup_gib,
            "oom_kills": cgroup.oom_kills(),
            "anon_shmem_mib": charged / 2**20,
            "with_mapped_files_mib": charged_mapped / 2**20,
            "peak_with_cache_mib": cgroup.peak() / 2**20,
        }
        cgroup.remove()
        print(
            f"  cgroup limit {cgroup_gib:g} GiB: OOM kills {limited['oom_kills']}; largest"
            f" charge of anonymous + shared memory {limited['anon_shmem_mib']:.0f} MiB, with"
            f" the mapped files {limited['with_mapped_files_mib']:.0f} MiB; peak charge with the"
            f" page cache {limited['peak_with_cache_mib']:.0f} MiB",
            flush=True,
        )
        if limited["oom_kills"]:
            raise SystemExit(
                f"{records} records: the kernel killed a process of the drop stages at the"
                f" {cgroup_gib:g} GiB cgroup limit (exit {proc.returncode})"
            )
    if proc.returncode != 0:
        raise SystemExit(
            f"the drop stages failed on {records} records (exit {proc.returncode}):"
            f" see {root / 'child.log'}"
        )
    stages = json.loads(report.read_text())
    for row in stages:
        row["peak_pss"] = pss.get(row["stage"], 0)
    return {
        "root": root,
        "records": records,
        "peak_rss_mib": peak / 2**20,
        "wall_s": time.perf_counter() - started,
        "stages": stages,
        "cgroup": limited,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, nargs="+", default=[20_000, 100_000])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--batch-records",
        type=int,
        default=None,
        help="Records per batch of the drop stages (the execution resource's "
        "stream_batch_records; default: the resource's own default).",
    )
    parser.add_argument("--max-rss-gib", type=float, default=8.0)
    parser.add_argument(
        "--checks",
        action="store_true",
        help="Also run and measure the blocking checks of the drop's assets, each alone.",
    )
    parser.add_argument(
        "--join",
        action="store_true",
        help="Also measure training_corpus's join on two drops of N/2 records (the drop's "
        "files split in halves).",
    )
    parser.add_argument(
        "--reuse",
        nargs="+",
        metavar="STAGE",
        help="Measure only these stages (check names, or `join`) on the drop outputs an earlier "
        "run left under benchmarks/out/drop_memory/root-N, each in a process of its own "
        "(nothing scrubbed again; no stage's leftovers in the process).",
    )
    parser.add_argument(
        "--unscrubbed",
        action="store_true",
        help="Skip the PII scan: the raw records stand in for the scrubbed ones, and "
        "no_residual_pii is left out (for sizes the scan cannot reach here; see the docstring).",
    )
    parser.add_argument(
        "--cgroup-gib",
        type=float,
        help="Run each size's child in a memory cgroup limited to this many GiB (see the "
        "docstring): fails if the kernel kills a process at the limit.",
    )
    parser.add_argument(
        "--child", nargs=3, metavar=("ROOT", "DROP", "REPORT"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.child:
        root, drop, report = args.child
        reuse = args.reuse[0] if args.reuse else None
        child(
            Path(root),
            drop,
            args.batch_records,
            Path(report),
            args.checks,
            args.join,
            reuse,
            args.unscrubbed,
        )
        return
    runs = []
    for records in args.records:
        load = os.getloadavg()
        print(f"{records} records (load {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}):", flush=True)
        if args.reuse:
            parts = [
                measure(
                    records,
                    args.seed,
                    args.batch_records,
                    args.max_rss_gib,
                    reuse=stage,
                    unscrubbed=args.unscrubbed,
                    cgroup_gib=args.cgroup_gib,
                )
                for stage in args.reuse
            ]
            run = {
                "root": parts[0]["root"],
                "records": records,
                "peak_rss_mib": max(part["peak_rss_mib"] for part in parts),
                "wall_s": sum(part["wall_s"] for part in parts),
                "stages": [row for part in parts for row in part["stages"]],
            }
        else:
            run = measure(
                records,
                args.seed,
                args.batch_records,
                args.max_rss_gib,
                args.checks,
                args.join,
                unscrubbed=args.unscrubbed,
                cgroup_gib=args.cgroup_gib,
            )
        run["load"] = load
        runs.append(run)
        for row in run["stages"]:
            start = row.get("rss_at_start")
            print(
                f"  {row['stage']:<34} peak RSS {row['peak_rss'] / 2**20:7.0f} MiB"
                + (f" (at its start {start / 2**20:5.0f} MiB)," if start else ",")
                + f" PSS {row['peak_pss'] / 2**20:7.0f} MiB,"
                + f" CPU {row['cpu_s']:8.1f} s, wall {row['wall_s']:8.1f} s",
                flush=True,
            )
            for name, digest in row["outputs"].items():
                print(
                    f"      {name:<36} sha256 {digest['sha256'][:16]}"
                    f"  content {digest['content'][:16]}"
                )
        state = {
            name: (run["root"] / name).stat().st_size
            for name in ("secrets/surrogates.sqlite", "raw/identifiers.sqlite")
            if (run["root"] / name).is_file()
        }
        print(
            "  state kept across batches (on disk):"
            + "".join(f" {name} {size / 2**20:.1f} MiB" for name, size in state.items())
        )
        cpu = sum(row["cpu_s"] for row in run["stages"])
        print(
            f"  all stages: peak RSS {run['peak_rss_mib']:.0f} MiB, CPU {cpu:.1f} s,"
            f" wall {run['wall_s']:.1f} s (load after {os.getloadavg()[0]:.2f})",
            flush=True,
        )
    for a, b in zip(runs, runs[1:], strict=False):
        print(f"{b['records']}/{a['records']} records = {b['records'] / a['records']:.1f}x:")
        for sa, sb in zip(a["stages"], b["stages"], strict=True):
            print(
                f"  {sa['stage']:<34} CPU {sb['cpu_s'] / max(sa['cpu_s'], 1e-9):5.2f}x,"
                f" wall {sb['wall_s'] / max(sa['wall_s'], 1e-9):5.2f}x,"
                f" peak RSS {sb['peak_rss'] / max(sa['peak_rss'], 1):5.2f}x"
            )
        cpu_a = sum(s["cpu_s"] for s in a["stages"])
        cpu_b = sum(s["cpu_s"] for s in b["stages"])
        print(
            f"  all stages       CPU {cpu_b / cpu_a:5.2f}x, wall {b['wall_s'] / a['wall_s']:5.2f}x,"
            f" peak RSS {b['peak_rss_mib'] / a['peak_rss_mib']:5.2f}x"
        )


if __name__ == "__main__":
    main()
