"""DP-LoRA training on a tiny in-process Llama: guards, accounting, per-example losses."""

import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from opacus import GradSampleModule
from opacus.accountants import RDPAccountant
from opacus.accountants.utils import get_noise_multiplier
from opacus.optimizers import optimizer as opacus_optimizer
from opacus.optimizers.optimizer import DPOptimizer
from peft import LoraConfig, get_peft_model
from pydantic import ValidationError
from safetensors.torch import load_file

from pipelines.steps.config import PipelineConfig, TrainingConfig
from pipelines.steps.records import Message, Record
from pipelines.steps.training import dp_lora
from pipelines.steps.training.checkpoint import CheckpointError
from pipelines.steps.training.dp_lora import (
    IGNORE_INDEX,
    TrainingConfigError,
    _build_model,
    _make_private,
    _open_checkpoint,
    _prepare,
    _run_steps,
    _start_or_resume,
    _sum_grad_samples_per_unit,
    _unit_rows,
    encode_records,
    is_heldout,
    load_adapter_model,
    per_example_loss,
    privacy_units,
    split_heldout,
    train_dp_lora,
    train_lora,
)
from pipelines.steps.training.modelstore import ModelStoreError, load_base_model
from tests.tiny_model import make_tiny_model_dir, synthetic_sentences

ANSWER = "The answer is blue."


