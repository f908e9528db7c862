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

The pipeline's path is `train_dp_lora_distributed` (`training.processes` above 1): the
single-process trainer's phases (`dp_lora`: held-out split, checkpoints and step ledger, the
#820 guards, the adapter files), run in every process with the model wrapped in DPDDP. Only
rank 0 charges the step ledger, writes checkpoints and the adapter and shows progress; the
clipped sum the guards read is summed over the ranks, so rank 0's guards see the whole step.
Opacus's distributed sampler skips an empty draw, which would let the ranks' steps drift apart
and raise every rank's real sample rate above `q` (a rank's records would enter only steps
where it drew some); `PoissonShareSampler` yields the empty draw instead, so every rank steps
exactly `training.steps` times, in lockstep.

Launch: `train_dp_lora_distributed` and `launch(...)` start the processes on one machine (gloo
on CPU, forked by a fork server; NCCL on GPUs, spawned: see `_start`); on several machines,
`torchrun` sets `RANK`, `WORLD_SIZE`, `MASTER_ADDR` and `MASTER_PORT` and each process calls
`train_rank` (docs/engineer.md, "Training in several processes").

Scope: record-level privacy units, per-sample clipping with a fixed bound
(`training.privacy_unit: example`, `training.clipping: flat`, `training.clip_bound: fixed`);
anything else is refused with the setting to change (the single-process trainer,
`dp_lora.train_dp_lora`, covers user-level units, ghost and adaptive clipping).
"""

import dataclasses
import hashlib
import math
import os
import pickle
import socket
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import transformers
from opacus import PrivacyEngine
from opacus.distributed import DifferentiallyPrivateDistributedDataParallel as DPDDP
from opacus.optimizers import DistributedDPOptimizer
from opacus.utils.uniform_sampler import DistributedUniformWithReplacementSampler
from torch.multiprocessing.spawn import ProcessException
from torch.utils.data import DataLoader, TensorDataset
from transformers import AutoModelForCausalLM

from pipelines.steps.config import TrainingConfig
from pipelines.steps.records import Record
from pipelines.steps.training import dp_lora
from pipelines.steps.training.checkpoint import CheckpointError
from pipelines.steps.training.dp_lora import (
    TrainingConfigError,
    attach_lora,
    per_example_loss,
)
from pipelines.steps.training.modelstore import ModelStoreError


class DistributedTrainingError(RuntimeError):
    """A training process failed or was killed: the run stops and releases no adapter."""


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
    noise = dp_lora.configured_sigma(cfg, sample_rate)
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
    dp_lora.account_at_planned_rate(engine, optimizer, sample_rate)
    if distributed:
        _yield_empty_draws(loader)
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
    with tempfile.TemporaryDirectory(prefix="sovtune-ranks-") as folder:
        results = _Results(folder)
        _start(
            _worker,
            (processes, port, backend, str(model_dir), data, cfg, results),
            processes,
            backend=backend,
        )
        return [results[rank] for rank in range(processes)]


class _Results:
    """What the processes hand back to the launcher: one pickle per entry, written atomically
    into the launcher's private temporary folder (a Manager would start one more process)."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)

    @staticmethod
    def _name(key) -> str:
        return "-".join(str(k) for k in (key if isinstance(key, tuple) else (key,))) + ".pkl"

    def __setitem__(self, key, value) -> None:
        path = self.folder / self._name(key)
        staging = path.with_name(f".{path.name}.tmp")
        with open(staging, "wb") as handle:
            pickle.dump((key, value), handle)
        os.replace(staging, path)

    def items(self) -> list[tuple]:
        entries = []
        for path in sorted(self.folder.glob("*.pkl")):
            with open(path, "rb") as handle:
                entries.append(pickle.load(handle))
        return entries

    def get(self, key, default=None):
        return dict(self.items()).get(key, default)

    def __getitem__(self, key):
        return dict(self.items())[key]


