"""The utility check on the adapter (issue #18.4): does the DP adapter beat the base model?

The measure is the mean per-example loss (the training loss: each example's mean over its
assistant tokens) of the base model and of the base model with the DP adapter, on a **public**
eval set: records declared public (`training.utility.public_eval_file`, default the bundled
synthetic set `pipelines/config/public_eval.jsonl`, which matches the demo corpus). The gain is
base loss - adapter loss, in nats; the check compares it with `training.utility.min_gain`.

Why public data and not a noised estimate on the private held-out records: the losses on
public records are a function of the released adapter and of public data only, so publishing
them costs no epsilon and needs no noise (post-processing of the DP adapter). A Gaussian
estimate of the held-out losses would have to clip each example's loss (losses of about 1 to
8 nats) and, at the default corpus's 170 held-out records, a noise std of 0.1 nats on two
published means costs about epsilon 3 at delta 1e-5 - more than a third of a run's budget, for
a gain (0.3 nats at epsilon 8) of the size of the noise. The price of the public set is its
distribution: it measures the adapter on data like the public set, which the operator chooses.

The default threshold comes from the plan's model (`plan.expected_share`): the share s of the
non-private gain this run's noise leaves (the preset `auto`'s plan, or the same model applied
to the run's own sigma, batch, steps and LoRA size). The non-private gain itself is unknown
before a non-private run; the calibration runs of the plan reached 60% to 82% of the base loss,
so the predicted gain is s * `NON_PRIVATE_GAIN_SHARE` * base loss and the default threshold is
`PREDICTION_MARGIN` of it. Without a prediction the threshold is `DEFAULT_MIN_GAIN`.
"""

import hashlib
import json
import math
from pathlib import Path
from typing import Any

from pipelines.steps.config import PROFILE_DIR, TrainingConfig, UtilityConfig
from pipelines.steps.records import Message, Record
from pipelines.steps.release.gates import GateResult

BUNDLED_PUBLIC_EVAL = PROFILE_DIR / "public_eval.jsonl"
"""64 synthetic records of the bundled generator (seed 20261204, not the demo's 7; no canary,
trigger or duplicate), written by `scripts/public_eval.py`."""
DEFAULT_MIN_GAIN = 0.05
"""Least gain (nats) without a prediction: a measurable improvement (about 5% perplexity)."""
NON_PRIVATE_GAIN_SHARE = 0.6
"""The non-private gain as a share of the base loss in the plan's calibration runs (the lower
end: 2.45 of 4.08 nats at batch 8, 50 steps; 3.25 of 3.96 at batch 128)."""
PREDICTION_MARGIN = 0.5
"""The default threshold is this share of the predicted gain (the plan's model is off by up to
10 points of share, and the public set is not the training distribution)."""


class PublicEvalError(ValueError):
    """The public eval file cannot be read: the message names the file, line and setting."""


def public_eval_path(cfg: UtilityConfig) -> Path:
    """The declared public eval file, or the bundled synthetic one."""
    return Path(cfg.public_eval_file) if cfg.public_eval_file else BUNDLED_PUBLIC_EVAL


def read_public_eval(path: str | Path, *, limit: int | None = None) -> list[Record]:
    """The first `limit` records of a public eval JSONL file ({"id", "messages": [{"role",
    "content"}]} per line, blank lines allowed).

    Raises:
        PublicEvalError: Missing file, a line that is not such a record, or no record: naming
            the file, the line and `training.utility.public_eval_file`.
    """
    path = Path(path)
    setting = "training.utility.public_eval_file"
    if not path.is_file():
        raise PublicEvalError(f"{setting}: {path} does not exist")
    records: list[Record] = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            if limit is not None and len(records) >= limit:
                break
            try:
                row = json.loads(line)
                messages = tuple(Message(m["role"], m["content"]) for m in row["messages"])
                record_id = str(row["id"])
            except (ValueError, KeyError, TypeError) as exc:
                raise PublicEvalError(
                    f"{setting}: {path} line {number} is not a chat record "
                    f'{{"id", "messages": [{{"role", "content"}}]}} ({type(exc).__name__})'
                ) from None
            if not messages:
                raise PublicEvalError(f"{setting}: {path} line {number} has no messages")
            records.append(
                Record(
                    id=record_id,
                    source_file=path.name,
                    source_line=number,
                    format="chat",
                    messages=messages,
                )
            )
    if not records:
        raise PublicEvalError(f"{setting}: {path} holds no record")
    return records


