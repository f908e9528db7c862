"""The compliance report: one JSON document for machines and one HTML page for people.

The report is built only from facts the pipeline already holds as counts, ids, hashes and
metrics; it never receives a record's text, so it cannot leak a PII value or a canary.
"""

import base64
import io
import json
from typing import Any

import jinja2

_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("pipelines.steps.release", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
)

REQUIRED_SECTIONS = (
    "model",
    "lineage",
    "records",
    "pii",
    "filtering",
    "privacy",
    "audit",
    "checks",
)


def _pyplot():
    """matplotlib's pyplot on the headless Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    return plt


def _png(fig) -> bytes:
    """The figure as PNG bytes (no timestamp metadata, so the same plot gives the same bytes)."""
    from matplotlib import pyplot as plt

    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", metadata={"Software": None})
    plt.close(fig)
    return buffer.getvalue()


def epsilon_plot_png(epsilons: list[tuple[int, float]], *, target: float) -> bytes:
    """A PNG line plot of epsilon spent over training steps, with the target as a dashed line."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.2), dpi=100)
    if epsilons:
        steps, values = zip(*epsilons, strict=True)
        ax.plot(steps, values, marker="o", markersize=3, label="epsilon spent")
    ax.axhline(target, linestyle="--", color="tab:red", label=f"target {target:g}")
    ax.set_xlabel("DP-SGD step")
    ax.set_ylabel("epsilon")
    ax.set_title("Privacy budget spent over training")
    ax.legend(loc="lower right")
    return _png(fig)


def roc_plot_png(attacks: list[dict]) -> bytes:
    """A PNG of the membership-inference ROC curves, with the chance diagonal."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4.2, 4.2), dpi=100)
    for attack in attacks:
        ax.plot(
            attack["roc_fpr"],
            attack["roc_tpr"],
            label=f"{attack['attack']} (AUC {attack['auc']:.2f})",
        )
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="chance")
    ax.set_xlabel("false-positive rate")
    ax.set_ylabel("true-positive rate")
    ax.set_title("Membership inference")
    ax.legend(loc="lower right")
    return _png(fig)


def exposure_plot_png(canaries: list[dict], *, bound: float) -> bytes:
    """A PNG bar chart of each canary's exposure (bits), labelled by insertions, with the bound."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.2), dpi=100)
    labels = [f"{c['canary_id']}\n×{c['insertions']}" for c in canaries]
    ax.bar(labels, [c["exposure_bits"] for c in canaries], color="tab:blue")
    ax.axhline(bound, linestyle="--", color="tab:red", label=f"bound {bound:g} bits")
    ax.set_ylabel("exposure (bits)")
    ax.set_title("Canary exposure (insertions in the corpus)")
    ax.legend(loc="upper left")
    return _png(fig)


def build_report(facts: dict[str, Any]) -> dict[str, Any]:
    """Validate the facts and return the JSON report (a plain dict).

    Raises:
        ValueError: naming the missing section, so a half-built report is never written.
    """
    missing = [name for name in REQUIRED_SECTIONS if name not in facts]
    if missing:
        raise ValueError(f"compliance report is missing sections: {', '.join(missing)}")
    return {"schema": "sovtune.compliance_report/1", **facts}


def render_html(
    report: dict[str, Any],
    *,
    epsilon_png: bytes | None = None,
    roc_png: bytes | None = None,
    exposure_png: bytes | None = None,
) -> str:
    """Render the HTML page of a report built by `build_report`."""

    def encoded(png: bytes | None) -> str | None:
        return base64.b64encode(png).decode("ascii") if png else None

    return _ENV.get_template("report.html.j2").render(
        report=report,
        epsilon_plot=encoded(epsilon_png),
        roc_plot=encoded(roc_png),
        exposure_plot=encoded(exposure_png),
        report_json=json.dumps(report, indent=2, sort_keys=True, ensure_ascii=False),
    )


def utility_facts(utility: dict[str, Any] | None, controls: list[dict]) -> dict[str, Any] | None:
    """The report's utility section beside privacy: the base model's and the DP adapter's loss
    on the public eval set, the plan's prediction and, when the audit trained one, the
    non-private control's loss on the same set (all public-set figures: the losses on private
    records are never published). None for a run from before the utility check."""
    if not utility:
        return None
    if "error" in utility:
        return {"measured": False, "error": utility["error"], "action": utility["action"]}
    base, adapter = utility["base_loss"], utility["adapter_loss"]
    control = next((c.get("public_loss") for c in controls if c.get("name") == "non_private"), None)
    share = utility.get("predicted_share")
    facts = {
        "measured": True,
        **{
            key: utility[key]
            for key in (
                "eval_set",
                "eval_records",
                "eval_sha256",
                "gain",
                "min_gain",
                "min_gain_source",
                "action",
                "below_threshold",
            )
        },
        "base_loss": base,
        "adapter_loss": adapter,
        "predicted_share": share,
        # without a control the plan's share is turned into a loss with its calibration's
        # non-private gain; with one, with the control's measured gain
        "predicted_adapter_loss": (
            None
            if share is None
            else base - share * (base - control)
            if control is not None
            else base - utility["predicted_gain"]
        ),
        "control_loss": control,
        "measured_share": (
            (base - adapter) / (base - control)
            if control is not None and base - control > 0
            else None
        ),
    }
    return facts
