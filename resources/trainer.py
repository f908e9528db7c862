"""The DP-LoRA trainer: Opacus DP-SGD with Poisson sampling over a PEFT LoRA model."""

import hashlib
from pathlib import Path
from typing import Any

import dagster as dg
import torch

from pipelines.steps.config import TrainingConfig
from pipelines.steps.records import Record
from pipelines.steps.training import dp_lora
from pipelines.steps.training.ledger import LEDGER_FILE, PrivacyLedger, records_per_source


def default_device() -> str:
    """The first CUDA device when one is present (bf16 autocast where supported), else the CPU."""
    return "cuda" if torch.cuda.is_available() else "cpu"


class DPTrainer(dg.ConfigurableResource):
    """Training settings (see TrainingConfig for what each one means)."""

    target_epsilon: float = 8.0
    target_delta: float = 1e-5
    max_grad_norm: float = 1.0
    accountant: str = "prv"
    expected_batch_size: int = 16
    steps: int = 40
    learning_rate: float = 2e-3
    max_seq_len: int = 64
    lora_r: int = 8
    lora_alpha: int = 16
    target_modules: list[str] = ["q_proj", "v_proj"]
    seed: int = 0
    noise_seed: int | None = None
    secure_mode: bool = False
    privacy_unit: str = "example"
    user_field: str = "subject"
    clipping: str = "flat"
    max_physical_batch_size: int | None = None
    checkpoint_every: int = 10
    lifetime_epsilon: float = 24.0
    device: str = "cpu"
    """Torch device of training and the audit; definitions pass `default_device()`."""
    gate_checks: list[str] = []
    """Checks (`asset:check`) whose latest result must be a pass before training starts."""

    @property
    def config(self) -> TrainingConfig:
        return TrainingConfig(**self.model_dump(exclude={"device", "gate_checks"}))

    def train(
        self, records: list[Record], *, model_dir: Path, out_dir: Path, data_root: Path
    ) -> tuple["dp_lora.TrainingResult", list[dict[str, Any]]]:
        """Reserve the budget, train (resuming a crashed run of the same data and settings),
        then settle the budget ledger to the accountant's epsilon.

        The run key hashes the settings, the records and the base model folder: a rerun after
        a crash finds its checkpoint and its reservation under the same key.

        Returns:
            The training result and the privacy budget ledger's rows after the run.

        Raises:
            PrivacyBudgetExceeded: Training would push a data source past
                `dp_lora.lifetime_epsilon`; nothing was trained.
        """
        cfg = self.config
        digest = hashlib.sha256(cfg.model_dump_json(exclude={"noise_seed"}).encode())
        digest.update(str(Path(model_dir).resolve()).encode())
        for record in sorted(records, key=lambda r: r.id):
            digest.update(record.id.encode("utf-8") + b"\0")
        run_key = digest.hexdigest()[:32]
        train_records, _ = dp_lora.split_heldout(records)
        ledger = PrivacyLedger(Path(data_root) / LEDGER_FILE)
        ledger.reserve(
            run_key,
            records_per_source(train_records),
            epsilon=cfg.target_epsilon,
            delta=cfg.target_delta,
            lifetime_epsilon=cfg.lifetime_epsilon,
            privacy_unit=cfg.privacy_unit,
        )
        result = dp_lora.train_dp_lora(
            records,
            model_dir=model_dir,
            cfg=cfg,
            out_dir=out_dir,
            device=self.device,
            checkpoint_dir=Path(data_root) / "checkpoints" / run_key,
        )
        return result, ledger.settle(run_key, epsilon=result.epsilon)
