"""The privacy budget ledger: stored mechanisms composed per privacy unit, refusing an overspend,
and the trainer's reserve / train / settle / retire order across crashes."""

import math
import sqlite3
from dataclasses import replace
from pathlib import Path

import pytest

from pipelines.steps.records import Message, Record
from pipelines.steps.release import gates
from pipelines.steps.training import dp_lora
from pipelines.steps.training.checkpoint import STEP_LEDGER, StepLedger
from pipelines.steps.training.ledger import (
    LEDGER_FILE,
    Mechanism,
    PrivacyBudgetExceeded,
    PrivacyLedger,
    budget_within_lifetime,
    ledger_summary,
    records_per_source,
)
from resources.trainer import DPTrainer, _split
from tests.test_accountant import DEFAULT_Q, DEFAULT_SIGMA
from tests.test_training import chat_records
from tests.tiny_model import make_tiny_model_dir

DEFAULT = Mechanism(DEFAULT_SIGMA, DEFAULT_Q, 50, "prv")  # ε 8 at δ 1e-5 on its own


def reserve(
    ledger: PrivacyLedger,
    run: str,
    keys: dict[str, int],
    *,
    lifetime: float = 9.5,
    unit: str = "example",
    mechanism: Mechanism | None = DEFAULT,
    delta: float = 1e-5,
    lifetime_delta: float = 1e-5,
):
    return ledger.reserve(
        run,
        keys,
        epsilon=8.0,
        delta=delta,
        lifetime_epsilon=lifetime,
        lifetime_delta=lifetime_delta,
        privacy_unit=unit,
        mechanism=mechanism,
    )


def spend(ledger: PrivacyLedger, run: str, keys: dict[str, int], **kwargs) -> None:
    reserve(ledger, run, keys, **kwargs)
    ledger.settle(run, epsilon=7.997, mechanism=kwargs.get("mechanism", DEFAULT))


def test_the_budget_is_refused_on_the_tight_composition_not_the_sum(tmp_path):
    ledger = PrivacyLedger(tmp_path / "ledger.sqlite")
    spend(ledger, "run-1", {"hr-mail": 10, "helpdesk": 5})
    # the sum would be 16 > 9.5; PRV composes two default runs to 9.15
    spend(ledger, "run-2", {"hr-mail": 10})
    with pytest.raises(PrivacyBudgetExceeded, match=r"hr-mail -> ε 10 at δ 1e-05 \(sum 24\)"):
        reserve(ledger, "run-3", {"hr-mail": 10, "helpdesk": 5})  # hr-mail would be 10.02
    assert {r["run_key"] for r in ledger.rows()} == {"run-1", "run-2"}  # nothing reserved
    reserve(ledger, "run-3", {"helpdesk": 5})  # a run on another source still may train
    gate = budget_within_lifetime(ledger.rows(), lifetime_epsilon=9.5, lifetime_delta=1e-5)
    assert gate.passed and 9.1 < gate.metadata["max_source_epsilon"] < 9.2
    assert gate.metadata["max_epsilon_sum"] == pytest.approx(16.0, abs=0.01)


def test_settle_stores_the_mechanism_that_ran(tmp_path):
    ledger = PrivacyLedger(tmp_path / "ledger.sqlite")
    reserve(ledger, "run-1", {"hr-mail": 3})
    ran = Mechanism(0.5, 0.01, 45, "rdp")  # e.g. a run that stopped at 45 charged steps
    (row,) = ledger.settle("run-1", epsilon=6.5, mechanism=ran)
    assert row["status"] == "spent" and row["epsilon"] == 6.5 and row["delta"] == 1e-5
    assert (row["noise_multiplier"], row["sample_rate"], row["steps"], row["accountant"]) == (
        0.5,
        0.01,
        45,
        "rdp",
    )
    assert (row["scope"], row["kind"], row["privacy_unit"]) == ("source", "run", "example")


