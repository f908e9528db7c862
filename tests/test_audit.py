"""Canary exposure (The Secret Sharer): ranking, exposure arithmetic, and no secret leaks."""

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from pipelines.steps.audit import (
    CanarySpec,
    ExposureResult,
    canary_exposure,
    continuation_nll,
    max_exposure,
)
from pipelines.steps.modelstore import load_base_model
from tests.tiny_model import make_tiny_model_dir

PREFIX = "My pin is "


class FavouriteTokenLM(torch.nn.Module):
    """A fake causal LM that always predicts one token id far more likely than any other."""

    def __init__(self, vocab_size: int, favourite: int) -> None:
        super().__init__()
        self.bias = torch.nn.Parameter(torch.zeros(vocab_size))
        with torch.no_grad():
            self.bias[favourite] = 10.0

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> SimpleNamespace:
        return SimpleNamespace(logits=self.bias.expand(*input_ids.shape, -1))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory):
    return load_base_model(make_tiny_model_dir(tmp_path_factory.mktemp("tiny") / "model"))


@pytest.fixture(scope="module")
def sevens_lm(tiny):
    _, tokenizer = tiny
    seven = tokenizer.convert_tokens_to_ids("7")
    return FavouriteTokenLM(len(tokenizer), seven), tokenizer


def canary(secret: str, *, canary_id: str = "c-1") -> CanarySpec:
    return CanarySpec(
        canary_id=canary_id,
        prefix=PREFIX,
        secret=secret,
        alphabet="0123456789",
        length=len(secret),
        insertions=4,
    )


def test_when_the_secret_is_the_most_likely_candidate_then_exposure_is_maximal(sevens_lm):
    model, tokenizer = sevens_lm
    [result] = canary_exposure(model, tokenizer, [canary("77")], n_candidates=100, seed=0)
    assert (result.rank, result.candidates) == (1, 100)  # 10^2 <= 100: enumerated
    assert result.exposure_bits == pytest.approx(math.log2(100))


def test_when_candidates_are_strictly_more_likely_then_they_rank_above_the_secret(sevens_lm):
    model, tokenizer = sevens_lm
    [result] = canary_exposure(model, tokenizer, [canary("12")], n_candidates=100, seed=0)
    # The 19 two-digit strings holding a 7 are strictly more likely; the other 80 tie with it.
    assert result.rank == 20
    assert result.exposure_bits == pytest.approx(math.log2(100) - math.log2(20))


def test_when_the_space_is_large_then_exposure_is_estimated_from_sampled_candidates(sevens_lm):
    model, tokenizer = sevens_lm
    results = canary_exposure(model, tokenizer, [canary("7777")], n_candidates=50, seed=3)
    assert (results[0].rank, results[0].candidates) == (1, 51)
    assert results[0].rank_exposure_bits == pytest.approx(math.log2(51))  # capped: log2(m + 1)
    # the skew-normal extrapolation is not capped: a secret the model prefers scores higher
    assert results[0].method == "skewnorm" and results[0].exposure_bits > math.log2(51)
    again = canary_exposure(model, tokenizer, [canary("1234")], n_candidates=50, seed=3)
    assert again == canary_exposure(model, tokenizer, [canary("1234")], n_candidates=50, seed=3)


def test_results_carry_no_secret(sevens_lm):
    model, tokenizer = sevens_lm
    spec = canary("4821")
    [result] = canary_exposure(model, tokenizer, [spec], n_candidates=20, seed=0)
    assert isinstance(result, ExposureResult)
    assert "4821" not in repr(result) and "4821" not in str(vars(result))
    assert "4821" not in repr(spec)


def test_continuation_nll_matches_a_manual_sum_on_the_tiny_model(tiny):
    model, tokenizer = tiny
    [nll] = continuation_nll(model, tokenizer, PREFIX, ["42"])
    prefix_ids = tokenizer(PREFIX, add_special_tokens=False)["input_ids"]
    ids = torch.tensor([tokenizer(PREFIX + "42", add_special_tokens=False)["input_ids"]])
    with torch.no_grad():
        log_probs = torch.log_softmax(model(ids).logits[0], dim=-1)
    expected = -sum(
        log_probs[j - 1, ids[0, j]].item() for j in range(len(prefix_ids), ids.shape[1])
    )
    assert nll == pytest.approx(expected, abs=1e-4)


def test_real_model_exposure_is_between_zero_and_the_cap(tiny):
    model, tokenizer = tiny
    results = canary_exposure(
        model, tokenizer, [canary("31"), canary("5090", canary_id="c-2")], n_candidates=30, seed=0
    )
    assert [r.candidates for r in results] == [31, 31]
    assert all(0 <= r.exposure_bits <= math.log2(r.candidates) for r in results)
    assert max_exposure(results) == max(r.exposure_bits for r in results)


def test_when_there_are_no_results_then_max_exposure_fails_closed():
    with pytest.raises(ValueError, match="no canary"):
        max_exposure([])


@pytest.mark.parametrize(
    ("secret", "alphabet", "length"),
    [("12a", "0123456789", 3), ("123", "0123456789", 4), ("11", "11", 2)],
)
def test_when_a_canary_is_malformed_then_it_is_refused(secret: str, alphabet: str, length: int):
    with pytest.raises(ValueError, match="canary c"):
        CanarySpec("c", PREFIX, secret, alphabet, length, 1)


def test_when_the_secret_is_far_below_sampled_candidates_then_skewnorm_exposure_exceeds_the_cap():
    from pipelines.steps.audit import skewnorm_exposure

    rng = np.random.default_rng(0)
    candidates = rng.normal(30.0, 2.0, size=100)
    # a memorized secret: its NLL is ten standard deviations below every candidate's
    assert skewnorm_exposure(10.0, candidates) > math.log2(101) + 3
    # an unremarkable secret sits near the median: about one bit
    assert skewnorm_exposure(30.0, candidates) == pytest.approx(1.0, abs=0.5)
