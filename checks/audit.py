"""Checks on the privacy audit: canary exposure within its bound."""

import dagster as dg

from assets.audit import privacy_audit
from checks.ingestion import _result
from pipelines.steps import gates


@dg.asset_check(asset=privacy_audit, blocking=True)
def canary_exposure_bounded(privacy_audit: dict) -> dg.AssetCheckResult:
    """Every canary's exposure is at or below the configured bound (audit.max_exposure_bits)."""
    return _result(
        gates.exposure_within_bound(
            exposures=[c["exposure_bits"] for c in privacy_audit["canaries"]],
            bound=privacy_audit["bound_bits"],
        )
    )
