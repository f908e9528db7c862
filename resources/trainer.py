"""The DP-LoRA trainer: Opacus DP-SGD with Poisson sampling over a PEFT LoRA model."""

from pathlib import Path

import dagster as dg

from pipelines.steps import training
from pipelines.steps.config import TrainingConfig
from pipelines.steps.records import Record


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
    device: str = "cpu"
    gate_checks: list[str] = []
    """Checks (`asset:check`) whose latest result must be a pass before training starts."""

    @property
    def config(self) -> TrainingConfig:
        return TrainingConfig(**self.model_dump(exclude={"device", "gate_checks"}))

    def train(
        self, records: list[Record], *, model_dir: Path, out_dir: Path
    ) -> "training.TrainingResult":
        return training.train_dp_lora(
            records, model_dir=model_dir, cfg=self.config, out_dir=out_dir, device=self.device
        )
