"""DP-LoRA step time and peak memory over non-private LoRA: same model, batch and sequence length.

Runs the product's `train_dp_lora` in one process on SmolLM2-135M-Instruct (LoRA on q_proj and
v_proj): first the non-private control (`private=False`), then DP-SGD with per-sample gradients
(`clipping: flat`), then DP-SGD with Opacus ghost clipping, each for the same number of steps
on the same Poisson-sampled batches of the bundled corpus. A step's time is the median interval
between completed steps (the first step and the step that queries the accountant are left out);
peak memory is the peak RSS on CPU (VmHWM, reset between runs) or the CUDA allocator's peak.
Prints the device, each run's numbers and the ratios against the control. Target: <= 1.3x.

Usage (from the repository root; about 3 minutes on 2 idle CPU cores, 16 under load):
    .venv/bin/python benchmarks/dp_overhead.py --steps 4 --batch 8 --seq-len 64 --records 100
"""

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _training_bench import (  # noqa: E402
    REPO_ROOT,
    base_model_dir,
    corpus_records,
    device_name,
    peak_memory,
    reset_peak_memory,
)

from pipelines.steps.config import TrainingConfig  # noqa: E402
from pipelines.steps.offline import enforce_offline  # noqa: E402
from pipelines.steps.training.dp_lora import train_dp_lora  # noqa: E402


def measure(records, model_dir: Path, cfg: TrainingConfig, device: str, private: bool) -> dict:
    """Step time (median, s) and peak memory (bytes above the baseline) of one short run."""
    stamps: list[float] = []
    baseline = reset_peak_memory(device)
    with tempfile.TemporaryDirectory() as out:
        result = train_dp_lora(
            records,
            model_dir=model_dir,
            cfg=cfg,
            out_dir=Path(out) / "adapter",
            device=device,
            progress=False,
            epsilon_every=cfg.steps,  # one accountant query, at the last step
            private=private,
            on_step=lambda _: stamps.append(time.perf_counter()),
        )
    peak = peak_memory(device) - baseline
    intervals = [b - a for a, b in zip(stamps, stamps[1:], strict=False)][:-1]
    return {
        "step_s": statistics.median(intervals),
        "peak_bytes": peak,
        "epsilon": result.epsilon,
        "empty_batches": result.empty_batches,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--batch", type=int, default=8, help="expected (Poisson) batch size")
    parser.add_argument("--seq-len", type=int, default=64)
    parser.add_argument("--records", type=int, default=400, help="corpus records used")
    parser.add_argument("--data-root", type=Path, default=REPO_ROOT / "var")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)
    enforce_offline()
    model_dir = base_model_dir(args.data_root)
    records = corpus_records(args.data_root)[: args.records]
    base = dict(
        target_epsilon=8.0,
        target_delta=1e-5,
        accountant="rdp",
        expected_batch_size=args.batch,
        steps=args.steps,
        max_seq_len=args.seq_len,
        noise_seed=0,  # the same Poisson batches in every run
    )
    runs = {
        "non-private LoRA": (TrainingConfig(**base), False),
        "DP-LoRA (flat)": (TrainingConfig(**base), True),
        "DP-LoRA (ghost)": (TrainingConfig(**base, clipping="ghost"), True),
    }
    print(f"device: {device_name(args.device)}")
    print(
        f"model: SmolLM2-135M-Instruct, LoRA r=8 on q_proj,v_proj; batch {args.batch} (Poisson), "
        f"seq len {args.seq_len}, {args.steps} steps, {len(records)} records"
    )
    print(f"{'run':<18} {'step s':>8} {'peak MiB':>9} {'time x':>7} {'memory x':>9} {'epsilon':>8}")
    control = None
    for name, (cfg, private) in runs.items():
        r = measure(records, model_dir, cfg, args.device, private)
        control = control or r
        print(
            f"{name:<18} {r['step_s']:>8.3f} {r['peak_bytes'] / 2**20:>9.1f} "
            f"{r['step_s'] / control['step_s']:>7.2f} "
            f"{r['peak_bytes'] / max(control['peak_bytes'], 1):>9.2f} {r['epsilon']:>8.3f}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