def chat_records(n: int, *, seed: int = 1) -> list[Record]:
    return [
        Record(
            id=f"rec-{i:04d}",
            source_file="test.jsonl",
            source_line=i + 1,
            format="chat",
            messages=(Message("user", question), Message("assistant", ANSWER)),
        )
        for i, question in enumerate(synthetic_sentences(n, seed=seed))
    ]


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_model_dir(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="module")
def trained(tiny_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    # A large learning rate on an easy target (one fixed answer) makes the held-out loss fall
    # clearly within 30 steps, even with the noise of epsilon = 8.
    cfg = TrainingConfig(
        target_epsilon=8.0,
        target_delta=1e-3,
        accountant="rdp",
        expected_batch_size=16,
        steps=30,
        learning_rate=2e-2,
        max_seq_len=32,
        lora_r=4,
        lora_alpha=8,
        seed=0,
        noise_seed=0,
    )
    out_dir = tmp_path_factory.mktemp("adapters") / "run-1"
    result = train_dp_lora(
        chat_records(64),
        model_dir=tiny_dir,
        cfg=cfg,
        out_dir=out_dir,
        progress=False,
        epsilon_every=15,  # each query costs about 0.3 s here
    )
    return cfg, result


def test_when_trained_then_every_lora_tensor_got_a_clipped_gradient_and_is_finite(trained):
    _, result = trained
    assert result.lora_tensors_total == 8  # q_proj, v_proj x A, B x 2 layers
    assert result.lora_tensors_with_clipped_gradient == result.lora_tensors_total
    assert result.lora_tensors_finite


def test_when_trained_then_base_weights_are_unchanged(trained):
    _, result = trained
    assert result.base_weights_unchanged
    assert result.base_sha256_before == result.base_sha256_after


def test_when_trained_then_epsilon_is_positive_and_within_target(trained):
    cfg, result = trained
    assert result.steps == cfg.steps == len(result.losses)
    assert 0 < result.epsilon <= cfg.target_epsilon + 1e-6
    assert result.epsilons == [(15, result.epsilons[0][1]), (30, result.epsilon)]
    assert result.epsilons[0][1] < result.epsilon
    assert result.sample_rate == 1 / math.ceil(result.n_train / cfg.expected_batch_size)


def test_when_trained_then_heldout_loss_falls(trained):
    _, result = trained
    assert result.heldout_loss_after < result.heldout_loss_before - 0.1


def test_when_trained_then_split_is_by_id_hash_and_disjoint(trained):
    _, result = trained
    expected = [r.id for r in chat_records(64) if is_heldout(r.id)]
    assert sorted(result.heldout_ids) == sorted(expected) and result.n_heldout == len(expected)
    assert result.n_train == 64 - len(expected)
    assert not set(result.train_ids) & set(result.heldout_ids)
    train, heldout = split_heldout(list(reversed(chat_records(64))))
    assert {r.id for r in heldout} == set(result.heldout_ids)


def test_adapter_folder_holds_only_safetensors_and_json_and_loads(trained, tiny_dir):
    _, result = trained
    names = sorted(p.name for p in result.adapter_dir.iterdir())
    assert names == ["adapter_config.json", "adapter_model.safetensors"]
    hidden = [p.name for p in result.adapter_dir.parent.iterdir() if p.name.startswith(".")]
    assert hidden == [f".{result.adapter_dir.name}.versions"]  # the versions behind the link
    assert not list(result.adapter_dir.parent.glob(".*.versions/.*"))  # no staging leftovers
    json.dumps(result.to_json())
    model, tokenizer = load_adapter_model(
        tiny_dir, result.adapter_dir, expected_sha256=result.adapter_sha256
    )
    base, _ = load_base_model(tiny_dir)
    ids = tokenizer("Hello team", return_tensors="pt")
    with torch.no_grad():
        assert not torch.allclose(model(**ids).logits, base(**ids).logits)
    assert not model.training


def test_when_an_adapter_was_altered_or_holds_a_pickle_then_loading_is_refused(
    trained, tiny_dir, tmp_path
):
    import shutil

    _, result = trained
    copy = tmp_path / "adapter"
    shutil.copytree(result.adapter_dir, copy)
    (copy / "adapter_config.json").write_text("{}")  # tampered after training
    with pytest.raises(ModelStoreError, match="sha256 mismatch"):
        load_adapter_model(tiny_dir, copy, expected_sha256=result.adapter_sha256)
    shutil.rmtree(copy)
    shutil.copytree(result.adapter_dir, copy)
    (copy / "optimizer.pt").write_bytes(b"\x80\x04")  # a pickle next to the weights
    with pytest.raises(ModelStoreError, match="pickle"):
        load_adapter_model(tiny_dir, copy)


def test_when_delta_is_not_below_one_over_n_then_training_is_refused(tmp_path):
    cfg = TrainingConfig(target_delta=0.1, steps=1)
    with pytest.raises(TrainingConfigError, match="training.target_delta"):
        train_dp_lora(chat_records(20), model_dir=tmp_path, cfg=cfg, out_dir=tmp_path / "a")


def test_when_a_poisson_batch_is_empty_then_the_step_is_still_noised_and_accounted(
    tiny_dir, tmp_path
):
    # Expected batch 1 of 18: each batch is empty with probability (17/18)^18 = 0.36.
    cfg = TrainingConfig(
        target_epsilon=8.0,
        target_delta=1e-3,
        accountant="rdp",
        expected_batch_size=1,
        steps=5,
        max_seq_len=16,
        lora_r=2,
        lora_alpha=4,
        seed=0,
        noise_seed=4,  # two of its five batches are empty
    )
    result = train_dp_lora(
        chat_records(20),
        model_dir=tiny_dir,
        cfg=cfg,
        out_dir=tmp_path / "a",
        progress=False,
        epsilon_every=5,
    )
    assert result.empty_batches >= 1
    assert result.steps == 5
    assert sum(math.isnan(x) for x in result.losses) == result.empty_batches
    accountant = RDPAccountant()
    accountant.history = [(result.noise_multiplier, result.sample_rate, 5)]
    assert result.epsilon == pytest.approx(accountant.get_epsilon(delta=cfg.target_delta))
    # which steps sampled nobody is an un-noised statistic of the sampling: never published
    assert "losses" not in result.to_json() and "empty_batches" not in result.to_json()


def test_the_accountant_charges_the_planned_rate_where_opacus_truncates_it(tiny_dir, tmp_path):
    # 93 training records at expected batch 1: q = 1/93, and Opacus's Poisson loader has
    # int(1 / (1/93)) = 92 batches, so make_private alone would charge every step at 1/92.
    cfg = small_cfg(expected_batch_size=1, steps=2, max_seq_len=16)
    result = train_dp_lora(
        chat_records(104),  # 93 training records, 11 held out
        model_dir=tiny_dir,
        cfg=cfg,
        out_dir=tmp_path / "a",
        progress=False,
        epsilon_every=2,
    )
    assert result.sample_rate == 1 / 93
    planned, truncated = RDPAccountant(), RDPAccountant()
    planned.history = [(result.noise_multiplier, 1 / 93, 2)]
    truncated.history = [(result.noise_multiplier, 1 / 92, 2)]
    assert result.epsilon == pytest.approx(planned.get_epsilon(delta=cfg.target_delta))
    assert result.epsilon < truncated.get_epsilon(delta=cfg.target_delta)
    assert result.epsilon <= cfg.target_epsilon


def test_labels_cover_only_the_assistant_turn(tiny_dir):
    _, tokenizer = load_base_model(tiny_dir)
    record = chat_records(1)[0]
    input_ids, _, labels = encode_records(tokenizer, [record], max_seq_len=64)
    labeled = input_ids[0][labels[0] != IGNORE_INDEX]
    assert tokenizer.decode(labeled) == f"{ANSWER}<|im_end|>\n"

    without_assistant = Record("u", "f", 1, "text", (Message("user", "Hello team."),))
    input_ids, mask, labels = encode_records(tokenizer, [without_assistant], max_seq_len=64)
    assert torch.equal(labels[0][mask[0] == 1], input_ids[0][mask[0] == 1])
    assert (labels[0][mask[0] == 0] == IGNORE_INDEX).all()


def test_when_the_prompt_is_longer_than_the_window_then_response_tokens_are_kept(tiny_dir):
    _, tokenizer = load_base_model(tiny_dir)
    long_prompt = " ".join(synthetic_sentences(30, seed=1))
    record = Record(
        "long", "f", 1, "chat", (Message("user", long_prompt), Message("assistant", ANSWER))
    )
    input_ids, _, labels = encode_records(tokenizer, [record], max_seq_len=32)
    labeled = input_ids[0][labels[0] != IGNORE_INDEX]
    # cutting from the right would leave only prompt tokens and nothing to learn from
    assert tokenizer.decode(labeled).startswith(ANSWER[:10])


def test_without_chat_template_the_plain_role_format_is_used(tiny_dir):
    _, tokenizer = load_base_model(tiny_dir)
    tokenizer.chat_template = None
    input_ids, _, labels = encode_records(tokenizer, chat_records(1), max_seq_len=64)
    assert tokenizer.decode(input_ids[0][: (labels[0] != IGNORE_INDEX).nonzero()[0]]).startswith(
        "<|user|>\n"
    )
    assert tokenizer.decode(input_ids[0][labels[0] != IGNORE_INDEX]) == f"{ANSWER}\n<eos>"


def test_padding_does_not_change_an_examples_loss(tiny_dir):
    model, tokenizer = load_base_model(tiny_dir)
    records = chat_records(2)
    short = encode_records(tokenizer, records, max_seq_len=40)
    padded = encode_records(tokenizer, records, max_seq_len=64)
    assert (short[1][:, -1] == 0).all()  # both fit: the extra 24 positions are padding
    with torch.no_grad():
        loss_short = per_example_loss(model(short[0], attention_mask=short[1]).logits, short[2])
        loss_padded = per_example_loss(model(padded[0], attention_mask=padded[1]).logits, padded[2])
    torch.testing.assert_close(loss_short, loss_padded, atol=1e-5, rtol=1e-5)


def test_per_example_loss_is_the_mean_of_each_examples_own_mean():
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 6, 11, generator=generator)
    labels = torch.full((2, 6), IGNORE_INDEX)
    labels[0, 1:3] = torch.tensor([3, 4])  # 2 label tokens
    labels[1, 1:6] = torch.tensor([1, 2, 5, 7, 9])  # 5 label tokens
    token_nll = torch.nn.functional.cross_entropy(
        logits[:, :-1].transpose(1, 2), labels[:, 1:], ignore_index=IGNORE_INDEX, reduction="none"
    )
    expected = torch.stack([token_nll[0, :2].mean(), token_nll[1, :5].mean()])
    torch.testing.assert_close(per_example_loss(logits, labels), expected)
    # Changing a prompt position's prediction of a masked token changes nothing.
    changed = logits.clone()
    changed[0, 4] += 5.0
    torch.testing.assert_close(per_example_loss(changed, labels), expected)


