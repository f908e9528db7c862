"""Does the plan pay? DP-LoRA and its non-private control at the planner's settings, with the
planner's prediction beside each measured share of the non-private gain (issue #18).

For each setting (the default profile's batch 8 x 50 steps at rank 8, and the plan's batch 128
x 54 steps and batch 32 x 214 steps at rank 4, the learning rate scaled by sqrt(batch)) and
each epsilon, trains SmolLM2-135M-Instruct with the product's `train_dp_lora`, DP and (once per
setting) non-private, on the same split and Poisson batches, and prints the held-out loss of the
base model, the DP adapter and the control, the measured share (base - DP) / (base - control)
and `plan.predict_setting`'s prediction. Meant for a GPU (about 5 minutes on an H200); on 2 CPU
cores the three settings take hours.

Usage (from the repository root):
    .venv/bin/python benchmarks/dp_plan_check.py [--data-root var] [--epsilons 8,1]
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _training_bench import REPO_ROOT, base_model_dir, corpus_records, device_name  # noqa: E402

from pipelines.steps.config import load_config  # noqa: E402
from pipelines.steps.offline import enforce_offline  # noqa: E402
from pipelines.steps.training import plan as planner  # noqa: E402
from pipelines.steps.training.dp_lora import train_dp_lora  # noqa: E402

SETTINGS = (
    ("profile", {"expected_batch_size": 8, "steps": 50, "lora_r": 8, "lora_alpha": 16}),
    ("batch 128, r 4", {"expected_batch_size": 128, "steps": 54, "lora_r": 4, "lora_alpha": 8}),
    ("batch 32, r 4", {"expected_batch_size": 32, "steps": 214, "lora_r": 4, "lora_alpha": 8}),
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-root", type=Path, default=REPO_ROOT / "var")
    parser.add_argument("--epsilons", default="8,1")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)
    enforce_offline()
    model_dir = base_model_dir(args.data_root)
    records = corpus_records(args.data_root)
    base = load_config("default").training
    per_rank = planner.lora_params_per_rank(model_dir, list(base.target_modules))
    print(f"device: {device_name(args.device)}; {len(records)} records")
    print(
        "setting | eps | B | T | r | lr | sigma | noise/C step | run | base | DP | non-private "
        "| measured share | predicted | s"
    )
    controls = {}
    with tempfile.TemporaryDirectory() as out:
        for epsilon in (float(e) for e in args.epsilons.split(",")):
            for name, setting in SETTINGS:
                lr = base.learning_rate * (setting["expected_batch_size"] / 8) ** 0.5
                cfg = base.model_copy(
                    update={
                        **setting,
                        "learning_rate": lr,
                        "target_epsilon": epsilon,
                        "noise_seed": 0,  # the same Poisson batches for DP and the control
                    }
                )
                predicted = planner.predict_setting(
                    n_records=len(records), cfg=cfg, lora_params_per_rank=per_rank
                )
                started = time.perf_counter()
                runs = {}
                for private in (True, False):
                    if not private and name in controls:
                        runs[private] = controls[name]
                        continue
                    runs[private] = train_dp_lora(
                        records,
                        model_dir=model_dir,
                        cfg=cfg,
                        out_dir=Path(out) / f"{name}-{epsilon}-{private}".replace(" ", ""),
                        device=args.device,
                        progress=False,
                        epsilon_every=cfg.steps,
                        private=private,
                    )
                controls[name] = runs[False]
                dp, control = runs[True], runs[False]
                before, after, best = (
                    dp.heldout_loss_before,
                    dp.heldout_loss_after,
                    control.heldout_loss_after,
                )
                share = (before - after) / (before - best)
                print(
                    f"{name} | {epsilon:g} | {cfg.expected_batch_size} | {cfg.steps} | "
                    f"{cfg.lora_r} | {lr:.3g} | {dp.noise_multiplier:.3f} | "
                    f"{predicted.noise_to_signal:.2f} | {predicted.run_noise_to_signal:.3f} | "
                    f"{before:.3f} | {after:.3f} | {best:.3f} | {share:.1%} | "
                    f"{predicted.expected_share:.1%} | {time.perf_counter() - started:.0f}",
                    flush=True,
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
