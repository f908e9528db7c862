"""Stage 6: the adapter registered as a new MLflow model version."""

import dagster as dg
import pyarrow.parquet as pq

from assets.metadata import OWNERS_ML, require_passing_checks
from pipelines.steps.ingest.erasure import lineage_hashes
from pipelines.steps.release.provenance import git_commit, model_card
from resources import CorpusStorage, MLflowRegistry

DEFAULT_PRIVACY_UNIT = "example"
"""What one DP guarantee protects when the training summary does not say (older adapters)."""


def fingerprints(**manifests: dict) -> dict[str, str]:
    """The sha256 of every upstream artifact, keyed by asset name."""
    out = {}
    for name, manifest in manifests.items():
        out[name] = manifest.get("sha256") or manifest.get("adapter_sha256")
    return out


@dg.asset(
    group_name="release",
    kinds={"mlflow"},
    owners=OWNERS_ML,
    code_version="2",
)
def registered_model(
    context: dg.AssetExecutionContext,
    training_corpus: dict,
    base_model: dict,
    dp_lora_adapter: dict,
    privacy_audit: dict,
    registry: MLflowRegistry,
    storage: CorpusStorage,
) -> dict:
    """The DP-LoRA adapter as a new version in the MLflow model registry (alias `candidate`).

    The version carries the adapter (safetensors + JSON), the tokenizer and a model card, and is
    tagged with epsilon, delta, every upstream fingerprint and check result, the Dagster run id
    and the git commit; its run holds the training lineage (sha256 of every record and subject
    pseudonym trained on, `lineage/training_records.json`) that erasure requests check. It is
    refused while the latest result of any upstream check is a failure, however this asset was
    launched.
    """
    checks = require_passing_checks(context, registry.gate_checks, action="register")
    raw_corpus, scrubbed_corpus, curated_corpus = (
        training_corpus[zone] for zone in ("raw", "scrubbed", "curated")
    )
    prints = fingerprints(
        raw_corpus=raw_corpus,
        scrubbed_corpus=scrubbed_corpus,
        curated_corpus=curated_corpus,
        base_model=base_model,
        dp_lora_adapter=dp_lora_adapter,
    )
    privacy = _privacy_params(dp_lora_adapter)
    commit = git_commit()
    tags = _version_tags(
        context.run_id, commit, training_corpus, base_model, privacy_audit, privacy, prints, checks
    )
    version = registry.register_adapter(
        adapter_dir=dp_lora_adapter["adapter_dir"],
        tokenizer_dir=base_model["path"],
        model_card=model_card(
            name=registry.model_name,
            base_model=base_model["name"],
            privacy=privacy,
            audit_passed=privacy_audit["passed"],
            fingerprints=prints,
        ),
        params={**privacy, "base_model": base_model["name"], "profile": storage.profile},
        tags=tags,
        step_metrics=_step_metrics(dp_lora_adapter),
        run_name=f"dagster-{context.run_id[:8]}",
        lineage=_training_lineage(curated_corpus["path"]),
    )
    context.add_output_metadata(
        {
            "model_name": version.name,
            "version": version.version,
            "mlflow_run_id": version.run_id,
            "alias": "candidate",
            "source": storage.stored(version.source),
        }
    )
    return {
        "name": version.name,
        "version": version.version,
        "mlflow_run_id": version.run_id,
        "source": storage.stored(version.source),
        "tracking_uri": version.tracking_uri,
        "git_commit": commit,
        "fingerprints": prints,
        "privacy": privacy,
        "checks": checks,
        "profile": storage.profile,
    }


def _training_lineage(curated_path: str) -> dict:
    """sha256 of every record and subject pseudonym of the training corpus: what an erasure
    request checks to know whether this version trained on an erased subject."""
    table = pq.read_table(curated_path, columns=["id", "subject"])
    return lineage_hashes(table.column("id").to_pylist(), table.column("subject").to_pylist())


def _privacy_params(dp_lora_adapter: dict) -> dict[str, str]:
    """The DP guarantee and how it was reached, as MLflow params (text, fixed precision)."""
    return {
        "epsilon": f"{dp_lora_adapter['epsilon']:.4f}",
        "delta": f"{dp_lora_adapter['delta']:g}",
        "accountant": dp_lora_adapter["accountant"],
        "noise_multiplier": f"{dp_lora_adapter['noise_multiplier']:.4f}",
        "sample_rate": f"{dp_lora_adapter['sample_rate']:.6f}",
        "steps": str(dp_lora_adapter["steps"]),
        "max_grad_norm": f"{dp_lora_adapter['max_grad_norm']:g}",
        "privacy_unit": dp_lora_adapter.get("privacy_unit", DEFAULT_PRIVACY_UNIT),
        "train_records": str(dp_lora_adapter["n_train"]),
    }


def _version_tags(
    run_id: str,
    commit: str,
    training_corpus: dict,
    base_model: dict,
    privacy_audit: dict,
    privacy: dict[str, str],
    prints: dict[str, str],
    checks: list[dict],
) -> dict[str, str]:
    """The model version's `sovtune.*` tags: privacy, provenance, audit, fingerprints, checks."""
    return {
        "sovtune.epsilon": privacy["epsilon"],
        "sovtune.delta": privacy["delta"],
        "sovtune.privacy_unit": privacy["privacy_unit"],
        "sovtune.dagster_run_id": run_id,
        "sovtune.git_commit": commit,
        "sovtune.base_model": base_model["name"],
        "sovtune.snapshot_sha256": training_corpus["snapshot_sha256"],
        "sovtune.drops": str(len(training_corpus["drops"])),
        "sovtune.audit": "passed" if privacy_audit["passed"] else "failed",
        "sovtune.audit.max_exposure_bits": f"{privacy_audit['max_exposure_bits']:.3f}",
        "sovtune.audit.pii_extracted": str(privacy_audit["pii_extraction"]["extracted"]),
        **{
            f"sovtune.audit.mia_auc.{a['attack']}": f"{a['auc']:.4f}"
            for a in privacy_audit["membership_inference"]
        },
        **{f"sovtune.fingerprint.{k}": v for k, v in prints.items()},
        **{
            f"sovtune.check.{c['asset']}.{c['check']}": "passed" if c["passed"] else "failed"
            for c in checks
        },
    }


def _step_metrics(dp_lora_adapter: dict) -> dict[str, list[tuple]]:
    """Epsilon spent per DP-SGD step, for the MLflow run. The training loss is an un-noised
    statistic of private records and is not logged (issue #17.1)."""
    return {"epsilon": [tuple(x) for x in dp_lora_adapter["epsilons"]]}