def test_opacus_per_sample_gradients_equal_one_at_a_time_gradients(tiny_dir):
    model, tokenizer = load_base_model(tiny_dir)
    config = LoraConfig(
        r=4,
        lora_alpha=8,
        target_modules=["q_proj", "v_proj"],
        lora_dropout=0.0,
        bias="none",
        task_type="CAUSAL_LM",
        init_lora_weights=False,  # B random too, so every LoRA tensor has a real gradient
    )
    with torch.random.fork_rng():
        torch.manual_seed(0)
        peft_model = get_peft_model(model, config)
    records = chat_records(3)
    records[1] = Record(
        "long", "f", 1, "chat", (Message("user", "Hi."), Message("assistant", ANSWER * 2))
    )
    input_ids, mask, labels = encode_records(tokenizer, records, max_seq_len=48)
    params = [p for p in peft_model.parameters() if p.requires_grad]

    expected = []
    for i in range(3):
        logits = peft_model(input_ids[i : i + 1], attention_mask=mask[i : i + 1]).logits
        loss = per_example_loss(logits, labels[i : i + 1]).mean()
        expected.append(torch.autograd.grad(loss, params))

    wrapped = GradSampleModule(peft_model, loss_reduction="mean")
    per_example_loss(wrapped(input_ids, attention_mask=mask).logits, labels).mean().backward()
    for j, p in enumerate(params):
        reference = torch.stack([grads[j] for grads in expected])
        torch.testing.assert_close(p.grad_sample, reference, atol=1e-4, rtol=1e-4)


