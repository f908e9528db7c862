"""Crash-safety drill: SIGKILL a writer at random points and check what it left at the final path.

Every trial writes a known previous version at a final path, starts a child Python process that
writes a new version to the same path in a loop, and SIGKILLs it after a random delay spread over
twice the measured duration of one write (so kills land in the first write and in the second).
What is left at the final path must be readable and be either the previous version or a complete
new one, compared by content hash with the previous version and with the child's own copy of the
new one (written before the kills start). Temp leftovers (`.NAME.XXXX.tmp`, `.NAME.XXXX.old`)
must never appear under a final-looking name, and the next write must succeed.

Kinds:
    parquet: `write_parquet` of a ~20 MB frame.
    json: `write_json` of a ~10 MB object.
    jsonl: `write_text` of 150k JSON lines (how `sovtune scan` writes its output).
    adapter: `training._save_adapter` of a LoRA adapter (safetensors + JSON folder).
    registry: `MLflowRegistry.register_adapter` (MLflow SQLite + local artifacts). Version 1 must
        stay downloadable and intact, every version the killed child registered must be complete,
        the SQLite file must pass `PRAGMA integrity_check`, and a fresh registration must succeed.
    checkpoint: DP-LoRA training of a tiny model through `DPTrainer.train` (reserve, train with a
        checkpoint after every step, settle the privacy ledger, retire the checkpoint), killed at
        a random step and resumed: the step ledger must hold every step done, the resumed run
        must charge exactly its configured steps, and the budget ledger must end spent. A run
        counts as complete when the budget ledger settled it (`status(run_key) == 'spent'`).

With `adapter`, two probes also stop `_save_adapter` exactly between moving the previous folder
aside and renaming the new one into place: once by SIGKILL, once by an interrupt exception (what
Dagster raises in a step when a run is terminated).

Usage (from the repository root):
    .venv/bin/python scripts/crash_safety.py --trials 20 --kinds parquet,json,jsonl --seed 0
"""

import argparse
import json
import os
import random
import select
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pipelines.steps.offline import enforce_offline
from pipelines.steps.storage import sha256_file, sha256_tree

REPO_ROOT = Path(__file__).resolve().parents[1]
KINDS = ("parquet", "json", "jsonl", "adapter", "registry", "checkpoint")
PREVIOUS, NEW = 1, 2
KILL_SPREAD = 2.0
"""Kill delays are uniform over this many measured write durations."""
READY = b"crash-drill-ready\n"
READY_TIMEOUT_S = 300.0
CHILD_MAX_S = 600.0
"""A writer whose parent vanished stops on its own after this long."""
CHILD_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
REGISTRY_MODEL = "crash-drill"
ADAPTER_FOLDER = "adapter"
PROBE_CASES = ("killed", "interrupted")

INTACT_PREVIOUS = "intact-previous"
COMPLETE_NEW = "complete-new"
CORRUPT = "corrupt"
MISSING = "missing"


class DrillError(RuntimeError):
    """The drill itself could not run (a writer failed to start or died before the kill)."""


@dataclass(frozen=True)
class WriteKind:
    """How to build, write, read back and hash one kind of output.

    Attributes:
        name: The kind's name on the command line.
        final_name: File or folder name of the final path.
        default_size: Rows (records, lines) at `--scale 1`; ignored by `adapter`.
        build: `(version, size) -> payload`, deterministic in both arguments.
        write: `(payload, final_path) -> None`, the product's writer.
        check_readable: Raises if the final path cannot be fully read.
        content_hash: Hex sha256 of the final path's content.
    """

    name: str
    final_name: str
    default_size: int
    build: Callable[[int, int], Any]
    write: Callable[[Any, Path], None]
    check_readable: Callable[[Path], None]
    content_hash: Callable[[Path], str]


@dataclass
class KindReport:
    """Outcome counts of one kind's trials."""

    kind: str
    trials: int = 0
    intact_previous: int = 0
    complete_new: int = 0
    corrupt: int = 0
    missing: int = 0
    next_run_failed: int = 0
    leftover_temps: int = 0
    """Hidden temp files or folders left by kills; for `registry`, runs left RUNNING."""
    seconds: float = 0.0
    failures: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.corrupt == 0 and self.missing == 0 and self.next_run_failed == 0

    def count(self, outcome: str) -> None:
        attribute = outcome.replace("-", "_")
        setattr(self, attribute, getattr(self, attribute) + 1)


@dataclass(frozen=True)
class ProbeResult:
    """What `_save_adapter` left when stopped between its two renames."""

    case: str
    outcome: str
    detail: str


