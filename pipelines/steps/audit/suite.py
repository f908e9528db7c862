"""The whole privacy audit of one trained model, as one Dagster-free function.

`audit_model` runs every attack the pipeline gates on — canary exposure, membership inference,
PII extraction — and the backdoor rate, on one model. The `privacy_audit` asset calls it for the
released DP model and, when the profile asks for them, for control models (trained without DP,
or without the integrity screens) so their numbers stand side by side; the epsilon benchmark
calls it for every epsilon. Only ids, counts and metrics leave it, never a secret or PII value.
"""

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from pipelines.steps.audit.canaries import CanarySpec, canary_exposure
from pipelines.steps.audit.extraction import (
    ExtractionProbe,
    backdoor_rate,
    chat_prompt,
    pii_extraction,
)
from pipelines.steps.audit.membership import evaluate_attacks, record_scores
from pipelines.steps.records import Record

SCAN_CHUNK = 64
"""Raw records scanned at a time while collecting PII-extraction probes."""

Scanner = Callable[[list[Record]], list[tuple[str, list]]]
"""`records -> [(record id, findings)]`, the pipeline's PII detector (PIIEngine.scan)."""


@dataclass(frozen=True)
class AuditSettings:
    """What the audit measures and how much (see AuditConfig)."""

    candidates: int = 10_000
    mia_records: int = 64
    extraction_probes: int = 32
    backdoor_prompts: int = 8
    seed: int = 0


@dataclass(frozen=True)
class AuditData:
    """The records and split the audited model was trained on.

    Attributes:
        canaries: Canaries planted in the corpus (their secrets stay in memory).
        canary_records: Record ids that carry each canary, by canary id.
        records: Curated (scrubbed) records by id: members and non-members come from here.
        train_ids: Ids the model was trained on.
        heldout_ids: Ids set aside before training (non-members).
        raw_train: Raw (unscrubbed) training records for the PII-extraction probes.
        trigger: The planted backdoor trigger and response, when the corpus has one.
    """

    canaries: Sequence[CanarySpec]
    canary_records: dict[str, Sequence[str]]
    records: dict[str, Record]
    train_ids: Sequence[str]
    heldout_ids: Sequence[str]
    raw_train: Sequence[Record] = ()
    trigger: tuple[str, str] | None = None
    max_seq_len: int = 64
    delta: float = 1e-5
    extra: dict = field(default_factory=dict)


def audit_model(
    model: torch.nn.Module,
    tokenizer,
    data: AuditData,
    settings: AuditSettings,
    *,
    scan: Scanner | None = None,
) -> dict:
    """Every attack on one model; the dict the asset, report and gates read.

    Args:
        model: The trained model (adapter applied), in eval mode or not.
        tokenizer: Its tokenizer.
        data: The records and split it was trained on.
        settings: Attack sizes and seed.
        scan: The PII detector used to find values in raw training records; without it the
            PII-extraction attack is skipped (0 probes).

    Returns:
        `canaries` (rows per canary), `max_exposure_bits`, `membership_inference` (rows per
        attack, with ROC points), `pii_extraction` (counts), `backdoor` (rate or None) and
        `seconds` (wall time of each part: exposure, membership_inference, pii_extraction,
        backdoor, and exposure_by_canary: seconds by canary id).
    """
    seconds: dict[str, float] = {}

    def timed(part: str, run: Callable[[], object]):
        started = time.perf_counter()
        value = run()
        seconds[part] = round(time.perf_counter() - started, 2)
        return value

    per_canary: dict[str, float] = {}
    exposure = timed("exposure", lambda: _exposure(model, tokenizer, data, settings, per_canary))
    return {
        **exposure,
        "membership_inference": timed(
            "membership_inference",
            lambda: _membership_inference(model, tokenizer, data, settings),
        ),
        "pii_extraction": timed(
            "pii_extraction", lambda: _pii_extraction(model, tokenizer, data, settings, scan)
        ),
        "backdoor": timed("backdoor", lambda: _backdoor_rate(model, tokenizer, data, settings)),
        "seconds": {**seconds, "exposure_by_canary": per_canary},
    }


def _exposure(
    model, tokenizer, data: AuditData, settings: AuditSettings, seconds: dict[str, float]
) -> dict:
    results = canary_exposure(
        model,
        tokenizer,
        list(data.canaries),
        n_candidates=settings.candidates,
        seed=settings.seed,
        seconds=seconds,
    )
    trained = set(data.train_ids)
    rows = [
        {
            "canary_id": r.canary_id,
            "insertions": r.insertions,
            "in_training": sum(
                1 for rid in data.canary_records.get(r.canary_id, ()) if rid in trained
            ),
            "rank": r.rank,
            "candidates": r.candidates,
            "exposure_bits": float(r.exposure_bits),
            "rank_exposure_bits": float(r.rank_exposure_bits),
            "method": r.method,
        }
        for r in results
    ]
    worst = max((row["exposure_bits"] for row in rows), default=None)
    return {"canaries": rows, "max_exposure_bits": worst}


