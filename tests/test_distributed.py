"""DP-LoRA in two gloo processes (CPU) against one: same privacy, one logical batch (#21.3)."""

import math
from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer

from pipelines.steps.config import TrainingConfig
from pipelines.steps.training.distributed import launch, train_rank
from pipelines.steps.training.dp_lora import IGNORE_INDEX, TrainingConfigError
from tests.tiny_model import make_tiny_model_dir, synthetic_sentences

CFG = dict(expected_batch_size=8, steps=4, target_delta=1e-3, max_grad_norm=1.0, seed=3)


def _data(model_dir: Path, n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    encoded = tokenizer(
        synthetic_sentences(n, seed=5),
        padding="max_length",
        truncation=True,
        max_length=24,
        return_tensors="pt",
    )
    labels = encoded["input_ids"].masked_fill(encoded["attention_mask"] == 0, IGNORE_INDEX)
    return encoded["input_ids"], encoded["attention_mask"], labels


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_model_dir(tmp_path_factory.mktemp("tiny"))


def test_when_two_gloo_processes_train_then_privacy_and_batch_equal_one_process_and_ranks_agree(
    model_dir: Path,
) -> None:
    data = _data(model_dir, 64)
    cfg = TrainingConfig(**CFG)

    single = train_rank(model_dir, data, cfg)
    ranks = launch(model_dir, data, cfg, processes=2)

    first, second = ranks
    assert (first.rank, second.rank, first.world_size) == (0, 1, 2)
    # One run, one charge: the same sigma, q, steps and epsilon as one process (not twice it).
    for rank in ranks:
        assert rank.steps == single.steps == cfg.steps
        assert rank.noise_multiplier == single.noise_multiplier > 0
        assert rank.sample_rate == single.sample_rate == 1 / 8
        assert rank.expected_batch_size == single.expected_batch_size == cfg.expected_batch_size
        assert math.isclose(rank.epsilon, single.epsilon, rel_tol=1e-9)
    assert single.epsilon <= cfg.target_epsilon + 1e-6
    # The ranks drew disjoint shares of one Poisson batch: together about one logical batch a
    # step (8 expected; 4 steps x 8 = 32 over both ranks, far from 0 and from 64 per rank).
    assert 0 < first.records_seen + second.records_seen < 2 * 32 + 24
    # Both ranks applied the same (once-noised, averaged) update: identical adapters, trained.
    assert first.adapter.keys() == second.adapter.keys() == single.adapter.keys()
    for name, tensor in first.adapter.items():
        assert torch.equal(tensor, second.adapter[name]), name
    changed = [n for n, t in first.adapter.items() if "lora_B" in n and t.abs().sum() > 0]
    assert changed, "no LoRA B tensor moved from its zero initialization"


def test_when_user_level_units_are_asked_of_several_processes_then_the_setting_is_named(
    model_dir: Path,
) -> None:
    cfg = TrainingConfig(**{**CFG, "privacy_unit": "user"})
    with pytest.raises(TrainingConfigError, match="training.privacy_unit"):
        train_rank(model_dir, _data(model_dir, 64), cfg)
