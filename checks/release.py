"""Checks on the release: the registered version holds no pickle, the report exists."""

from pathlib import Path

import dagster as dg

from assets.registry import registered_model
from assets.report import compliance_report
from checks.ingestion import _result
from pipelines.steps.release import gates
from resources import MLflowRegistry
from resources.registry import RegistryError, assert_no_pickle


@dg.asset_check(asset=registered_model, blocking=True)
def registered_artifacts_safe(
    registered_model: dict, registry: MLflowRegistry
) -> dg.AssetCheckResult:
    """The registered version's files are safetensors, JSON and text only (no pickle)."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="sovtune-verify-") as tmp:
        bundle = registry.download(registered_model["version"], Path(tmp))
        try:
            assert_no_pickle(bundle)
            gate = gates.GateResult(True, "only safetensors, JSON and text files", {})
        except RegistryError as exc:
            gate = gates.GateResult(False, str(exc), {})
        has_adapter = (bundle / "adapter" / "adapter_model.safetensors").is_file()
    if not has_adapter:
        gate = gates.GateResult(False, "adapter_model.safetensors missing from the version", {})
    return _result(gate)


@dg.asset_check(asset=compliance_report, blocking=True)
def report_complete(compliance_report: dict) -> dg.AssetCheckResult:
    """Both report files exist at their final paths and the HTML embeds the epsilon plot."""
    html = Path(compliance_report["html"])
    ok = html.is_file() and Path(compliance_report["json"]).is_file()
    has_plot = ok and "data:image/png;base64," in html.read_text(encoding="utf-8")
    return _result(
        gates.GateResult(ok and has_plot, f"html and json written; plot embedded: {has_plot}", {})
    )