def test_non_private_control_trains_the_same_lora_without_privacy(trained, tiny_dir, tmp_path):
    cfg, private = trained
    result = train_lora(
        chat_records(64), model_dir=tiny_dir, cfg=cfg, out_dir=tmp_path / "control", progress=False
    )
    assert not result.private and private.private
    assert result.epsilon == math.inf and result.noise_multiplier == 0.0
    assert (result.train_ids, result.sample_rate) == (private.train_ids, private.sample_rate)
    assert result.steps == cfg.steps
    assert result.lora_tensors_with_clipped_gradient == result.lora_tensors_total
    assert result.base_weights_unchanged
    # without noise the easy target is learned at least as well as under DP
    assert result.heldout_loss_after < private.heldout_loss_after + 0.05


def small_cfg(**changes) -> TrainingConfig:
    base = dict(
        target_epsilon=8.0,
        target_delta=1e-3,
        accountant="rdp",
        expected_batch_size=8,
        steps=3,
        learning_rate=1e-2,
        max_seq_len=24,
        lora_r=2,
        lora_alpha=4,
        noise_seed=0,
    )
    return TrainingConfig(**{**base, **changes})


def train_small(tiny_dir: Path, out: Path, records: list[Record] | None = None, **changes):
    return train_dp_lora(
        records or chat_records(40),
        model_dir=tiny_dir,
        cfg=small_cfg(**changes),
        out_dir=out,
        progress=False,
        epsilon_every=3,
    )


def test_ghost_clipping_and_physical_batches_give_the_same_update_as_flat_clipping(
    tiny_dir, tmp_path
):
    # Same sampling and noise seeds: the clipped sum is the same however it is computed, so
    # the trained adapters agree; a wrong scale or a dropped chunk would move the loss.
    flat = train_small(tiny_dir, tmp_path / "flat")
    ghost = train_small(tiny_dir, tmp_path / "ghost", clipping="ghost")
    chunked = train_small(tiny_dir, tmp_path / "chunked", max_physical_batch_size=3)
    for other in (ghost, chunked):
        assert other.steps == 3 and other.epsilon == pytest.approx(flat.epsilon)
        assert other.lora_tensors_with_clipped_gradient == other.lora_tensors_total
        assert_same_adapter(other, flat)
    assert (ghost.clipping, chunked.clipping) == ("ghost", "flat")


def adapter_tensors(result) -> dict[str, torch.Tensor]:
    return load_file(str(result.adapter_dir / "adapter_model.safetensors"))


def assert_same_adapter(result, reference) -> None:
    """The two runs trained the same LoRA tensors (to float tolerance), and training moved
    them: every B tensor, zero at the start, is far from zero."""
    got, want = adapter_tensors(result), adapter_tensors(reference)
    assert sorted(got) == sorted(want)
    for name, tensor in want.items():
        torch.testing.assert_close(got[name], tensor, rtol=1e-3, atol=1e-4)
        if "lora_B" in name:
            assert tensor.abs().max() > 1e-3


def with_subjects(records: list[Record], n_subjects: int) -> list[Record]:
    return [replace(r, subject=f"emp-{i % n_subjects:02d}") for i, r in enumerate(records)]


def test_user_level_privacy_samples_subjects_and_states_the_unit(tiny_dir, tmp_path):
    records = with_subjects(chat_records(40), 20)
    result = train_small(tiny_dir, tmp_path / "user", records, privacy_unit="user")
    assert result.privacy_unit == "user" and result.to_json()["privacy_unit"] == "user"
    assert result.n_units == 18 and result.n_train == 36  # 2 subjects (4 records) held out
    assert result.sample_rate == 1 / math.ceil(18 / 8)
    assert result.lora_tensors_with_clipped_gradient == result.lora_tensors_total
    train, _ = split_heldout(records, privacy_unit="user")
    units = privacy_units(train, unit="user", user_field="subject")
    assert sorted(i for unit in units for i in unit) == list(range(36))
    assert all(len({train[i].subject for i in unit}) == 1 for unit in units)


