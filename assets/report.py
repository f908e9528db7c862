"""Stage 7: the compliance report per model version, for people (HTML) and machines (JSON)."""

from datetime import UTC, datetime

import dagster as dg

from assets.metadata import OWNERS_PRIVACY, latest_check_results
from pipelines.steps.ingest.erasure import erasure_facts, read_log
from pipelines.steps.integrity.counts import record_counts
from pipelines.steps.release.report import (
    build_report,
    epsilon_plot_png,
    exposure_plot_png,
    render_html,
    roc_plot_png,
    utility_facts,
)
from pipelines.steps.storage import write_json, write_text
from pipelines.steps.training.ledger import ledger_summary
from resources import CorpusStorage, DPTrainer, MLflowRegistry


@dg.asset(
    group_name="release",
    kinds={"html", "json", "mlflow"},
    owners=OWNERS_PRIVACY,
    code_version="1",
)
def compliance_report(
    context: dg.AssetExecutionContext,
    training_corpus: dict,
    dp_lora_adapter: dict,
    privacy_audit: dict,
    registered_model: dict,
    base_model: dict,
    storage: CorpusStorage,
    registry: MLflowRegistry,
    trainer: DPTrainer,
) -> dict:
    """What happened to every record and what the model was audited for, per model version.

    Lineage from each landing file (sha256) to the model version, records in / quarantined /
    scrubbed / filtered, DP parameters and epsilon over steps, the audit, and every check's
    result; when data subjects were erased on request, an "Erasure requests" section (counts,
    affected model versions, what DP guaranteed those subjects meanwhile). Stored under the
    reports zone and in the version's MLflow run.
    """
    version = registered_model["version"]
    checks = latest_check_results(context, registry.report_checks)
    report = build_report(
        _report_facts(
            context.run_id,
            training_corpus,
            dp_lora_adapter,
            privacy_audit,
            registered_model,
            base_model,
            checks,
            target_epsilon=trainer.target_epsilon,
            lifetime_delta=trainer.config.lifetime_delta_bound,
            erasure=erasure_facts(read_log(storage.raw)),
        )
    )
    folder = storage.reports / registered_model["name"] / f"v{version}"
    json_path, html_path = folder / "report.json", folder / "report.html"
    json_sha = write_json(report, json_path)
    html = _report_html(report, dp_lora_adapter, privacy_audit, target=trainer.target_epsilon)
    html_sha = write_text(html, html_path)
    artifact_uri = registry.log_report(registered_model["mlflow_run_id"], [json_path, html_path])
    approved = all(c["passed"] for c in checks) and bool(privacy_audit["passed"])
    registry.set_version_tags(
        version,
        {
            # relative to the data root (sovtune report resolves it), so the root can move
            "sovtune.report": storage.stored(html_path),
            "sovtune.approved": "true" if approved else "false",
        },
    )
    if approved:
        registry.approve(version)
    context.add_output_metadata(
        {
            "report_html": dg.MetadataValue.path(storage.stored(html_path)),
            "report_json": dg.MetadataValue.path(storage.stored(json_path)),
            "mlflow_artifacts": storage.stored(artifact_uri),
            "model_version": f"{registered_model['name']} v{version}",
            "audit_passed": bool(privacy_audit["passed"]),
            "approved": approved,
        }
    )
    return {
        "html": str(html_path),
        "json": str(json_path),
        "sha256": json_sha,
        "html_sha256": html_sha,
        "mlflow_artifacts": artifact_uri,
        "model": registered_model["name"],
        "version": version,
        "approved": approved,
    }


def _report_facts(
    run_id: str,
    training_corpus: dict,
    dp_lora_adapter: dict,
    privacy_audit: dict,
    registered_model: dict,
    base_model: dict,
    checks: list[dict],
    *,
    target_epsilon: float,
    lifetime_delta: float | None = None,
    erasure: dict | None = None,
) -> dict:
    """The facts `build_report` takes, gathered from the upstream assets' outputs (and the
    erasure log's counts, `pipelines/steps/ingest/erasure.py`, when a request was made)."""
    raw_corpus, scrubbed_corpus, curated_corpus = (
        training_corpus[zone] for zone in ("raw", "scrubbed", "curated")
    )
    residual = next(
        (c["measured"].get("residual") for c in checks if c["check"] == "no_residual_pii"), None
    )
    return {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "model": {
            "name": registered_model["name"],
            "version": registered_model["version"],
            "mlflow_run_id": registered_model["mlflow_run_id"],
            "dagster_run_id": run_id,
            "git_commit": registered_model["git_commit"],
            "profile": registered_model["profile"],
        },
        "lineage": _lineage_facts(training_corpus, raw_corpus, registered_model, base_model),
        "records": _record_facts(raw_corpus, curated_corpus),
        "pii": {
            "records_with_pii": scrubbed_corpus["records_with_pii"],
            "entity_counts": scrubbed_corpus["entity_counts"],
            "residual_total": residual if residual is not None else "not measured",
        },
        "filtering": {
            "by_reason": curated_corpus["filtered_by_reason"],
            "by_screen": curated_corpus.get("by_screen", {}),
            "dropped": curated_corpus.get("dropped"),
            "quarantined": curated_corpus.get("quarantined"),
        },
        "privacy": {
            **registered_model["privacy"],
            "target_epsilon": target_epsilon,
            "epsilons": dp_lora_adapter["epsilons"],
        },
        "audit": _audit_facts(privacy_audit),
        "utility": utility_facts(dp_lora_adapter.get("utility"), privacy_audit.get("controls", [])),
        "checks": checks,
        "ledger": _ledger_by_source(
            _with_control_charges(dp_lora_adapter, privacy_audit), lifetime_delta=lifetime_delta
        ),
        "budget": _budget_facts(dp_lora_adapter, privacy_audit, lifetime_delta=lifetime_delta),
        **({"erasure": erasure} if erasure and erasure["requests"] else {}),
    }