def _columns(version: int, rows: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    rng = np.random.default_rng(version)
    raw = rng.bytes(12 * rows).hex()
    tokens = [raw[i * 24 : (i + 1) * 24] for i in range(rows)]
    return np.arange(rows, dtype=np.int64), rng.random(rows), tokens


def _row_dicts(version: int, rows: int) -> list[dict[str, Any]]:
    ids, values, tokens = _columns(version, rows)
    return [
        {"id": int(i), "token": token, "value": float(value), "version": version}
        for i, value, token in zip(ids, values, tokens, strict=True)
    ]


def _build_parquet(version: int, rows: int) -> Any:
    import pandas as pd

    ids, values, tokens = _columns(version, rows)
    return pd.DataFrame({"id": ids, "value": values, "token": tokens, "version": version})


def _write_parquet(frame: Any, path: Path) -> None:
    from pipelines.steps.storage import write_parquet

    write_parquet(frame, path)


def _check_parquet(path: Path) -> None:
    import pyarrow.parquet as pq

    pq.read_table(path)


def _build_json(version: int, rows: int) -> Any:
    return {"version": version, "rows": _row_dicts(version, rows)}


def _write_json(obj: Any, path: Path) -> None:
    from pipelines.steps.storage import write_json

    write_json(obj, path)


def _check_json(path: Path) -> None:
    json.loads(path.read_text(encoding="utf-8"))


def _build_jsonl(version: int, rows: int) -> Any:
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in _row_dicts(version, rows))


def _write_jsonl(text: str, path: Path) -> None:
    from pipelines.steps.storage import write_text

    write_text(text, path)