def test_when_a_record_has_no_subject_then_user_level_training_is_refused(tiny_dir, tmp_path):
    records = with_subjects(chat_records(20), 4)
    records[3] = replace(records[3], subject=None)
    with pytest.raises(TrainingConfigError, match="training.user_field = subject: 1 of"):
        train_small(tiny_dir, tmp_path / "a", records, privacy_unit="user")


def test_per_user_gradients_equal_each_users_own_mean_loss_gradient(tiny_dir):
    # One user's many records count once: the gradient Opacus clips for a user is the
    # gradient of the mean of that user's per-example losses, computed one user at a time.
    model, tokenizer = load_base_model(tiny_dir)
    config = LoraConfig(
        r=4,
        lora_alpha=8,
        target_modules=["q_proj", "v_proj"],
        lora_dropout=0.0,
        task_type="CAUSAL_LM",
        init_lora_weights=False,
    )
    with torch.random.fork_rng():
        torch.manual_seed(0)
        peft_model = get_peft_model(model, config)
    records = chat_records(5)
    data = encode_records(tokenizer, records, max_seq_len=32)
    units = [[0, 3], [1], [2, 4]]  # user 0 wrote records 0 and 3, user 2 records 2 and 4
    params = [p for p in peft_model.parameters() if p.requires_grad]

    expected = []
    for unit in units:
        logits = peft_model(data[0][unit], attention_mask=data[1][unit]).logits
        expected.append(torch.autograd.grad(per_example_loss(logits, data[2][unit]).mean(), params))

    wrapped = GradSampleModule(peft_model, loss_reduction="mean")
    rows, unit_of_row, weights = _unit_rows(units, torch.tensor([0, 1, 2]))
    logits = wrapped(data[0][rows], attention_mask=data[1][rows]).logits
    (per_example_loss(logits, data[2][rows]) * weights).mean().backward()
    _sum_grad_samples_per_unit(params, unit_of_row, len(units))
    for j, p in enumerate(params):
        reference = torch.stack([grads[j] for grads in expected])
        torch.testing.assert_close(p.grad_sample, reference, atol=1e-4, rtol=1e-4)


# The phases of train_dp_lora, one at a time (train_dp_lora runs them in this order).


def test_prepare_phase_splits_by_id_hash_and_sets_noise_for_the_sample_rate(tmp_path):
    records = chat_records(40)
    cfg = small_cfg()
    plan = _prepare(records, cfg, tmp_path, private=True, epsilon_every=None)
    train, heldout = split_heldout(records)
    assert (plan.train_records, plan.heldout_records) == (train, heldout)
    n = len(train)
    assert plan.units == [[i] for i in range(n)] and plan.n_units == n
    assert plan.sample_rate == 1 / math.ceil(n / 8)
    assert plan.noise_multiplier == get_noise_multiplier(
        target_epsilon=8.0,
        target_delta=1e-3,
        sample_rate=plan.sample_rate,
        steps=3,
        accountant="rdp",
    )
    assert plan.epsilon_every == 1  # every step up to 200 steps
    control = _prepare(records, cfg, tmp_path, private=False, epsilon_every=5)
    assert (control.noise_multiplier, control.epsilon_every) == (0.0, 5)
    # a checkpoint of the private run must never resume the control, nor the reverse
    assert control.fingerprint != plan.fingerprint


def test_build_model_phase_encodes_like_encode_records_and_trains_only_lora(tiny_dir):
    cfg = small_cfg(seed=0)
    plan = _prepare(chat_records(40), cfg, tiny_dir, private=True, epsilon_every=None)
    global_rng = torch.random.get_rng_state()
    model = _build_model(tiny_dir, cfg, plan, device="cpu")
    assert torch.equal(torch.random.get_rng_state(), global_rng)  # LoRA init in a forked RNG
    _, tokenizer = load_base_model(tiny_dir)
    expected = encode_records(tokenizer, plan.train_records, max_seq_len=cfg.max_seq_len)
    for got, want in zip(model.train_data, expected, strict=True):
        assert torch.equal(got, want)
    assert len(model.heldout_data[0]) == len(plan.heldout_records) > 0
    trainable = {name for name, p in model.peft_model.named_parameters() if p.requires_grad}
    assert trainable == set(model.lora) and len(trainable) == 8
    assert all("lora_" in name for name in trainable)
    optimized = [id(p) for group in model.optimizer.param_groups for p in group["params"]]
    assert optimized == [id(p) for p in model.lora.values()] == list(model.names)
    again = _build_model(tiny_dir, cfg, plan, device="cpu")
    for name, p in model.lora.items():
        assert torch.equal(p, again.lora[name])  # training.seed fixes the LoRA init