def file_sha256(path: str | Path) -> str:
    """sha256 of the eval file's bytes (the report names the set by it)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def predicted_share(
    *, noise_multiplier: float, batch: int, steps: int, lora_params: int, max_grad_norm: float
) -> float | None:
    """The plan's predicted share of the non-private gain for a run's sigma, batch, steps, LoRA
    size and clipping norm (`plan.predict_share`); None without a batch."""
    from pipelines.steps.training.plan import predict_share

    if batch < 1 or steps < 1 or lora_params < 1:
        return None
    return predict_share(
        noise_multiplier=noise_multiplier,
        batch=batch,
        steps=steps,
        lora_params=lora_params,
        max_grad_norm=max_grad_norm,
    )


def min_gain(cfg: UtilityConfig, *, base_loss: float, share: float | None) -> tuple[float, str]:
    """(threshold in nats, where it comes from): `training.utility.min_gain` when set, else
    `PREDICTION_MARGIN` of the predicted gain, else `DEFAULT_MIN_GAIN`."""
    if cfg.min_gain is not None:
        return cfg.min_gain, "training.utility.min_gain"
    if share is not None and math.isfinite(base_loss):
        predicted = share * NON_PRIVATE_GAIN_SHARE * base_loss
        return PREDICTION_MARGIN * predicted, "half the plan's predicted gain"
    return DEFAULT_MIN_GAIN, "default"


def mean_public_loss(model, tokenizer, records: list[Record], *, max_seq_len: int, device: str):
    """Mean per-example loss of `model` on public records (None without a label token)."""
    from pipelines.steps.training.dp_lora import _mean_loss, encode_records

    data = encode_records(tokenizer, records, max_seq_len=max_seq_len)
    return _mean_loss(model, data, device)


def measure_utility(
    *,
    model_dir: str | Path,
    adapter_dir: str | Path,
    adapter_sha256: str,
    training: TrainingConfig,
    noise_multiplier: float,
    steps: int,
    plan_share: float | None = None,
    device: str = "cpu",
) -> dict[str, Any]:
    """Load the base model with the adapter once and measure both losses on the public set.

    Returns the utility summary the check, the report and the metadata read: the eval set
    (path, sha256, records), base and adapter loss, gain, the predicted share and loss, the
    threshold and its source, the action, and `below_threshold`. Every figure is a function of
    the released adapter (or the base model) and public records only.

    Raises:
        PublicEvalError: The public eval file cannot be read.
        ModelStoreError: The adapter does not hash to `adapter_sha256`.
    """
    from pipelines.steps.training.dp_lora import load_adapter_model
    from pipelines.steps.training.plan import lora_params_per_rank

    cfg = training.utility
    path = public_eval_path(cfg)
    records = read_public_eval(path, limit=cfg.eval_records)
    model, tokenizer = load_adapter_model(
        model_dir, adapter_dir, device=device, expected_sha256=adapter_sha256
    )
    with model.disable_adapter():
        base = mean_public_loss(
            model, tokenizer, records, max_seq_len=training.max_seq_len, device=device
        )
    adapted = mean_public_loss(
        model, tokenizer, records, max_seq_len=training.max_seq_len, device=device
    )
    if base is None or adapted is None:
        raise PublicEvalError(
            f"training.utility.public_eval_file: {path} has no assistant token to score"
        )
    share = plan_share
    if share is None:
        per_rank = lora_params_per_rank(
            model_dir,
            list(training.target_modules),
            **({"freeze_a": True} if getattr(training, "lora_freeze_a", False) else {}),
        )
        share = predicted_share(
            noise_multiplier=noise_multiplier,
            batch=training.expected_batch_size,
            steps=steps,
            lora_params=per_rank * training.lora_r,
            max_grad_norm=training.max_grad_norm,
        )
    threshold, source = min_gain(cfg, base_loss=base, share=share)
    gain = base - adapted
    return {
        "eval_set": "bundled synthetic" if not cfg.public_eval_file else "declared public",
        "eval_file": str(path),
        "eval_sha256": file_sha256(path),
        "eval_records": len(records),
        "base_loss": base,
        "adapter_loss": adapted,
        "gain": gain,
        "predicted_share": share,
        "predicted_gain": None if share is None else share * NON_PRIVATE_GAIN_SHARE * base,
        "min_gain": threshold,
        "min_gain_source": source,
        "action": cfg.action,
        "below_threshold": gain < threshold,
    }


def utility_gate(utility: dict[str, Any]) -> GateResult:
    """The adapter's public held-out gain over the base model reaches the threshold."""
    gain, threshold = utility["gain"], utility["min_gain"]
    verb = "reaches" if gain >= threshold else "is below"
    return GateResult(
        passed=gain >= threshold,
        description=f"held-out loss on {utility['eval_records']} public records: base "
        f"{utility['base_loss']:.3f}, DP adapter {utility['adapter_loss']:.3f}; gain {gain:.3f} "
        f"nats {verb} the threshold {threshold:.3f} ({utility['min_gain_source']}; action "
        f"{utility['action']})",
        metadata={
            "base_loss": float(utility["base_loss"]),
            "adapter_loss": float(utility["adapter_loss"]),
            "gain": float(gain),
            "min_gain": float(threshold),
            "below_threshold": bool(gain < threshold),
            "eval_records": int(utility["eval_records"]),
            "eval_sha256": utility["eval_sha256"],
        },
    )
