"""DP-LoRA fine-tuning: Opacus DP-SGD with Poisson sampling over a PEFT LoRA model.

The privacy unit is one training example (one `Record`): with N training examples, each step
samples every example independently with probability q (Poisson sampling), clips each
example's gradient to `max_grad_norm`, and adds Gaussian noise. The noise multiplier is derived
from the target epsilon and delta, q and the number of steps; the epsilon reported is the
accountant's, after exactly `steps` steps (an empty Poisson batch is still a noised, accounted
step).

Each example's loss is the mean over its own label tokens (assistant tokens; padding and prompt
masked), and the batch loss is the mean of those: the per-example gradient Opacus clips is then
the gradient of that example's own loss, whatever its length or its batch's padding.

The guards a reviewer needs are measured and returned, not raised: every LoRA tensor received a
nonzero clipped gradient before noise (the failure of Opacus issue #820 leaves some at zero; the
noise alone moves every tensor, so the update proves nothing), the update of the first steps
points along the clipped gradient beyond what noise alone gives (`update_guard`), all stayed
finite, no base weight changed.

What a private run releases is the adapter, the privacy parameters (sigma, q, steps, epsilon),
counts and ids. The per-step training loss, the number of empty Poisson batches and the
held-out loss are un-noised statistics of private records: they stay in the in-memory
`TrainingResult` and are never in `to_json()`, the Dagster metadata, MLflow, the report or the
progress bar (which Dagster's compute log captures).
"""

import functools
import hashlib
import json
import math
import os
import secrets
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from opacus import PrivacyEngine
from opacus.accountants.utils import get_noise_multiplier
from opacus.data_loader import DPDataLoader
from opacus.optimizers import AdaClipDPOptimizer
from opacus.optimizers.optimizer import _generate_noise
from opacus.utils.batch_memory_manager import BatchMemoryManager
from opacus.utils.fast_gradient_clipping_utils import DPTensorFastGradientClipping
from peft import LoraConfig, PeftModel, get_peft_model
from torch.utils.data import DataLoader, TensorDataset
from tqdm import tqdm
from transformers import PreTrainedTokenizerBase

from pipelines.steps.config import TrainingConfig
from pipelines.steps.records import Record
from pipelines.steps.storage import sha256_tree
from pipelines.steps.training.checkpoint import (
    STEP_LEDGER,
    Checkpoint,
    CheckpointError,
    StepLedger,
    load_checkpoint,
    optimizer_tensors,
    restore_optimizer,
    save_checkpoint,
)
from pipelines.steps.training.modelstore import PICKLE_SUFFIXES, ModelStoreError, load_base_model
from pipelines.steps.training.update_guard import UpdateGuard, is_sgd

IGNORE_INDEX = -100
HELDOUT_MODULUS = 10
"""A record (or, under user-level DP, a data subject) is held out when sha256 of its id
(of its subject) is 0 modulo this: about 10%, decided for each record on its own."""
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")
EVAL_BATCH_SIZE = 16
HELDOUT_EVAL_LIMIT = 64


class TrainingConfigError(ValueError):
    """Training settings that cannot give the stated guarantee for this data set."""


@dataclass(frozen=True)
class TrainingResult:
    """What one DP-LoRA training run did, and the guards measured on it.

    Attributes:
        private: True for DP-SGD; False for the non-private control (`train_lora`).
        privacy_unit: "example" (one record) or "user" (all records of one data subject):
            what the (epsilon, delta) guarantee protects. The registry and report read it.
        epsilon: Final epsilon from the accountant at `delta`, after `steps` steps; infinity
            for a non-private run.
        delta: The target delta (below 1/n_train).
        noise_multiplier: Gaussian noise std divided by `max_grad_norm` (0 when not private).
        sample_rate: Poisson sampling probability q = 1 / ceil(n_train / expected_batch_size),
            which Opacus derives from the data loader's length (equal to
            expected_batch_size / n_train when that divides evenly).
        steps: Steps charged to the accountant (every one noised), repeated ones included.
        accountant: "prv" or "rdp".
        max_grad_norm: Per-unit clipping norm (not applied when not private).
        clipping: "flat" (per-sample gradients) or "ghost" (Opacus ghost clipping).
        secure_mode: Sampling and noise generators refilled from the OS every step, noise drawn
            with Opacus's floating-point-attack-resistant sampler (see `os_generator`).
        n_train: The number of training examples.
        n_units: N, the number of privacy units (examples, or data subjects).
        n_heldout: Number of held-out examples.
        heldout_ids: Record ids held out (`is_heldout` of the id, or of the subject).
        train_ids: Record ids trained on.
        losses: Batch loss per step (mean of the units' losses); NaN for a step whose Poisson
            batch was empty or whose update was lost to a crash. Operator-only: not published.
        epsilons: (step, epsilon) pairs, every step by default and always at the last step.
            The per-step epsilon history.
        empty_batches: Steps whose Poisson batch was empty (a noise-only update). Operator-only.
        resumed_from_step: The checkpoint step a resumed run started from; None if not resumed.
        steps_repeated: Steps charged before the crash and done again after resuming.
        heldout_loss_before: Mean per-example loss before training on the held-out examples
            (the first 64 by id hash: a forward pass of SmolLM2 costs about 0.35 s per example
            on 2 CPU cores, and 64 examples are enough to see the loss move); None when no
            held-out example has a label token. Operator-only: not published.
        heldout_loss_after: The same after training.
        lora_tensors_total: Number of LoRA tensors (the only trainable ones).
        lora_tensors_with_clipped_gradient: How many of them received a nonzero clipped
            gradient, before noise, in some step of the run (the plain gradient for the
            control). LoRA's B starts at zero, so A gets no gradient in the first step.
        lora_tensors_finite: Every LoRA tensor was finite after the first and the last step.
        base_weights_unchanged: The sha256 of the base (non-LoRA) weights did not change.
        base_sha256_before: sha256 over the base weights before training.
        base_sha256_after: The same after training.
        adapter_dir: Folder holding adapter_model.safetensors and adapter_config.json.
        adapter_sha256: sha256 over the adapter folder (see `storage.sha256_tree`).
        seconds: Wall time of the whole run.
        update_follows_gradient: The first steps' updates point along the clipped gradient sum
            measured before noise, beyond what noise alone gives (`update_guard.UpdateGuard`:
            catches the update of Opacus #820, pure noise); None when no step had a non-empty
            batch. Only the verdict is kept, never the statistic.
        clip_bound: "fixed" or "adaptive" (`training.clip_bound`).
        max_grad_norm_final: The clipping norm after the last step: `max_grad_norm` when
            fixed, where the noised quantile estimate moved it when adaptive (a function of
            noised outputs only, so it may be published).
        gradient_noise_multiplier: Std of the gradient noise / clipping norm. Equals
            `noise_multiplier` with a fixed bound; larger with the adaptive bound, whose
            noised count takes its share of the step (Andrew et al. 2021, Theorem 1):
            1/sigma^2 = 1/gradient^2 + 1/(2 * count_noise_std)^2, and the accountant charges
            sigma (`noise_multiplier`), so the epsilon reported covers both.
        count_noise_std: Std of the noise on the unclipped count (0 with a fixed bound).
        optimizer: "adam" or "sgd".
        lora_freeze_a: FFA-LoRA: only the LoRA B tensors were trained.
    """

    private: bool
    privacy_unit: str
    epsilon: float
    delta: float
    noise_multiplier: float
    sample_rate: float
    steps: int
    accountant: str
    max_grad_norm: float
    clipping: str
    secure_mode: bool
    n_train: int
    n_units: int
    n_heldout: int
    heldout_ids: tuple[str, ...]
    train_ids: tuple[str, ...]
    losses: list[float]
    epsilons: list[tuple[int, float]]
    empty_batches: int
    resumed_from_step: int | None
    steps_repeated: int
    heldout_loss_before: float | None
    heldout_loss_after: float | None
    lora_tensors_total: int
    lora_tensors_with_clipped_gradient: int
    lora_tensors_finite: bool
    base_weights_unchanged: bool
    base_sha256_before: str
    base_sha256_after: str
    adapter_dir: Path
    adapter_sha256: str
    seconds: float
    update_follows_gradient: bool | None = None
    clip_bound: str = "fixed"
    max_grad_norm_final: float | None = None
    gradient_noise_multiplier: float | None = None
    count_noise_std: float = 0.0
    optimizer: str = "adam"
    lora_freeze_a: bool = False

    def to_json(self) -> dict[str, Any]:
        """What may be published: a JSON-ready dict (paths as strings, tuples as lists)
        without the un-noised statistics of private records (`OPERATOR_ONLY`)."""
        data = asdict(self)
        for name in OPERATOR_ONLY:
            del data[name]
        data["adapter_dir"] = str(self.adapter_dir)
        data["heldout_ids"] = list(self.heldout_ids)
        data["train_ids"] = list(self.train_ids)
        data["epsilons"] = [[step, eps] for step, eps in self.epsilons]
        return data


