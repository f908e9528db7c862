"""Privacy audit across epsilon: canary exposure and membership-inference AUC for
epsilon in {1, 4, 8, no DP} on the bundled corpus, and the audit's cost on this machine.

Reads the curated corpus, raw corpus, ground truth and converted base model that a default run
(`make demo`) left under the data root, trains one LoRA adapter per epsilon with the default
profile's training settings (the same split, steps, batch and sequence length), and runs the
pipeline's own audit (`pipelines.steps.audit.suite.audit_model`) on each. Prints one table row
per model, the exposure of every canary (ids and numbers only, never a secret), the seconds each
audit part took and the load average while it ran; writes nothing but adapters under a temporary
folder (and the rows to --json).

    .venv/bin/python benchmarks/audit_sweep.py --data-root var [--epsilons 1,4,8,none] \
        [--json benchmarks/out/audit_sweep.json]
"""

import argparse
import json
import math
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

from pipelines.steps.audit.canaries import CanarySpec  # noqa: E402
from pipelines.steps.audit.suite import AuditData, AuditSettings, audit_model  # noqa: E402
from pipelines.steps.config import PipelineConfig, TrainingConfig, load_config  # noqa: E402
from pipelines.steps.records import Record, frame_to_records  # noqa: E402
from pipelines.steps.storage import read_parquet  # noqa: E402
from pipelines.steps.synthetic.corpus import GroundTruth, read_ground_truth  # noqa: E402
from pipelines.steps.training import dp_lora  # noqa: E402

CANARY_KEYS = (
    "canary_id",
    "insertions",
    "in_training",
    "method",
    "rank",
    "candidates",
    "exposure_bits",
    "rank_exposure_bits",
)


@dataclass(frozen=True)
class SweepInputs:
    """What a finished default run left under the data root, read once for every epsilon."""

    curated: list[Record]
    raw: dict[str, Record]
    truth: GroundTruth
    model_dir: Path
    canaries: list[CanarySpec]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default="var", help="Data root of a finished default run.")
    parser.add_argument("--profile", default="default")
    parser.add_argument("--epsilons", default="1,4,8,none", help="Comma list; 'none' = no DP.")
    parser.add_argument("--steps", type=int, default=None, help="Override training.steps.")
    parser.add_argument("--json", type=Path, default=None, help="Also write the rows here.")
    return parser.parse_args()


def load_inputs(root: Path, model_name: str) -> SweepInputs:
    """The curated and raw corpora, the ground truth (canaries, trigger) and the base model."""
    curated = frame_to_records(read_parquet(root / "curated" / "curated_corpus.parquet"))
    raw = {r.id: r for r in frame_to_records(read_parquet(root / "raw" / "raw_corpus.parquet"))}
    truth = read_ground_truth(root / "raw" / "ground_truth.json")
    canaries = [
        CanarySpec(
            canary_id=c.canary_id,
            prefix=c.prefix,
            secret=c.secret,
            alphabet=c.alphabet,
            length=c.length,
            insertions=c.insertions,
        )
        for c in truth.canaries
    ]
    return SweepInputs(curated, raw, truth, root / "models" / model_name, canaries)


def audit_settings(cfg: PipelineConfig) -> AuditSettings:
    """The profile's audit settings, without PII extraction probes."""
    return AuditSettings(
        candidates=cfg.audit.candidates,
        mia_records=cfg.audit.mia_records,
        extraction_probes=0,
        backdoor_prompts=cfg.audit.backdoor_prompts,
        seed=cfg.audit.seed,
    )


def training_config(
    cfg: PipelineConfig, token: str, steps: int | None
) -> tuple[TrainingConfig, bool]:
    """The profile's training settings for one --epsilons entry, and whether it is private."""
    private = token.strip().lower() != "none"
    update = {"noise_seed": 0}
    if private:
        update["target_epsilon"] = float(token)
    if steps:
        update["steps"] = steps
    return cfg.training.model_copy(update=update), private


