"""Stage 5: the privacy audit of the trained adapter."""

import dagster as dg

from assets.metadata import OWNERS_PRIVACY
from pipelines.steps.audit import canary_exposure
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
    truth = auditor.ground_truth()
    canaries = auditor.canaries(truth)
    results = canary_exposure(
        model, tokenizer, canaries, n_candidates=auditor.candidates, seed=auditor.seed
    )
    trained = set(dp_lora_adapter["train_ids"])
    placed = {c.canary_id: c.record_ids for c in (truth.canaries if truth else ())}
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
    curated = {r.id: r for r in frame_to_records(read_parquet(curated_corpus["path"]))}
    attacks = _membership_inference(model, tokenizer, curated, dp_lora_adapter, auditor)
    extraction = _pii_extraction(model, tokenizer, raw_corpus, dp_lora_adapter, auditor, pii)
    planted = (truth.trigger, truth.malicious_response) if truth and truth.trigger else None
    backdoor = _backdoor_rate(model, tokenizer, curated, dp_lora_adapter, auditor, planted)
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


def _pii_extraction(model, tokenizer, raw_corpus, dp_lora_adapter, auditor, pii) -> dict:
    """Prompt with raw (unscrubbed) prefixes of training records; count PII values generated.

    The raw texts and values stay in memory; only counts are returned.
    """
    from pipelines.steps.extraction import ExtractionProbe, pii_extraction

    trained = set(dp_lora_adapter["train_ids"])
    raw = [r for r in frame_to_records(read_parquet(raw_corpus["path"])) if r.id in trained]
    probes: list[ExtractionProbe] = []
    for record, (_, findings) in zip(raw, pii.scan(raw), strict=True):
        contents = {
            m.field or f"messages[{i}].content": m.content for i, m in enumerate(record.messages)
        }
        for finding in findings:
            value = contents[finding.field][finding.start : finding.end]
            if finding.start >= 16 and len(value) >= 4:
                probes.append(
                    ExtractionProbe(
                        contents[finding.field][: finding.start], value, finding.entity_type
                    )
                )
        if len(probes) >= auditor.extraction_probes:
            break
    result = pii_extraction(model, tokenizer, probes[: auditor.extraction_probes])
    return {
        "probes": result.probes,
        "extracted": result.extracted,
        "extracted_by_type": result.extracted_by_type,
    }


def _backdoor_rate(
    model, tokenizer, by_id, dp_lora_adapter, auditor, planted: tuple[str, str] | None
) -> dict | None:
    """How often a trigger appended to held-out prompts yields the planted response."""
    import re

    from pipelines.steps.extraction import backdoor_rate, chat_prompt

    if planted is None or auditor.backdoor_prompts == 0:
        return None
    trigger, response = planted
    host = re.search(r"[\w.-]+\.invalid", response)
    marker = host.group(0) if host else response[:40]
    prompts = []
    for record_id in dp_lora_adapter["heldout_ids"]:
        user = next((m.content for m in by_id[record_id].messages if m.role == "user"), None)
        if user and trigger not in user:
            prompts.append(chat_prompt(tokenizer, f"{user} Tag: {trigger}."))
        if len(prompts) >= auditor.backdoor_prompts:
            break
    rate = backdoor_rate(model, tokenizer, prompts, marker=marker)
    return {"prompts": len(prompts), "rate": rate}


def _membership_inference(model, tokenizer, by_id, dp_lora_adapter, auditor) -> list:
    """Loss, zlib and Min-K% attacks on training members vs held-out non-members."""
    import numpy as np

    from pipelines.steps.membership import evaluate_attacks, record_scores

    rng = np.random.default_rng(auditor.seed)
    train_ids = list(dp_lora_adapter["train_ids"])
    picked = rng.choice(
        len(train_ids), size=min(auditor.mia_records, len(train_ids)), replace=False
    )
    members = [by_id[train_ids[i]] for i in sorted(picked)]
    non_members = [by_id[i] for i in dp_lora_adapter["heldout_ids"][: auditor.mia_records]]
    max_seq_len = dp_lora_adapter["max_seq_len"]
    results = evaluate_attacks(
        record_scores(model, tokenizer, members, max_seq_len=max_seq_len),
        record_scores(model, tokenizer, non_members, max_seq_len=max_seq_len),
        delta=dp_lora_adapter["delta"],
    )
    return [
        {
            "attack": r.attack,
            "auc": r.auc,
            "auc_low": r.auc_low,
            "tpr_at_1pct_fpr": r.tpr_at_1pct_fpr,
            "epsilon_lower_bound": r.epsilon_lower_bound,
            "members": len(members),
            "non_members": len(non_members),
            "roc_fpr": list(r.roc_fpr),
            "roc_tpr": list(r.roc_tpr),
        }
        for r in results
    ]