OPERATOR_ONLY = ("losses", "empty_batches", "heldout_loss_before", "heldout_loss_after")
"""`TrainingResult` fields that are un-noised statistics of private records (training or
held-out): kept in memory for the operator and tests, never in `to_json()` (issue #17.1)."""


def is_heldout(key: str) -> bool:
    """The held-out rule: int(sha256(key), 16) % HELDOUT_MODULUS == 0 (about one key in ten).

    It looks at one key only, so adding or removing other records never moves a record between
    training and held-out.
    """
    return int(hashlib.sha256(key.encode("utf-8")).hexdigest(), 16) % HELDOUT_MODULUS == 0


def split_heldout(
    records: list[Record], *, privacy_unit: str = "example", user_field: str = "subject"
) -> tuple[list[Record], list[Record]]:
    """Split records into (train, held-out) by a per-record rule (`is_heldout`).

    With `privacy_unit="example"` each record's id decides its side; with `"user"` its data
    subject (`user_field`) decides, so all of a subject's records fall on one side and no
    held-out record belongs to a subject who was trained on (a record without a subject goes
    by its id; user-level training refuses it anyway). Training records keep input order;
    held-out records come in id-hash order. The held-out side may be empty on a tiny corpus.

    Raises:
        ValueError: Duplicate ids, or no record left to train on.
    """
    ids = [r.id for r in records]
    if len(set(ids)) != len(ids):
        raise ValueError("records: ids must be unique to split train and held-out")

    def key(record: Record) -> str:
        subject = getattr(record, user_field) if privacy_unit == "user" else None
        return f"subject:{subject}" if subject else record.id

    train = [r for r in records if not is_heldout(key(r))]
    if not train:
        raise ValueError(
            f"records: all {len(records)} records fall in the held-out share (sha256 rule); "
            "add records to train on"
        )
    heldout = sorted(
        (r for r in records if is_heldout(key(r))),
        key=lambda r: hashlib.sha256(r.id.encode("utf-8")).hexdigest(),
    )
    return train, heldout