def _start(function, args: tuple, processes: int, *, backend: str) -> None:
    """Run `function(rank, *args)` in `processes` processes and wait for all of them; the
    first that fails stops the others (torch.multiprocessing's ProcessException).

    gloo (CPU): the processes are forked by a fork server, which imports the main script and
    this module (torch, transformers, Opacus, PEFT) once per parent process. Not fork: a forked
    child of a process whose thread pools already ran can hang in its first parallel region;
    the fork server never ran one. Not spawn: every process of every run would import the
    libraries again (about 5 s of CPU each, on 2 cores).
    nccl (GPUs): spawned afresh. A process forked after the CUDA driver was initialized cannot
    use CUDA, and a library import in the fork server may initialize it (a device count);
    a GPU run is long enough for the imports not to matter.
    """
    method = "spawn" if backend == "nccl" else "forkserver"
    if method == "forkserver":  # no effect once the server runs (this parent's first run)
        mp.get_context(method).set_forkserver_preload(["__main__", __name__])
    mp.start_processes(function, args=args, nprocs=processes, join=True, start_method=method)


# The pipeline's path: `training.processes` above 1 (resources/trainer.py).


class PoissonShareSampler(DistributedUniformWithReplacementSampler):
    """Opacus's distributed Poisson sampler, except that an empty draw is yielded, not skipped.

    Each rank draws each of its records with probability `sample_rate` for each of
    `num_batches` steps. Opacus 1.6 skips a draw that selected nothing; the rank then starts its
    next step early, and its records are only ever part of steps where it drew some: their
    real sample rate is above `q`, and the ranks' steps no longer line up. Here every draw is a
    step (an empty one is still clipped, summed, noised and accounted), as in one process.
    """

    def __iter__(self):
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.shuffle_seed + self.epoch)
            indices = torch.randperm(self.total_size, generator=generator)
        else:
            indices = torch.arange(self.total_size)
        indices = indices[self.rank : self.total_size : self.num_replicas]
        for _ in range(self.num_batches):
            mask = torch.rand(self.num_samples, generator=self.generator) < self.sample_rate
            yield indices[mask.nonzero(as_tuple=False).reshape(-1)]


def _yield_empty_draws(loader: DataLoader) -> None:
    """Make Opacus's distributed Poisson loader yield empty draws (`PoissonShareSampler`)."""
    sampler = loader.batch_sampler
    if type(sampler) is not DistributedUniformWithReplacementSampler:
        raise RuntimeError(f"Opacus built a {type(sampler).__name__}, not its distributed sampler")
    sampler.__class__ = PoissonShareSampler


class GlobalSumOptimizer(DistributedDPOptimizer):
    """Opacus's distributed DP optimizer that also sums the ranks' clipped sums (before noise).

    The step is Opacus's: noise on rank 0 only, the ranks' noised sums added and divided by the
    expected global batch. Afterwards each LoRA tensor's `summed_grad` holds the clipped sum of
    the whole step (every rank's), which the #820 guards of `dp_lora` read: rank 0 then checks
    the step the single-process trainer would check. It costs one more all-reduce of the LoRA
    tensors per step; nothing of it is published.
    """

    def add_noise(self):
        # rank > 0 makes each grad a view of summed_grad, which the reduction then changes
        self._local_sums = [p.summed_grad.detach().clone() for p in self.params]
        super().add_noise()

    def reduce_gradients(self):
        super().reduce_gradients()
        for p, total in zip(self.params, self._local_sums, strict=True):
            dist.all_reduce(total, op=dist.ReduceOp.SUM)
            p.summed_grad = total
        self._local_sums = []


def resolve_backend(cfg: TrainingConfig, device: str) -> str:
    """The torch.distributed backend for `training.processes` / `training.backend` on `device`.

    auto: nccl when the trainer's device is CUDA (one GPU per process), gloo when it is the CPU.
    gloo trains every process on the CPU; nccl needs a GPU for each process.

    Raises:
        TrainingConfigError: nccl (asked for, or auto on a CUDA device) with fewer GPUs than
            processes, naming `training.processes` and `training.backend`.
    """
    backend = cfg.backend
    if backend == "auto":
        backend = "nccl" if str(device).startswith("cuda") else "gloo"
    if backend == "nccl":
        gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if not dist.is_nccl_available() or gpus < cfg.processes:
            raise TrainingConfigError(
                f"training.processes = {cfg.processes} with training.backend {cfg.backend} "
                f"needs one CUDA GPU per process over NCCL; this machine has {gpus} usable "
                f"GPU(s){'' if dist.is_nccl_available() else ' and no NCCL'}: set "
                f"training.processes to at most {max(gpus, 1)} or training.backend: gloo (CPU)"
            )
    return backend