def _lineage_facts(
    training_corpus: dict, raw_corpus: dict, registered_model: dict, base_model: dict
) -> dict:
    """From each drop and landing file (sha256) through every asset's artifact to the model."""
    return {
        "snapshot_sha256": training_corpus["snapshot_sha256"],
        "drops": [
            {k: d[k] for k in ("drop", "drop_sha256", "records_in", "kept")}
            for d in training_corpus["drops"]
        ],
        "sources": [
            {
                "name": s["name"],
                "sha256": s["sha256"],
                "records_in": s["records_in"],
                "drop": s["drop"],
            }
            for s in raw_corpus["sources"]
        ],
        "assets": [
            {"asset": name, "artifact": name, "sha256": sha}
            for name, sha in registered_model["fingerprints"].items()
        ],
        "base_model": {"name": base_model["name"], "sha256": base_model["sha256"]},
    }


def _record_facts(raw_corpus: dict, curated_corpus: dict) -> dict:
    """Records in, accepted, quarantined at ingest, filtered and curated (counts only), and the
    same in the one vocabulary of `pipelines/steps/integrity/counts.py`."""
    return {
        "counts": record_counts(raw_corpus, curated_corpus),
        "records_in": raw_corpus["records_in"],
        "accepted": raw_corpus["accepted"],
        "quarantined": raw_corpus["quarantined"],
        "quarantine_by_reason": raw_corpus["quarantine_by_reason"],
        "filtered": curated_corpus["filtered"],
        "curated": curated_corpus["kept"],
        **({"steward": curated_corpus["steward"]} if "steward" in curated_corpus else {}),
    }


def _audit_facts(privacy_audit: dict) -> dict:
    """The audit's verdict, bounds and measurements (ROC curves left to the plot)."""
    return {
        "passed": bool(privacy_audit["passed"]),
        "max_exposure_bits": privacy_audit["bound_bits"],
        "measured_max_exposure_bits": privacy_audit["max_exposure_bits"],
        "canaries": privacy_audit["canaries"],
        "membership_inference": [
            {k: v for k, v in a.items() if not k.startswith("roc_")}
            for a in privacy_audit["membership_inference"]
        ],
        "max_mia_auc": privacy_audit["max_mia_auc_bound"],
        "pii_extraction": privacy_audit["pii_extraction"],
        "backdoor": privacy_audit["backdoor"],
        "controls": privacy_audit.get("controls", []),
    }


def _report_html(report: dict, dp_lora_adapter: dict, privacy_audit: dict, *, target: float) -> str:
    """The report as an HTML page with its epsilon, ROC and exposure plots."""
    png = epsilon_plot_png([tuple(x) for x in dp_lora_adapter["epsilons"]], target=target)
    roc = roc_plot_png(privacy_audit["membership_inference"])
    exposure = exposure_plot_png(privacy_audit["canaries"], bound=privacy_audit["bound_bits"])
    return render_html(report, epsilon_png=png, roc_png=roc, exposure_png=exposure)


def _ledger_by_source(dp_lora_adapter: dict, *, lifetime_delta: float | None = None) -> list[dict]:
    """The privacy budget ledger per data source (record-level runs) and for the most charged
    data subjects (user-level runs): the tight ε composed at the lifetime δ, the simple sums,
    the runs and controls charged (see `ledger.ledger_summary`)."""
    summary = _ledger_summary(dp_lora_adapter, (), lifetime_delta)
    return summary["sources"] + summary["top_subjects"]


def _budget_facts(
    dp_lora_adapter: dict, privacy_audit: dict, *, lifetime_delta: float | None = None
) -> dict:
    """How the ledger composes, what the lifetime budget bounds, how many data subjects it
    charges, and how each control model the audit trained was treated."""
    controls = [c["name"] for c in privacy_audit.get("controls", []) if not c.get("refused")]
    summary = _ledger_summary(
        _with_control_charges(dp_lora_adapter, privacy_audit), controls, lifetime_delta
    )
    return {k: v for k, v in summary.items() if k not in ("sources", "top_subjects")}


def _with_control_charges(dp_lora_adapter: dict, privacy_audit: dict) -> dict:
    """The adapter's summary with the ledger as the audit left it (its DP control charged), when
    the audit charged one; else the ledger as training settled it."""
    rows = privacy_audit.get("budget_ledger")
    return {**dp_lora_adapter, "budget_ledger": rows} if rows else dp_lora_adapter


def _ledger_summary(dp_lora_adapter: dict, controls, lifetime_delta: float | None) -> dict:
    rows = dp_lora_adapter.get("budget_ledger", [])
    if lifetime_delta is None:
        lifetime_delta = max((float(r.get("delta", 0.0)) for r in rows), default=0.0)
    return ledger_summary(
        rows,
        lifetime_epsilon=dp_lora_adapter.get("lifetime_epsilon"),
        lifetime_delta=lifetime_delta,
        controls=controls,
    )
