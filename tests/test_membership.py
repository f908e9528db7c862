"""Membership-inference attacks and their statistics."""

import numpy as np
import pytest

from pipelines.steps.audit.membership import (
    ATTACKS,
    _auc_standard_error,
    auc_lower_bound,
    evaluate_attacks,
    record_scores,
)
from pipelines.steps.records import Message, Record
from pipelines.steps.training.modelstore import load_base_model
from tests.tiny_model import make_tiny_model_dir, synthetic_sentences


def _scores(values: np.ndarray) -> dict[str, np.ndarray]:
    return {attack: values for attack in ATTACKS}


def test_when_members_are_perfectly_separable_then_auc_is_one_and_epsilon_bound_is_positive():
    rng = np.random.default_rng(0)
    members, others = rng.normal(5, 1, 200), rng.normal(-5, 1, 200)
    for result in evaluate_attacks(_scores(members), _scores(others), delta=1e-5):
        assert result.auc == 1.0 and result.tpr_at_1pct_fpr == 1.0
        assert result.auc_low > 0.95
        assert result.epsilon_lower_bound > 2.0


def test_when_members_look_like_non_members_then_auc_is_near_half_and_no_epsilon_is_implied():
    rng = np.random.default_rng(1)
    members, others = rng.normal(0, 1, 200), rng.normal(0, 1, 200)
    for result in evaluate_attacks(_scores(members), _scores(others), delta=1e-5):
        assert result.auc == pytest.approx(0.5, abs=0.08)
        assert result.auc_low < 0.5
        assert result.epsilon_lower_bound < 1.0


def test_when_few_records_are_held_out_then_a_chance_auc_is_not_taken_for_leakage():
    # 64 members, 11 non-members, AUC 0.697: the Wald bound (se at the observed AUC) put it
    # above a 0.55 gate; the bound with the standard error taken at the bound does not
    wald = 0.697 - 1.96 * _auc_standard_error(0.697, 64, 11)
    assert wald > 0.54
    assert auc_lower_bound(0.697, 64, 11) < 0.52


def test_when_many_records_are_scored_then_the_bound_is_the_usual_one_and_still_catches_leakage():
    for auc in (0.55, 0.6, 0.65, 0.7):
        wald = auc - 1.96 * _auc_standard_error(auc, 64, 64)
        assert auc_lower_bound(auc, 64, 64) == pytest.approx(wald, abs=0.01)
    assert auc_lower_bound(0.75, 64, 64) > 0.55  # a real attack still fails the gate
    assert auc_lower_bound(1.0, 200, 200) > 0.95


def test_when_records_are_scored_with_a_model_then_every_attack_gives_a_finite_score(tmp_path):
    model, tokenizer = load_base_model(make_tiny_model_dir(tmp_path / "tiny"))
    records = [
        Record(f"r{i}", "f", i, "chat", (Message("user", s), Message("assistant", s[::-1])))
        for i, s in enumerate(synthetic_sentences(6, seed=2))
    ]
    scores = record_scores(model, tokenizer, records, max_seq_len=32)
    assert set(scores) == set(ATTACKS)
    assert all(np.isfinite(v).all() and len(v) == 6 for v in scores.values())