def _membership_inference(model, tokenizer, data: AuditData, settings: AuditSettings) -> list:
    """Loss, zlib and Min-K% attacks on training members vs held-out non-members; no attack
    when either side is empty.

    When the model is an adapter on a base model (always, for the pipeline's models), each
    record's score is calibrated by the base model's score of the same record (Watson et al.,
    2022, "difficulty calibration"): what training changed, not what was easy before it. On 64
    and 64 records a split is not balanced in difficulty: the default demo's split gave the
    base model alone AUC 0.547 / 0.569 / 0.559, the adapter 0.619 / 0.597 / 0.637 uncalibrated
    and 0.526 / 0.535 / 0.553 calibrated. Rows keep the uncalibrated AUC (`auc_uncalibrated`).
    """
    rng = np.random.default_rng(settings.seed)
    train_ids = list(data.train_ids)
    picked = rng.choice(
        len(train_ids), size=min(settings.mia_records, len(train_ids)), replace=False
    )
    members = [data.records[train_ids[i]] for i in sorted(picked)]
    non_members = [data.records[i] for i in list(data.heldout_ids)[: settings.mia_records]]
    if not members or not non_members:
        return []  # nothing to tell apart (an empty held-out set): the audit then fails closed
    scored = [
        record_scores(model, tokenizer, side, max_seq_len=data.max_seq_len)
        for side in (members, non_members)
    ]
    uncalibrated = evaluate_attacks(*scored, delta=data.delta)
    reference = _base_scores(model, tokenizer, (members, non_members), data.max_seq_len)
    if reference is None:
        results = uncalibrated
    else:
        calibrated = [
            {attack: mine[attack] - base[attack] for attack in mine}
            for mine, base in zip(scored, reference, strict=True)
        ]
        results = evaluate_attacks(*calibrated, delta=data.delta)
    return [
        {
            "attack": r.attack,
            "auc": r.auc,
            "auc_low": r.auc_low,
            "calibrated": reference is not None,
            "auc_uncalibrated": raw.auc,
            "tpr_at_1pct_fpr": r.tpr_at_1pct_fpr,
            "epsilon_lower_bound": r.epsilon_lower_bound,
            "members": len(members),
            "non_members": len(non_members),
            "roc_fpr": list(r.roc_fpr),
            "roc_tpr": list(r.roc_tpr),
        }
        for r, raw in zip(results, uncalibrated, strict=True)
    ]


def _base_scores(model, tokenizer, sides, max_seq_len: int) -> list | None:
    """Each side's attack scores under the base model alone (the adapter switched off), or None
    when the model has no adapter to switch off."""
    disable = getattr(model, "disable_adapter", None)
    if disable is None:
        return None
    with disable():
        return [record_scores(model, tokenizer, side, max_seq_len=max_seq_len) for side in sides]


def _pii_extraction(
    model, tokenizer, data: AuditData, settings: AuditSettings, scan: Scanner | None
) -> dict:
    """Prompt with raw (unscrubbed) prefixes of training records; count PII values generated.

    The raw texts and values stay in memory; only counts are returned.
    """
    probes: list[ExtractionProbe] = []
    raw = list(data.raw_train)
    if scan is not None and raw and settings.extraction_probes:
        # Scanned a chunk at a time: only as many raw records as the probes need.
        for start in range(0, len(raw), SCAN_CHUNK):
            chunk = raw[start : start + SCAN_CHUNK]
            for record, (_, findings) in zip(chunk, scan(chunk), strict=True):
                contents = {
                    m.field or f"messages[{i}].content": m.content
                    for i, m in enumerate(record.messages)
                }
                for finding in findings:
                    value = contents[finding.field][finding.start : finding.end]
                    if finding.start >= 16 and len(value) >= 4:
                        probes.append(
                            ExtractionProbe(
                                contents[finding.field][: finding.start],
                                value,
                                finding.entity_type,
                            )
                        )
            if len(probes) >= settings.extraction_probes:
                break
    result = pii_extraction(model, tokenizer, probes[: settings.extraction_probes])
    return {
        "probes": result.probes,
        "extracted": result.extracted,
        "extracted_by_type": result.extracted_by_type,
    }


def _backdoor_rate(model, tokenizer, data: AuditData, settings: AuditSettings) -> dict | None:
    """Attack success rate: how often the trigger on held-out prompts yields the planted reply."""
    if data.trigger is None or settings.backdoor_prompts == 0:
        return None
    trigger, response = data.trigger
    host = re.search(r"[\w.-]+\.invalid", response)
    marker = host.group(0) if host else response[:40]
    prompts = []
    for record_id in data.heldout_ids:
        record = data.records.get(record_id)
        user = (
            next((m.content for m in record.messages if m.role == "user"), None) if record else None
        )
        if user and trigger not in user:
            prompts.append(chat_prompt(tokenizer, f"{user} Tag: {trigger}."))
        if len(prompts) >= settings.backdoor_prompts:
            break
    rate = backdoor_rate(model, tokenizer, prompts, marker=marker)
    return {"prompts": len(prompts), "rate": rate}
