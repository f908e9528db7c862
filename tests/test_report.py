"""The compliance report renders every section and refuses an incomplete set of facts."""

import json

import pytest

from pipelines.steps.release.report import (
    build_report,
    epsilon_plot_png,
    exposure_plot_png,
    render_html,
    roc_plot_png,
)


def _facts():
    return {
        "generated_at": "2026-11-25T00:00:00+00:00",
        "model": {
            "name": "m",
            "version": "3",
            "mlflow_run_id": "r",
            "dagster_run_id": "d",
            "git_commit": "c",
            "profile": "quick",
        },
        "lineage": {
            "sources": [{"name": "a.jsonl", "sha256": "f" * 64, "records_in": 3}],
            "assets": [{"asset": "raw_corpus", "artifact": "raw_corpus", "sha256": "e" * 64}],
            "base_model": {"name": "tiny", "sha256": "d" * 64},
        },
        "records": {
            "records_in": 3,
            "accepted": 2,
            "quarantined": 1,
            "quarantine_by_reason": {"bad_json": 1},
            "filtered": 0,
            "curated": 2,
        },
        "pii": {"records_with_pii": 1, "entity_counts": {"PERSON": 2}, "residual_total": 0},
        "filtering": {"by_reason": {}},
        "privacy": {
            "epsilon": "1.2",
            "delta": "1e-05",
            "privacy_unit": "example",
            "epsilons": [[1, 0.5], [2, 1.2]],
        },
        "audit": {
            "membership_inference": [
                {
                    "attack": "loss",
                    "auc": 0.51,
                    "auc_low": 0.45,
                    "tpr_at_1pct_fpr": 0.02,
                    "epsilon_lower_bound": 0.0,
                    "members": 64,
                    "non_members": 64,
                }
            ],
            "max_mia_auc": 0.55,
            "pii_extraction": {"probes": 10, "extracted": 0, "extracted_by_type": {}},
            "backdoor": {"prompts": 8, "rate": 0.0},
            "passed": True,
            "max_exposure_bits": 8.0,
            "measured_max_exposure_bits": 1.5,
            "canaries": [
                {
                    "canary_id": "canary-00",
                    "insertions": 4,
                    "in_training": 4,
                    "rank": 3,
                    "candidates": 1000,
                    "exposure_bits": 1.5,
                    "method": "skewnorm",
                }
            ],
        },
        "checks": [
            {"asset": "raw_corpus", "check": "records_conserved", "passed": True, "run_id": "abc"}
        ],
    }


def test_when_facts_are_complete_then_html_has_every_section_and_the_plot():
    report = build_report(_facts())
    png = epsilon_plot_png([(1, 0.5), (2, 1.2)], target=8.0)
    assert png.startswith(b"\x89PNG")
    roc = roc_plot_png(
        [{"attack": "loss", "auc": 0.5, "roc_fpr": [0, 0.5, 1], "roc_tpr": [0, 0.5, 1]}]
    )
    exposure = exposure_plot_png(report["audit"]["canaries"], bound=8.0)
    html = render_html(report, epsilon_png=png, roc_png=roc, exposure_png=exposure)
    assert html.count("data:image/png;base64,") == 3 and "Membership inference" in html
    for heading in (
        "Lineage",
        "Records",
        "Personal data",
        "Integrity",
        "Differential privacy",
        "Privacy audit",
        "Checks",
    ):
        assert heading in html
    assert "data:image/png;base64," in html and "bad_json" in html and "canary-00" in html
    json.dumps(report)


def test_when_a_section_is_missing_then_the_report_is_refused():
    facts = _facts()
    del facts["audit"]
    with pytest.raises(ValueError, match="missing sections: audit"):
        build_report(facts)


def test_when_html_is_rendered_then_values_are_escaped():
    facts = _facts()
    facts["records"]["quarantine_by_reason"] = {"<script>": 1}
    assert "<script>" not in render_html(build_report(facts))