@pytest.mark.parametrize("private", [True, False])
def test_make_private_phase_samples_units_at_the_planned_rate(tiny_dir, private):
    cfg = small_cfg()
    plan = _prepare(chat_records(40), cfg, tiny_dir, private=private, epsilon_every=None)
    model = _build_model(tiny_dir, cfg, plan, device="cpu")
    dp = _make_private(cfg, plan, model, 3, private=private, device="cpu")
    assert dp.loader.sample_rate == pytest.approx(plan.sample_rate)
    assert model.peft_model.training
    if private:
        assert dp.model.to_standard_module() is model.peft_model
        # a resumed run's accountant starts with the steps charged before the crash
        assert dp.engine.accountant.history == [(plan.noise_multiplier, plan.sample_rate, 3)]
    else:
        assert dp.engine is None
        assert (dp.model, dp.optimizer) == (model.peft_model, model.optimizer)


def test_step_loop_phase_charges_the_ledger_checkpoints_and_a_resume_restores_it(
    tiny_dir, tmp_path
):
    cfg = small_cfg(steps=2, checkpoint_every=2)
    plan = _prepare(chat_records(40), cfg, tiny_dir, private=True, epsilon_every=None)
    recovery = _open_checkpoint(tmp_path / "ckpt", plan, private=True)
    assert (recovery.charged, recovery.resume) == (0, None)
    model = _build_model(tiny_dir, cfg, plan, device="cpu")
    history = _start_or_resume(model, recovery, plan, device="cpu")
    assert history.losses == [] and history.state["with_gradient"] == []
    dp = _make_private(cfg, plan, model, recovery.charged, private=True, device="cpu")
    seen = []
    step = _run_steps(
        cfg,
        plan,
        model,
        dp,
        recovery,
        history,
        private=True,
        device="cpu",
        progress=False,
        on_step=lambda done: seen.append((done, recovery.step_ledger.charged())),
    )
    assert step == 2 and seen == [(1, 1), (2, 2)]  # (step done, steps in the ledger)
    assert len(history.losses) == 2 and [s for s, _ in history.epsilons] == [1, 2]
    assert len(history.state["with_gradient"]) == 8 and history.state["finite_after_first"]

    resumed = _open_checkpoint(tmp_path / "ckpt", plan, private=True)
    assert (resumed.charged, resumed.resume.step) == (2, 2)
    fresh = _build_model(tiny_dir, cfg, plan, device="cpu")
    restored = _start_or_resume(fresh, resumed, plan, device="cpu")
    assert restored.losses == history.losses
    for name, p in model.lora.items():
        assert torch.equal(fresh.lora[name], p.detach())
    with pytest.raises(CheckpointError, match="other data or settings"):
        _open_checkpoint(tmp_path / "ckpt", replace(plan, fingerprint="other"), private=True)


# Issue #17: what a private run publishes, its randomness, the split, bf16 and known bugs.


def test_a_private_result_publishes_no_unnoised_statistic_of_private_records(trained):
    _, result = trained
    published = result.to_json()
    for name in ("losses", "empty_batches", "heldout_loss_before", "heldout_loss_after"):
        assert name not in published  # in memory for the operator only
    assert len(result.losses) == result.steps and result.heldout_loss_after is not None
    assert published["epsilons"] and published["adapter_sha256"] == result.adapter_sha256


def test_the_heldout_split_is_decided_record_by_record():
    records = chat_records(200)
    train, heldout = split_heldout(records)
    assert 0 < len(heldout) < 40
    assert all(is_heldout(r.id) for r in heldout) and not any(is_heldout(r.id) for r in train)
    # adding (or removing) records never moves another record between the sides
    more = records + chat_records(50, seed=7)
    more = [replace(r, id=f"new-{i}") if i >= 200 else r for i, r in enumerate(more)]
    _, heldout_more = split_heldout(more)
    assert {r.id for r in heldout_more if r.id.startswith("rec-")} == {r.id for r in heldout}
    _, heldout_fewer = split_heldout(records[:120])
    assert {r.id for r in heldout_fewer} == {r.id for r in heldout if int(r.id[4:]) < 120}


