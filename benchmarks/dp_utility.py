"""Held-out loss of DP-LoRA at epsilon 8 against non-private LoRA and the untouched base model.

Trains SmolLM2-135M-Instruct with the product's `train_dp_lora` on the bundled corpus twice in
one process, with the same split, Poisson sampling, steps and learning rate: once with DP-SGD
(target epsilon 8, delta 1e-5, PRV accountant by default) and once as the non-private control.
The held-out loss (mean per-example loss over the assistant tokens of the held-out records,
the same number the training stage reports) is printed for the base model, both adapters, and
the ratio of DP-LoRA's to the control's. Target: DP-LoRA within 5% of non-private.

Usage (from the repository root; about 10 minutes on 2 CPU cores at the defaults):
    .venv/bin/python benchmarks/dp_utility.py --steps 30 --batch 16 --seq-len 64
"""

import argparse
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
)

from pipelines.steps.config import TrainingConfig  # noqa: E402
from pipelines.steps.offline import enforce_offline  # noqa: E402
from pipelines.steps.training.dp_lora import train_dp_lora  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch", type=int, default=16, help="expected (Poisson) batch size")
    parser.add_argument("--seq-len", type=int, default=64)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--accountant", default="prv", choices=["prv", "rdp"])
    parser.add_argument("--records", type=int, default=0, help="corpus records used (0: all)")
    parser.add_argument("--data-root", type=Path, default=REPO_ROOT / "var")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)
    enforce_offline()
    model_dir = base_model_dir(args.data_root)
    records = corpus_records(args.data_root)
    records = records[: args.records] if args.records else records
    cfg = TrainingConfig(
        target_epsilon=8.0,
        target_delta=1e-5,
        accountant=args.accountant,
        expected_batch_size=args.batch,
        steps=args.steps,
        learning_rate=args.lr,
        max_seq_len=args.seq_len,
        noise_seed=0,  # the same Poisson batches for both runs
    )
    print(f"device: {device_name(args.device)}")
    print(
        f"model: SmolLM2-135M-Instruct, LoRA r={cfg.lora_r} on {','.join(cfg.target_modules)}; "
        f"{len(records)} records, batch {args.batch} (Poisson), seq len {args.seq_len}, "
        f"{args.steps} steps, lr {args.lr}"
    )
    results = {}
    with tempfile.TemporaryDirectory() as out:
        for name, private in (("DP-LoRA", True), ("non-private LoRA", False)):
            started = time.perf_counter()
            results[name] = train_dp_lora(
                records,
                model_dir=model_dir,
                cfg=cfg,
                out_dir=Path(out) / name.replace(" ", "-"),
                device=args.device,
                progress=False,
                epsilon_every=args.steps,
                private=private,
            )
            print(f"{name}: trained in {time.perf_counter() - started:.0f} s", flush=True)
    dp, control = results["DP-LoRA"], results["non-private LoRA"]
    print(f"held-out records scored: {min(dp.n_heldout, 64)} of {dp.n_heldout}")
    print(f"{'model':<18} {'held-out loss':>13} {'epsilon':>8}")
    print(f"{'base (untouched)':<18} {dp.heldout_loss_before:>13.4f} {0.0:>8.2f}")
    print(f"{'non-private LoRA':<18} {control.heldout_loss_after:>13.4f} {'inf':>8}")
    print(f"{'DP-LoRA':<18} {dp.heldout_loss_after:>13.4f} {dp.epsilon:>8.3f}")
    ratio = dp.heldout_loss_after / control.heldout_loss_after
    print(f"DP-LoRA / non-private: {ratio:.4f} ({(ratio - 1) * 100:+.2f}%; target within 5%)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