def train_and_audit(
    inputs: SweepInputs, tcfg: TrainingConfig, settings: AuditSettings, *, private: bool
) -> dict[str, Any]:
    """Train one adapter in a temporary folder, audit it and return its table row."""
    with tempfile.TemporaryDirectory() as tmp:
        started = time.monotonic()
        result = dp_lora.train_dp_lora(
            inputs.curated,
            model_dir=inputs.model_dir,
            cfg=tcfg,
            out_dir=Path(tmp) / "adapter",
            private=private,
            progress=False,
        )
        train_s = time.monotonic() - started
        model, tokenizer = dp_lora.load_adapter_model(
            inputs.model_dir, result.adapter_dir, expected_sha256=result.adapter_sha256
        )
        truth = inputs.truth
        data = AuditData(
            canaries=inputs.canaries,
            canary_records={c.canary_id: c.record_ids for c in truth.canaries},
            records={r.id: r for r in inputs.curated},
            train_ids=result.train_ids,
            heldout_ids=result.heldout_ids,
            raw_train=[inputs.raw[i] for i in result.train_ids if i in inputs.raw],
            trigger=(truth.trigger, truth.malicious_response) if truth.trigger else None,
            max_seq_len=tcfg.max_seq_len,
            delta=tcfg.target_delta,
        )
        started = time.monotonic()
        audit = audit_model(model, tokenizer, data, settings)
        audit_s = time.monotonic() - started
        load = os.getloadavg()
    return sweep_row(tcfg, result, audit, private=private, seconds=(train_s, audit_s), load=load)


def sweep_row(
    tcfg: TrainingConfig,
    result: dp_lora.TrainingResult,
    audit: dict[str, Any],
    *,
    private: bool,
    seconds: tuple[float, float],
    load: tuple[float, float, float],
) -> dict[str, Any]:
    """One model's row: privacy parameters, losses, exposures, MIA, backdoor and costs."""
    train_s, audit_s = seconds
    exposures = [c["exposure_bits"] for c in audit["canaries"]]
    return {
        "target_epsilon": tcfg.target_epsilon if private else None,
        "epsilon": result.epsilon,
        "noise_multiplier": result.noise_multiplier,
        "steps": result.steps,
        "heldout_loss_before": result.heldout_loss_before,
        "heldout_loss_after": result.heldout_loss_after,
        "max_exposure_bits": audit["max_exposure_bits"],
        "mean_exposure_bits": sum(exposures) / len(exposures),
        "canaries": [{key: c[key] for key in CANARY_KEYS} for c in audit["canaries"]],
        "exposure_by_insertions": {
            str(n): max(
                (c["exposure_bits"] for c in audit["canaries"] if c["insertions"] == n),
                default=None,
            )
            for n in sorted({c["insertions"] for c in audit["canaries"]})
        },
        "max_mia_auc": max(a["auc"] for a in audit["membership_inference"]),
        "mia": {a["attack"]: a["auc"] for a in audit["membership_inference"]},
        "empirical_epsilon": max(a["epsilon_lower_bound"] for a in audit["membership_inference"]),
        "backdoor_rate": None if audit["backdoor"] is None else audit["backdoor"]["rate"],
        "train_seconds": round(train_s, 1),
        "audit_seconds": round(audit_s, 1),
        "audit_part_seconds": audit["seconds"],
        "load_average_1_5_15_after_audit": [round(x, 2) for x in load],
    }


def epsilon_label(row: dict[str, Any]) -> str:
    return "no DP" if row["target_epsilon"] is None else f"{row['target_epsilon']:g}"


