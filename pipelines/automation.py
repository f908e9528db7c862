"""Declarative automation: retrain when new accepted data arrives, never past a failed check.

Dagster's blocking checks stop downstream steps inside one run only. Here the gate also holds
at launch time, for every launch path:

- automation (the `sovtune_automation` sensor): `training_corpus` (every drop joined) and
  `dp_lora_adapter` are requested only when a `curated_corpus` drop has a new materialization
  since training was last requested, no drop is missing or in progress, and the latest result
  of every check on every ancestor, on every drop, is a pass (`UpstreamChecksPassed`, read from
  the instance's event log);
- the weekly schedule (pipelines/jobs.py) skips its tick, naming the failing checks;
- a manual materialization is refused by the asset itself (assets/metadata.py).

`privacy_audit`, `registered_model` and `compliance_report` follow training within the same
run (they are requested only together with it), so automation never launches registration
alone; inside that run the blocking audit checks and registration's own guard decide.
"""

import warnings
from types import SimpleNamespace

import dagster as dg
from dagster._core.definitions.declarative_automation.automation_condition import (
    AutomationResult,
)
from dagster._core.definitions.declarative_automation.automation_context import (
    AutomationContext,
)

from assets.metadata import check_label, latest_check_results

AUTOMATION_SENSOR = "sovtune_automation"
TRAINING_INPUT = dg.AssetKey("training_corpus")
TRAINING = dg.AssetKey("dp_lora_adapter")
NEW_DATA_FROM = dg.AssetKey("curated_corpus")
# each asset is requested only in the same tick (hence the same run) as the one before it
FOLLOWERS = {
    TRAINING: TRAINING_INPUT,
    dg.AssetKey("privacy_audit"): TRAINING,
    dg.AssetKey("registered_model"): dg.AssetKey("privacy_audit"),
    dg.AssetKey("compliance_report"): dg.AssetKey("registered_model"),
}


def failing_checks(
    instance: dg.DagsterInstance, required: list[str], *, strict: bool = True
) -> list[str]:
    """The checks (`asset:check`) among `required` whose latest result is not a pass.

    Strict is the assets' own guard: a check that never ran, or whose latest execution failed
    or did not finish, counts as failing. Not strict counts only a latest result that failed
    (for a run that will execute the check itself before the gated step).
    """
    # latest_check_results reads nothing from the context but its instance
    context = SimpleNamespace(instance=instance)
    results = latest_check_results(context, required)  # type: ignore[arg-type]
    return [
        check_label(r) for r in results if not r["passed"] and (strict or r["status"] == "FAILED")
    ]


def ancestor_checks(graph, key: dg.AssetKey) -> list[str]:
    """Every check (`asset:check`) on the ancestors of `key` in `graph`."""
    keys = graph.get_check_keys_for_assets(graph.get_ancestor_asset_keys(key))
    return sorted(f"{k.asset_key.to_user_string()}:{k.name}" for k in keys)


class UpstreamChecksPassed(dg.AutomationCondition):
    """True when the latest result of every check on every ancestor of the asset is a pass.

    Evaluated in the code location (the sensor sets `use_user_code_server=True`), because it
    reads the event log the same way the assets' run-time guard does.
    """

    @property
    def description(self) -> str:
        return "latest result of every upstream check is a pass"

    @property
    def name(self) -> str:
        return "upstream_checks_passed"

    @property
    def requires_cursor(self) -> bool:
        return False

    def evaluate(self, context: AutomationContext) -> AutomationResult:
        required = ancestor_checks(context.asset_graph, context.key)
        failing = failing_checks(context.asset_graph_view.instance, required)
        if failing:
            context.log.info(f"{context.key.to_user_string()} held: failing {', '.join(failing)}")
            return AutomationResult(context, true_subset=context.get_empty_subset())
        return AutomationResult(context, true_subset=context.candidate_subset)


def retrain_on_new_data() -> dg.AutomationCondition:
    """Training's condition: new curated data since the last request, and every gate passed."""
    new_data = (
        dg.AutomationCondition.any_deps_updated()
        .allow(dg.AssetSelection.assets(NEW_DATA_FROM))
        .since_last_handled()
    )
    return (
        new_data
        & ~dg.AutomationCondition.any_deps_missing()
        & ~dg.AutomationCondition.any_deps_in_progress()
        & ~dg.AutomationCondition.in_progress()
        & UpstreamChecksPassed()
    ).with_label("retrain on new accepted data, all upstream checks passed")


def follows(leader: dg.AssetKey) -> dg.AutomationCondition:
    """Requested only in the same evaluation (and run) in which `leader` is requested."""
    return (
        dg.AutomationCondition.any_deps_match(dg.AutomationCondition.will_be_requested()).allow(
            dg.AssetSelection.assets(leader)
        )
        & ~dg.AutomationCondition.in_progress()
    ).with_label(f"runs with {leader.to_user_string()}")


def with_automation(assets: list) -> list:
    """`assets` with the training input's and its followers' automation conditions attached."""
    conditions = {TRAINING_INPUT: retrain_on_new_data()} | {
        key: follows(leader) for key, leader in FOLLOWERS.items()
    }
    # training also reads the base model, which the training input's condition does not see
    conditions[TRAINING] = conditions[TRAINING] & ~dg.AutomationCondition.any_deps_missing()

    def attach(spec: dg.AssetSpec) -> dg.AssetSpec:
        if spec.key not in conditions:
            return spec
        return spec.replace_attributes(automation_condition=conditions[spec.key])

    return dg.map_asset_specs(attach, assets)


with warnings.catch_warnings():
    # `use_user_code_server` is beta in dagster 1.13: needed for a condition that reads the log
    warnings.simplefilter("ignore", dg.BetaWarning)
    automation_sensor = dg.AutomationConditionSensorDefinition(
        AUTOMATION_SENSOR,
        target=dg.AssetSelection.assets(TRAINING_INPUT, *FOLLOWERS),
        default_status=dg.DefaultSensorStatus.STOPPED,
        use_user_code_server=True,
        run_tags={"sovtune/launched_by": "automation"},
        description="Retrains when a data drop has new accepted (curated) data and the latest "
        "result of every upstream check on every drop is a pass; the joined training corpus, "
        "training, audit, registration and report run together. Stopped by default: a steward "
        "starts it in the UI.",
    )
