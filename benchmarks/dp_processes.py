"""The pipeline's training step at `training.processes` 1 and 2, in one run (#21.3).

Each run is `DPTrainer.train` (the `dp_lora_adapter` asset's call: plan, budget reservation,
training, settlement) on the tiny in-process Llama of the tests (2 layers, hidden 64) and
synthetic chat records, with the same settings but the number of processes; a fresh data root
each time (each run charges its own ledger). The first two-process run starts the fork server
(which imports torch, transformers, Opacus and PEFT once per parent process) and is printed as
`2 (cold)`; the runs after it alternate one process with torch's default threads (one per
core), one process with one thread, and 2 processes (each rank takes cores / processes
threads: one here). Printed per run: wall seconds, CPU
seconds (this process, its finished children and its live descendants: the fork server and its
ranks), seconds per step, the 1-minute load average before and after, and epsilon, sigma, q
and steps (which must be equal for every run: the exit status is 1 when one differs).

On a machine whose cores are shared with other jobs, wall time measures each run's share of the
machine, not its parallelism: compare the ratios of one run, and read the CPU column.

    nice -n 10 .venv/bin/python benchmarks/dp_processes.py [--records 200] [--steps 10]
        [--batch 32] [--max-seq-len 48] [--repeats 2]
"""

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import psutil
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipelines.steps.offline import enforce_offline  # noqa: E402
from pipelines.steps.records import Message, Record  # noqa: E402
from resources.trainer import DPTrainer  # noqa: E402
from tests.tiny_model import make_tiny_model_dir, synthetic_sentences  # noqa: E402


def cpu_seconds() -> float:
    """CPU time of this process, its finished children and its live descendants (the fork
    server, whose own figure includes the ranks it has reaped)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    done = resource.getrusage(resource.RUSAGE_CHILDREN)
    total = own.ru_utime + own.ru_stime + done.ru_utime + done.ru_stime
    for child in psutil.Process().children(recursive=True):
        try:
            times = child.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system + times.children_user + times.children_system
    return total


def records(n: int) -> list[Record]:
    return [
        Record(
            id=f"bench-{i:05d}",
            source_file="bench.jsonl",
            source_line=i + 1,
            format="chat",
            messages=(Message("user", text), Message("assistant", "The answer is blue.")),
        )
        for i, text in enumerate(synthetic_sentences(n, seed=11))
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=200)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--max-seq-len", type=int, default=48)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    enforce_offline()
    data = records(args.records)
    print(
        f"cores visible: {os.cpu_count()}; records {args.records}, steps {args.steps}, "
        f"batch {args.batch}, max_seq_len {args.max_seq_len}"
    )
    print("| processes | wall s | CPU s | s/step | load before / after | epsilon | sigma | q |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    mechanisms = set()
    with tempfile.TemporaryDirectory(prefix="dp-processes-") as tmp:
        model_dir = make_tiny_model_dir(Path(tmp) / "model")
        threads = torch.get_num_threads()
        runs = [(2, threads, "2 (cold)")]
        for _ in range(args.repeats):
            runs += [(1, threads, f"1 ({threads} threads)"), (1, 1, "1 (1 thread)"), (2, 1, "2")]
        for i, (processes, torch_threads, label) in enumerate(runs):
            torch.set_num_threads(torch_threads)  # the ranks set their own: cores / processes
            trainer = DPTrainer(
                target_epsilon=8.0,
                target_delta=1e-4,
                accountant="rdp",
                expected_batch_size=args.batch,
                steps=args.steps,
                learning_rate=1e-2,
                max_seq_len=args.max_seq_len,
                lora_r=4,
                lora_alpha=8,
                lifetime_epsilon=1000.0,
                device="cpu",
                processes=processes,
            )
            root = Path(tmp) / f"run-{i}"
            load_before, cpu_before, started = os.getloadavg()[0], cpu_seconds(), time.monotonic()
            result, _ = trainer.train(
                data, model_dir=model_dir, out_dir=root / "adapter", data_root=root
            )
            wall = time.monotonic() - started
            time.sleep(0.5)  # let the fork server reap its ranks (their CPU joins its figure)
            cpu = cpu_seconds() - cpu_before
            mechanisms.add((result.epsilon, result.noise_multiplier, result.sample_rate))
            print(
                f"| {label} | {wall:.1f} | {cpu:.1f} | {wall / result.steps:.2f} | "
                f"{load_before:.1f} / {os.getloadavg()[0]:.1f} | {result.epsilon:.4f} | "
                f"{result.noise_multiplier:.4f} | {result.sample_rate:.4g} |",
                flush=True,
            )
    if len(mechanisms) != 1:
        print(f"MISMATCH: {len(mechanisms)} different (epsilon, sigma, q) over the runs")
        return 1
    print("epsilon, sigma and q equal in every run")
    return 0


if __name__ == "__main__":
    sys.exit(main())
