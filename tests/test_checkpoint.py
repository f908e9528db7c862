"""Checkpoint and resume: a crashed DP-LoRA run resumes and every charged step is accounted."""

import math
from pathlib import Path

import pytest
import torch
from opacus.accountants import RDPAccountant

from pipelines.steps.config import TrainingConfig
from pipelines.steps.training import dp_lora
from pipelines.steps.training.checkpoint import (
    CheckpointError,
    StepLedger,
    load_checkpoint,
    save_checkpoint,
)
from pipelines.steps.training.dp_lora import train_dp_lora
from tests.test_training import chat_records
from tests.tiny_model import make_tiny_model_dir

CFG = TrainingConfig(
    target_epsilon=8.0,
    target_delta=1e-3,
    accountant="rdp",
    expected_batch_size=8,
    steps=6,
    learning_rate=2e-2,
    max_seq_len=24,
    lora_r=2,
    lora_alpha=4,
    noise_seed=0,
    checkpoint_every=2,
)


class Crash(Exception):
    """Stands in for a killed process (the crash drill kills a real one)."""


def crash_at(step: int):
    def hook(done: int) -> None:
        if done == step:
            raise Crash(step)

    return hook


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_model_dir(tmp_path_factory.mktemp("tiny") / "model")


def run(tiny_dir: Path, tmp_path: Path, **kwargs):
    return train_dp_lora(
        chat_records(40),
        model_dir=tiny_dir,
        cfg=kwargs.pop("cfg", CFG),
        out_dir=tmp_path / "adapter",
        progress=False,
        epsilon_every=3,
        checkpoint_dir=tmp_path / "ckpt",
        **kwargs,
    )


def test_when_a_run_crashes_then_it_resumes_and_charges_the_repeated_steps(tiny_dir, tmp_path):
    with pytest.raises(Crash):
        run(tiny_dir, tmp_path, on_step=crash_at(5))  # checkpoint at 4, step 5 charged and lost
    assert StepLedger(tmp_path / "ckpt" / "steps.jsonl").charged() == 5
    assert load_checkpoint(tmp_path / "ckpt").step == 4

    result = run(tiny_dir, tmp_path)
    assert (result.resumed_from_step, result.steps_repeated) == (4, 1)
    # 6 steps charged in all (5 before the crash + 1 after): never fewer than were released
    assert result.steps == CFG.steps == len(result.losses)
    assert math.isnan(result.losses[4]) and not math.isnan(result.losses[5])
    accountant = RDPAccountant()
    accountant.history = [(result.noise_multiplier, result.sample_rate, 6)]
    assert result.epsilon == pytest.approx(accountant.get_epsilon(delta=CFG.target_delta))
    assert result.lora_tensors_changed_after_first_step == result.lora_tensors_total
    assert (tmp_path / "ckpt").exists()  # kept until the trainer has settled the budget


def test_when_settings_changed_or_the_checkpoint_was_altered_then_resuming_is_refused(
    tiny_dir, tmp_path
):
    with pytest.raises(Crash):
        run(tiny_dir, tmp_path, on_step=crash_at(3))
    other = CFG.model_copy(update={"learning_rate": 1e-3})
    with pytest.raises(CheckpointError, match="other data or settings"):
        run(tiny_dir, tmp_path, cfg=other)
    tensor_file = next((tmp_path / "ckpt").glob("ckpt-*.safetensors"))
    data = bytearray(tensor_file.read_bytes())
    data[-1] ^= 0xFF  # one flipped bit in the stored LoRA/optimizer tensors
    tensor_file.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="sha256"):
        run(tiny_dir, tmp_path)


def test_checkpoint_round_trip_keeps_tensors_and_state_and_only_the_last_file(tmp_path):
    save_checkpoint(tmp_path, step=1, tensors={"a": torch.zeros(2)}, state={"x": 1})
    save_checkpoint(tmp_path, step=2, tensors={"a": torch.ones(2)}, state={"x": 2})
    loaded = load_checkpoint(tmp_path)
    assert loaded.step == 2 and loaded.state == {"x": 2}
    assert torch.equal(loaded.tensors["a"], torch.ones(2))
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "checkpoint.json",
        "ckpt-000002.safetensors",
    ]
    assert load_checkpoint(tmp_path / "none") is None


def test_a_torn_last_ledger_line_still_counts_as_a_charged_step(tmp_path):
    ledger = StepLedger(tmp_path / "steps.jsonl")
    ledger.charge(step=1, noise_multiplier=1.0, sample_rate=0.1)
    with open(ledger.path, "a") as handle:
        handle.write('{"step": 2, "noise_mul')  # the crash hit mid-write
    assert ledger.charged() == 2


PHASES = (
    "_prepare",
    "_open_checkpoint",
    "_build_model",
    "_start_or_resume",
    "_make_private",
    "_run_steps",
    "_finish",
)


@pytest.mark.parametrize("phase", [*PHASES, "settle"])
def test_when_a_run_crashes_after_any_phase_then_reruns_release_one_models_steps_at_most(
    tiny_dir, tmp_path, monkeypatch, phase
):
    # "settle": the trainer crashes after train_dp_lora returned, before it settles the budget
    # ledger and retires the checkpoint folder (issue #17.2: the step ledger must survive).
    released = []
    charge = StepLedger.charge

    def counting_charge(self, **kwargs):
        released.append(kwargs["step"])
        charge(self, **kwargs)

    monkeypatch.setattr(StepLedger, "charge", counting_charge)
    if phase != "settle":
        original = getattr(dp_lora, phase)

        def crash_after(*args, **kwargs):
            original(*args, **kwargs)
            raise Crash(phase)

        monkeypatch.setattr(dp_lora, phase, crash_after)
    cfg = CFG.model_copy(update={"steps": 3})
    if phase == "settle":
        run(tiny_dir, tmp_path, cfg=cfg)
    else:
        with pytest.raises(Crash):
            run(tiny_dir, tmp_path, cfg=cfg)
        monkeypatch.setattr(dp_lora, phase, original)

    first = run(tiny_dir, tmp_path, cfg=cfg)
    again = run(tiny_dir, tmp_path, cfg=cfg)  # e.g. the trainer crashed again before settling

    assert len(released) == cfg.steps  # one model's worth of noised updates, never two
    assert first.steps == again.steps == cfg.steps
    assert again.adapter_sha256 == first.adapter_sha256  # the same model, not a retrained one
    assert StepLedger(tmp_path / "ckpt" / "steps.jsonl").charged() == cfg.steps
    dp_lora.retire_checkpoint(tmp_path / "ckpt")  # what the trainer does once it has settled
    assert not (tmp_path / "ckpt").exists()
    assert sorted(p.name for p in tmp_path.iterdir() if "ckpt" in p.name) == []
