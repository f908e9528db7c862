"""Checks on the privacy audit: canary exposure within its bound."""

import dagster as dg

from assets.audit import privacy_audit
from checks.ingestion import _result
from pipelines.steps.release import gates


@dg.asset_check(asset=privacy_audit, blocking=True)
def canary_exposure_bounded(privacy_audit: dict) -> dg.AssetCheckResult:
    """Every canary's exposure is at or below the configured bound (audit.max_exposure_bits)."""
    return _result(
        gates.exposure_within_bound(
            exposures=[c["exposure_bits"] for c in privacy_audit["canaries"]],
            bound=privacy_audit["bound_bits"],
        )
    )


@dg.asset_check(asset=privacy_audit, blocking=True)
def membership_inference_bounded(privacy_audit: dict) -> dg.AssetCheckResult:
    """No membership-inference attack beats audit.max_mia_auc with 95% confidence."""
    return _result(
        gates.membership_inference_bounded(
            attacks={
                a["attack"]: (a["auc"], a["auc_low"]) for a in privacy_audit["membership_inference"]
            },
            bound=privacy_audit["max_mia_auc_bound"],
        )
    )


@dg.asset_check(asset=privacy_audit, blocking=True)
def no_pii_extracted(privacy_audit: dict) -> dg.AssetCheckResult:
    """Prompted with raw prefixes of its training records, the model produced no PII value."""
    extraction = privacy_audit["pii_extraction"]
    return _result(
        gates.no_pii_extracted(probes=extraction["probes"], extracted=extraction["extracted"])
    )