def train_dp_lora_distributed(
    records: list[Record],
    *,
    model_dir: str | Path,
    cfg: TrainingConfig,
    out_dir: str | Path,
    device: str = "cpu",
    checkpoint_dir: str | Path | None = None,
    progress: bool = True,
    epsilon_every: int | None = None,
) -> dp_lora.TrainingResult:
    """`dp_lora.train_dp_lora` in `training.processes` processes on this machine (DPDDP).

    The same split, plan (sigma, q, steps), step ledger and checkpoints, guards, adapter files
    and `TrainingResult` as one process; rank 0 charges each step before its update, writes the
    checkpoints and, once every rank has finished its steps, the adapter. A resumed run reads
    rank 0's checkpoint and hands it to every rank.

    Args:
        records, model_dir, cfg, out_dir, checkpoint_dir, progress, epsilon_every: As
            `dp_lora.train_dp_lora` (progress and epsilon queries on rank 0 only).
        device: The trainer's device: with `training.backend` auto, CUDA means nccl with
            `cuda:RANK` for each process, the CPU means gloo.

    Returns:
        Rank 0's result (the run's); `seconds` is the whole run, process start included.

    Raises:
        TrainingConfigError, CheckpointError, ModelStoreError: As one process would, from the
            rank that raised it (the message names the setting or file).
        DistributedTrainingError: Any other failure of a process, or a process killed; the
            run releases no adapter (steps already charged stay charged).
    """
    started = time.monotonic()
    backend = resolve_backend(cfg, device)
    # once, here: the split, the refusals and sigma's search (seconds) are the same for all
    plan = dp_lora._prepare(records, cfg, model_dir, private=True, epsilon_every=epsilon_every)
    with tempfile.TemporaryDirectory(prefix="sovtune-ranks-") as folder:
        results = _Results(folder)
        try:
            _start(
                _pipeline_worker,
                (
                    cfg.processes,
                    _free_port(),
                    backend,
                    plan,
                    str(model_dir),
                    cfg,
                    str(out_dir),
                    None if checkpoint_dir is None else str(checkpoint_dir),
                    progress,
                    results,
                ),
                cfg.processes,
                backend=backend,
            )
        except ProcessException as exc:
            raise _failure(dict(results.items()), exc, cfg.processes) from None
        result = results.get("result")
    if result is None:
        raise DistributedTrainingError(
            f"training.processes = {cfg.processes}: rank 0 ended without a result; no adapter "
            "is released"
        )
    return dataclasses.replace(result, seconds=time.monotonic() - started)


_PASSED_ON = {
    "TrainingConfigError": TrainingConfigError,
    "CheckpointError": CheckpointError,
    "ModelStoreError": ModelStoreError,
}


_PEER_LOST = ("Connection reset by peer", "Connection closed by peer", "Broken pipe")
"""What a rank's collective raises when another rank died: a consequence, not the cause."""


