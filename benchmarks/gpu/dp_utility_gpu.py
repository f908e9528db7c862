"""DP utility at scale on a CUDA machine (issue #18.5c): N = 50k synthetic records, expected
batch 1,024, epsilon 1, 4 and 8, against the non-private control at the same compute, with the
planner's prediction beside each row: the table of `benchmarks/dp_utility.py sweep`.

The default setting is the one `sovtune plan` recommends for 50k records on an H200 at 6
minutes (docs/benchmarks.md, "DP planning"): batch 1,024, 176 steps (4 epochs), LoRA rank 4,
learning rate 0.023 (the profile's 2e-3 scaled by sqrt(1024 / 8)), 64 tokens, PRV, delta 1e-5.
About 4 minutes of steps per run on an H200 (0.18 s + 0.0001 s per example); the corpus is
generated and tokenized once (several minutes on the host's CPU).

Its logic runs on CPU with a tiny model and a tiny N (tests/test_dp_params.py):
    .venv/bin/python benchmarks/gpu/dp_utility_gpu.py --model-dir DIR --records 200 \\
        --batch 16 --steps 3 --epsilons 8 --device cpu --accountant rdp

Usage on the GPU machine (from the repository root):
    .venv/bin/python benchmarks/gpu/dp_utility_gpu.py [--data-root var]
"""

import argparse
import math
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from _training_bench import REPO_ROOT, base_model_dir, device_name  # noqa: E402
from dp_utility import Row, sweep  # noqa: E402

from pipelines.steps.config import load_config  # noqa: E402
from pipelines.steps.offline import enforce_offline  # noqa: E402

PROFILE_BATCH = 8
"""The default profile's batch, which its learning rate was chosen for."""


def main(argv: list[str] | None = None) -> list[Row]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-root", type=Path, default=REPO_ROOT / "var")
    parser.add_argument("--model-dir", type=Path, help="base model folder (default: SmolLM2)")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--records", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--steps", type=int, default=176)
    parser.add_argument("--rank", type=int, default=4)
    parser.add_argument("--seq-len", type=int, default=64)
    parser.add_argument("--epsilons", default="1,4,8")
    parser.add_argument("--max-physical", type=int, default=256, help="examples per forward")
    parser.add_argument("--accountant", default=None, choices=["prv", "rdp"])
    args = parser.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("no CUDA device: pass --device cpu to run the logic on CPU")
    enforce_offline()
    model_dir = args.model_dir or base_model_dir(args.data_root)
    # the setting the planner's calibration runs were measured at (clip 1, lr 0.002 at batch 8),
    # not the default profile's clip 0.1 / lr 0.01, whose sqrt(batch) scaling is unmeasured
    profile = load_config("default").training.model_copy(
        update={"max_grad_norm": 1.0, "learning_rate": 2e-3}
    )
    base = profile.model_copy(
        update={
            "expected_batch_size": args.batch,
            "steps": args.steps,
            "lora_r": args.rank,
            "lora_alpha": max(1, round(profile.lora_alpha * args.rank / profile.lora_r)),
            "learning_rate": profile.learning_rate * math.sqrt(args.batch / PROFILE_BATCH),
            "max_seq_len": args.seq_len,
            "max_physical_batch_size": min(args.max_physical, args.batch),
            "accountant": args.accountant or profile.accountant,
        }
    )
    print(f"device: {device_name(args.device)}; model {model_dir}", flush=True)
    return sweep(
        sizes=[args.records],
        epsilons=[float(e) for e in args.epsilons.split(",")],
        base=base,
        model_dir=model_dir,
        device=args.device,
    )


if __name__ == "__main__":
    main()