def encode_records(
    tokenizer: PreTrainedTokenizerBase, records: list[Record], *, max_seq_len: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Tokenize records into fixed-length (input_ids, attention_mask, labels) tensors.

    Text comes from the tokenizer's chat template; a tokenizer without one gets the plain
    format "<|role|>\\ncontent\\n" per message, then the eos token. Labels are the assistant
    turns' tokens (content and end-of-turn), every other token is masked with -100; a record
    without an assistant message is trained on all its tokens. A sequence longer than
    `max_seq_len` keeps a window that starts half a window before the first label token (the
    prompt is cut from the left), so every example keeps response tokens to learn from
    instead of being truncated to its prompt; windows are right-padded (padding masked in
    attention and labels).

    Returns:
        Three long tensors of shape (len(records), max_seq_len).
    """
    pad_id = tokenizer.pad_token_id
    if pad_id is None:
        pad_id = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else 0
    shape = (len(records), max_seq_len)
    input_ids = torch.full(shape, pad_id, dtype=torch.long)
    attention_mask = torch.zeros(shape, dtype=torch.long)
    labels = torch.full(shape, IGNORE_INDEX, dtype=torch.long)
    for row, record in enumerate(records):
        text, spans = _render(tokenizer, record)
        encoding = tokenizer(
            text, add_special_tokens=False, return_offsets_mapping=True, truncation=False
        )
        all_offsets = encoding["offset_mapping"]
        first_label = next(
            (
                i
                for i, (start, end) in enumerate(all_offsets)
                if spans is None or any(start < s_end and end > s_start for s_start, s_end in spans)
            ),
            0,
        )
        overflow = max(0, len(all_offsets) - max_seq_len)
        begin = min(max(0, first_label - max_seq_len // 2), overflow)
        ids = encoding["input_ids"][begin : begin + max_seq_len]
        offsets = all_offsets[begin : begin + max_seq_len]
        input_ids[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        attention_mask[row, : len(ids)] = 1
        for col, (token_id, (start, end)) in enumerate(zip(ids, offsets, strict=True)):
            if spans is None or any(start < s_end and end > s_start for s_start, s_end in spans):
                labels[row, col] = token_id
    return input_ids, attention_mask, labels


def per_example_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Each example's mean next-token loss over its own label tokens.

    Args:
        logits: (batch, seq, vocab) model outputs.
        labels: (batch, seq) token ids, -100 where masked (prompt, padding).

    Returns:
        (batch,) losses; 0 for an example without label tokens (it then adds no gradient).
    """
    targets = labels[:, 1:]
    token_loss = F.cross_entropy(
        logits[:, :-1].reshape(-1, logits.shape[-1]).float(),
        targets.reshape(-1),
        ignore_index=IGNORE_INDEX,
        reduction="none",
    ).view(targets.shape)
    counts = (targets != IGNORE_INDEX).sum(dim=1)
    return token_loss.sum(dim=1) / counts.clamp(min=1)


def privacy_units(records: list[Record], *, unit: str, user_field: str) -> list[list[int]]:
    """The rows of each privacy unit: one record each, or every record of one data subject.

    With `unit="user"`, records are grouped by the value of their `user_field` (subject,
    source or source_file); groups come in sorted key order, rows in input order.

    Raises:
        TrainingConfigError: A record has no value in `user_field` (it could not be attributed
            to its data subject, so user-level DP could not protect it).
    """
    if unit == "example":
        return [[i] for i in range(len(records))]
    groups: dict[str, list[int]] = {}
    missing = 0
    for i, record in enumerate(records):
        key = getattr(record, user_field)
        if not key:
            missing += 1
            continue
        groups.setdefault(str(key), []).append(i)
    if missing:
        raise TrainingConfigError(
            f"training.user_field = {user_field}: {missing} of {len(records)} training records "
            "have no value, so user-level DP cannot attribute them; fill the field at ingestion "
            "or choose another training.user_field"
        )
    return [groups[key] for key in sorted(groups)]


@functools.lru_cache(maxsize=1024)
def sigma_for_target(
    *, epsilon: float, delta: float, accountant: str, sample_rate: float, steps: int
) -> float:
    """The noise multiplier that spends (epsilon, delta) in `steps` steps at `sample_rate`:
    opacus' `get_noise_multiplier`, cached. Every σ of a run (the trainer's plan, its metadata,
    the DDP processes, the audit's controls, the batch planner) comes from here, so one
    (target, rate, steps) is searched once per process: a search is 1-3 s with RDP and about
    5 s with PRV on 2 cores."""
    return float(
        get_noise_multiplier(
            target_epsilon=epsilon,
            target_delta=delta,
            sample_rate=sample_rate,
            steps=steps,
            accountant=accountant,
        )
    )


def configured_sigma(cfg: TrainingConfig, sample_rate: float) -> float:
    """σ for the configured target (ε, δ, accountant) over `cfg.steps` steps at `sample_rate`."""
    return sigma_for_target(
        epsilon=cfg.target_epsilon,
        delta=cfg.target_delta,
        accountant=cfg.accountant,
        sample_rate=sample_rate,
        steps=cfg.steps,
    )


def train_dp_lora(
    records: list[Record],
    *,
    model_dir: str | Path,
    cfg: TrainingConfig,
    out_dir: str | Path,
    device: str = "cpu",
    progress: bool = True,
    epsilon_every: int | None = None,
    private: bool = True,
    checkpoint_dir: str | Path | None = None,
    on_step: Callable[[int], None] | None = None,
) -> TrainingResult:
    """Train a LoRA adapter with DP-SGD and save it (safetensors + JSON) into `out_dir`.

    With `private=False` (see `train_lora`) the same LoRA is trained on the same split, with
    the same Poisson sampling, loss, optimizer and steps, but without clipping, noise or
    accountant: a non-private control for benchmarks and the audit, reported with epsilon
    infinity. Never release such an adapter.

    The privacy unit (`training.privacy_unit`) is one record, or one data subject: then the
    sampler draws subjects, a subject's records all enter the batch together, and the clipped
    per-unit gradient is the gradient of the mean of that subject's per-example losses.

    Randomness comes from explicit generators, never global seeding: `cfg.seed` drives the
    LoRA initialization (in a forked RNG); Poisson sampling and the DP noise are drawn from two
    separate generators, each filled from the OS's CSPRNG on its own (`os_generator`) for every
    run and every resume. DP-SGD's guarantee assumes the noise is unknown to an attacker, so a
    fixed `training.noise_seed` (the `test` profile only) is for tests and reproductions, never
    for a released model; `training.secure_mode` refills both generators from the OS every step
    and draws the noise with Opacus's floating-point-attack-resistant sampler.

    With `checkpoint_dir`, every step is charged to a durable step ledger before its update
    is applied, and a checkpoint is written every `training.checkpoint_every` steps; a run
    started again with the same folder, data and settings resumes from the last checkpoint
    (verified by sha256) and charges every step the ledger holds, repeated ones included. The
    run stops once `training.steps` steps are charged, so epsilon stays within the target;
    steps lost to a crash appear as NaN losses. The last step is always checkpointed, and the
    folder is kept when the run completes: a rerun then charges nothing and saves the same
    model again. The caller removes it with `retire_checkpoint` once it has settled the run's
    privacy budget (a crash before that must not let a rerun train a second model).

    Args:
        records: The curated training records (10% are held out, by id hash).
        model_dir: Base-model folder (see `modelstore.load_base_model`).
        cfg: The `training` section of the profile.
        out_dir: Adapter folder to write; an existing one is replaced atomically.
        device: Torch device ("cpu", "cuda", "cuda:1"); bf16 autocast on a CUDA device that
            supports it.
        progress: Show a tqdm bar with step and epsilon (not the loss: the bar lands in
            Dagster's compute log, which the UI shows).
        epsilon_every: Ask the accountant for epsilon every this many steps (and always at the
            last step). Default: every step up to 200 steps (one query costs about 0.2 s with
            RDP, 0.4 s with PRV on 2 CPU cores), then about 200 times per run.
        private: DP-SGD (default); False trains the non-private control.
        checkpoint_dir: Folder for the step ledger and checkpoints; None for none.
        on_step: Called with the step number after each completed step (progress reporting,
            crash drills).

    Returns:
        The privacy parameters, losses, guards and adapter location.

    Raises:
        TrainingConfigError: `training.target_delta` is not below 1/N (N privacy units),
            `training.secure_mode` has a noise seed, or records lack `training.user_field`.
        CheckpointError: The checkpoint in `checkpoint_dir` is altered or from another run.
        ValueError: Too few records or duplicate ids.
    """
    started = time.monotonic()
    out_dir = Path(out_dir)
    plan = _prepare(records, cfg, model_dir, private=private, epsilon_every=epsilon_every)
    recovery = _open_checkpoint(checkpoint_dir, plan, private=private)
    model = _build_model(model_dir, cfg, plan, device=device)
    history = _start_or_resume(model, recovery, plan, device=device)
    dp = _make_private(cfg, plan, model, recovery.charged, private=private, device=device)
    if private and history.state.get("max_grad_norm") is not None:
        dp.optimizer.max_grad_norm = history.state["max_grad_norm"]  # the adaptive bound
    step = _run_steps(
        cfg,
        plan,
        model,
        dp,
        recovery,
        history,
        private=private,
        device=device,
        progress=progress,
        on_step=on_step,
    )
    return _finish(
        cfg,
        plan,
        model,
        dp,
        recovery,
        history,
        step,
        private=private,
        device=device,
        out_dir=out_dir,
        started=started,
    )


# The phases of `train_dp_lora`, in the order it runs them. Each takes what the earlier ones
# settled; randomness is drawn in the same order whichever phase draws it.


@dataclass(frozen=True)
class _Plan:
    """What the prepare phase settles from the records and settings, before any model loads.

    Attributes:
        train_records: Records trained on, in input order.
        heldout_records: Records held out, in id-hash order.
        units: The training rows of each privacy unit (see `privacy_units`).
        sample_rate: Poisson sampling probability of a unit per step.
        noise_multiplier: Noise std / max_grad_norm for the target epsilon (0 when not private):
            the whole step's mechanism, the one the accountant and the ledgers charge.
        gradient_noise_multiplier: The gradient's share of it (see `adaptive_noise`).
        count_noise_std: Noise std of the adaptive bound's unclipped count (0 when fixed).
        epsilon_every: Ask the accountant for epsilon every this many steps.
        fingerprint: What a resumed run must share with its checkpoint (`_run_fingerprint`).
    """

    train_records: list[Record]
    heldout_records: list[Record]
    units: list[list[int]]
    sample_rate: float
    noise_multiplier: float
    gradient_noise_multiplier: float
    count_noise_std: float
    epsilon_every: int
    fingerprint: str

    @property
    def n_units(self) -> int:
        return len(self.units)


@dataclass(frozen=True)
class _Recovery:
    """Crash recovery: the checkpoint folder, its step ledger, the checkpoint to resume from
    and the steps already charged (all None or 0 without a checkpoint folder)."""

    checkpoint_dir: Path | None
    step_ledger: StepLedger | None
    resume: Checkpoint | None
    charged: int


@dataclass(frozen=True)
class _Model:
    """The PEFT model on its device, the encoded data and the optimizer over the LoRA tensors.

    Attributes:
        peft_model: The base model with LoRA layers (only the lora_ tensors trainable).
        train_data: (input_ids, attention_mask, labels) of the training records.
        heldout_data: The same for the first HELDOUT_EVAL_LIMIT held-out records.
        lora: The trainable LoRA tensors by name.
        names: Name of each LoRA tensor by id(), for the optimizer's checkpoint tensors.
        optimizer: Adam or SGD over the LoRA tensors (Opacus wraps it when private).
    """

    peft_model: PeftModel
    train_data: tuple[torch.Tensor, torch.Tensor, torch.Tensor]
    heldout_data: tuple[torch.Tensor, torch.Tensor, torch.Tensor]
    lora: dict[str, torch.nn.Parameter]
    names: dict[int, str]
    optimizer: torch.optim.Optimizer


@dataclass(frozen=True)
class _History:
    """The run's bookkeeping, mutated step by step and saved in each checkpoint.

    Attributes:
        state: fingerprint, the run plan, empty_batches, the guards (LoRA tensors with a
            clipped gradient so far, finite after the first step) and the "before" measurements.
        losses: Batch loss per charged step (NaN: empty batch or lost to a crash).
        epsilons: (step, epsilon) pairs asked of the accountant so far.
    """

    state: dict[str, Any]
    losses: list[float]
    epsilons: list[tuple[int, float]]


@dataclass(frozen=True)
class _Private:
    """The model, optimizer and Poisson loader the step loop drives: Opacus's wrappers when
    private (with its engine, whose accountant gives epsilon), else the plain ones."""

    engine: PrivacyEngine | None
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    loader: DataLoader
    sampler_generator: torch.Generator
    noise_generator: torch.Generator


def _prepare(
    records: list[Record],
    cfg: TrainingConfig,
    model_dir: str | Path,
    *,
    private: bool,
    epsilon_every: int | None,
) -> _Plan:
    """Prepare and split: held-out split, privacy units, the checks on delta and secure mode,
    the sample rate and the noise multiplier for the target epsilon.

    Raises:
        TrainingConfigError: delta not below 1/N, secure mode not possible, or records without
            `training.user_field`.
        ValueError: Too few records or duplicate ids.
    """
    if cfg.privacy_unit == "user":  # every record, held out or not, must name its subject
        privacy_units(records, unit="user", user_field=cfg.user_field)
    train_records, heldout_records = split_heldout(
        records, privacy_unit=cfg.privacy_unit, user_field=cfg.user_field
    )
    units = privacy_units(train_records, unit=cfg.privacy_unit, user_field=cfg.user_field)
    n_units = len(units)
    if cfg.target_delta >= 1 / n_units:
        raise TrainingConfigError(
            f"training.target_delta = {cfg.target_delta:g} must be below 1/N = "
            f"{1 / n_units:.3g} (N = {n_units} privacy units, privacy_unit "
            f"{cfg.privacy_unit}); lower training.target_delta"
        )
    if private and cfg.secure_mode:
        _require_secure_mode(cfg)
    sample_rate = 1 / math.ceil(n_units / cfg.expected_batch_size)
    noise_multiplier = configured_sigma(cfg, sample_rate) if private else 0.0
    gradient_noise, count_noise = noise_multiplier, 0.0
    if private and cfg.clip_bound == "adaptive":
        gradient_noise, count_noise = adaptive_noise(cfg, noise_multiplier)
    return _Plan(
        train_records=train_records,
        heldout_records=heldout_records,
        units=units,
        sample_rate=sample_rate,
        noise_multiplier=noise_multiplier,
        gradient_noise_multiplier=gradient_noise,
        count_noise_std=count_noise,
        epsilon_every=epsilon_every or max(1, cfg.steps // 200),
        fingerprint=_run_fingerprint(cfg, train_records, model_dir, private=private),
    )


def adaptive_noise(cfg: TrainingConfig, noise_multiplier: float) -> tuple[float, float]:
    """(gradient noise multiplier, count noise std) of the adaptive clipping bound whose step
    is, in privacy, one Gaussian mechanism of multiplier `noise_multiplier` (sigma).

    Each step releases the noised sum of clipped gradients (sensitivity C) and the noised count
    of examples left unclipped, centred: sum(b_i - 1/2), sensitivity 1/2 when one example is
    added or removed. With gradient noise sigma_g * C and count noise sigma_b, the pair is a
    Gaussian mechanism of multiplier (sigma_g^-2 + (2 sigma_b)^-2)^-1/2 (Andrew et al. 2021,
    Theorem 1); sigma_g is set so that this equals sigma, and the accountant charges sigma.

    Raises:
        TrainingConfigError: sigma >= 2 * count noise std (no gradient noise could make up the
            difference), naming `training.clip_count_noise_std`.
    """
    count_std = cfg.clip_count_noise_std or cfg.expected_batch_size / 20
    if noise_multiplier >= 2 * count_std:
        raise TrainingConfigError(
            f"training.clip_count_noise_std = {count_std:g}: the adaptive clipping bound's count "
            f"noise must exceed half the noise multiplier ({noise_multiplier:.4g} for "
            f"training.target_epsilon {cfg.target_epsilon:g} at this batch and steps); set it "
            f"above {noise_multiplier / 2:.4g} or use training.clip_bound: fixed"
        )
    gradient = (noise_multiplier**-2 - (2 * count_std) ** -2) ** -0.5
    return gradient, count_std


class AdaptiveClipOptimizer(AdaClipDPOptimizer):
    """Opacus's adaptive clipping (AdaClip) with the count released as Andrew et al. do.

    Opacus 1.6's `AdaClipDPOptimizer` noises the uncentred unclipped count (sensitivity 1, while
    the gradient noise it derives assumes 1/2: the step is then less private than the sigma the
    accountant charges) and divides it by the sampled batch's true size, a count of private
    records released without noise. Here the count is centred, sum(b_i - 1/2), its noised value
    is divided by the expected batch size (public), and the counts survive the per-physical-
    batch `zero_grad` of a logical batch that Opacus's BatchMemoryManager splits (Opacus resets
    them there, so only the last physical batch was counted). The gradient noise multiplier is
    `adaptive_noise`'s. Installed by `_make_private` on the AdaClip optimizer Opacus builds.
    """

    gradient_noise_multiplier: float
    noisy_unclipped_fraction: float | None = None

    def zero_grad(self, set_to_none: bool = False):
        keep = self._is_last_step_skipped  # inside a logical batch: keep its counts
        sample_size, unclipped = self.sample_size, self.unclipped_num
        super().zero_grad(set_to_none)
        if keep:
            self.sample_size, self.unclipped_num = sample_size, unclipped

    def add_noise(self):
        for p in self.params:
            noise = _generate_noise(
                std=self.gradient_noise_multiplier * self.max_grad_norm,
                reference=p.summed_grad,
                generator=self.generator,
                secure_mode=self.secure_mode,
            )
            p.grad = (p.summed_grad + noise).view_as(p)
        centred = float(self.unclipped_num) - self.sample_size / 2
        reference = torch.zeros((), device=self.params[0].device)
        count_noise = _generate_noise(
            std=self.unclipped_num_std,
            reference=reference,
            generator=self.generator,
            secure_mode=self.secure_mode,
        )
        fraction = (centred + float(count_noise)) / self.expected_batch_size + 0.5
        self.noisy_unclipped_fraction = fraction

    def update_max_grad_norm(self):
        """C *= exp(-rate * (noised unclipped fraction - target)), within [min, max]."""
        error = self.noisy_unclipped_fraction - self.target_unclipped_quantile
        bound = float(self.max_grad_norm) * math.exp(-self.clipbound_learning_rate * error)
        self.max_grad_norm = min(self.max_clipbound, max(self.min_clipbound, bound))


def _plan_record(plan: _Plan) -> dict[str, Any]:
    """The mechanism a run was planned with, recorded before its first step."""
    return {"noise_multiplier": plan.noise_multiplier, "sample_rate": plan.sample_rate}


def _open_checkpoint(checkpoint_dir: str | Path | None, plan: _Plan, *, private: bool) -> _Recovery:
    """Open the step ledger and the last checkpoint of `checkpoint_dir` (if any).

    The non-private control charges no step ledger (it releases nothing private to account);
    it still resumes from its checkpoints.

    Raises:
        CheckpointError: The checkpoint is altered, was written for another fingerprint, or
            its recorded plan (sigma, q) or a step in the ledger differs from this run's plan.
    """
    if checkpoint_dir is None:
        return _Recovery(checkpoint_dir=None, step_ledger=None, resume=None, charged=0)
    checkpoint_dir = Path(checkpoint_dir)
    step_ledger = StepLedger(checkpoint_dir / STEP_LEDGER) if private else None
    resume = load_checkpoint(checkpoint_dir)
    if resume is not None and resume.state.get("fingerprint") != plan.fingerprint:
        raise CheckpointError(
            f"{checkpoint_dir}: checkpoint written for other data or settings; resume with "
            "those, or move the folder aside to start over"
        )
    planned = _plan_record(plan)
    recorded = [resume.state.get("plan")] if resume is not None else []
    recorded += step_ledger.mechanisms() if step_ledger is not None else []
    if any(r != planned for r in recorded):
        raise CheckpointError(
            f"{checkpoint_dir}: the noise multiplier or sample rate recorded for this run "
            f"differs from this run's plan (sigma {plan.noise_multiplier:.6g}, q "
            f"{plan.sample_rate:.6g}); resume with the same library versions and settings, or "
            "move the folder aside to start over"
        )
    # a checkpoint's steps were charged before it was written, whatever the ledger says
    charged = max(
        step_ledger.charged() if step_ledger is not None else 0,
        resume.step if resume is not None else 0,
    )
    return _Recovery(
        checkpoint_dir=checkpoint_dir, step_ledger=step_ledger, resume=resume, charged=charged
    )


def attach_lora(model, cfg: TrainingConfig, *, device: str):
    """The base model with the configured LoRA adapters, their initial values drawn from
    `cfg.seed` without touching the global generator (the planner builds the same model).
    With `training.lora_freeze_a` (FFA-LoRA) the A tensors are frozen: only B trains."""
    lora_config = LoraConfig(
        r=cfg.lora_r,
        lora_alpha=cfg.lora_alpha,
        target_modules=list(cfg.target_modules),
        lora_dropout=0.0,
        bias="none",
        task_type="CAUSAL_LM",
    )
    with torch.random.fork_rng(devices=[] if device == "cpu" else None):
        torch.manual_seed(cfg.seed)
        peft_model = get_peft_model(model, lora_config)
    if cfg.lora_freeze_a:  # FFA-LoRA: A stays at its random initialization
        for name, p in peft_model.named_parameters():
            if "lora_A" in name:
                p.requires_grad_(False)
    return peft_model


def _build_model(model_dir: str | Path, cfg: TrainingConfig, plan: _Plan, *, device: str) -> _Model:
    """Build the model: load the base model, encode the data, add LoRA (initialized from
    `cfg.seed` in a forked RNG) and the optimizer over the trainable LoRA tensors.

    Raises:
        TrainingConfigError: `training.target_modules` made a non-LoRA tensor trainable, or none.
    """
    model, tokenizer = load_base_model(model_dir, device=device)
    train_data = encode_records(tokenizer, plan.train_records, max_seq_len=cfg.max_seq_len)
    heldout_data = encode_records(
        tokenizer, plan.heldout_records[:HELDOUT_EVAL_LIMIT], max_seq_len=cfg.max_seq_len
    )
    # The base model is already on its device here: PEFT then creates the LoRA tensors there,
    # before Opacus registers its hooks (Opacus #820, peft #3409).
    peft_model = attach_lora(model, cfg, device=device)
    lora = {name: p for name, p in peft_model.named_parameters() if p.requires_grad}
    if not lora or any("lora_" not in name for name in lora):
        raise TrainingConfigError(
            "training.target_modules: LoRA must make only lora_ tensors trainable, got "
            f"{sorted(lora)[:5]}"
        )
    return _Model(
        peft_model=peft_model,
        train_data=train_data,
        heldout_data=heldout_data,
        lora=lora,
        names={id(p): name for name, p in lora.items()},
        optimizer=_optimizer(cfg, lora.values()),
    )


def _optimizer(cfg: TrainingConfig, params: Iterable[torch.Tensor]) -> torch.optim.Optimizer:
    """Adam or plain SGD (`training.optimizer`) at the constant `training.learning_rate`."""
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.learning_rate)
    return torch.optim.Adam(params, lr=cfg.learning_rate)


def _start_or_resume(model: _Model, recovery: _Recovery, plan: _Plan, *, device: str) -> _History:
    """Measure the "before" guards of a fresh run, record its plan and write a step-0
    checkpoint (before any step is charged), or restore LoRA tensors, optimizer state and
    bookkeeping from the checkpoint; steps charged after it count as lost (NaN losses)."""
    resume = recovery.resume
    if resume is None:
        state: dict[str, Any] = {
            "fingerprint": plan.fingerprint,
            "plan": _plan_record(plan),
            "losses": [],
            "epsilons": [],
            "empty_batches": 0,
            "with_gradient": [],
            "update_guard": None,
            "finite_after_first": None,
            "base_sha256_before": _base_sha256(model.peft_model),
            "heldout_loss_before": _mean_loss(model.peft_model, model.heldout_data, device),
        }
    else:
        state = dict(resume.state)
        with torch.no_grad():
            for name, p in model.lora.items():
                p.copy_(resume.tensors[f"lora.{name}"])
        restore_optimizer(model.optimizer, model.names, resume.tensors)
    losses = [math.nan if x is None else x for x in state["losses"]]
    losses += [math.nan] * (recovery.charged - len(losses))  # updates charged, then lost
    epsilons = [(int(s), float(e)) for s, e in state["epsilons"]]
    history = _History(state=state, losses=losses, epsilons=epsilons)
    if resume is None and recovery.checkpoint_dir is not None:
        _checkpoint(recovery.checkpoint_dir, 0, model, history)
    return history


def _adaptive_arguments(cfg: TrainingConfig, plan: _Plan) -> dict[str, Any]:
    """Opacus's `make_private` arguments for its AdaClip optimizer (`training.clip_*`)."""
    return {
        "clipping": "adaptive",
        "target_unclipped_quantile": cfg.clip_target_quantile,
        "clipbound_learning_rate": cfg.clip_learning_rate,
        "max_clipbound": cfg.clip_max,
        "min_clipbound": cfg.clip_min,
        "unclipped_num_std": plan.count_noise_std,
    }


def _make_private(
    cfg: TrainingConfig, plan: _Plan, model: _Model, charged: int, *, private: bool, device: str
) -> _Private:
    """Make it private: a Poisson loader over the units and, when private, Opacus's clipping,
    noise and accountant (charged with the steps of a resumed run); the control keeps the
    plain model and optimizer behind the same sampler.

    Raises:
        RuntimeError: Opacus samples at another rate than the noise was set for.
    """
    # A resumed run draws new sampling and noise: the repeated steps are charged anyway.
    sampler_generator, noise_generator = _generators(cfg, charged, device=device)
    loader = DataLoader(
        TensorDataset(torch.arange(plan.n_units)),
        batch_size=cfg.expected_batch_size,
        generator=sampler_generator,
    )
    model.peft_model.train()
    engine = None
    if private:
        # Opacus's own secure_mode needs torchcsprng, which does not exist for this torch:
        # `training.secure_mode` is served by `os_generator` instead (see `_generators`).
        engine = PrivacyEngine(accountant=cfg.accountant, secure_mode=False)
        adaptive = cfg.clip_bound == "adaptive"
        made = engine.make_private(
            module=model.peft_model,
            optimizer=model.optimizer,
            data_loader=loader,
            noise_multiplier=plan.noise_multiplier,
            max_grad_norm=cfg.max_grad_norm,
            poisson_sampling=True,
            grad_sample_mode="ghost" if cfg.clipping == "ghost" else "hooks",
            noise_generator=noise_generator,
            **(_adaptive_arguments(cfg, plan) if adaptive else {}),
        )
        dp_model, dp_optimizer, dp_loader = made[0], made[1], made[-1]
        if adaptive:
            if not isinstance(dp_optimizer, AdaClipDPOptimizer):
                raise RuntimeError(f"Opacus built {type(dp_optimizer).__name__}, not AdaClip")
            dp_optimizer.__class__ = AdaptiveClipOptimizer  # its fixes (see the class)
            dp_optimizer.gradient_noise_multiplier = plan.gradient_noise_multiplier
        account_at_planned_rate(engine, dp_optimizer, plan.sample_rate)
        # Opacus's noise sampler that resists floating-point attacks (Mironov; Opacus #1030)
        dp_optimizer.secure_mode = cfg.secure_mode
        if charged:
            engine.accountant.history = [(plan.noise_multiplier, plan.sample_rate, charged)]
    else:
        # The same Poisson sampler as the private run, without clipping or noise.
        dp_model, dp_optimizer = model.peft_model, model.optimizer
        dp_loader = DPDataLoader.from_data_loader(loader, generator=sampler_generator)
    if not math.isclose(dp_loader.sample_rate, plan.sample_rate):
        raise RuntimeError(
            f"Opacus samples at {dp_loader.sample_rate}, noise was set for {plan.sample_rate}"
        )
    return _Private(
        engine=engine,
        model=dp_model,
        optimizer=dp_optimizer,
        loader=dp_loader,
        sampler_generator=sampler_generator,
        noise_generator=noise_generator,
    )


MT19937_WORDS = 624
_CPU_STATE_BYTES = 5056  # torch's CPU generator state: header, 624 words, normal-sample caches


def os_generator(device: str = "cpu") -> torch.Generator:
    """A torch generator whose whole state comes from the OS's CSPRNG (`secrets`).

    The CPU generator is MT19937, whose `manual_seed` keeps only 32 bits of the seed; here its
    624-word (19,968-bit) state is filled from `secrets.token_bytes` instead. A CUDA generator
    (Philox) takes a 64-bit seed from `secrets.randbits(64)`. Neither algorithm is a
    cryptographically secure generator: someone who saw enough raw draws of one generator
    could predict its later draws; the draws are never released (only the noised sum, inside
    the final adapter), and no two generators share state.

    Raises:
        RuntimeError: torch's CPU generator state does not have the layout this relies on.
    """
    generator = torch.Generator(device=device)
    if generator.device.type != "cpu":
        return generator.manual_seed(secrets.randbits(64))
    state = generator.get_state()
    if state.numel() != _CPU_STATE_BYTES:
        raise RuntimeError(
            f"torch {torch.__version__}: CPU generator state of {state.numel()} bytes, expected "
            f"{_CPU_STATE_BYTES}; os_generator needs updating for this torch"
        )
    header = np.array([secrets.randbits(64)], dtype="<u8").tobytes()
    header += np.array([1, 1], dtype="<i4").tobytes()  # left = 1 (twist first), seeded
    header += np.zeros(1, dtype="<u8").tobytes()
    words = np.frombuffer(secrets.token_bytes(4 * MT19937_WORDS), dtype="<u4").astype("<u8")
    filled = bytearray(state.numpy().tobytes())
    filled[: len(header)] = header
    filled[len(header) : len(header) + 8 * MT19937_WORDS] = words.tobytes()
    filled[len(header) + 8 * MT19937_WORDS :] = bytes(
        _CPU_STATE_BYTES - len(header) - 8 * MT19937_WORDS
    )  # no cached normal sample
    new_state = torch.frombuffer(filled, dtype=torch.uint8).clone()
    generator.set_state(new_state)
    if not torch.equal(generator.get_state(), new_state):
        raise RuntimeError("torch did not take the CPU generator state os_generator set")
    return generator


def _refill(generator: torch.Generator) -> None:
    """Give `generator` a fresh state from the OS, in place (the loader and optimizer keep it)."""
    generator.set_state(os_generator(str(generator.device)).get_state())


def _generators(
    cfg: TrainingConfig, charged: int, *, device: str
) -> tuple[torch.Generator, torch.Generator]:
    """(sampler, noise) generators, independent of each other.

    Each is filled from the OS on its own (`os_generator`). With `training.noise_seed` (the
    `test` profile only) each is seeded from sha256 over the seed, its role and the steps
    already charged, so a resumed run draws other batches and noise than the crashed one.
    """
    if cfg.noise_seed is None:
        return os_generator("cpu"), os_generator(device)

    def derived(role: str) -> int:
        text = f"{cfg.noise_seed}:{role}:{charged}".encode()
        return int.from_bytes(hashlib.sha256(text).digest()[:8], "little")

    return (
        torch.Generator().manual_seed(derived("sampler")),
        torch.Generator(device=device).manual_seed(derived("noise")),
    )


def _run_steps(
    cfg: TrainingConfig,
    plan: _Plan,
    model: _Model,
    dp: _Private,
    recovery: _Recovery,
    history: _History,
    *,
    private: bool,
    device: str,
    progress: bool,
    on_step: Callable[[int], None] | None,
) -> int:
    """The step loop: charge each step to the ledger before its update, run its physical
    batches, record it, checkpoint every `training.checkpoint_every` steps, until
    `training.steps` steps are charged (the last one always checkpointed). Under
    `training.secure_mode` both generators are refilled from the OS before every step.
    Returns the last step."""
    autocast = _autocast(device, enabled=cfg.clipping != "ghost")
    step = recovery.charged
    guard = UpdateGuard(
        model.lora.values(),
        sgd=is_sgd(dp.optimizer),
        verdict=history.state.get("update_guard"),
    )
    bar = tqdm(total=cfg.steps, initial=step, desc="DP-LoRA", unit="step", disable=not progress)
    with ExitStack() as stack:
        batches = _logical_batches(stack, cfg, dp, private=private)
        loss_sum, units_seen, new_step = 0.0, 0, True
        while step < cfg.steps:
            for physical in _physical_batches(batches, private, cfg.max_physical_batch_size):
                unit_idx, logical_units, last_chunk = physical
                if new_step:
                    if recovery.step_ledger is not None:
                        recovery.step_ledger.charge(
                            step=step + 1,
                            noise_multiplier=plan.noise_multiplier,
                            sample_rate=plan.sample_rate,
                        )
                    loss_sum, units_seen, new_step = 0.0, 0, False
                    if not private:
                        dp.optimizer.zero_grad(set_to_none=True)
                if private:
                    # per physical batch: Opacus keeps the clipped sum of a logical batch
                    dp.optimizer.zero_grad(set_to_none=True)
                loss_sum += _forward_backward(
                    cfg,
                    plan.units,
                    model,
                    dp,
                    unit_idx,
                    logical_units,
                    private=private,
                    device=device,
                    autocast=autocast,
                )
                units_seen += len(unit_idx)
                guard.before_update(dp.optimizer, private=private)
                if not _apply_update(
                    dp.optimizer, private=private, last_chunk=last_chunk, units=units_seen
                ):
                    continue
                new_step = True
                step += 1
                guard.after_update(private=private, units=units_seen)
                if not guard.watching or step >= cfg.steps:
                    history.state["update_guard"] = guard.verdict  # pass/fail only
                _record_step(
                    cfg, plan, model, dp, history, step, loss_sum, units_seen, private=private
                )
                if cfg.secure_mode:
                    _refill(dp.sampler_generator)  # before the loader draws the next batch
                    _refill(dp.noise_generator)
                bar.update(1)
                eps = f"{history.epsilons[-1][1]:.2f}" if history.epsilons else "-"
                bar.set_postfix(eps=eps)  # never the loss: see `progress`
                if recovery.checkpoint_dir is not None and (
                    step % cfg.checkpoint_every == 0 or step == cfg.steps
                ):
                    _checkpoint(recovery.checkpoint_dir, step, model, history)
                if on_step is not None:
                    on_step(step)
                if step >= cfg.steps:
                    break
    bar.close()
    return step


def _autocast(device: str, *, enabled: bool = True) -> torch.autocast:
    """bf16 autocast on a CUDA device that supports it; disabled elsewhere, and for ghost
    clipping (its per-sample norms come from the layers' activations, which would be bf16).

    Flat clipping casts the per-sample gradients to fp32 before Opacus computes their norms
    and clips them (`_per_sample_gradients_fp32`)."""
    return torch.autocast(
        device_type="cuda",
        dtype=torch.bfloat16,
        enabled=enabled and device.startswith("cuda") and torch.cuda.is_bf16_supported(),
    )


def _logical_batches(
    stack: ExitStack, cfg: TrainingConfig, dp: _Private, *, private: bool
) -> Iterable:
    """The Poisson loader; when private with `training.max_physical_batch_size`, Opacus's
    BatchMemoryManager over it (entered on `stack`), which cuts each logical batch into
    physical ones and tells the optimizer where the logical batch ends."""
    if private and cfg.max_physical_batch_size:
        return stack.enter_context(
            BatchMemoryManager(
                data_loader=dp.loader,
                max_physical_batch_size=cfg.max_physical_batch_size,
                optimizer=dp.optimizer,
            )
        )
    return dp.loader


def _forward_backward(
    cfg: TrainingConfig,
    units: list[list[int]],
    model: _Model,
    dp: _Private,
    unit_idx: torch.Tensor,
    logical_units: int,
    *,
    private: bool,
    device: str,
    autocast: torch.autocast,
) -> float:
    """Forward the sampled units' rows and backpropagate their loss the way the clipping mode
    needs it. Returns the sum of the units' losses (each the mean of its examples' means).

    An empty Poisson batch runs no model: a private run gets empty gradients instead (the step
    is still noised and accounted), and its loss sum is 0.
    """
    if len(unit_idx) == 0:
        if private:
            _empty_gradients(model.lora.values(), ghost=cfg.clipping == "ghost")
        return 0.0
    rows, unit_of_row, weights = _unit_rows(units, unit_idx)
    input_ids, attention_mask, labels = (t[rows].to(device) for t in model.train_data)
    with autocast:
        logits = dp.model(input_ids=input_ids, attention_mask=attention_mask).logits
    # each unit's loss is the mean of its examples' own means
    row_loss = per_example_loss(logits, labels) * weights.to(device)
    loss_sum = row_loss.detach().sum().item()
    with warnings.catch_warnings():
        # The first LoRA layer's input (frozen embeddings) needs no gradient, so torch warns
        # that Opacus's backward hook sees only the output gradient, which is all the
        # per-example gradient of a Linear needs.
        warnings.filterwarnings("ignore", "Full backward hook", UserWarning)
        if private and cfg.clipping == "ghost":
            DPTensorFastGradientClipping(dp.model, dp.optimizer, row_loss, "mean").backward()
        elif private:
            # Opacus scales by the rows of this physical batch, so each row's grad_sample is
            # the gradient of its own weighted loss.
            row_loss.mean().backward()
            _per_sample_gradients_fp32(model.lora.values())
            if cfg.privacy_unit == "user":
                _sum_grad_samples_per_unit(model.lora.values(), unit_of_row, len(unit_idx))
        else:
            (row_loss.sum() / logical_units).backward()
    return loss_sum


def _per_sample_gradients_fp32(params: Iterable[torch.Tensor]) -> None:
    """Cast per-sample gradients to fp32, so that Opacus computes each one's norm and clips it
    in fp32: bf16 norms (autocast on CUDA) let a clipped gradient exceed C by ~0.3%."""
    for p in params:
        if getattr(p, "grad_sample", None) is not None and p.grad_sample.dtype != torch.float32:
            p.grad_sample = p.grad_sample.float()


def _apply_update(
    optimizer: torch.optim.Optimizer, *, private: bool, last_chunk: bool, units: int
) -> bool:
    """Step the optimizer where a logical batch ends; True when a step was completed.

    Opacus's optimizer knows where its BatchMemoryManager ends a logical batch (and noises an
    empty one); the control steps at its last chunk, and only when it saw a unit.
    """
    if private:
        optimizer.step()
        return not optimizer._is_last_step_skipped
    if last_chunk and units:
        optimizer.step()
    return last_chunk


def _record_step(
    cfg: TrainingConfig,
    plan: _Plan,
    model: _Model,
    dp: _Private,
    history: _History,
    step: int,
    loss_sum: float,
    units_seen: int,
    *,
    private: bool,
) -> None:
    """Record a completed step: its loss (NaN for an empty batch), the guards (which LoRA
    tensors had a nonzero clipped gradient before noise; all finite after the first step this
    process ran) and, when due, the accountant's epsilon."""
    if units_seen:
        history.losses.append(loss_sum / units_seen)
    else:
        history.losses.append(math.nan)
        history.state["empty_batches"] += 1
    seen = set(history.state["with_gradient"])
    if len(seen) < len(model.lora):
        for name, p in model.lora.items():
            # Opacus keeps the clipped sum before noise in summed_grad until the next step
            clipped = getattr(p, "summed_grad", None) if private else p.grad
            if clipped is not None and bool(torch.count_nonzero(clipped)):
                seen.add(name)
        history.state["with_gradient"] = sorted(seen)
    if history.state["finite_after_first"] is None:
        history.state["finite_after_first"] = _all_finite(model.lora.values())
    if private:  # the adaptive bound moves; a resumed run goes on from its checkpoint's
        history.state["max_grad_norm"] = float(dp.optimizer.max_grad_norm)
    if step % plan.epsilon_every == 0 or step == cfg.steps:
        history.epsilons.append((step, _epsilon(dp, cfg)))


def account_at_planned_rate(engine: PrivacyEngine, optimizer, sample_rate: float) -> None:
    """Make the accountant charge each step at `sample_rate`, the rate the noise was set for.

    Opacus's `make_private` accounts at `1 / len(data_loader)`, and its Poisson samplers'
    length is `int(1 / sample_rate)`, which floating point truncates for some rates: q = 1/211
    gives a length of 210, so each step was charged at 1/210 and a run planned for epsilon 8
    reported 8.013 (1,688 records, batch 8, 81 steps). The sampler itself draws at q; only the
    accounting was off, upwards. The hook is replaced, so the history keeps one rate.
    """
    optimizer.attach_step_hook(engine.accountant.get_optimizer_hook_fn(sample_rate=sample_rate))


def _epsilon(dp: _Private, cfg: TrainingConfig) -> float:
    """The accountant's epsilon at `training.target_delta` so far; infinity when not private."""
    epsilon = dp.engine.accountant.get_epsilon(delta=cfg.target_delta) if dp.engine else math.inf
    return float(epsilon)


def _finish(
    cfg: TrainingConfig,
    plan: _Plan,
    model: _Model,
    dp: _Private,
    recovery: _Recovery,
    history: _History,
    step: int,
    *,
    private: bool,
    device: str,
    out_dir: Path,
    started: float,
) -> TrainingResult:
    """Finish and guards: the final epsilon, the held-out loss and base-weight hash after
    training, the adapter saved atomically (the checkpoint folder is kept: see
    `retire_checkpoint`), and the result.

    Raises:
        RuntimeError: Opacus returned another module than the PEFT model it wrapped.
    """
    if not history.epsilons or history.epsilons[-1][0] != step:
        # a resumed run whose steps were all charged before the crash
        history.epsilons.append((step, _epsilon(dp, cfg)))
    peft_model = model.peft_model
    trained = dp.model.to_standard_module() if private else dp.model
    if trained is not peft_model:
        raise RuntimeError("Opacus returned a different module than the PEFT model it wrapped")
    peft_model.eval()
    heldout_loss_after = _mean_loss(peft_model, model.heldout_data, device)
    base_sha256_after = _base_sha256(peft_model)
    _save_adapter(peft_model, out_dir)
    return _result(
        cfg,
        plan,
        model,
        recovery,
        history,
        step,
        private=private,
        out_dir=out_dir,
        heldout_loss_after=heldout_loss_after,
        base_sha256_after=base_sha256_after,
        started=started,
    )


def _result(
    cfg: TrainingConfig,
    plan: _Plan,
    model: _Model,
    recovery: _Recovery,
    history: _History,
    step: int,
    *,
    private: bool,
    out_dir: Path,
    heldout_loss_after: float | None,
    base_sha256_after: str,
    started: float,
) -> TrainingResult:
    """The `TrainingResult` of a finished run (hashes the saved adapter folder)."""
    state, resume = history.state, recovery.resume
    return TrainingResult(
        private=private,
        privacy_unit=cfg.privacy_unit,
        epsilon=history.epsilons[-1][1],
        delta=cfg.target_delta,
        noise_multiplier=plan.noise_multiplier,
        sample_rate=plan.sample_rate,
        steps=step,
        accountant=cfg.accountant,
        max_grad_norm=cfg.max_grad_norm,
        clipping=cfg.clipping,
        secure_mode=cfg.secure_mode,
        n_train=len(plan.train_records),
        n_units=plan.n_units,
        n_heldout=len(plan.heldout_records),
        heldout_ids=tuple(r.id for r in plan.heldout_records),
        train_ids=tuple(r.id for r in plan.train_records),
        losses=history.losses,
        epsilons=history.epsilons,
        empty_batches=state["empty_batches"],
        resumed_from_step=resume.step if resume is not None else None,
        steps_repeated=recovery.charged - resume.step if resume is not None else 0,
        heldout_loss_before=state["heldout_loss_before"],
        heldout_loss_after=heldout_loss_after,
        lora_tensors_total=len(model.lora),
        lora_tensors_with_clipped_gradient=len(state["with_gradient"]),
        update_follows_gradient=state.get("update_guard"),
        lora_tensors_finite=bool(state["finite_after_first"]) and _all_finite(model.lora.values()),
        base_weights_unchanged=state["base_sha256_before"] == base_sha256_after,
        base_sha256_before=state["base_sha256_before"],
        base_sha256_after=base_sha256_after,
        adapter_dir=out_dir,
        adapter_sha256=sha256_tree(out_dir),
        seconds=time.monotonic() - started,
        clip_bound=cfg.clip_bound if private else "fixed",
        max_grad_norm_final=state.get("max_grad_norm", cfg.max_grad_norm),
        gradient_noise_multiplier=plan.gradient_noise_multiplier,
        count_noise_std=plan.count_noise_std,
        optimizer=cfg.optimizer,
        lora_freeze_a=cfg.lora_freeze_a,
    )


def retire_checkpoint(checkpoint_dir: Path) -> None:
    """Remove the checkpoint folder (step ledger and checkpoint) of a completed, settled run.

    `train_dp_lora` never calls it: the caller does, once the run's privacy budget is settled.
    Until then the folder is what stops a rerun from training (and releasing) a second model:
    a rerun finds every step charged and the last checkpoint, and only saves that model again.
    One rename retires the step ledger and the checkpoint together: a crash while deleting
    must never leave a checkpoint without the ledger that charges its steps. A missing folder
    is not an error (retiring twice, or a run without checkpoints).
    """
    checkpoint_dir = Path(checkpoint_dir)
    if not checkpoint_dir.exists():
        return
    retired = checkpoint_dir.with_name(f".{checkpoint_dir.name}.{time.time_ns()}.done")
    os.rename(checkpoint_dir, retired)
    shutil.rmtree(retired, ignore_errors=True)


def _physical_batches(
    batches: Iterable, private: bool, max_physical: int | None
) -> Iterator[tuple[torch.Tensor, int, bool]]:
    """(unit indices, units in the logical batch, last chunk of it) per physical batch.

    Private runs are split by Opacus's BatchMemoryManager (which tells the optimizer where a
    logical batch ends); the non-private control splits the same way itself.
    """
    for (unit_idx,) in batches:
        if private or not max_physical or len(unit_idx) <= max_physical:
            yield unit_idx, len(unit_idx), True
            continue
        chunks = unit_idx.split(max_physical)
        for i, chunk in enumerate(chunks):
            yield chunk, len(unit_idx), i == len(chunks) - 1


def _unit_rows(
    units: list[list[int]], unit_idx: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The example rows of the sampled units, each row's position in the batch and its weight.

    A row's weight is 1 / (its unit's number of rows), so a unit's weighted losses sum to the
    mean of its examples' losses.
    """
    rows, unit_of_row, weights = [], [], []
    for pos, unit in enumerate(unit_idx.tolist()):
        rows += units[unit]
        unit_of_row += [pos] * len(units[unit])
        weights += [1 / len(units[unit])] * len(units[unit])
    return torch.tensor(rows), torch.tensor(unit_of_row), torch.tensor(weights)


def _sum_grad_samples_per_unit(
    params: Iterable[torch.Tensor], unit_of_row: torch.Tensor, n_units: int
) -> None:
    """Replace per-row gradients by per-unit sums, so Opacus clips each unit's gradient."""
    for p in params:
        per_row = p.grad_sample
        index = unit_of_row.to(per_row.device)
        per_unit = torch.zeros(
            (n_units, *per_row.shape[1:]), dtype=per_row.dtype, device=per_row.device
        )
        p.grad_sample = per_unit.index_add_(0, index, per_row)


def _empty_gradients(params: Iterable[torch.Tensor], *, ghost: bool) -> None:
    """Give Opacus the gradients of an empty Poisson batch, so the step is noised and accounted.

    Llama cannot run a batch of 0; per-sample mode needs empty per-example gradients, ghost
    clipping an already clipped sum of zero.
    """
    for p in params:
        if ghost:
            p.grad = torch.zeros_like(p)
        else:
            p.grad_sample = torch.zeros((0, *p.shape), dtype=p.dtype, device=p.device)


def _checkpoint(folder: Path, step: int, model: _Model, history: _History) -> None:
    """Save LoRA tensors, optimizer state and the run's bookkeeping after step `step`."""
    tensors = {f"lora.{name}": p for name, p in model.lora.items()}
    tensors.update(optimizer_tensors(model.optimizer, model.names))
    snapshot = {
        **history.state,
        "losses": [None if math.isnan(x) else x for x in history.losses],
        "epsilons": [[s, e] for s, e in history.epsilons],
    }
    save_checkpoint(folder, step=step, tensors=tensors, state=snapshot)


def _run_fingerprint(
    cfg: TrainingConfig, train_records: list[Record], model_dir: str | Path, *, private: bool
) -> str:
    """sha256 over the settings (`training.noise_seed` included), the training ids and the
    base model's path: what a resumed run must share with the run that wrote the checkpoint."""
    digest = hashlib.sha256()
    digest.update(cfg.model_dump_json(exclude={"checkpoint_every", "utility"}).encode())
    digest.update(str(Path(model_dir).resolve()).encode())
    digest.update(b"private" if private else b"control")
    for record in train_records:
        digest.update(record.id.encode("utf-8") + b"\0")
    return digest.hexdigest()


def _require_secure_mode(cfg: TrainingConfig) -> None:
    """Refuse `training.secure_mode` with a seed: its generators come from the OS only."""
    if cfg.noise_seed is not None:
        raise TrainingConfigError(
            "training.secure_mode draws sampling and noise from the OS every step and refuses "
            "a seed; remove training.noise_seed"
        )


def train_lora(
    records: list[Record],
    *,
    model_dir: str | Path,
    cfg: TrainingConfig,
    out_dir: str | Path,
    device: str = "cpu",
    progress: bool = True,
    epsilon_every: int | None = None,
) -> TrainingResult:
    """The non-private control: `train_dp_lora(..., private=False)`.

    Same LoRA, split, Poisson sampling, per-example loss, optimizer and steps as the private
    run, without clipping, noise or accountant; `epsilon` is infinity. For benchmarks and the
    audit's control model only, never for release.
    """
    return train_dp_lora(
        records,
        model_dir=model_dir,
        cfg=cfg,
        out_dir=out_dir,
        device=device,
        progress=progress,
        epsilon_every=epsilon_every,
        private=False,
    )


def load_adapter_model(
    model_dir: str | Path,
    adapter_dir: str | Path,
    *,
    device: str = "cpu",
    expected_sha256: str | None = None,
) -> tuple[PeftModel, PreTrainedTokenizerBase]:
    """Load the base model with a trained adapter on top (safetensors only), in eval mode.

    Raises:
        ModelStoreError: The adapter folder lacks its safetensors/config, holds pickle files,
            or does not hash to `expected_sha256` (see `storage.sha256_tree`).
    """
    adapter_dir = Path(adapter_dir)
    if expected_sha256 is not None and sha256_tree(adapter_dir) != expected_sha256:
        raise ModelStoreError(
            f"{adapter_dir}: adapter files changed since training (sha256 mismatch); retrain "
            "or restore the adapter"
        )
    pickles = [p.name for p in adapter_dir.rglob("*") if p.suffix.lower() in PICKLE_SUFFIXES]
    if pickles:
        raise ModelStoreError(f"{adapter_dir}: refusing pickle-format files {sorted(pickles)}")
    missing = [name for name in ADAPTER_FILES if not (adapter_dir / name).is_file()]
    if missing:
        raise ModelStoreError(f"{adapter_dir}: not an adapter folder, missing {missing}")
    model, tokenizer = load_base_model(model_dir, device=device)
    adapted = PeftModel.from_pretrained(model, adapter_dir, is_trainable=False)
    return adapted.eval(), tokenizer


def _render(
    tokenizer: PreTrainedTokenizerBase, record: Record
) -> tuple[str, list[tuple[int, int]] | None]:
    """The training text of a record and the character spans of its assistant turns.

    Spans are None when the record has no assistant message (train on every token).
    """
    messages = [{"role": m.role, "content": m.content} for m in record.messages]
    has_assistant = any(m["role"] == "assistant" for m in messages)
    if not tokenizer.chat_template:
        text, spans = "", []
        for m in messages:
            text += f"<|{m['role']}|>\n"
            if m["role"] == "assistant":
                spans.append((len(text), len(text) + len(m["content"]) + 1))
            text += f"{m['content']}\n"
        text += tokenizer.eos_token or ""
        if messages and messages[-1]["role"] == "assistant":
            spans[-1] = (spans[-1][0], len(text))
        return text, spans if has_assistant else None

    def template(turns: list[dict[str, str]], open_reply: bool) -> str:
        return tokenizer.apply_chat_template(
            turns, tokenize=False, add_generation_prompt=open_reply
        )

    text = template(messages, False)
    spans = []
    for i, m in enumerate(messages):
        if m["role"] != "assistant":
            continue
        # The reply starts where the template's generation prompt ends and runs through the
        # end-of-turn tokens, provided the template renders prefixes as text prefixes.
        before = template(messages[:i], True) if i else ""
        through = template(messages[: i + 1], False)
        if i and text.startswith(through) and through.startswith(before):
            spans.append((len(before), len(through)))
        else:
            start = text.find(m["content"], spans[-1][1] if spans else 0)
            if start < 0:
                raise ValueError(f"record {record.id}: chat template rewrote an assistant turn")
            spans.append((start, start + len(m["content"])))
    return text, spans if has_assistant else None


def heldout_loss(
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    heldout_records: list[Record],
    *,
    max_seq_len: int,
    device: str = "cpu",
) -> float | None:
    """The held-out loss exactly as training measures it (first HELDOUT_EVAL_LIMIT records);
    None when no record has a label token. For benchmarks on data they may show."""
    data = encode_records(tokenizer, heldout_records[:HELDOUT_EVAL_LIMIT], max_seq_len=max_seq_len)
    return _mean_loss(model, data, device)


def _mean_loss(
    model: torch.nn.Module, data: tuple[torch.Tensor, torch.Tensor, torch.Tensor], device: str
) -> float | None:
    """Mean per-example loss over examples that have label tokens (no gradient); None when
    there is none (an empty held-out set, or no label token): never NaN."""
    was_training = model.training
    model.eval()
    losses = []
    with torch.no_grad():
        for start in range(0, len(data[0]), EVAL_BATCH_SIZE):
            input_ids, attention_mask, labels = (t[start : start + EVAL_BATCH_SIZE] for t in data)
            logits = model(
                input_ids=input_ids.to(device), attention_mask=attention_mask.to(device)
            ).logits
            has_labels = (labels[:, 1:] != IGNORE_INDEX).any(dim=1).to(device)
            losses.append(per_example_loss(logits, labels.to(device))[has_labels])
    model.train(was_training)
    kept = torch.cat(losses) if losses else torch.zeros(0)
    return kept.mean().item() if len(kept) else None


def _base_sha256(model: torch.nn.Module) -> str:
    """sha256 over the names and bytes of every non-LoRA tensor of the model."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        if "lora_" in name:
            continue
        digest.update(name.encode("utf-8"))
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy())
    return digest.hexdigest()


def _all_finite(tensors: Iterable[torch.Tensor]) -> bool:
    return all(bool(torch.isfinite(t).all()) for t in tensors)


def _save_adapter(model: PeftModel, out_dir: Path) -> None:
    """Write only adapter_model.safetensors + adapter_config.json, atomically, at out_dir.

    Each version goes into its own hidden folder `.<name>.versions/<sha256>`, and `out_dir` is
    a symlink swapped onto the new version by one atomic rename: a crash or an interrupt at any
    point leaves `out_dir` at the previous version or at the complete new one, never missing
    and never half-written. (A plain folder left by an older release is moved aside first,
    which leaves a window of one rename.)
    """
    parent = out_dir.parent
    parent.mkdir(parents=True, exist_ok=True)
    versions = parent / f".{out_dir.name}.versions"
    versions.mkdir(exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".staging.", suffix=".tmp", dir=versions))
    link = versions / f".link.{os.getpid()}.tmp"
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        for path in tmp.iterdir():
            if path.is_dir():
                shutil.rmtree(path)
            elif path.name not in ADAPTER_FILES:  # PEFT also writes a README model card
                path.unlink()
        _canonical_adapter_config(tmp / "adapter_config.json")
        for name in ADAPTER_FILES:
            with open(tmp / name, "rb") as handle:
                os.fsync(handle.fileno())
        digest = sha256_tree(tmp)
        final = versions / digest
        if final.exists() and sha256_tree(final) != digest:
            _discard(final)  # not the version its name says: never link to it
        if final.exists():
            shutil.rmtree(tmp)
        else:
            os.rename(tmp, final)
        previous = Path(os.path.realpath(out_dir)) if out_dir.is_symlink() else None
        if out_dir.exists() and not out_dir.is_symlink():
            os.rename(out_dir, versions / f"legacy-{os.getpid()}-{time.time_ns()}")
        link.unlink(missing_ok=True)
        os.symlink(os.path.relpath(final, parent), link)
        os.replace(link, out_dir)
        if previous is not None and previous != final.resolve():
            _discard(previous)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        link.unlink(missing_ok=True)


def _canonical_adapter_config(path: Path) -> None:
    """Rewrite PEFT's adapter_config.json deterministically: PEFT stores `target_modules` as a
    set, whose order (and so the adapter's sha256) changed with PYTHONHASHSEED."""
    config = json.loads(path.read_text(encoding="utf-8"))
    for key, value in config.items():
        if key in ("target_modules", "modules_to_save", "exclude_modules") and isinstance(
            value, list
        ):
            config[key] = sorted(value)
    path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _discard(folder: Path) -> None:
    """Delete a version folder so that no partial copy is ever left under a version's name.

    It is first renamed to a hidden `.old` name (atomic), then removed: a crash during the
    removal leaves only an `.old` leftover, never a half-deleted folder named by its hash.
    """
    doomed = folder.with_name(f".{folder.name}.{os.getpid()}.{time.time_ns()}.old")
    try:
        os.rename(folder, doomed)
    except FileNotFoundError:
        return
    shutil.rmtree(doomed, ignore_errors=True)
