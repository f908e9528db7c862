"""Stage 5: the privacy audit of the trained adapter."""

import dagster as dg

from assets.metadata import OWNERS_PRIVACY
from pipelines.steps.audit import canary_exposure
from pipelines.steps.training import load_adapter_model
from resources import PrivacyAuditor


@dg.asset(
    group_name="audit",
    kinds={"pytorch"},
    owners=OWNERS_PRIVACY,
    code_version="1",
)
def privacy_audit(
    context: dg.AssetExecutionContext,
    dp_lora_adapter: dict,
    base_model: dict,
    auditor: PrivacyAuditor,
) -> dict:
    """Canary exposure of the trained model (Carlini et al., The Secret Sharer).

    Each canary planted in the corpus is ranked, by the model's likelihood, among random
    candidates of the same format; exposure = log2(candidates) - log2(rank). A model that
    memorized a canary ranks it first. Only canary ids and numbers are kept, never a secret.
    """
    model, tokenizer = load_adapter_model(
        base_model["path"],
        dp_lora_adapter["adapter_dir"],
        expected_sha256=dp_lora_adapter["adapter_sha256"],
    )
    canaries = auditor.canaries()
    results = canary_exposure(
        model, tokenizer, canaries, n_candidates=auditor.candidates, seed=auditor.seed
    )
    trained = set(dp_lora_adapter["train_ids"])
    placed = auditor.canary_record_ids()
    rows = [
        {
            "canary_id": r.canary_id,
            "insertions": r.insertions,
            "in_training": sum(1 for rid in placed.get(r.canary_id, ()) if rid in trained),
            "rank": r.rank,
            "candidates": r.candidates,
            "exposure_bits": float(r.exposure_bits),
            "rank_exposure_bits": float(r.rank_exposure_bits),
            "method": r.method,
        }
        for r in results
    ]
    worst = max((row["exposure_bits"] for row in rows), default=None)
    table = [
        "| canary | insertions | in training | rank | candidates | exposure (bits) | method |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    table += [
        f"| `{r['canary_id']}` | {r['insertions']} | {r['in_training']} | {r['rank']} | "
        f"{r['candidates']} | {r['exposure_bits']:.2f} | {r['method']} |"
        for r in rows
    ]
    context.add_output_metadata(
        {
            "canaries": len(rows),
            "max_exposure_bits": float(worst) if worst is not None else float("nan"),
            "bound_bits": float(auditor.max_exposure_bits),
            "exposure": dg.MetadataValue.md("\n".join(table)),
        }
    )
    return {
        "canaries": rows,
        "max_exposure_bits": worst,
        "bound_bits": auditor.max_exposure_bits,
        "passed": worst is not None and worst <= auditor.max_exposure_bits,
    }
