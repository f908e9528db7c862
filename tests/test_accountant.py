"""The accountants against Opacus's own golden values, and the settings that are refused.

Golden values are those pinned in Opacus's tests: pytorch/opacus, opacus/tests/accountants_test.py
(AccountingTest, commit 2f4b54640c031948c4264d56b6f101baf5676490): sigma 1.5, q 0.04, 90 epochs,
delta 1e-5 give epsilon 7.32911117143 (RDP, steps = int(90 / 0.04)) and 6.777395712150674 (PRV,
steps = int(90 // 0.04)); target epsilon 8 over 2000 steps at q 0.04 needs sigma 1.3562 (RDP)
and 1.2915 (PRV).
"""

import math
from dataclasses import replace

import pytest
from opacus.accountants import PRVAccountant, RDPAccountant
from opacus.accountants.utils import get_noise_multiplier
from pydantic import ValidationError

from pipelines.steps.config import TrainingConfig
from pipelines.steps.training.dp_lora import TrainingConfigError, train_dp_lora
from pipelines.steps.training.ledger import Charge, Mechanism, compose
from tests.test_training import chat_records


def test_rdp_accountant_gives_opacus_golden_epsilon():
    rdp = RDPAccountant()
    rdp.history = [(1.5, 0.04, int(90 / 0.04))]
    assert rdp.get_epsilon(delta=1e-5) == pytest.approx(7.32911117143, abs=1e-7)


def test_prv_accountant_gives_opacus_golden_epsilon():
    prv = PRVAccountant()
    prv.history = [(1.5, 0.04, int(90 // 0.04))]
    assert prv.get_epsilon(delta=1e-5) == pytest.approx(6.777395712150674, abs=1e-4)


@pytest.mark.parametrize(("accountant", "sigma"), [("rdp", 1.3562), ("prv", 1.2915)])
def test_noise_multiplier_from_target_epsilon_matches_opacus_golden(accountant, sigma):
    got = get_noise_multiplier(
        target_epsilon=8, target_delta=1e-5, sample_rate=0.04, steps=2000, accountant=accountant
    )
    assert got == pytest.approx(sigma, abs=1e-4)


def test_when_the_accountant_is_gdp_then_the_config_is_refused_with_a_reason():
    with pytest.raises(ValidationError, match="training.accountant: gdp is refused"):
        TrainingConfig(accountant="gdp")


def test_when_ghost_clipping_is_asked_with_user_level_privacy_then_the_config_is_refused():
    with pytest.raises(ValidationError, match="training.clipping"):
        TrainingConfig(clipping="ghost", privacy_unit="user")


def test_when_secure_mode_has_a_noise_seed_then_training_is_refused(tmp_path):
    cfg = TrainingConfig(target_delta=1e-3, secure_mode=True, noise_seed=0, steps=1)
    with pytest.raises(TrainingConfigError, match="remove training.noise_seed"):
        train_dp_lora(chat_records(20), model_dir=tmp_path, cfg=cfg, out_dir=tmp_path / "a")


def test_when_delta_is_not_below_one_over_the_number_of_users_then_training_is_refused(tmp_path):
    # 18 training records of only 2 data subjects: N is 2, the number of users
    records = [replace(r, subject=f"emp-{i % 2}") for i, r in enumerate(chat_records(20))]
    cfg = TrainingConfig(target_delta=0.6, privacy_unit="user", steps=1)
    with pytest.raises(TrainingConfigError, match=r"N = 2 privacy units, privacy_unit user"):
        train_dp_lora(records, model_dir=tmp_path, cfg=cfg, out_dir=tmp_path / "a")


# Tight composition of the ledger's stored mechanisms (issue #17.3)
# The default profile on a corpus of 1,700 training records: batch 8, 50 steps, ε 8 at δ 1e-5.
# σ is what opacus.accountants.utils.get_noise_multiplier(accountant="prv") gives for it.
DEFAULT_Q = 1 / math.ceil(1700 / 8)
DEFAULT_SIGMA = 0.3912353515625
DEFAULT_RUN = Charge(8.0, 1e-5, Mechanism(DEFAULT_SIGMA, DEFAULT_Q, 50, "prv"))


def test_one_default_run_composes_to_its_own_epsilon():
    single = compose([DEFAULT_RUN], delta=1e-5)
    assert 7.9 < single.epsilon <= 8.0 and single.method == "prv"


def test_three_default_runs_compose_to_about_ten_not_twenty_four():
    three = compose([DEFAULT_RUN] * 3, delta=1e-5)
    assert 9.8 < three.epsilon < 10.3  # measured 10.02
    assert three.delta == 1e-5
    assert three.epsilon_sum == 24.0 and three.delta_sum == pytest.approx(3e-5)
    # the same history through the RDP accountant is a looser, still valid, bound
    rdp = RDPAccountant()
    rdp.history = [(DEFAULT_SIGMA, DEFAULT_Q, 150)]
    assert three.epsilon < rdp.get_epsilon(1e-5) < three.epsilon_sum


def test_heterogeneous_runs_compose_between_the_largest_run_and_the_sum():
    other = Charge(3.0, 1e-5, Mechanism(0.8, 0.01, 100, "rdp"))
    both = compose([DEFAULT_RUN, other], delta=1e-5)
    assert 8.0 < both.epsilon < 11.0 and both.runs == 2


def test_a_non_private_mechanism_has_no_finite_epsilon():
    control = Charge(math.inf, 0.0, Mechanism(0.0, DEFAULT_Q, 50, "prv"))
    assert math.isinf(compose([DEFAULT_RUN, control], delta=1e-5).epsilon)


def test_charges_without_a_mechanism_add_their_epsilon_and_delta():
    legacy = Charge(8.0, 1e-5)  # written by a ledger that stored no mechanism
    mixed = compose([DEFAULT_RUN, legacy], delta=1e-4)
    # PRV at δ' = 1e-4 - 1e-5 for the known run, plus the legacy run's ε by basic composition
    assert mixed.method == "prv+basic" and 8.0 + 6.0 < mixed.epsilon < 16.0  # 14.23
    assert mixed.delta == 1e-4
    # the legacy δ leaves no δ for the rest: no finite bound at δ 1e-5
    assert math.isinf(compose([DEFAULT_RUN, legacy], delta=1e-5).epsilon)
    only_legacy = compose([legacy, legacy], delta=1e-5)
    assert (only_legacy.epsilon, only_legacy.delta) == (16.0, 2e-5)