def _failure(results: dict, exc: ProcessException, processes: int) -> Exception:
    """The run's error, cause first: a rank's own error (not a lost peer), else the rank that
    died (by the launcher's report, or as the rank that recorded no error while another lost
    its peers), else the first error recorded."""
    errors = dict(
        sorted((key[1], value) for key, value in results.items() if isinstance(key, tuple))
    )
    own = [
        (rank, name, message)
        for rank, (name, message) in errors.items()
        if name not in ("DistBackendError", "DistNetworkError")
        and not any(sign in message for sign in _PEER_LOST)
    ]
    if own:
        rank, name, message = own[0]
        error_class = _PASSED_ON.get(name)
        if error_class is not None:
            return error_class(f"{message} (training rank {rank} of {processes})")
        return DistributedTrainingError(
            f"training.processes = {processes}: rank {rank} failed ({name}: {message}); the "
            "run stopped and released no adapter"
        )
    died = exc.error_index
    if isinstance(exc, mp.ProcessExitedException) and exc.signal_name:
        how = f"signal {exc.signal_name}"
    elif errors and (silent := [r for r in range(processes) if r not in errors]):
        died, how = silent[0], "no error of its own: a signal"
    else:
        how = f"exit code {getattr(exc, 'exit_code', '?')}"
    return DistributedTrainingError(
        f"training.processes = {processes}: rank {died} died ({how}; out of memory is the "
        "usual cause: lower training.processes or training.max_physical_batch_size), the "
        "others lost their peer; the run stopped and released no adapter"
    )


def _free_port() -> int:
    """A TCP port free on 127.0.0.1 now (for the processes' rendezvous)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _pipeline_worker(
    rank: int,
    world_size: int,
    port: int,
    backend: str,
    plan: "dp_lora._Plan",
    model_dir: str,
    cfg: TrainingConfig,
    out_dir: str,
    checkpoint_dir: str | None,
    progress: bool,
    results,
) -> None:
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    if backend == "nccl":
        torch.cuda.set_device(rank)
        device = f"cuda:{rank}"
    else:  # share the cores: N processes each running all-core thread pools thrash
        device = "cpu"
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // world_size))
    if rank != 0:  # rank 0 speaks for the run: the others' warnings and bars would repeat it
        warnings.simplefilter("ignore")
        transformers.utils.logging.set_verbosity_error()
        transformers.utils.logging.disable_progress_bar()
    try:
        dist.init_process_group(backend, rank=rank, world_size=world_size)
        try:
            result = _train_pipeline_rank(
                plan,
                model_dir=model_dir,
                cfg=cfg,
                out_dir=Path(out_dir),
                device=device,
                checkpoint_dir=None if checkpoint_dir is None else Path(checkpoint_dir),
                progress=progress and rank == 0,
            )
        finally:
            dist.destroy_process_group()
    except BaseException as exc:
        # type and message only: the trainer's messages name settings, files, counts and ids
        results[("error", rank)] = (type(exc).__name__, str(exc))
        raise  # a nonzero exit: the launcher stops the other ranks
    if rank == 0:
        results["result"] = result


def _train_pipeline_rank(
    plan: "dp_lora._Plan",
    *,
    model_dir: str,
    cfg: TrainingConfig,
    out_dir: Path,
    device: str,
    checkpoint_dir: Path | None,
    progress: bool,
) -> dp_lora.TrainingResult | None:
    """One rank of `train_dp_lora_distributed`: `dp_lora`'s phases after the prepared `plan`,
    around a DPDDP model. Returns the run's result on rank 0, None on the others."""
    started = time.monotonic()
    rank = dist.get_rank()
    if rank == 0:
        recovery = dp_lora._open_checkpoint(checkpoint_dir, plan, private=True)
        shared = [recovery.resume, recovery.charged]
    else:
        # epsilon at the last step only; no ledger, no checkpoint, no held-out evaluation
        plan = dataclasses.replace(plan, epsilon_every=cfg.steps + 1)
        shared = [None, 0]
    dist.broadcast_object_list(shared, src=0)
    if rank != 0:
        recovery = dp_lora._Recovery(
            checkpoint_dir=None, step_ledger=None, resume=shared[0], charged=shared[1]
        )
    model = dp_lora._build_model(model_dir, cfg, plan, device=device)
    if rank != 0:
        model = dataclasses.replace(model, heldout_data=tuple(t[:0] for t in model.heldout_data))
    history = dp_lora._start_or_resume(model, recovery, plan, device=device)
    dp = _make_private_rank(cfg, plan, model, recovery.charged, rank=rank, device=device)
    step = dp_lora._run_steps(
        cfg,
        plan,
        model,
        dp,
        recovery,
        history,
        private=True,
        device=device,
        progress=progress,
        on_step=None,
    )
    if not history.epsilons or history.epsilons[-1][0] != step:
        history.epsilons.append((step, dp_lora._epsilon(dp, cfg)))
    peft_model = model.peft_model
    if getattr(dp.model.to_standard_module(), "module", None) is not peft_model:
        raise RuntimeError("Opacus returned a different module than the PEFT model it wrapped")
    dist.barrier()  # every rank finished its steps: never save the adapter of a partial run
    if rank != 0:
        return None
    peft_model.eval()
    heldout_loss_after = dp_lora._mean_loss(peft_model, model.heldout_data, device)
    base_sha256_after = dp_lora._base_sha256(peft_model)
    dp_lora._save_adapter(peft_model, out_dir)
    return dp_lora._result(
        cfg,
        plan,
        model,
        recovery,
        history,
        step,
        private=True,
        out_dir=out_dir,
        heldout_loss_after=heldout_loss_after,
        base_sha256_after=base_sha256_after,
        started=started,
    )


