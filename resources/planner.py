"""The training preset `auto`: the trainer's settings resolved from the plan before training.

`training.preset: auto` makes `sovtune plan`'s recommendation for the corpus being trained on
and `training.plan_minutes` the training settings (batch, steps, learning rate, LoRA rank and
alpha). The step cost is measured once; the plan is kept under `data_root/plans/` so that a
rerun of the same corpus and settings (a resumed crash above all) trains with the same plan,
not one re-measured under another load.
"""

import hashlib
import json
from pathlib import Path
from typing import Any

from pipelines.steps.storage import write_json
from pipelines.steps.training.plan import resolve_training
from resources.trainer import DPTrainer

PLANS_DIR = "plans"


def planned_trainer(
    trainer: DPTrainer, *, n_records: int, model_dir: str | Path, data_root: str | Path
) -> tuple[DPTrainer, dict[str, Any] | None]:
    """The trainer with the plan's settings when `training.preset` is auto, else unchanged.

    Returns:
        The trainer to train with, and the plan's summary (None for preset manual): the
        settings it chose, the predicted share and noise, and the advice; counts only.

    Raises:
        PlanError: The plan cannot be made (names the setting to change); nothing trains.
    """
    cfg = trainer.config
    if cfg.preset != "auto":
        return trainer, None
    digest = hashlib.sha256(cfg.model_dump_json().encode())
    digest.update(f"\0{n_records}\0{Path(model_dir).resolve()}\0{trainer.device}".encode())
    path = Path(data_root) / PLANS_DIR / f"{digest.hexdigest()[:32]}.json"
    if path.is_file():
        summary = json.loads(path.read_text(encoding="utf-8"))
    else:
        resolved, plan = resolve_training(
            cfg, n_records=n_records, model_dir=model_dir, device=trainer.device
        )
        rec = plan.recommended
        summary = {
            "training": {key: getattr(resolved, key) for key in plan.training_update(cfg)},
            "plan_minutes": plan.minutes,
            "n_records": n_records,
            "per_example_seconds": plan.cost.per_example_s,
            "step_overhead_seconds": plan.cost.overhead_s,
            "noise_multiplier": rec.noise_multiplier,
            "noise_to_signal": rec.noise_to_signal,
            "run_noise_to_signal": rec.run_noise_to_signal,
            "expected_share": rec.expected_share,
            "useful": plan.useful,
            "advice": plan.advice,
        }
        write_json(summary, path)
    return trainer.model_copy(update=summary["training"]), summary