def test_under_user_level_dp_no_subject_is_on_both_sides_of_the_split():
    records = with_subjects(chat_records(200), 40)
    train, heldout = split_heldout(records, privacy_unit="user")
    assert heldout and train
    assert not {r.subject for r in train} & {r.subject for r in heldout}
    # a subject's new record joins its subject's side
    added = replace(records[0], id="rec-new")
    train2, heldout2 = split_heldout([*records, added], privacy_unit="user")
    side = "heldout" if records[0] in heldout else "train"
    assert (added in heldout2) == (side == "heldout") and len(train2) + len(heldout2) == 201


def test_noise_seed_is_part_of_the_run_fingerprint(tmp_path):
    records = chat_records(40)
    one = _prepare(records, small_cfg(noise_seed=0), tmp_path, private=True, epsilon_every=None)
    two = _prepare(records, small_cfg(noise_seed=1), tmp_path, private=True, epsilon_every=None)
    assert one.fingerprint != two.fingerprint


def test_noise_seed_is_refused_outside_the_test_profile():
    with pytest.raises(ValidationError, match="training.noise_seed"):
        PipelineConfig(profile="default", training={"noise_seed": 0})
    assert PipelineConfig(profile="test", training={"noise_seed": 0}).training.noise_seed == 0


def spy_on_sampling_and_noise(monkeypatch) -> tuple[list, list]:
    """Record each physical batch's unit indices and the first noise values of each step."""
    batches, noises = [], []
    forward_backward = dp_lora._forward_backward
    generate_noise = opacus_optimizer._generate_noise

    def recording_forward_backward(cfg, units, model, dp, unit_idx, *args, **kwargs):
        batches.append(unit_idx.tolist())
        return forward_backward(cfg, units, model, dp, unit_idx, *args, **kwargs)

    def recording_noise(*args, **kwargs):
        noise = generate_noise(*args, **kwargs)
        noises.append(noise.flatten()[:4].tolist())
        return noise

    monkeypatch.setattr(dp_lora, "_forward_backward", recording_forward_backward)
    monkeypatch.setattr(opacus_optimizer, "_generate_noise", recording_noise)
    return batches, noises


def test_two_runs_without_a_noise_seed_differ_in_sampling_and_noise(
    tiny_dir, tmp_path, monkeypatch
):
    batches, noises = spy_on_sampling_and_noise(monkeypatch)
    train_small(tiny_dir, tmp_path / "a", noise_seed=None, steps=2)
    first = (list(batches), list(noises))
    batches.clear(), noises.clear()
    train_small(tiny_dir, tmp_path / "b", noise_seed=None, steps=2)
    assert first[0] and first[1]
    assert batches != first[0]  # other Poisson batches
    assert not set(map(tuple, noises)) & set(map(tuple, first[1]))  # other noise


def test_os_generators_fill_the_whole_mersenne_twister_state():
    one, two = dp_lora.os_generator(), dp_lora.os_generator()
    words = [
        np.frombuffer(g.get_state().numpy()[24 : 24 + 624 * 8].tobytes(), dtype="<u8")
        for g in (one, two)
    ]
    assert not np.array_equal(words[0], words[1])
    # torch's manual_seed derives word 1 from word 0 (a 32-bit seed); these are independent
    w0, w1 = int(words[0][0]), int(words[0][1])
    assert w1 != (1812433253 * (w0 ^ (w0 >> 30)) + 1) % 2**32
    assert not torch.equal(torch.rand(8, generator=one), torch.rand(8, generator=two))


def test_secure_mode_trains_without_torchcsprng_and_refills_the_generators_each_step(
    tiny_dir, tmp_path, monkeypatch
):
    refilled = []
    refill = dp_lora._refill
    monkeypatch.setattr(dp_lora, "_refill", lambda g: (refilled.append(g.device.type), refill(g)))
    result = train_small(tiny_dir, tmp_path / "secure", noise_seed=None, secure_mode=True)
    assert result.secure_mode and result.steps == 3
    assert result.lora_tensors_with_clipped_gradient == result.lora_tensors_total
    assert refilled == ["cpu", "cpu"] * 3  # sampler and noise, after every step


def test_after_one_step_only_the_lora_tensors_with_a_clipped_gradient_count(tiny_dir, tmp_path):
    # LoRA's B starts at zero, so A's gradient is zero in step 1: the noise still moves A, and
    # a check of "moved" would count it. The clipped gradient before noise does not.
    result = train_small(tiny_dir, tmp_path / "one", steps=1)
    assert result.lora_tensors_with_clipped_gradient == result.lora_tensors_total // 2


