"""Checks on the DP-LoRA adapter: budgets, LoRA tensors trained, base weights frozen."""

import dagster as dg

from assets.training import dp_lora_adapter
from checks.ingestion import _result
from pipelines.steps.release import gates
from pipelines.steps.training.ledger import budget_within_lifetime
from resources import DPTrainer


@dg.asset_check(asset=dp_lora_adapter, blocking=True)
def epsilon_within_budget(dp_lora_adapter: dict, trainer: DPTrainer) -> dg.AssetCheckResult:
    """The accountant's epsilon is within the configured target epsilon."""
    return _result(
        gates.epsilon_within_budget(
            epsilon=dp_lora_adapter["epsilon"], target_epsilon=trainer.target_epsilon
        )
    )


@dg.asset_check(asset=dp_lora_adapter, blocking=True)
def lora_tensors_trained(dp_lora_adapter: dict) -> dg.AssetCheckResult:
    """Every LoRA tensor received a nonzero clipped gradient before noise, and all are finite
    (Opacus #820 guard)."""
    return _result(
        gates.lora_tensors_trained(
            total=dp_lora_adapter["lora_tensors_total"],
            changed=dp_lora_adapter["lora_tensors_with_clipped_gradient"],
            finite=dp_lora_adapter["lora_tensors_finite"],
        )
    )


@dg.asset_check(asset=dp_lora_adapter, blocking=True)
def base_weights_frozen(dp_lora_adapter: dict) -> dg.AssetCheckResult:
    """No base-model weight changed during training."""
    return _result(
        gates.base_weights_frozen(
            unchanged=dp_lora_adapter["base_weights_unchanged"],
            before=dp_lora_adapter["base_sha256_before"],
            after=dp_lora_adapter["base_sha256_after"],
        )
    )


@dg.asset_check(asset=dp_lora_adapter, blocking=True)
def privacy_budget_within_lifetime(
    dp_lora_adapter: dict, trainer: DPTrainer
) -> dg.AssetCheckResult:
    """Every data source (record-level runs) and data subject (user-level runs) has a composed
    epsilon over all training runs and charged controls within the lifetime budget, at the
    lifetime delta (PRV composition of the stored mechanisms)."""
    return _result(
        budget_within_lifetime(
            dp_lora_adapter["budget_ledger"],
            lifetime_epsilon=dp_lora_adapter["lifetime_epsilon"],
            lifetime_delta=trainer.config.lifetime_delta_bound,
        )
    )
