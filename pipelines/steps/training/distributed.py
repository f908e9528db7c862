"""DP-LoRA training in several processes: Opacus's DPDDP, one logical batch, one accountant (#21.3).

Every process (rank) holds the same LoRA model, wrapped in Opacus's
`DifferentiallyPrivateDistributedDataParallel` (which broadcasts rank 0's weights at the start).
Opacus then makes the data loader distributed: each rank holds every `world_size`-th record and
draws each of them independently with the single-process sample rate `q`, so the records of one
step over all ranks are one Poisson sample of the whole training set with rate `q` (expected
global batch `q * N`, the single-process one). Each rank clips its own per-example gradients;
`DistributedDPOptimizer` adds the Gaussian noise on rank 0 only (once per step, standard
deviation `sigma * max_grad_norm`), sums the ranks' gradients and divides by the expected global
batch, so every rank applies the same update and the ranks' weights stay identical.

The privacy cost is that of the single-process run: the same `q`, `sigma` and steps. Every rank's
accountant records the same history; rank 0's is the run's ledger, and only rank 0 reports
epsilon (the other ranks' copies are never added to it: one run, one charge).

Launch: `launch(...)` spawns the processes on one machine (gloo on CPU, NCCL on GPUs); on
several machines, `torchrun` sets `RANK`, `WORLD_SIZE`, `MASTER_ADDR` and `MASTER_PORT` and
each process calls `train_rank` (docs/engineer.md, "Training in several processes").

Scope: record-level privacy units, per-sample clipping with a fixed bound
(`training.privacy_unit: example`, `training.clipping: flat`, `training.clip_bound: fixed`);
anything else is refused with the setting to change (the single-process trainer,
`dp_lora.train_dp_lora`, covers user-level units, ghost and adaptive clipping).
"""

import math
import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from opacus import PrivacyEngine
from opacus.accountants.utils import get_noise_multiplier
from opacus.distributed import DifferentiallyPrivateDistributedDataParallel as DPDDP
from torch.utils.data import DataLoader, TensorDataset
from transformers import AutoModelForCausalLM

from pipelines.steps.config import TrainingConfig
from pipelines.steps.training.dp_lora import (
    TrainingConfigError,
    attach_lora,
    per_example_loss,
)


@dataclass(frozen=True)
class RankResult:
    """What one process ends with.

    Attributes:
        rank: This process's rank.
        world_size: Processes in the run.
        epsilon: The accountant's epsilon at `training.target_delta` after `steps` steps (rank
            0's is the run's; the others are the same history, never added to it).
        noise_multiplier: Noise std / max_grad_norm of every step (added once, on rank 0).
        sample_rate: Poisson probability of each training record per step, on whichever rank
            holds it.
        expected_batch_size: Expected records per step over all ranks (`sample_rate * N`).
        steps: Steps taken (and charged).
        records_seen: Records this rank drew over all steps.
        adapter: The trainable LoRA tensors at the end, by name (on CPU).
    """

    rank: int
    world_size: int
    epsilon: float
    noise_multiplier: float
    sample_rate: float
    expected_batch_size: float
    steps: int
    records_seen: int
    adapter: dict[str, torch.Tensor]


def privacy_plan(n_records: int, cfg: TrainingConfig) -> tuple[float, float]:
    """`(sample_rate, noise_multiplier)` of a run over `n_records` training records: the same
    formula as the single-process trainer, whatever the number of processes."""
    sample_rate = 1 / math.ceil(n_records / cfg.expected_batch_size)
    noise = get_noise_multiplier(
        target_epsilon=cfg.target_epsilon,
        target_delta=cfg.target_delta,
        sample_rate=sample_rate,
        steps=cfg.steps,
        accountant=cfg.accountant,
    )
    return sample_rate, noise


def _check_supported(cfg: TrainingConfig, n_records: int) -> None:
    if cfg.privacy_unit != "example":
        raise TrainingConfigError(
            f"training.privacy_unit = {cfg.privacy_unit!r}: training in several processes "
            "supports record-level units only; set training.privacy_unit: example or train in "
            "one process"
        )
    if cfg.clipping != "flat":
        raise TrainingConfigError(
            f"training.clipping = {cfg.clipping!r}: training in several processes clips "
            "per-sample gradients; set training.clipping: flat or train in one process"
        )
    if cfg.clip_bound != "fixed":
        raise TrainingConfigError(
            f"training.clip_bound = {cfg.clip_bound!r}: training in several processes supports "
            "a fixed clipping bound only; set training.clip_bound: fixed or train in one process"
        )
    if cfg.target_delta >= 1 / n_records:
        raise TrainingConfigError(
            f"training.target_delta = {cfg.target_delta:g} must be below 1/N = "
            f"{1 / n_records:.3g} (N = {n_records} records); lower training.target_delta"
        )