def test_an_old_ledger_file_opens_and_its_runs_compose_by_basic_composition(tmp_path):
    path = tmp_path / "ledger.sqlite"
    old = sqlite3.connect(path)  # the schema before mechanisms were stored
    old.execute(
        "CREATE TABLE charges (run_key TEXT NOT NULL, attempt INTEGER NOT NULL, source TEXT "
        "NOT NULL, epsilon REAL NOT NULL, delta REAL NOT NULL, status TEXT NOT NULL CHECK "
        "(status IN ('reserved', 'spent')), privacy_unit TEXT NOT NULL, records INTEGER NOT "
        "NULL, updated_at REAL NOT NULL, PRIMARY KEY (run_key, attempt, source))"
    )
    old.execute(
        "INSERT INTO charges VALUES ('old', 1, 'hr-mail', 8.0, 1e-5, 'spent', 'example', 4, 1)"
    )
    old.commit()
    old.close()
    ledger = PrivacyLedger(path)
    (legacy,) = ledger.rows()
    assert legacy["noise_multiplier"] is None and legacy["scope"] == "source"
    # the legacy run used up δ 1e-5: a lifetime δ of 1e-5 leaves nothing for a new run
    with pytest.raises(PrivacyBudgetExceeded, match="training.lifetime_delta = 1e-05"):
        reserve(ledger, "new", {"hr-mail": 4}, lifetime=20.0)
    reserve(ledger, "new", {"hr-mail": 4}, lifetime=20.0, lifetime_delta=1e-4)
    summary = ledger_summary(ledger.rows(), lifetime_epsilon=20.0, lifetime_delta=1e-4)
    (hr,) = summary["sources"]
    assert hr["method"] == "prv+basic" and 14.0 < hr["epsilon_spent"] < 16.0
    assert hr["epsilon_sum"] == 16.0 and hr["delta_sum"] == pytest.approx(2e-5)


def test_a_run_above_the_lifetime_delta_is_refused(tmp_path):
    ledger = PrivacyLedger(tmp_path / "ledger.sqlite")
    with pytest.raises(PrivacyBudgetExceeded, match="above training.lifetime_delta"):
        reserve(ledger, "run-1", {"hr-mail": 3}, delta=1e-4, lifetime_delta=1e-5)
    assert ledger.rows() == []


def test_the_budget_gate_fails_when_a_source_is_past_the_lifetime_budget(tmp_path):
    ledger = PrivacyLedger(tmp_path / "ledger.sqlite")
    spend(ledger, "a", {"hr-mail": 3}, lifetime=24.0)
    spend(ledger, "b", {"hr-mail": 3, "helpdesk": 2}, lifetime=24.0)
    spend(ledger, "c", {"hr-mail": 3}, lifetime=24.0)
    rows = ledger.rows()
    # planted defect: hr-mail composes to 10.02 against a budget of 9.5
    gate = budget_within_lifetime(rows, lifetime_epsilon=9.5, lifetime_delta=1e-5)
    assert not gate.passed
    assert gate.metadata["sources_over_budget"] == 1 and gate.metadata["sources"] == 2
    assert 10.0 < gate.metadata["max_source_epsilon"] < 10.1
    assert budget_within_lifetime(rows, lifetime_epsilon=10.1, lifetime_delta=1e-5).passed
    # a larger lifetime δ gives a smaller composed ε for the same runs
    assert budget_within_lifetime(rows, lifetime_epsilon=9.5, lifetime_delta=1e-4).passed


def test_the_ledger_persists_across_instances_and_a_crashed_run_keeps_its_reservation(tmp_path):
    path = tmp_path / "ledger.sqlite"
    reserve(PrivacyLedger(path), "crashed", {"hr-mail": 3})
    reopened = PrivacyLedger(path)
    assert reopened.status("crashed") == "reserved"
    assert [r["noise_multiplier"] for r in reopened.rows()] == [DEFAULT_SIGMA]  # the plan