def test_ghost_clipping_with_physical_batches_gives_the_same_update(tiny_dir, tmp_path):
    ghost = train_small(tiny_dir, tmp_path / "ghost", clipping="ghost")
    chunked = train_small(tiny_dir, tmp_path / "gc", clipping="ghost", max_physical_batch_size=3)
    assert_same_adapter(chunked, ghost)
    assert chunked.lora_tensors_with_clipped_gradient == chunked.lora_tensors_total


def test_user_level_dp_with_physical_batches_gives_the_same_update(tiny_dir, tmp_path):
    records = with_subjects(chat_records(40), 20)
    whole = train_small(tiny_dir, tmp_path / "u", records, privacy_unit="user")
    chunked = train_small(
        tiny_dir, tmp_path / "uc", records, privacy_unit="user", max_physical_batch_size=2
    )
    assert chunked.n_units == whole.n_units == 18
    assert_same_adapter(chunked, whole)


def test_under_bf16_autocast_no_clipped_per_sample_gradient_exceeds_the_clipping_norm(
    tiny_dir, tmp_path, monkeypatch
):
    # CPU autocast stands in for bf16 on CUDA; physical batches of one make each clipped
    # per-sample gradient visible as one increment of Opacus's clipped sum.
    monkeypatch.setattr(
        dp_lora,
        "_autocast",
        lambda device, enabled=True: torch.autocast("cpu", dtype=torch.bfloat16, enabled=enabled),
    )
    norms = []
    clip = DPOptimizer.clip_and_accumulate

    def recording_clip(self):
        before = [
            p.summed_grad.double().clone() if p.summed_grad is not None else 0 for p in self.params
        ]
        clip(self)
        increments = [p.summed_grad.double() - b for p, b in zip(self.params, before, strict=True)]
        norms.append(float(torch.sqrt(sum((x**2).sum() for x in increments))))

    monkeypatch.setattr(DPOptimizer, "clip_and_accumulate", recording_clip)
    train_small(tiny_dir, tmp_path / "bf16", max_grad_norm=0.01, max_physical_batch_size=1)
    clipped = [n for n in norms if n > 0]
    assert len(clipped) >= 10
    assert max(clipped) <= 0.01 * (1 + 1e-5)
    assert min(clipped) >= 0.01 * (1 - 1e-3)  # every one was clipped (all norms are above C)


def test_the_adapter_config_is_written_deterministically(tiny_dir, tmp_path):
    modules = ["v_proj", "q_proj", "o_proj", "k_proj"]
    result = train_small(tiny_dir, tmp_path / "a", steps=1, target_modules=modules)
    text = (result.adapter_dir / "adapter_config.json").read_text()
    assert json.loads(text)["target_modules"] == sorted(modules)
    assert list(json.loads(text)) == sorted(json.loads(text))  # keys sorted too


def test_the_non_private_control_charges_no_step_ledger(tiny_dir, tmp_path):
    result = train_dp_lora(
        chat_records(40),
        model_dir=tiny_dir,
        cfg=small_cfg(steps=2),
        out_dir=tmp_path / "control",
        progress=False,
        private=False,
        checkpoint_dir=tmp_path / "ckpt",
    )
    assert result.steps == 2 and not result.private
    assert not (tmp_path / "ckpt" / "steps.jsonl").exists()


def test_when_no_heldout_record_has_a_label_token_then_the_heldout_loss_is_none(tiny_dir):
    model, _ = load_base_model(tiny_dir)
    empty = (torch.zeros((0, 8), dtype=torch.long),) * 3
    assert dp_lora._mean_loss(model, empty, "cpu") is None
    no_labels = (torch.ones((2, 8), dtype=torch.long),) * 2 + (
        torch.full((2, 8), IGNORE_INDEX, dtype=torch.long),
    )
    assert dp_lora._mean_loss(model, no_labels, "cpu") is None


def test_the_progress_bar_shows_epsilon_but_not_the_loss(tiny_dir, tmp_path, capfd):
    # Dagster's compute log captures the bar, and its UI shows it
    train_dp_lora(
        chat_records(40),
        model_dir=tiny_dir,
        cfg=small_cfg(steps=1),
        out_dir=tmp_path / "a",
        progress=True,
        epsilon_every=1,
    )
    bar = capfd.readouterr().err
    assert "eps=" in bar and "loss=" not in bar
