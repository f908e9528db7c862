"""Checkpoint and resume: a crashed DP-LoRA run resumes and every charged step is accounted."""

import math
from pathlib import Path

import pytest
import torch
from opacus.accountants import PRVAccountant, RDPAccountant

from pipelines.steps.config import TrainingConfig
from pipelines.steps.release import gates
from pipelines.steps.training import dp_lora
from pipelines.steps.training.checkpoint import (
    CheckpointError,
    StepLedger,
    load_checkpoint,
    save_checkpoint,
)
from pipelines.steps.training.dp_lora import train_dp_lora
from tests.test_training import chat_records, spy_on_sampling_and_noise
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


@pytest.mark.parametrize("accountant", ["rdp", "prv"])
def test_when_a_run_crashes_then_it_resumes_and_charges_the_repeated_steps(
    tiny_dir, tmp_path, monkeypatch, accountant
):
    cfg = CFG.model_copy(update={"accountant": accountant})
    batches, noises = spy_on_sampling_and_noise(monkeypatch)
    with pytest.raises(Crash):
        # checkpoint at 4, step 5 charged and lost
        run(tiny_dir, tmp_path, cfg=cfg, on_step=crash_at(5))
    assert StepLedger(tmp_path / "ckpt" / "steps.jsonl").charged() == 5
    assert load_checkpoint(tmp_path / "ckpt").step == 4
    crashed = (list(batches), list(noises))
    batches.clear(), noises.clear()

    result = run(tiny_dir, tmp_path, cfg=cfg)
    assert (result.resumed_from_step, result.steps_repeated) == (4, 1)
    # 6 steps charged in all (5 before the crash + 1 after): never fewer than were released
    assert result.steps == CFG.steps == len(result.losses)
    assert math.isnan(result.losses[4]) and not math.isnan(result.losses[5])
    expected = RDPAccountant() if accountant == "rdp" else PRVAccountant()
    expected.history = [(result.noise_multiplier, result.sample_rate, 6)]
    assert result.epsilon == pytest.approx(expected.get_epsilon(delta=CFG.target_delta))
    assert result.lora_tensors_with_clipped_gradient == result.lora_tensors_total
    # the step done again after the resume drew other noise and another batch than step 5
    assert len(noises) == len(crashed[1]) // 5  # one step's noise tensors
    assert not set(map(tuple, noises)) & set(map(tuple, crashed[1]))
    assert batches[0] != crashed[0][4]
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

    rerun = run(tiny_dir, tmp_path, cfg=cfg)

    assert len(released) == cfg.steps  # one model's worth of noised updates, never two
    assert rerun.steps == cfg.steps
    if phase in ("_finish", "settle"):
        assert rerun.steps_repeated == 0  # nothing trained again: the same model saved again
    assert StepLedger(tmp_path / "ckpt" / "steps.jsonl").charged() == cfg.steps
    dp_lora.retire_checkpoint(tmp_path / "ckpt")  # what the trainer does once it has settled
    assert not (tmp_path / "ckpt").exists()
    assert sorted(p.name for p in tmp_path.iterdir() if "ckpt" in p.name) == []


def test_when_a_run_crashes_before_its_first_checkpoint_then_the_resume_charges_every_step(
    tiny_dir, tmp_path
):
    cfg = CFG.model_copy(update={"checkpoint_every": 10})  # no checkpoint within the 6 steps
    with pytest.raises(Crash):
        run(tiny_dir, tmp_path, cfg=cfg, on_step=crash_at(3))
    assert load_checkpoint(tmp_path / "ckpt").step == 0  # the plan, written before step 1

    result = run(tiny_dir, tmp_path, cfg=cfg)
    assert (result.resumed_from_step, result.steps_repeated) == (0, 3)
    assert result.steps == cfg.steps and sum(math.isnan(x) for x in result.losses[:3]) == 3
    assert result.lora_tensors_finite
    assert result.lora_tensors_with_clipped_gradient == result.lora_tensors_total
    assert gates.lora_tensors_trained(
        total=result.lora_tensors_total,
        changed=result.lora_tensors_with_clipped_gradient,
        finite=result.lora_tensors_finite,
    ).passed


def test_when_the_recorded_plan_differs_from_the_runs_plan_then_resuming_is_refused(
    tiny_dir, tmp_path
):
    with pytest.raises(Crash):
        run(tiny_dir, tmp_path, on_step=crash_at(1))
    ledger = StepLedger(tmp_path / "ckpt" / "steps.jsonl")
    (mechanism,) = ledger.mechanisms()
    # a step charged at another sigma (e.g. another Opacus version computed it)
    ledger.charge(step=2, noise_multiplier=mechanism["noise_multiplier"] * 0.9, sample_rate=0.2)
    with pytest.raises(CheckpointError, match="noise multiplier or sample rate"):
        run(tiny_dir, tmp_path)