def test_a_resumed_run_reuses_its_reservation_and_a_spent_run_key_is_charged_anew(tmp_path):
    ledger = PrivacyLedger(tmp_path / "ledger.sqlite")
    reserve(ledger, "run-1", {"hr-mail": 3})
    reserve(ledger, "run-1", {"hr-mail": 3})  # resumed: one charge, not two
    assert len(ledger.rows()) == 1
    ledger.settle("run-1", epsilon=7.99, mechanism=DEFAULT)
    assert ledger.status("run-1") == "spent"
    reserve(ledger, "run-1", {"hr-mail": 3}, lifetime=24.0)  # an identical rerun: a new model
    assert ledger.status("run-1") == "reserved"
    assert [(r["attempt"], r["status"]) for r in ledger.rows()] == [(1, "spent"), (2, "reserved")]


def test_user_level_runs_charge_each_subject_once_across_sources(tmp_path):
    ledger = PrivacyLedger(tmp_path / "ledger.sqlite")
    alice, bob = "alice@example.com", "bob@example.com"
    keys = ledger.subject_keys([alice, alice, bob])
    assert sorted(keys.values()) == [1, 2] and all(len(k) == 32 for k in keys)
    assert ledger.subject_keys([alice]).keys() <= keys.keys()  # stable across runs
    # alice's records in two sources are one subject: two runs on different sources compose
    spend(ledger, "hr-run", ledger.subject_keys([alice, bob]), unit="user")
    spend(ledger, "helpdesk-run", ledger.subject_keys([alice]), unit="user")
    with pytest.raises(PrivacyBudgetExceeded, match=r"1 data subject\(s\).*subject [0-9a-f]{12}"):
        reserve(ledger, "third", ledger.subject_keys([alice, bob]), unit="user")
    reserve(ledger, "bob-only", ledger.subject_keys([bob]), unit="user")
    rows = ledger.rows()
    assert {r["scope"] for r in rows} == {"subject"}
    assert "alice" not in path_text(ledger.path) and "example.com" not in str(rows)


def path_text(path: Path) -> str:
    return path.read_bytes().decode("latin-1") + "".join(
        p.read_bytes().decode("latin-1") for p in path.parent.glob(path.name + "-*")
    )


def test_record_level_and_subject_level_charges_are_composed_apart(tmp_path):
    ledger = PrivacyLedger(tmp_path / "ledger.sqlite")
    spend(ledger, "records", {"hr-mail": 5})
    spend(ledger, "subjects", ledger.subject_keys(["s-1", "s-2"]), unit="user")
    # each unit's charge stands alone at ε 8: never added as if the same unit (16 > 9.5)
    spend(ledger, "subjects-2", ledger.subject_keys(["s-3"]), unit="user")
    gate = budget_within_lifetime(ledger.rows(), lifetime_epsilon=9.5, lifetime_delta=1e-5)
    assert gate.passed
    assert (gate.metadata["sources"], gate.metadata["subjects"]) == (1, 3)
    summary = ledger_summary(ledger.rows(), lifetime_epsilon=9.5, lifetime_delta=1e-5)
    assert [s["privacy_unit"] for s in summary["sources"]] == ["example"]
    assert summary["subjects"] == 3 and len(summary["top_subjects"]) == 3
    assert all(s["privacy_unit"] == "user" and s["runs"] == 1 for s in summary["top_subjects"])


