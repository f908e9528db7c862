"""Stage 5: the privacy audit of the trained adapter."""

import dagster as dg

from assets.metadata import OWNERS_PRIVACY
from pipelines.steps.audit_suite import AuditData, audit_model
from pipelines.steps.records import frame_to_records
from pipelines.steps.storage import read_parquet
from pipelines.steps.training import load_adapter_model
from resources import PIIEngine, PrivacyAuditor


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
    curated_corpus: dict,
    raw_corpus: dict,
    auditor: PrivacyAuditor,
    pii: PIIEngine,
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
    data = _audit_data(auditor, dp_lora_adapter, curated_corpus, raw_corpus)
    result = audit_model(model, tokenizer, data, auditor.settings, scan=pii.scan)
    rows, worst = result["canaries"], result["max_exposure_bits"]
    attacks, extraction = result["membership_inference"], result["pii_extraction"]
    backdoor = result["backdoor"]
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
            "membership_inference": dg.MetadataValue.md(
                "\n".join(
                    [
                        "| attack | AUC | AUC 95% low | TPR@1%FPR | empirical eps >= |",
                        "|---|---:|---:|---:|---:|",
                    ]
                    + [
                        f"| {a['attack']} | {a['auc']:.3f} | {a['auc_low']:.3f} | "
                        f"{a['tpr_at_1pct_fpr']:.3f} | {a['epsilon_lower_bound']:.2f} |"
                        for a in attacks
                    ]
                )
            ),
            "max_mia_auc": max(a["auc"] for a in attacks),
            "pii_extraction_probes": extraction["probes"],
            "pii_values_extracted": extraction["extracted"],
            "backdoor_rate": float("nan") if backdoor is None else backdoor["rate"],
        }
    )
    return {
        "canaries": rows,
        "max_exposure_bits": worst,
        "bound_bits": auditor.max_exposure_bits,
        "membership_inference": attacks,
        "max_mia_auc_bound": auditor.max_mia_auc,
        "pii_extraction": extraction,
        "backdoor": backdoor,
        "passed": worst is not None
        and worst <= auditor.max_exposure_bits
        and all(a["auc_low"] <= auditor.max_mia_auc for a in attacks)
        and extraction["extracted"] == 0,
    }


def _audit_data(auditor, dp_lora_adapter: dict, curated_corpus: dict, raw_corpus: dict):
    """The split, records and planted ground truth the audited adapter was trained on."""
    truth = auditor.ground_truth()
    trained = set(dp_lora_adapter["train_ids"])
    return AuditData(
        canaries=auditor.canaries(truth),
        canary_records={c.canary_id: c.record_ids for c in (truth.canaries if truth else ())},
        records={r.id: r for r in frame_to_records(read_parquet(curated_corpus["path"]))},
        train_ids=dp_lora_adapter["train_ids"],
        heldout_ids=dp_lora_adapter["heldout_ids"],
        raw_train=[
            r for r in frame_to_records(read_parquet(raw_corpus["path"])) if r.id in trained
        ],
        trigger=(truth.trigger, truth.malicious_response) if truth and truth.trigger else None,
        max_seq_len=dp_lora_adapter["max_seq_len"],
        delta=dp_lora_adapter["delta"],
    )