def print_summary_table(rows: list[dict[str, Any]]) -> None:
    """One line per model: epsilon, sigma, loss, exposure, MIA AUC, backdoor, audit time."""
    print(
        "| target ε | accountant ε | σ | held-out loss | max / mean exposure (bits) | "
        "max exposure ×1/×4/×16 | max MIA AUC | empirical ε ≥ | backdoor rate | audit s |"
    )
    print("|---|---:|---:|---:|---:|---|---:|---:|---:|---:|")
    for row in rows:
        eps = epsilon_label(row)
        acc = "∞" if math.isinf(row["epsilon"]) else f"{row['epsilon']:.2f}"
        by_n = "/".join(
            "–" if v is None else f"{v:.1f}" for v in row["exposure_by_insertions"].values()
        )
        backdoor = "–" if row["backdoor_rate"] is None else f"{row['backdoor_rate']:.2f}"
        print(
            f"| {eps} | {acc} | {row['noise_multiplier']:.3f} | {row['heldout_loss_after']:.3f} | "
            f"{row['max_exposure_bits']:.2f} / {row['mean_exposure_bits']:.2f} | {by_n} | "
            f"{row['max_mia_auc']:.3f} | "
            f"{row['empirical_epsilon']:.2f} | {backdoor} | {row['audit_seconds']:.0f} |"
        )


def print_canary_table(rows: list[dict[str, Any]]) -> None:
    """Each canary's exposure and rank per model (ids and numbers only)."""
    print("\n| target ε | " + " | ".join(c["canary_id"] for c in rows[0]["canaries"]) + " |")
    print("|---|" + "---:|" * len(rows[0]["canaries"]))
    print(
        "| insertions / method | "
        + " | ".join(f"×{c['insertions']} {c['method']}" for c in rows[0]["canaries"])
        + " |"
    )
    for row in rows:
        cells = " | ".join(f"{c['exposure_bits']:.2f} (rank {c['rank']})" for c in row["canaries"])
        print(f"| {epsilon_label(row)} | {cells} |")


def print_cost_table(rows: list[dict[str, Any]]) -> None:
    """Seconds per audit part and the load average after each audit."""
    print("\n| target ε | exposure | membership inference | PII extraction | backdoor | load avg |")
    print("|---|---:|---:|---:|---:|---|")
    for row in rows:
        part = row["audit_part_seconds"]
        print(
            f"| {epsilon_label(row)} | {part['exposure']:.0f} s | "
            f"{part['membership_inference']:.0f} s | "
            f"{part['pii_extraction']:.0f} s | {part['backdoor']:.0f} s | "
            f"{'/'.join(str(x) for x in row['load_average_1_5_15_after_audit'])} |"
        )


def print_loss_ratios(rows: list[dict[str, Any]]) -> None:
    """The base model's held-out loss, and each private model's loss over the no-DP one."""
    base = rows[0]["heldout_loss_before"]
    print(f"\nheld-out loss of the untouched base model: {base:.4f}")
    no_dp = next((r for r in rows if r["target_epsilon"] is None), None)
    for row in rows:
        if no_dp is not None and row is not no_dp:
            ratio = row["heldout_loss_after"] / no_dp["heldout_loss_after"]
            print(f"held-out loss at target eps {row['target_epsilon']:g} / no DP: {ratio:.3f}")


def main() -> None:
    args = parse_args()

    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    cfg = load_config(args.profile)
    root = Path(args.data_root)
    inputs = load_inputs(root, cfg.model.name)
    settings = audit_settings(cfg)
    print(
        f"data root {root}: {len(inputs.curated)} curated records, {len(inputs.canaries)} canaries"
    )
    print(f"candidates per canary {settings.candidates}, load average {os.getloadavg()}")
    print(f"torch threads {torch.get_num_threads()}, device cpu, profile {args.profile}")
    rows = []
    for token in args.epsilons.split(","):
        tcfg, private = training_config(cfg, token, args.steps)
        rows.append(train_and_audit(inputs, tcfg, settings, private=private))
        print(json.dumps(rows[-1]), flush=True)

    print()
    print_summary_table(rows)
    print_canary_table(rows)
    print_cost_table(rows)
    print_loss_ratios(rows)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