def test_a_dp_control_is_charged_and_a_non_private_one_cannot_be(tmp_path):
    ledger = PrivacyLedger(tmp_path / "ledger.sqlite")
    spend(ledger, "run-1", {"hr-mail": 5})
    control = dict(
        name="unscreened",
        epsilon=8.0,
        delta=1e-5,
        lifetime_epsilon=9.5,
        lifetime_delta=1e-5,
        privacy_unit="example",
    )
    ledger.charge_control("audit-1:unscreened", {"hr-mail": 6}, mechanism=DEFAULT, **control)
    with pytest.raises(PrivacyBudgetExceeded):  # a second control would take hr-mail to 10.02
        ledger.charge_control("audit-2:unscreened", {"hr-mail": 6}, mechanism=DEFAULT, **control)
    with pytest.raises(ValueError, match="not differentially private"):
        ledger.charge_control(
            "audit-1:non_private",
            {"hr-mail": 6},
            mechanism=replace(DEFAULT, noise_multiplier=0),
            **{**control, "name": "non_private", "epsilon": math.inf},
        )
    summary = ledger_summary(
        ledger.rows(),
        lifetime_epsilon=9.5,
        lifetime_delta=1e-5,
        controls=["unscreened", "non_private"],
    )
    (hr,) = summary["sources"]
    assert hr["runs"] == 2 and hr["controls"] == 1 and 9.1 < hr["epsilon_spent"] < 9.2
    treatment = {c["name"]: c["treatment"] for c in summary["controls"]}
    assert treatment["unscreened"].startswith("charged")
    assert treatment["non_private"].startswith("not charged")


@pytest.mark.parametrize(
    ("epsilon", "passed"), [(8.0, True), (8.0 * (1 + 1e-12), True), (8.01, False), (8.39, False)]
)
def test_the_epsilon_gate_allows_float_rounding_only(epsilon, passed):
    # 8.39 passed the old gate's 5% tolerance
    assert gates.epsilon_within_budget(epsilon=epsilon, target_epsilon=8.0).passed is passed


def test_records_are_counted_by_source_label_or_landing_file():
    records = [
        Record("a", "mail.jsonl", 1, "chat", (Message("user", "x"),), source="hr-mail"),
        Record("b", "mail.jsonl", 2, "chat", (Message("user", "x"),)),
    ]
    assert records_per_source(records) == {"hr-mail": 1, "mail.jsonl": 1}


# The trainer: refusals before the reservation, settle before retiring, crash windows.


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_model_dir(tmp_path_factory.mktemp("tiny") / "model")


def trainer(**changes) -> DPTrainer:
    settings = dict(
        target_epsilon=8.0,
        target_delta=1e-3,
        accountant="rdp",
        expected_batch_size=64,  # q = 1: RDP's closed form, no slow fractional orders
        steps=3,
        learning_rate=1e-2,
        max_seq_len=24,
        lora_r=2,
        lora_alpha=4,
        lifetime_epsilon=30.0,
        device="cpu",
    )
    return DPTrainer(**{**settings, **changes})


def ledger_of(root: Path) -> PrivacyLedger:
    return PrivacyLedger(root / LEDGER_FILE)


def test_the_trainer_plans_subject_keys_and_sigma_before_training(tmp_path):
    records = chat_records(40)
    records = [
        replace(r, subject=f"emp-{i % 5}", source="hr" if i % 2 else "helpdesk")
        for i, r in enumerate(records)
    ]
    ledger = ledger_of(tmp_path)
    user_level = trainer(privacy_unit="user")
    keys, mechanism = user_level.plan(records, ledger)
    train, _ = _split(records, user_level.config)
    assert len(keys) == 5 and sum(keys.values()) == len(train)  # one key per subject
    assert not any("emp-" in k for k in keys)
    assert mechanism.sample_rate == 1.0 and mechanism.steps == 3 and mechanism.private


def test_a_run_refused_for_its_delta_keeps_no_reservation(tiny_dir, tmp_path):
    # 36 training records: delta 0.05 is not below 1/N
    with pytest.raises(dp_lora.TrainingConfigError, match="training.target_delta"):
        trainer(target_delta=0.05, lifetime_delta=0.05).train(
            chat_records(40), model_dir=tiny_dir, out_dir=tmp_path / "a", data_root=tmp_path
        )
    assert ledger_of(tmp_path).rows() == []


def test_a_run_refused_by_the_trainer_before_its_first_step_gives_its_reservation_back(
    tiny_dir, tmp_path
):
    # secure mode refuses a seed in the trainer's prepare phase, after the reservation
    with pytest.raises(ValueError, match="training.noise_seed"):
        trainer(secure_mode=True, noise_seed=0).train(
            chat_records(40), model_dir=tiny_dir, out_dir=tmp_path / "a", data_root=tmp_path
        )
    assert ledger_of(tmp_path).rows() == []


