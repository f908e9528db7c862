"""The rules behind every asset check, as pure functions.

Each gate takes the facts it judges (counts, metrics) and returns a `GateResult` stating the
measured value and the threshold, so the Dagster check is one line of wiring and each rule can
be tested without Dagster.
"""

import math
from dataclasses import dataclass, field
from typing import Any

RECORD_SCHEMA = {
    "id": "str",
    "source_file": "str",
    "source_line": "int64",
    "format": "str",
    "messages": "str",
    "subject": "str",
    "source": "str",
    "language": "str",
    "text": "str",
}


@dataclass(frozen=True)
class GateResult:
    """The verdict of one rule, with what was measured and against which threshold."""

    passed: bool
    description: str
    metadata: dict[str, Any] = field(default_factory=dict)


def conservation(
    *, records_in: int, accepted: int, quarantined: int, filtered: int = 0
) -> GateResult:
    """No record may vanish: records in = accepted + quarantined + filtered."""
    accounted = accepted + quarantined + filtered
    return GateResult(
        passed=records_in == accounted,
        description=f"records in {records_in}, accounted for {accounted} "
        f"(accepted {accepted}, quarantined {quarantined}, filtered {filtered})",
        metadata={"records_in": records_in, "accounted": accounted, "lost": records_in - accounted},
    )


def non_empty(*, count: int, what: str) -> GateResult:
    """A stage that produces zero records has nothing to pass on."""
    return GateResult(count > 0, f"{count} {what}", {"count": count})


def schema_matches(columns: dict[str, str]) -> GateResult:
    """The record table has exactly the columns of the record type, with compatible types."""
    missing = sorted(set(RECORD_SCHEMA) - set(columns))
    extra = sorted(set(columns) - set(RECORD_SCHEMA))
    wrong = sorted(
        name
        for name, kind in RECORD_SCHEMA.items()
        if name in columns and kind == "int64" and "int" not in columns[name]
    )
    ok = not (missing or extra or wrong)
    return GateResult(
        ok,
        "schema matches the record type"
        if ok
        else f"missing {missing}, unexpected {extra}, wrong type {wrong}",
        {"missing": ", ".join(missing), "unexpected": ", ".join(extra), "wrong": ", ".join(wrong)},
    )


def no_residual_pii(residual: dict[str, int]) -> GateResult:
    """A re-scan of the scrubbed corpus finds nothing above the threshold."""
    total = sum(residual.values())
    by_type = ", ".join(f"{k}={v}" for k, v in sorted(residual.items()) if v) or "none"
    return GateResult(total == 0, f"{total} residual findings ({by_type})", {"residual": total})


EPSILON_FLOAT_TOLERANCE = 1e-9
"""Relative slack of the epsilon gate: float rounding only (the accountant's epsilon is the
upper bound the noise multiplier was calibrated to stay under)."""


def epsilon_within_budget(*, epsilon: float, target_epsilon: float) -> GateResult:
    """The accountant's epsilon does not exceed the configured target (float tolerance only)."""
    ok = math.isfinite(epsilon) and epsilon <= target_epsilon * (1 + EPSILON_FLOAT_TOLERANCE)
    return GateResult(
        ok,
        f"epsilon spent {epsilon:.3f} vs budget {target_epsilon:g}",
        {"epsilon": float(epsilon), "target_epsilon": float(target_epsilon)},
    )


def lora_tensors_trained(*, total: int, changed: int, finite: bool) -> GateResult:
    """Every LoRA tensor received a nonzero clipped gradient (before noise: the noise alone
    moves every tensor), and all are finite."""
    ok = total > 0 and changed == total and finite
    return GateResult(
        ok,
        f"{changed}/{total} LoRA tensors received a clipped gradient; finite={finite}",
        {"lora_tensors": total, "changed": changed, "finite": bool(finite)},
    )


def base_weights_frozen(*, unchanged: bool, before: str, after: str) -> GateResult:
    """Training touched only the adapter: the base weights hash the same before and after."""
    return GateResult(
        unchanged and before == after,
        "base weights unchanged" if unchanged else "base weights changed during training",
        {"base_sha256_before": before, "base_sha256_after": after},
    )


def exposure_within_bound(*, exposures: list[float], bound: float) -> GateResult:
    """Every canary's exposure is at most the bound; no canary means nothing was measured."""
    if not exposures:
        return GateResult(
            False,
            "no canaries were found in the training data, so memorization was not measured "
            "(set audit.canaries_file to the canary list, or audit.plant_canaries above 0 to "
            "let the pipeline plant them)",
            {"canaries": 0, "bound_bits": bound},
        )
    worst = max(exposures)
    return GateResult(
        worst <= bound,
        f"max canary exposure {worst:.2f} bits vs bound {bound:g} bits over {len(exposures)} "
        "canaries",
        {"max_exposure_bits": float(worst), "bound_bits": float(bound), "canaries": len(exposures)},
    )


def membership_inference_bounded(
    *, attacks: dict[str, tuple[float, float]], bound: float
) -> GateResult:
    """No attack's ROC AUC is above the bound with 95% confidence.

    Args:
        attacks: attack name -> (AUC, 95% lower bound of the AUC).
        bound: The configured `audit.max_mia_auc`.
    """
    if not attacks:
        return GateResult(False, "no membership-inference attack was run", {"bound_auc": bound})
    worst_name, (worst_auc, worst_low) = max(attacks.items(), key=lambda kv: kv[1][1])
    return GateResult(
        worst_low <= bound,
        f"strongest attack {worst_name}: AUC {worst_auc:.3f} (95% lower bound {worst_low:.3f}) "
        f"vs bound {bound:g}",
        {
            "max_auc": float(max(a for a, _ in attacks.values())),
            "max_auc_low": float(worst_low),
            "bound_auc": float(bound),
        },
    )


def no_pii_extracted(*, probes: int, extracted: int) -> GateResult:
    """The extraction attack recovered no original PII value.

    With no probe (the raw training records held no PII to begin with) nothing can be extracted.
    """
    return GateResult(
        extracted == 0,
        f"{extracted} of {probes} probed PII values generated by the model"
        if probes
        else "no extraction probe could be built (no PII found in the training records)",
        {"probes": probes, "extracted": extracted},
    )