def train_rank(
    model_dir: str | Path,
    data: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    cfg: TrainingConfig,
    *,
    device: str = "cpu",
) -> RankResult:
    """Train this process's share of a DP-LoRA run; `torch.distributed` must be initialized
    (a run of one process without it is the single-process reference).

    Args:
        model_dir: Local Hugging Face folder of the base model (the same on every rank).
        data: `(input_ids, attention_mask, labels)` of every training record
            (`dp_lora.encode_records`), the same tensors on every rank: Opacus's sampler
            gives each rank its share.
        cfg: Training settings (`expected_batch_size`, `steps`, `target_epsilon`, ...).
        device: `cpu` or this rank's `cuda:N`.

    Returns:
        This rank's result.
    """
    n_records = len(data[0])
    _check_supported(cfg, n_records)
    distributed = dist.is_available() and dist.is_initialized()
    rank = dist.get_rank() if distributed else 0
    world_size = dist.get_world_size() if distributed else 1
    sample_rate, noise_multiplier = privacy_plan(n_records, cfg)

    base = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).to(device)
    model = attach_lora(base, cfg, device=device)
    model.train()
    lora = [p for p in model.parameters() if p.requires_grad]
    wrapped = DPDDP(model) if distributed else model
    optimizer = (
        torch.optim.Adam(lora, lr=cfg.learning_rate)
        if cfg.optimizer == "adam"
        else torch.optim.SGD(lora, lr=cfg.learning_rate)
    )
    loader = DataLoader(TensorDataset(*data), batch_size=cfg.expected_batch_size)
    # Each rank draws its own records: independent generators (the noise is rank 0's alone).
    sampler_generator = torch.Generator().manual_seed(cfg.seed * 1_000 + rank)
    noise_generator = torch.Generator(device=device).manual_seed(cfg.seed * 1_000 + 999)
    engine = PrivacyEngine(accountant=cfg.accountant, secure_mode=False)
    wrapped, optimizer, loader = engine.make_private(
        module=wrapped,
        optimizer=optimizer,
        data_loader=loader,
        noise_multiplier=noise_multiplier,
        max_grad_norm=cfg.max_grad_norm,
        poisson_sampling=True,
        noise_generator=noise_generator,
    )
    loader.batch_sampler.generator = sampler_generator
    if not math.isclose(loader.sample_rate, sample_rate):
        raise RuntimeError(f"Opacus samples at {loader.sample_rate}, noise set for {sample_rate}")

    seen = 0
    steps = 0
    while steps < cfg.steps:
        for input_ids, attention_mask, labels in loader:
            if steps == cfg.steps:
                break
            optimizer.zero_grad(set_to_none=True)
            if len(input_ids):
                input_ids, attention_mask, labels = (
                    t.to(device) for t in (input_ids, attention_mask, labels)
                )
                logits = wrapped(input_ids=input_ids, attention_mask=attention_mask).logits
                per_example_loss(logits, labels).mean().backward()
            else:  # an empty Poisson batch is still a noised, accounted step (every rank steps)
                for p in lora:
                    p.grad_sample = torch.zeros((0, *p.shape), dtype=p.dtype, device=p.device)
            optimizer.step()
            seen += len(input_ids)
            steps += 1
    epsilon = engine.accountant.get_epsilon(delta=cfg.target_delta)
    adapter = {
        name: p.detach().to("cpu").clone()
        for name, p in model.named_parameters()
        if p.requires_grad
    }
    return RankResult(
        rank=rank,
        world_size=world_size,
        epsilon=epsilon,
        noise_multiplier=noise_multiplier,
        sample_rate=sample_rate,
        expected_batch_size=sample_rate * n_records,
        steps=steps,
        records_seen=seen,
        adapter=adapter,
    )


def _worker(
    rank: int,
    world_size: int,
    port: int,
    backend: str,
    model_dir: str,
    data: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    cfg: TrainingConfig,
    results,
) -> None:
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    device = f"cuda:{rank}" if backend == "nccl" else "cpu"
    if backend == "nccl":
        torch.cuda.set_device(rank)
    dist.init_process_group(backend, rank=rank, world_size=world_size)
    try:
        results[rank] = train_rank(model_dir, data, cfg, device=device)
    finally:
        dist.destroy_process_group()


def launch(
    model_dir: str | Path,
    data: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    cfg: TrainingConfig,
    *,
    processes: int,
    backend: str = "gloo",
    port: int = 29512,
) -> list[RankResult]:
    """Run `train_rank` in `processes` local processes (gloo on CPU, `nccl` one GPU each).

    Returns:
        Every rank's result, by rank (rank 0's epsilon is the run's).
    """
    if processes < 1:
        raise ValueError(f"processes = {processes}: need at least 1")
    with mp.Manager() as manager:
        results = manager.dict()
        # Fresh processes (spawn): a forked child of a process whose thread pools already ran
        # can hang in its first parallel region, and CUDA cannot be forked at all.
        mp.spawn(
            _worker,
            args=(processes, port, backend, str(model_dir), data, cfg, results),
            nprocs=processes,
            join=True,
        )
        return [results[rank] for rank in range(processes)]