def test_a_run_settles_its_mechanism_then_retires_its_checkpoint(tiny_dir, tmp_path):
    t = trainer()
    records = chat_records(40)
    result, rows = t.train(records, model_dir=tiny_dir, out_dir=tmp_path / "a", data_root=tmp_path)
    (row,) = rows
    assert row["status"] == "spent" and row["source"] == "test.jsonl"
    assert row["epsilon"] == result.epsilon <= 8.0
    assert (row["noise_multiplier"], row["sample_rate"], row["steps"]) == (
        result.noise_multiplier,
        result.sample_rate,
        result.steps,
    )
    assert not (tmp_path / "checkpoints" / t.run_key(records, model_dir=tiny_dir)).exists()


def test_a_crash_between_training_and_settling_resumes_without_a_second_model(
    tiny_dir, tmp_path, monkeypatch
):
    t, records = trainer(), chat_records(40)
    checkpoint = tmp_path / "checkpoints" / t.run_key(records, model_dir=tiny_dir)

    def crash(*args, **kwargs):
        raise KeyboardInterrupt("crash before settling")

    with monkeypatch.context() as patch:
        patch.setattr(PrivacyLedger, "settle", crash)
        with pytest.raises(KeyboardInterrupt):
            t.train(records, model_dir=tiny_dir, out_dir=tmp_path / "a", data_root=tmp_path)
    assert ledger_of(tmp_path).status(t.run_key(records, model_dir=tiny_dir)) == "reserved"
    assert StepLedger(checkpoint / STEP_LEDGER).charged() == 3  # the steps outlive the crash
    result, rows = t.train(records, model_dir=tiny_dir, out_dir=tmp_path / "b", data_root=tmp_path)
    # the rerun found every step charged: it saved the crashed run's model, trained no other
    assert result.resumed_from_step == 3 and result.steps == 3
    assert [(r["attempt"], r["status"]) for r in rows] == [(1, "spent")]
    assert not checkpoint.exists()


def test_a_crash_between_settling_and_retiring_charges_the_rerun_anew(
    tiny_dir, tmp_path, monkeypatch
):
    t, records = trainer(), chat_records(40)
    checkpoint = tmp_path / "checkpoints" / t.run_key(records, model_dir=tiny_dir)

    def crash(*args, **kwargs):
        raise KeyboardInterrupt("crash before retiring")

    with monkeypatch.context() as patch:
        patch.setattr(dp_lora, "retire_checkpoint", crash)
        with pytest.raises(KeyboardInterrupt):
            t.train(records, model_dir=tiny_dir, out_dir=tmp_path / "a", data_root=tmp_path)
    assert checkpoint.exists()
    result, rows = t.train(records, model_dir=tiny_dir, out_dir=tmp_path / "b", data_root=tmp_path)
    # the settled run's leftover checkpoint was retired, not resumed: a second model, fresh
    # noise, and a second charge (never two models under one charge)
    assert result.resumed_from_step is None
    assert [(r["attempt"], r["status"]) for r in rows] == [(1, "spent"), (2, "spent")]
    assert not checkpoint.exists()