def _make_private_rank(
    cfg: TrainingConfig, plan, model, charged: int, *, rank: int, device: str
) -> "dp_lora._Private":
    """`dp_lora._make_private` for one rank: the PEFT model in DPDDP, Opacus's distributed
    Poisson loader (yielding empty draws) and optimizer (summing the clipped sums)."""
    sampler_generator, noise_generator = _rank_generators(cfg, charged, rank=rank, device=device)
    loader = DataLoader(
        TensorDataset(torch.arange(plan.n_units)),
        batch_size=cfg.expected_batch_size,
        generator=sampler_generator,
    )
    model.peft_model.train()
    engine = PrivacyEngine(accountant=cfg.accountant, secure_mode=False)
    dp_model, dp_optimizer, dp_loader = engine.make_private(
        module=DPDDP(model.peft_model),
        optimizer=model.optimizer,
        data_loader=loader,
        noise_multiplier=plan.noise_multiplier,
        max_grad_norm=cfg.max_grad_norm,
        poisson_sampling=True,
        grad_sample_mode="hooks",
        noise_generator=noise_generator,
    )
    if type(dp_optimizer) is not DistributedDPOptimizer:
        raise RuntimeError(f"Opacus built {type(dp_optimizer).__name__}, not its DDP optimizer")
    dp_optimizer.__class__ = GlobalSumOptimizer
    dp_lora.account_at_planned_rate(engine, dp_optimizer, plan.sample_rate)
    dp_optimizer.secure_mode = cfg.secure_mode  # Opacus's noise sampler of dp_lora
    _yield_empty_draws(dp_loader)
    if charged:
        engine.accountant.history = [(plan.noise_multiplier, plan.sample_rate, charged)]
    if not math.isclose(dp_loader.sample_rate, plan.sample_rate):
        raise RuntimeError(
            f"Opacus samples at {dp_loader.sample_rate}, noise was set for {plan.sample_rate}"
        )
    return dp_lora._Private(
        engine=engine,
        model=dp_model,
        optimizer=dp_optimizer,
        loader=dp_loader,
        sampler_generator=sampler_generator,
        noise_generator=noise_generator,
    )


def _rank_generators(
    cfg: TrainingConfig, charged: int, *, rank: int, device: str
) -> tuple[torch.Generator, torch.Generator]:
    """(sampler, noise) generators of one rank: from the OS (`dp_lora.os_generator`), or with
    `training.noise_seed` (the `test` profile) derived from it, the rank, the role and the steps
    already charged. Each rank samples its own records; only rank 0's noise is used."""
    if cfg.noise_seed is None:
        return dp_lora.os_generator("cpu"), dp_lora.os_generator(device)

    def derived(role: str) -> int:
        text = f"{cfg.noise_seed}:{role}:{charged}".encode()
        return int.from_bytes(hashlib.sha256(text).digest()[:8], "little")

    return (
        torch.Generator().manual_seed(derived(f"sampler:{rank}")),
        torch.Generator(device=device).manual_seed(derived("noise")),
    )
