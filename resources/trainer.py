"""The DP-LoRA trainer: Opacus DP-SGD with Poisson sampling over a PEFT LoRA model."""

import hashlib
import math
from pathlib import Path
from typing import Any

import dagster as dg
import torch

from pipelines.steps.config import TrainingConfig, UtilityConfig
from pipelines.steps.records import Record
from pipelines.steps.training import distributed, dp_lora
from pipelines.steps.training.checkpoint import STEP_LEDGER, StepLedger
from pipelines.steps.training.ledger import (
    LEDGER_FILE,
    Mechanism,
    PrivacyLedger,
    records_per_source,
)


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
    processes: int = 1
    """Training processes (`distributed.train_dp_lora_distributed` when above 1)."""
    backend: str = "auto"
    clip_bound: str = "fixed"
    clip_target_quantile: float = 0.5
    clip_learning_rate: float = 0.2
    clip_min: float = 1e-4
    clip_max: float = 100.0
    clip_count_noise_std: float | None = None
    lora_freeze_a: bool = False
    optimizer: str = "adam"
    lifetime_epsilon: float = 24.0
    lifetime_delta: float | None = None
    preset: str = "manual"
    """manual, or auto: `resources.planner.planned_trainer` sets the settings from the plan."""
    plan_minutes: float = 6.0
    device: str = "cpu"
    """Torch device of training and the audit; definitions pass `default_device()`."""
    gate_checks: list[str] = []
    """Checks (`asset:check`) whose latest result must be a pass before training starts."""
    utility_json: str = "{}"
    """`training.utility` (UtilityConfig) as JSON: the utility check's public eval set and
    threshold."""

    @property
    def config(self) -> TrainingConfig:
        return TrainingConfig(
            **self.model_dump(exclude={"device", "gate_checks", "utility_json"}),
            utility=UtilityConfig.model_validate_json(self.utility_json),
        )

    def train(
        self, records: list[Record], *, model_dir: Path, out_dir: Path, data_root: Path
    ) -> tuple["dp_lora.TrainingResult", list[dict[str, Any]]]:
        """Reserve the budget, train (resuming a crashed run of the same data and settings),
        settle the budget ledger to the mechanism that ran, then retire the checkpoint.

        The run key hashes the settings, the records and the base model folder: a rerun after
        a crash finds its checkpoint and its reservation under the same key. Every refusal
        (delta, privacy units, lifetime budget) comes before the reservation, so a refused run
        keeps none; a run refused by the trainer before its first step gives its reservation
        back. The run is settled before its checkpoint (and step ledger) is retired: a crash
        between the two leaves a spent run whose leftover checkpoint the rerun retires. A rerun
        of a spent run key is a new attempt (a new model, fresh noise) charged anew: never a
        second model under one charge.

        Returns:
            The training result and the privacy budget ledger's rows after the run.

        Raises:
            PrivacyBudgetExceeded: Training would push a data source or subject past
                `training.lifetime_epsilon` / `training.lifetime_delta`; nothing was trained.
            dp_lora.TrainingConfigError: delta not below 1/N, or records without
                `training.user_field` (nothing reserved).
        """
        cfg = self.config
        run_key = self.run_key(records, model_dir=model_dir)
        ledger = PrivacyLedger(Path(data_root) / LEDGER_FILE)
        checkpoint_dir = Path(data_root) / "checkpoints" / run_key
        keys, mechanism = self.plan(records, ledger)
        train_fn = dp_lora.train_dp_lora
        if cfg.processes > 1:  # refused here, before the reservation, when it cannot run
            distributed.resolve_backend(cfg, self.device)
            train_fn = distributed.train_dp_lora_distributed
        if ledger.status(run_key) == "spent":
            # settled, then crashed before retiring: those steps are charged; start afresh
            _retire(checkpoint_dir)
        ledger.reserve(
            run_key,
            keys,
            epsilon=cfg.target_epsilon,
            delta=cfg.target_delta,
            lifetime_epsilon=cfg.lifetime_epsilon,
            lifetime_delta=cfg.lifetime_delta_bound,
            privacy_unit=cfg.privacy_unit,
            mechanism=mechanism,
        )
        try:
            result = train_fn(
                records,
                model_dir=model_dir,
                cfg=cfg,
                out_dir=out_dir,
                device=self.device,
                checkpoint_dir=checkpoint_dir,
            )
        except dp_lora.TrainingConfigError:
            if _steps_charged(checkpoint_dir) == 0:
                ledger.cancel(run_key)  # refused before its first noised step
            raise
        rows = ledger.settle(
            run_key,
            epsilon=result.epsilon,
            mechanism=Mechanism(
                noise_multiplier=result.noise_multiplier,
                sample_rate=result.sample_rate,
                steps=result.steps,
                accountant=result.accountant,
            ),
        )
        _retire(checkpoint_dir)
        return result, rows

    def run_key(self, records: list[Record], *, model_dir: Path) -> str:
        """sha256 (32 hex digits) over the settings, the record ids and the base model folder."""
        cfg = self.config
        digest = hashlib.sha256(cfg.model_dump_json(exclude={"noise_seed"}).encode())
        digest.update(str(Path(model_dir).resolve()).encode())
        for record in sorted(records, key=lambda r: r.id):
            digest.update(record.id.encode("utf-8") + b"\0")
        return digest.hexdigest()[:32]

    def plan(
        self, records: list[Record], ledger: PrivacyLedger
    ) -> tuple[dict[str, int], Mechanism]:
        """The keys a run charges and its planned mechanism, with every refusal that needs no
        model: privacy units (records without `training.user_field`), delta below 1/N.

        Keys are data sources (privacy_unit example) or subject HMACs (user, see
        `PrivacyLedger.subject_keys`); the mechanism is σ for the target ε at the Poisson
        sample rate and steps the trainer will use.

        Raises:
            dp_lora.TrainingConfigError: delta or lifetime delta not below 1/N, or records
                lacking `training.user_field`.
        """
        cfg = self.config
        train_records, _ = _split(records, cfg)
        units = dp_lora.privacy_units(
            train_records, unit=cfg.privacy_unit, user_field=cfg.user_field
        )
        n_units = len(units)
        for name, value in (
            ("training.target_delta", cfg.target_delta),
            ("training.lifetime_delta", cfg.lifetime_delta_bound),
        ):
            if value >= 1 / n_units:
                raise dp_lora.TrainingConfigError(
                    f"{name} = {value:g} must be below 1/N = {1 / n_units:.3g} (N = {n_units} "
                    f"privacy units, privacy_unit {cfg.privacy_unit}); lower {name}"
                )
        sample_rate = 1 / math.ceil(n_units / cfg.expected_batch_size)
        sigma = dp_lora.configured_sigma(cfg, sample_rate)
        if cfg.privacy_unit == "user":
            keys = ledger.subject_keys(str(getattr(r, cfg.user_field)) for r in train_records)
        else:
            keys = records_per_source(train_records)
        return keys, Mechanism(sigma, sample_rate, cfg.steps, cfg.accountant)

    def charge_control(
        self, records: list[Record], *, name: str, run_key: str, data_root: Path
    ) -> list[dict[str, Any]]:
        """Charge a DP control model of the audit (trained with these settings on `records`)
        to the privacy ledger before it trains; see `PrivacyLedger.charge_control`.

        Raises:
            PrivacyBudgetExceeded: The control would pass the lifetime budget: do not train it.
        """
        cfg = self.config
        ledger = PrivacyLedger(Path(data_root) / LEDGER_FILE)
        keys, mechanism = self.plan(records, ledger)
        return ledger.charge_control(
            run_key,
            keys,
            name=name,
            epsilon=cfg.target_epsilon,
            delta=cfg.target_delta,
            mechanism=mechanism,
            lifetime_epsilon=cfg.lifetime_epsilon,
            lifetime_delta=cfg.lifetime_delta_bound,
            privacy_unit=cfg.privacy_unit,
        )


def _split(records: list[Record], cfg: TrainingConfig) -> tuple[list[Record], list[Record]]:
    """The trainer's (train, held-out) split, as `dp_lora` makes it: per subject under
    user-level DP."""
    return dp_lora.split_heldout(records, privacy_unit=cfg.privacy_unit, user_field=cfg.user_field)


def _steps_charged(checkpoint_dir: Path) -> int:
    """Steps in the run's step ledger (0 when it has none)."""
    return StepLedger(checkpoint_dir / STEP_LEDGER).charged()


def _retire(checkpoint_dir: Path) -> None:
    """Retire a settled run's checkpoint folder (`dp_lora.retire_checkpoint`)."""
    if checkpoint_dir.exists():
        dp_lora.retire_checkpoint(checkpoint_dir)