def test_the_report_shows_tight_and_summed_epsilon_units_and_the_controls_treatment(tmp_path):
    from assets.report import _budget_facts, _ledger_by_source
    from pipelines.steps.release.report import build_report, render_html
    from tests.test_report import _facts

    ledger = PrivacyLedger(tmp_path / "ledger.sqlite")
    spend(ledger, "run-1", {"src-hr": 5}, lifetime=24.0)
    spend(ledger, "run-2", {"src-hr": 5}, lifetime=24.0)
    spend(ledger, "run-3", ledger.subject_keys(["alice@example.com"]), unit="user", lifetime=24.0)
    ledger.charge_control(
        "audit:unscreened",
        {"src-hr": 6},
        name="unscreened",
        epsilon=8.0,
        delta=1e-5,
        mechanism=DEFAULT,
        lifetime_epsilon=24.0,
        lifetime_delta=1e-5,
        privacy_unit="example",
    )
    adapter = {"budget_ledger": ledger.rows(), "lifetime_epsilon": 24.0}
    audit = {"controls": [{"name": "unscreened"}, {"name": "non_private"}]}
    facts = {
        "ledger": _ledger_by_source(adapter, lifetime_delta=1e-5),
        "budget": _budget_facts(adapter, audit, lifetime_delta=1e-5),
    }
    source, subject = facts["ledger"]
    assert (source["source"], source["runs"], source["controls"]) == ("src-hr", 3, 1)
    assert 9.9 < source["epsilon_spent"] < 10.1 and source["epsilon_sum"] == pytest.approx(24, 0.01)
    assert subject["privacy_unit"] == "user" and 7.9 < subject["epsilon_spent"] <= 8.0
    html = render_html(build_report({**_facts(), **facts}))
    assert "PRV accountant" in html and "10.018" in html and "23.994" in html
    assert "charged to the ledger" in html and "not charged" in html
    assert "alice" not in html and "example.com" not in html


def test_a_crash_during_training_keeps_the_reservation_and_the_rerun_resumes_it(
    tiny_dir, tmp_path, monkeypatch
):
    t, records = trainer(), chat_records(40)
    train = dp_lora.train_dp_lora

    def crash_at_step_two(step: int) -> None:
        if step == 2:
            raise KeyboardInterrupt("crash after step 2")

    with monkeypatch.context() as patch:
        patch.setattr(
            dp_lora, "train_dp_lora", lambda *a, **k: train(*a, **k, on_step=crash_at_step_two)
        )
        with pytest.raises(KeyboardInterrupt):
            t.train(records, model_dir=tiny_dir, out_dir=tmp_path / "a", data_root=tmp_path)
    (reserved,) = ledger_of(tmp_path).rows()
    assert reserved["status"] == "reserved" and reserved["steps"] == 3  # the planned mechanism
    result, rows = t.train(records, model_dir=tiny_dir, out_dir=tmp_path / "b", data_root=tmp_path)
    assert result.resumed_from_step is not None and result.steps == 3
    assert [(r["attempt"], r["status"]) for r in rows] == [(1, "spent")]


def test_a_user_level_run_charges_subjects_by_hmac_only(tiny_dir, tmp_path):
    records = [
        replace(r, subject=f"jane.doe{i % 4}@example.com", source="hr" if i % 2 else "helpdesk")
        for i, r in enumerate(chat_records(40))
    ]
    result, rows = trainer(privacy_unit="user", target_delta=1e-2).train(
        records, model_dir=tiny_dir, out_dir=tmp_path / "a", data_root=tmp_path
    )
    assert {(r["scope"], r["privacy_unit"]) for r in rows} == {("subject", "user")}
    assert len(rows) == result.n_units and all(len(r["source"]) == 32 for r in rows)
    assert "jane.doe" not in path_text(tmp_path / LEDGER_FILE)


def test_the_trainer_charges_a_dp_control_with_its_planned_mechanism(tmp_path):
    t = trainer(lifetime_epsilon=8.0)
    rows = t.charge_control(
        chat_records(40), name="unscreened", run_key="audit-1:unscreened", data_root=tmp_path
    )
    (row,) = rows
    assert (row["kind"], row["status"], row["source"]) == (
        "control:unscreened",
        "spent",
        "test.jsonl",
    )
    assert row["noise_multiplier"] > 0 and row["steps"] == 3
    # the budget is spent: a run on the same records is refused before it trains
    with pytest.raises(PrivacyBudgetExceeded, match="training.lifetime_epsilon = 8"):
        t.charge_control(
            chat_records(40), name="unscreened", run_key="audit-2:unscreened", data_root=tmp_path
        )