def _check_jsonl(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    if text and not text.endswith("\n"):
        raise ValueError("the last JSON line has no newline (truncated)")
    for line in text.splitlines():
        json.loads(line)


def _build_adapter(version: int, _size: int = 0) -> Any:
    """A PEFT LoRA model over a small random Llama; LoRA weights drawn from `version`."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=256,
        hidden_size=256,
        intermediate_size=512,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
    )
    lora = LoraConfig(
        r=32,
        lora_alpha=64,
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj"],
        lora_dropout=0.0,
        bias="none",
        task_type="CAUSAL_LM",
    )
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = get_peft_model(LlamaForCausalLM(config), lora)
    generator = torch.Generator().manual_seed(version)
    with torch.no_grad():
        for name, param in sorted(model.named_parameters()):
            if "lora_" in name:
                param.copy_(torch.randn(param.shape, generator=generator))
    return model


def _write_adapter(model: Any, path: Path) -> None:
    from pipelines.steps.training.dp_lora import _save_adapter

    _save_adapter(model, path)


def _check_adapter(path: Path) -> None:
    from safetensors import safe_open

    json.loads((path / "adapter_config.json").read_text(encoding="utf-8"))
    with safe_open(path / "adapter_model.safetensors", framework="numpy") as weights:
        for key in weights.keys():
            weights.get_tensor(key)


KIND_SPECS = {
    "parquet": WriteKind(
        "parquet",
        "corpus.parquet",
        850_000,
        _build_parquet,
        _write_parquet,
        _check_parquet,
        sha256_file,
    ),
    "json": WriteKind(
        "json", "manifest.json", 100_000, _build_json, _write_json, _check_json, sha256_file
    ),
    "jsonl": WriteKind(
        "jsonl", "scan.jsonl", 150_000, _build_jsonl, _write_jsonl, _check_jsonl, sha256_file
    ),
    "adapter": WriteKind(
        "adapter", ADAPTER_FOLDER, 0, _build_adapter, _write_adapter, _check_adapter, sha256_tree
    ),
}


def inspect_final(
    kind: WriteKind, final: Path, *, previous_hash: str, new_hash: str
) -> tuple[str, str]:
    """Classify what is at a final path after a kill.

    Returns:
        `(outcome, detail)`: outcome is `intact-previous`, `complete-new`, `corrupt` (unreadable,
        or readable but neither version) or `missing`.
    """
    if not final.exists():
        return MISSING, f"nothing at {final.name}"
    try:
        kind.check_readable(final)
    except Exception as exc:  # noqa: BLE001 — any read failure is the finding
        return CORRUPT, f"{final.name} unreadable: {exc!r}"[:300]
    digest = kind.content_hash(final)
    if digest == previous_hash:
        return INTACT_PREVIOUS, ""
    if digest == new_hash:
        return COMPLETE_NEW, ""
    return CORRUPT, f"{final.name} is readable but neither the previous nor the new version"


def split_leftovers(folder: Path, final_name: str) -> tuple[list[str], list[str]]:
    """Names in `folder` besides the final one: hidden temp leftovers, and anything else."""
    others = sorted(p.name for p in folder.iterdir() if p.name != final_name)
    # `.NAME.versions` holds the adapter's version folders behind its symlink: not a leftover
    store = f".{final_name}.versions"
    hidden = [
        n for n in others if n == store or (n.startswith(".") and n.endswith((".tmp", ".old")))
    ]
    return hidden, [n for n in others if n not in hidden]


def warmup_path(target: Path) -> Path:
    """Where a writer child writes its new version once before it reports ready.

    It is the child's own copy of the new version, to compare the final path with: a complete
    new version need not be byte-identical to one written by another process (see `notes`).
    """
    return target.parent.parent / "warmup" / target.name


def _remove(path: Path) -> None:
    # an adapter's final path is a symlink to its current version folder
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def hidden_copies_of(kind: WriteKind, folder: Path, final_name: str, digest: str) -> list[str]:
    """Hidden temp leftovers in `folder` whose content hash is `digest`."""
    hidden, _ = split_leftovers(folder, final_name)
    return [name for name in hidden if kind.content_hash(folder / name) == digest]


def _child_command(*args: str) -> list[str]:
    return [sys.executable, str(Path(__file__).resolve()), *args]


def _start_writer(kind: str, target: Path, size: int, log: Path) -> subprocess.Popen:
    with open(log, "ab") as stderr:
        return subprocess.Popen(
            _child_command("--child", kind, "--target", str(target), "--size", str(size)),
            stdout=subprocess.PIPE,
            stderr=stderr,
            env={**os.environ, **CHILD_ENV},
            cwd=REPO_ROOT,
        )


def _log_tail(log: Path) -> str:
    return log.read_text(encoding="utf-8", errors="replace")[-1500:] if log.exists() else ""


def _wait_ready(proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    received = b""
    while READY not in received:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            _kill(proc)
            raise DrillError(f"writer not ready after {READY_TIMEOUT_S:.0f}s: {_log_tail(log)}")
        readable, _, _ = select.select([proc.stdout], [], [], remaining)
        if readable:
            chunk = os.read(proc.stdout.fileno(), 4096)
            if not chunk:
                proc.wait()
                raise DrillError(
                    f"writer exited with {proc.returncode} before starting: {_log_tail(log)}"
                )
            received += chunk


def _kill(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    if proc.stdout is not None:
        proc.stdout.close()


def _kill_writer_after(proc: subprocess.Popen, delay: float, log: Path) -> None:
    """SIGKILL the writer `delay` seconds after it reported ready."""
    _wait_ready(proc, log)
    time.sleep(delay)
    if proc.poll() is not None:
        raise DrillError(f"writer exited with {proc.returncode} before the kill: {_log_tail(log)}")
    _kill(proc)


def _timed(action: Callable[[], object], repeats: int) -> float:
    durations = []
    for _ in range(repeats):
        start = time.perf_counter()
        action()
        durations.append(time.perf_counter() - start)
    return sorted(durations)[len(durations) // 2]


def run_kind(
    kind_name: str, *, trials: int, seed: int, workdir: Path, scale: float = 1.0
) -> KindReport:
    """Run the kill trials of one file or folder kind.

    Args:
        kind_name: One of `KIND_SPECS`.
        trials: Number of kills.
        seed: Seed of the kill delays (`random.Random(f"{seed}:{kind_name}")`).
        workdir: Empty folder for this kind's final path and references.
        scale: Fraction of the default payload size.

    Raises:
        DrillError: A writer failed to start or died before it was killed.
    """
    started = time.perf_counter()
    kind = KIND_SPECS[kind_name]
    size = max(1, int(kind.default_size * scale))
    rng = random.Random(f"{seed}:{kind_name}")
    final_dir = workdir / "final"
    final_dir.mkdir(parents=True)
    final = final_dir / kind.final_name
    previous, new = kind.build(PREVIOUS, size), kind.build(NEW, size)
    hashes = {}
    for version, payload in ((PREVIOUS, previous), (NEW, new)):
        reference = workdir / f"reference-{version}" / kind.final_name
        kind.write(payload, reference)
        hashes[version] = kind.content_hash(reference)
    duration = _timed(lambda: kind.write(new, workdir / "timing" / kind.final_name), repeats=3)
    report = KindReport(kind_name)
    for trial in range(trials):
        kind.write(previous, final)
        delay = rng.uniform(0.0, KILL_SPREAD * duration)
        log = workdir / f"writer-{trial}.log"
        _remove(warmup_path(final))
        _kill_writer_after(_start_writer(kind_name, final, size, log), delay, log)
        child_new_hash = kind.content_hash(warmup_path(final))
        if child_new_hash != hashes[NEW] and not report.notes:
            report.notes.append(
                "the new version's bytes differ between processes (not byte-deterministic)"
            )
        outcome, detail = inspect_final(
            kind, final, previous_hash=hashes[PREVIOUS], new_hash=child_new_hash
        )
        _, strays = split_leftovers(final_dir, kind.final_name)
        if strays and outcome != CORRUPT:
            outcome, detail = CORRUPT, f"temp leftovers under final-looking names: {strays}"
        if outcome == MISSING:
            kept = hidden_copies_of(kind, final_dir, kind.final_name, hashes[PREVIOUS])
            detail += f"; previous version only in {kept}" if kept else "; previous version lost"
        report.count(outcome)
        if detail:
            report.failures.append(f"trial {trial} (kill at {delay:.3f}s): {outcome}: {detail}")
        try:
            kind.write(new, final)
            kind.check_readable(final)
            next_ok = kind.content_hash(final) == hashes[NEW]
        except Exception as exc:  # noqa: BLE001 — a failed next run is the finding
            next_ok = False
            report.failures.append(f"trial {trial}: next write failed: {exc!r}"[:300])
        report.next_run_failed += not next_ok
        report.trials += 1
        print(f"{kind_name} trial {trial}: kill at {delay:.3f}s -> {outcome}", file=sys.stderr)
    report.leftover_temps = len(split_leftovers(final_dir, kind.final_name)[0])
    report.seconds = time.perf_counter() - started
    return report


def _fake_adapter(folder: Path, version: int) -> Path:
    """A tiny adapter folder (safetensors + JSON) whose weights are drawn from `version`."""
    from safetensors.numpy import save_file

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(version)
    save_file(
        {
            "lora_A.weight": rng.standard_normal((8, 64), dtype=np.float32),
            "lora_B.weight": rng.standard_normal((64, 8), dtype=np.float32),
        },
        folder / "adapter_model.safetensors",
    )
    config = {"r": 8, "drill_version": version}
    (folder / "adapter_config.json").write_text(json.dumps(config, sort_keys=True))
    return folder


def _registry(workdir: Path) -> Any:
    from resources.registry import MLflowRegistry

    return MLflowRegistry(data_root=str(workdir / "data"), model_name=REGISTRY_MODEL)


def _register(registry: Any, workdir: Path, version: int, run_name: str) -> Any:
    return registry.register_adapter(
        adapter_dir=workdir / "inputs" / f"adapter-{version}",
        tokenizer_dir=workdir / "inputs" / "tokenizer",
        model_card="# crash drill\n",
        params={"drill_version": str(version)},
        tags={"drill": "crash-safety"},
        step_metrics={"epsilon": [(1, 0.5), (2, 1.0)]},
        run_name=run_name,
    )


def _prepare_registry_inputs(workdir: Path) -> dict[int, str]:
    hashes = {}
    for version in (PREVIOUS, NEW):
        hashes[version] = sha256_tree(
            _fake_adapter(workdir / "inputs" / f"adapter-{version}", version)
        )
    tokenizer = workdir / "inputs" / "tokenizer"
    tokenizer.mkdir(parents=True)
    (tokenizer / "tokenizer.json").write_text("{}")
    return hashes


def _downloaded_adapter_hash(registry: Any, version: str, dst: Path) -> str:
    adapter = registry.download(version, dst) / ADAPTER_FOLDER
    _check_adapter(adapter)
    return sha256_tree(adapter)


def _verify_registry(
    workdir: Path, *, known: int, hashes: dict[int, str], trial: int
) -> tuple[str, str, int]:
    """Check the registry after a kill; returns `(outcome, detail, latest version)`."""
    with closing(sqlite3.connect(workdir / "data" / "mlflow" / "mlflow.db")) as db:
        integrity = db.execute("PRAGMA integrity_check").fetchone()[0]
    if integrity != "ok":
        return CORRUPT, f"mlflow.db integrity_check: {integrity}", known
    registry = _registry(workdir)
    found = registry.client.search_model_versions(f"name='{REGISTRY_MODEL}'")
    versions = sorted(int(v.version) for v in found)
    if PREVIOUS not in versions:
        return MISSING, f"version {PREVIOUS} is gone; versions: {versions}", known
    for version in [PREVIOUS, *(v for v in versions if v > known)]:
        dst = workdir / "downloads" / f"trial-{trial}-v{version}"
        try:
            digest = _downloaded_adapter_hash(registry, str(version), dst)
        except Exception as exc:  # noqa: BLE001 — an unreadable version is the finding
            return CORRUPT, f"version {version} does not download: {exc!r}"[:300], known
        expected = hashes[PREVIOUS] if version == PREVIOUS else hashes[NEW]
        if digest != expected:
            return CORRUPT, f"version {version} downloads with other adapter bytes", known
    candidate = int(registry.client.get_model_version_by_alias(REGISTRY_MODEL, "candidate").version)
    if candidate not in versions:
        return CORRUPT, f"alias candidate names missing version {candidate}", known
    latest = max(versions)
    return (COMPLETE_NEW if latest > known else INTACT_PREVIOUS), "", latest


def run_registry(*, trials: int, seed: int, workdir: Path) -> KindReport:
    """Run the kill trials of `MLflowRegistry.register_adapter` on one registry.

    Version 1 (the previous version) is registered once; each trial starts a child that
    registers new versions in a loop and kills it, then checks the registry and registers once
    more itself (the next run).

    Raises:
        DrillError: A writer failed to start or died before it was killed.
    """
    started = time.perf_counter()
    rng = random.Random(f"{seed}:registry")
    hashes = _prepare_registry_inputs(workdir)
    registry = _registry(workdir)
    _register(registry, workdir, PREVIOUS, "previous")
    start = time.perf_counter()
    known = int(_register(registry, workdir, NEW, "timing").version)
    duration = time.perf_counter() - start
    report = KindReport("registry")
    for trial in range(trials):
        delay = rng.uniform(0.0, KILL_SPREAD * duration)
        log = workdir / f"writer-{trial}.log"
        _kill_writer_after(_start_writer("registry", workdir, 0, log), delay, log)
        outcome, detail, known = _verify_registry(workdir, known=known, hashes=hashes, trial=trial)
        report.count(outcome)
        if detail:
            report.failures.append(f"trial {trial} (kill at {delay:.3f}s): {outcome}: {detail}")
        try:
            version = _register(_registry(workdir), workdir, NEW, f"next-{trial}").version
            dst = workdir / "downloads" / f"trial-{trial}-next"
            next_ok = _downloaded_adapter_hash(_registry(workdir), version, dst) == hashes[NEW]
            known = int(version)
        except Exception as exc:  # noqa: BLE001 — a failed next run is the finding
            next_ok = False
            report.failures.append(f"trial {trial}: next registration failed: {exc!r}"[:300])
        report.next_run_failed += not next_ok
        report.trials += 1
        print(f"registry trial {trial}: kill at {delay:.3f}s -> {outcome}", file=sys.stderr)
    client = _registry(workdir).client
    experiment = client.get_experiment_by_name(registry.experiment).experiment_id
    report.leftover_temps = len(
        client.search_runs([experiment], filter_string="attributes.status = 'RUNNING'")
    )
    report.seconds = time.perf_counter() - started
    return report


def probe_adapter_rename_window(workdir: Path) -> list[ProbeResult]:
    """Stop `_save_adapter` between moving the previous folder aside and renaming the new one in.

    A child process saves a previous adapter at `killed/adapter` and `interrupted/adapter`, then
    saves a new one over each and stops right before the final rename: by `KeyboardInterrupt`
    for `interrupted` (its `finally` runs), by SIGKILL for `killed` (nothing runs).

    Returns:
        One result per case; `intact-previous` is the crash-safe outcome.

    Raises:
        DrillError: The child did not end with SIGKILL.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    log = workdir / "probe.log"
    with open(log, "ab") as stderr:
        proc = subprocess.run(
            _child_command("--probe-adapter-window", str(workdir)),
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            env={**os.environ, **CHILD_ENV},
            cwd=REPO_ROOT,
            timeout=READY_TIMEOUT_S,
            check=False,
        )
    if proc.returncode != -signal.SIGKILL:
        raise DrillError(f"probe ended with {proc.returncode}, not SIGKILL: {_log_tail(log)}")
    kind = KIND_SPECS["adapter"]
    previous_hash = sha256_tree(workdir / f"reference-{PREVIOUS}" / ADAPTER_FOLDER)
    new_hash = sha256_tree(workdir / f"reference-{NEW}" / ADAPTER_FOLDER)
    results = []
    for case in PROBE_CASES:
        folder = workdir / case
        outcome, detail = inspect_final(
            kind, folder / ADAPTER_FOLDER, previous_hash=previous_hash, new_hash=new_hash
        )
        holding_previous = hidden_copies_of(kind, folder, ADAPTER_FOLDER, previous_hash)
        where = f"previous version only in {holding_previous}" if holding_previous else ""
        if outcome == MISSING and not holding_previous:
            where = "previous version deleted"
        results.append(ProbeResult(case, outcome, "; ".join(x for x in (detail, where) if x)))
    return results


def _probe_child(workdir: Path) -> None:
    """Child side of `probe_adapter_rename_window`; ends by SIGKILLing itself."""
    previous, new = _build_adapter(PREVIOUS), _build_adapter(NEW)
    for version, model in ((PREVIOUS, previous), (NEW, new)):
        _write_adapter(model, workdir / f"reference-{version}" / ADAPTER_FOLDER)
    for case in PROBE_CASES:
        _write_adapter(previous, workdir / case / ADAPTER_FOLDER)

    real_rename, real_replace = os.rename, os.replace

    def stop_before_rename_onto(target: Path, stop: Callable[[], None]) -> None:
        def rename(src: Any, dst: Any, *args: Any, **kwargs: Any) -> None:
            if Path(dst) == target:
                stop()
            real_rename(src, dst, *args, **kwargs)

        def replace(src: Any, dst: Any, *args: Any, **kwargs: Any) -> None:
            if Path(dst) == target:
                stop()
            real_replace(src, dst, *args, **kwargs)

        os.rename, os.replace = rename, replace

    def interrupt() -> None:
        raise KeyboardInterrupt

    interrupted = workdir / "interrupted" / ADAPTER_FOLDER
    stop_before_rename_onto(interrupted, interrupt)
    try:
        _write_adapter(new, interrupted)
    except KeyboardInterrupt:
        pass
    killed = workdir / "killed" / ADAPTER_FOLDER
    stop_before_rename_onto(killed, lambda: os.kill(os.getpid(), signal.SIGKILL))
    _write_adapter(new, killed)


CHECKPOINT_STEPS = 12
STEPS_DONE = "steps-done.log"


def _checkpoint_trainer():
    """The trainer of the drill: CHECKPOINT_STEPS DP steps of the tiny model, a checkpoint after
    every step (a fresh data root per trial, so the lifetime budget never refuses)."""
    from resources.trainer import DPTrainer

    return DPTrainer(
        target_epsilon=8.0,
        target_delta=1e-3,
        accountant="rdp",
        expected_batch_size=8,
        steps=CHECKPOINT_STEPS,
        learning_rate=1e-2,
        max_seq_len=24,
        lora_r=2,
        lora_alpha=4,
        checkpoint_every=1,
        lifetime_epsilon=1000.0,
    )


def _checkpoint_records() -> list:
    from pipelines.steps.records import Message, Record

    sys.path.insert(0, str(REPO_ROOT))
    from tests.tiny_model import synthetic_sentences

    return [
        Record(f"r{i}", "drill.jsonl", i + 1, "chat", (Message("user", q), Message("assistant", q)))
        for i, q in enumerate(synthetic_sentences(40, seed=3))
    ]


def _checkpoint_run(model_dir: Path, data_root: Path, on_step: Callable[[int], None] | None = None):
    """Train as the `dp_lora_adapter` asset does (`DPTrainer.train`: reserve, train with
    checkpoints under data_root/checkpoints/<run key>, settle the ledger, retire the
    checkpoint), calling `on_step` after each completed step.

    Returns:
        The trainer, its run key and the training result.
    """
    from pipelines.steps.training import dp_lora

    trainer, records = _checkpoint_trainer(), _checkpoint_records()
    train = dp_lora.train_dp_lora
    # the trainer takes no step callback: the drill (not the product) hands one to the step loop
    dp_lora.train_dp_lora = lambda *a, **k: train(
        *a, **k, on_step=on_step, progress=False, epsilon_every=CHECKPOINT_STEPS
    )
    try:
        result, _ = trainer.train(
            records, model_dir=model_dir, out_dir=data_root / ADAPTER_FOLDER, data_root=data_root
        )
    finally:
        dp_lora.train_dp_lora = train
    return trainer, trainer.run_key(records, model_dir=model_dir), result


def _checkpoint_child(workdir: Path) -> None:
    """Child side of a checkpoint trial: train, reporting each completed step durably."""
    model_dir = workdir.parent / "model"
    done = workdir / STEPS_DONE

    def on_step(step: int) -> None:
        with open(done, "a", encoding="utf-8") as handle:
            handle.write(f"{step}\n")
            handle.flush()
            os.fsync(handle.fileno())
        if step == 1:
            os.write(sys.stdout.fileno(), READY)

    parent = os.getppid()
    _checkpoint_run(model_dir, workdir, on_step)
    deadline = time.monotonic() + CHILD_MAX_S
    while os.getppid() == parent and time.monotonic() < deadline:
        time.sleep(0.1)  # finished before the kill: wait for it


def run_checkpoint(*, trials: int, seed: int, workdir: Path) -> KindReport:
    """Kill DP-LoRA training at random steps, resume it, and check the privacy accounting.

    A run is complete when the budget ledger settled it (`PrivacyLedger.status(run_key) ==
    'spent'`): the trainer settles the ledger before it retires the checkpoint (#17), so a
    kill between the two leaves a spent run with its checkpoint still on disk, and a kill before
    settling leaves an open reservation. After a kill the step ledger must hold at least every
    step the child reported done (each was charged before its update); a run not settled is
    resumed through the trainer and must end with exactly `CHECKPOINT_STEPS` steps charged, the
    epsilon the accountant gives for them, its budget-ledger run spent and its checkpoint
    retired. `intact-previous` counts runs resumed, `complete-new` runs the ledger had settled
    before the kill; anything else is `corrupt`.

    Raises:
        DrillError: A child failed to start.
    """
    from opacus.accountants import RDPAccountant

    from pipelines.steps.training.checkpoint import STEP_LEDGER, StepLedger
    from pipelines.steps.training.ledger import LEDGER_FILE, PrivacyLedger

    sys.path.insert(0, str(REPO_ROOT))
    from tests.tiny_model import make_tiny_model_dir

    started = time.perf_counter()
    rng = random.Random(f"{seed}:checkpoint")
    make_tiny_model_dir(workdir / "model")
    stamps: list[float] = []
    _checkpoint_run(workdir / "model", workdir / "timing", lambda _: stamps.append(time.time()))
    # seconds per step; kills are placed by the child's reported progress, not by wall time
    # alone (a loaded machine made the timing run slower than a child, and every kill landed
    # after the run had finished)
    step_s = (stamps[-1] - stamps[0]) / (CHECKPOINT_STEPS - 1)
    run_key = _checkpoint_trainer().run_key(_checkpoint_records(), model_dir=workdir / "model")
    report = KindReport("checkpoint")
    for trial in range(trials):
        trial_dir = workdir / f"trial-{trial}"
        trial_dir.mkdir()
        target = rng.randint(1, CHECKPOINT_STEPS)
        delay = rng.uniform(0.0, KILL_SPREAD * step_s)
        log = workdir / f"trainer-{trial}.log"
        proc = subprocess.Popen(
            _child_command("--child", "checkpoint", "--target", str(trial_dir)),
            stdout=subprocess.PIPE,
            stderr=open(log, "ab"),  # noqa: SIM115 — the child owns it until killed
            env={**os.environ, **CHILD_ENV},
            cwd=REPO_ROOT,
        )
        _wait_ready(proc, log)
        done_file = trial_dir / STEPS_DONE
        # after step `target` is reported, within two steps' time: mid-step, mid-checkpoint, or
        # (target = CHECKPOINT_STEPS) while the ledger is settled and the checkpoint retired
        while _steps_reported(done_file) < target and proc.poll() is None:
            time.sleep(0.01)
        time.sleep(delay)
        _kill(proc)
        reported = _steps_reported(done_file)
        ledger = PrivacyLedger(trial_dir / LEDGER_FILE)
        checkpoint = trial_dir / "checkpoints" / run_key
        charged = StepLedger(checkpoint / STEP_LEDGER).charged() if checkpoint.exists() else 0
        outcome, detail = INTACT_PREVIOUS, ""
        if ledger.status(run_key) == "spent" and (trial_dir / ADAPTER_FOLDER).exists():
            outcome = COMPLETE_NEW
        elif charged < reported:
            outcome, detail = CORRUPT, f"{reported} steps done but only {charged} charged"
        else:
            try:
                trainer, _, result = _checkpoint_run(workdir / "model", trial_dir)
                cfg = trainer.config
                accountant = RDPAccountant()
                accountant.history = [(result.noise_multiplier, result.sample_rate, cfg.steps)]
                expected = accountant.get_epsilon(delta=cfg.target_delta)
                if result.steps != cfg.steps or abs(result.epsilon - expected) > 1e-9:
                    outcome = CORRUPT
                    detail = f"resumed run charged {result.steps} steps, epsilon {result.epsilon}"
                elif ledger.status(run_key) != "spent" or checkpoint.exists():
                    outcome = CORRUPT
                    detail = f"resumed run left ledger {ledger.status(run_key)!r}, checkpoint kept"
            except Exception as exc:  # noqa: BLE001 — a failed resume is the finding
                outcome, detail = CORRUPT, f"resume failed: {exc!r}"[:300]
        report.count(outcome)
        if detail:
            report.failures.append(
                f"trial {trial} (kill {delay:.3f}s after step {target}): {outcome}: {detail}"
            )
        report.trials += 1
        print(
            f"checkpoint trial {trial}: kill {delay:.3f}s after step {target}, {reported} steps "
            f"({charged} charged) -> {outcome}",
            file=sys.stderr,
        )
    report.seconds = time.perf_counter() - started
    return report


def _steps_reported(done_file: Path) -> int:
    return len(done_file.read_text().split()) if done_file.exists() else 0


def _writer_child(kind_name: str, target: Path, size: int) -> None:
    """Child side of a trial: write the new version to `target` until killed."""
    if kind_name == "registry":
        registry = _registry(target)
        registry.client.search_model_versions(f"name='{REGISTRY_MODEL}'")
        counter = iter(range(sys.maxsize))

        def write() -> None:
            _register(registry, target, NEW, f"child-{next(counter)}")
    else:
        kind = KIND_SPECS[kind_name]
        payload = kind.build(NEW, size)
        # A first write pays for lazy imports: warm up elsewhere so that the kill delays, drawn
        # from the parent's warm timing, spread over a warm write here; the parent also reads
        # this copy as the new version's content.
        kind.write(payload, warmup_path(target))

        def write() -> None:
            kind.write(payload, target)

    parent = os.getppid()
    os.write(sys.stdout.fileno(), READY)
    deadline = time.monotonic() + CHILD_MAX_S
    while os.getppid() == parent and time.monotonic() < deadline:
        write()


def format_table(reports: list[KindReport]) -> str:
    """A fixed-width table of the reports, one row per kind."""
    header = (
        "kind",
        "trials",
        "intact-previous",
        "complete-new",
        "corrupt",
        "missing",
        "next-run-failed",
        "leftover-temps",
        "seconds",
    )
    rows = [
        (
            r.kind,
            r.trials,
            r.intact_previous,
            r.complete_new,
            r.corrupt,
            r.missing,
            r.next_run_failed,
            r.leftover_temps,
            f"{r.seconds:.1f}",
        )
        for r in reports
    ]
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    return "\n".join(
        "  ".join(str(cell).rjust(width) for cell, width in zip(row, widths, strict=True))
        for row in [header, *rows]
    )


def _parse_kinds(value: str) -> list[str]:
    kinds = [k.strip() for k in value.split(",") if k.strip()]
    unknown = sorted(set(kinds) - set(KINDS))
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown kinds {unknown}; choose from {','.join(KINDS)}")
    return kinds


def main(argv: list[str] | None = None) -> int:
    """Run the drill and print its table; returns 1 on any unsafe outcome."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=20, help="kills per kind")
    parser.add_argument("--kinds", type=_parse_kinds, default=list(KINDS), help=",".join(KINDS))
    parser.add_argument("--seed", type=int, default=0, help="seed of the kill delays")
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of payload sizes")
    parser.add_argument("--child", choices=KINDS, help=argparse.SUPPRESS)
    parser.add_argument("--target", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--probe-adapter-window", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    enforce_offline()
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    if args.child == "checkpoint":
        _checkpoint_child(args.target)
        return 0
    if args.child:
        _writer_child(args.child, args.target, args.size)
        return 0
    if args.probe_adapter_window:
        _probe_child(args.probe_adapter_window)
        return 0

    reports, probes = [], []
    with tempfile.TemporaryDirectory(prefix="sovtune-crash-drill-") as tmp:
        for kind in args.kinds:
            workdir = Path(tmp) / kind
            workdir.mkdir()
            if kind == "registry":
                reports.append(run_registry(trials=args.trials, seed=args.seed, workdir=workdir))
            elif kind == "checkpoint":
                reports.append(run_checkpoint(trials=args.trials, seed=args.seed, workdir=workdir))
            else:
                reports.append(
                    run_kind(
                        kind, trials=args.trials, seed=args.seed, workdir=workdir, scale=args.scale
                    )
                )
        if "adapter" in args.kinds:
            probes = probe_adapter_rename_window(Path(tmp) / "adapter-window")
    print(format_table(reports))
    for report in reports:
        for line in [*report.failures, *report.notes]:
            print(f"{report.kind}: {line}")
    for probe in probes:
        print(f"adapter rename-window probe, {probe.case}: {probe.outcome} {probe.detail}".rstrip())
    safe = all(r.ok for r in reports) and all(p.outcome == INTACT_PREVIOUS for p in probes)
    return 0 if safe else 1


if __name__ == "__main__":
    sys.exit(main())
