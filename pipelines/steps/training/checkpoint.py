"""Resumable DP-LoRA training: a durable step ledger and hash-verified checkpoints.

DP-SGD releases a noised gradient at every step, and each release is charged to the privacy
budget whether or not the run survives. So the step is written to an append-only ledger
(fsynced) *before* the optimizer applies it; a checkpoint only records where the model was.
A run resumed after a crash restarts from its last checkpoint but charges every step the ledger
holds, including the steps it repeats: epsilon is never under-reported.

Checkpoints hold tensors only (safetensors, never pickles) plus a JSON manifest naming the
tensor file and its sha256; both are written atomically (temporary file, fsync, rename), the
manifest last, and the tensor file is verified against the manifest before it is loaded.
"""

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from pipelines.steps.storage import atomic_write, sha256_file, write_json

MANIFEST = "checkpoint.json"
STEP_LEDGER = "steps.jsonl"


class CheckpointError(RuntimeError):
    """A checkpoint that must not be loaded (altered, torn, or from another run's settings)."""


@dataclass(frozen=True)
class Checkpoint:
    """A loaded checkpoint: the step it was taken after, its tensors and its JSON state."""

    step: int
    tensors: dict[str, torch.Tensor]
    state: dict[str, Any]


class StepLedger:
    """Append-only record of the DP-SGD steps charged to one run, one JSON line per step.

    A line is flushed and fsynced before the step's noised update is applied. A torn last line
    (a crash while writing it) still counts as a charged step: the ledger errs toward charging.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def charged(self) -> int:
        """Number of steps charged so far (0 when the ledger does not exist)."""
        if not self.path.exists():
            return 0
        with open(self.path, "rb") as handle:
            return sum(1 for line in handle if line.strip())

    def mechanisms(self) -> list[dict[str, float]]:
        """The distinct (noise_multiplier, sample_rate) of the charged steps, in first-seen
        order (a torn last line is skipped here: it still counts in `charged`)."""
        if not self.path.exists():
            return []
        seen: list[dict[str, float]] = []
        with open(self.path, encoding="utf-8") as handle:
            for line in handle:
                try:
                    entry = json.loads(line)
                    mechanism = {
                        "noise_multiplier": float(entry["noise_multiplier"]),
                        "sample_rate": float(entry["sample_rate"]),
                    }
                except (ValueError, KeyError, TypeError):
                    continue
                if mechanism not in seen:
                    seen.append(mechanism)
        return seen

    def charge(self, *, step: int, noise_multiplier: float, sample_rate: float) -> None:
        """Durably record that step `step` is about to release a noised update."""
        line = json.dumps(
            {"step": step, "noise_multiplier": noise_multiplier, "sample_rate": sample_rate}
        )
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(line + "\n")
            handle.flush()
            os.fsync(handle.fileno())


def save_checkpoint(
    folder: str | Path, *, step: int, tensors: dict[str, torch.Tensor], state: dict[str, Any]
) -> Path:
    """Write the tensors and state of step `step` atomically; older tensor files are removed.

    The tensor file is renamed into place first, then the manifest naming it and its sha256: a
    crash at any point leaves the previous checkpoint or the new one, each complete.
    """
    folder = Path(folder)
    name = f"ckpt-{step:06d}.safetensors"
    contiguous = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    atomic_write(folder / name, lambda tmp: save_file(contiguous, str(tmp)))
    write_json(
        {"step": step, "file": name, "sha256": sha256_file(folder / name), "state": state},
        folder / MANIFEST,
    )
    for old in folder.glob("ckpt-*.safetensors"):
        if old.name != name:
            old.unlink(missing_ok=True)
    return folder / name


def load_checkpoint(folder: str | Path) -> Checkpoint | None:
    """The last checkpoint in `folder`, verified by sha256; None when there is none.

    Raises:
        CheckpointError: The manifest does not parse, or the tensor file is missing or does not
            hash to the manifest's sha256.
    """
    folder = Path(folder)
    manifest_path = folder / MANIFEST
    if not manifest_path.exists():
        return None
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        path = folder / manifest["file"]
        expected = manifest["sha256"]
    except (ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{manifest_path}: unreadable checkpoint manifest ({exc})") from None
    if not path.is_file() or sha256_file(path) != expected:
        raise CheckpointError(
            f"{path}: checkpoint missing or altered (sha256 does not match {manifest_path}); "
            "delete the checkpoint folder to restart (its charged steps stay in the ledgers)"
        )
    return Checkpoint(
        step=int(manifest["step"]), tensors=load_file(str(path)), state=manifest["state"]
    )


def optimizer_tensors(
    optimizer: torch.optim.Optimizer, names: dict[int, str]
) -> dict[str, torch.Tensor]:
    """An optimizer's per-parameter state as flat named tensors (`optim.<param>.<key>`).

    Args:
        optimizer: A torch optimizer whose state values are tensors (Adam, SGD with momentum).
        names: id(parameter) -> parameter name.
    """
    out = {}
    for group in optimizer.param_groups:
        for p in group["params"]:
            for key, value in optimizer.state.get(p, {}).items():
                out[f"optim.{names[id(p)]}.{key}"] = torch.as_tensor(value)
    return out


def restore_optimizer(
    optimizer: torch.optim.Optimizer, names: dict[int, str], tensors: dict[str, torch.Tensor]
) -> None:
    """Put back the state `optimizer_tensors` captured (same parameter names)."""
    for group in optimizer.param_groups:
        for p in group["params"]:
            prefix = f"optim.{names[id(p)]}."
            # Adam keeps its step counter on the CPU; the moments live with the parameter.
            state = {
                k[len(prefix) :]: v if k.endswith(".step") else v.to(p.device)
                for k, v in tensors.items()
                if k.startswith(prefix)
            }
            if state:
                optimizer.state[p] = state
