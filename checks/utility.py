"""Checks on what the DP adapter learned: its utility, and the #820 guard on its updates."""

import dagster as dg

from assets.training import dp_lora_adapter
from checks.ingestion import _result
from pipelines.steps.release import gates
from pipelines.steps.training.utility import utility_gate


@dg.asset_check(asset=dp_lora_adapter, blocking=True)
def adapter_utility(dp_lora_adapter: dict) -> dg.AssetCheckResult:
    """The DP adapter's loss on the public eval set improves on the base model's by at least
    training.utility.min_gain (default: half the plan's predicted gain). Below it, ERROR
    severity (blocks registration) with training.utility.action block, WARN with warn."""
    utility = dp_lora_adapter.get("utility") or {"error": "not measured", "action": "block"}
    severity = (
        dg.AssetCheckSeverity.ERROR if utility["action"] == "block" else dg.AssetCheckSeverity.WARN
    )
    if "error" in utility:
        gate = gates.GateResult(False, f"utility not measured: {utility['error']}", {})
    else:
        gate = utility_gate(utility)
    return _result(gate, severity=severity)


@dg.asset_check(asset=dp_lora_adapter, blocking=True)
def update_follows_clipped_gradient(dp_lora_adapter: dict) -> dg.AssetCheckResult:
    """The first steps' parameter updates point along the clipped gradient sum measured before
    noise, beyond what noise alone gives (Opacus #820: an update of pure noise fails). Only the
    verdict is recorded, never the statistic."""
    verdict = dp_lora_adapter.get("update_follows_gradient")
    if verdict is None:
        gate = gates.GateResult(True, "no step with a non-empty batch to judge", {})
    elif verdict:
        gate = gates.GateResult(True, "the update follows the clipped gradient", {})
    else:
        gate = gates.GateResult(
            False,
            "the update does not follow the clipped gradient (pure noise: Opacus #820?); "
            "do not release this adapter",
            {},
        )
    return _result(gate)
