"""The privacy budget ledger: epsilon per data source across runs, refusing an overspend."""

import pytest

from pipelines.steps.records import Message, Record
from pipelines.steps.training.ledger import (
    PrivacyBudgetExceeded,
    PrivacyLedger,
    budget_within_lifetime,
    records_per_source,
)


def reserve(ledger: PrivacyLedger, run: str, sources: dict[str, int], epsilon: float = 8.0):
    return ledger.reserve(
        run, sources, epsilon=epsilon, delta=1e-5, lifetime_epsilon=20.0, privacy_unit="example"
    )


def test_when_runs_add_up_past_the_lifetime_budget_then_the_next_run_is_refused(tmp_path):
    ledger = PrivacyLedger(tmp_path / "ledger.sqlite")
    reserve(ledger, "run-1", {"hr-mail": 10, "helpdesk": 5})
    ledger.settle("run-1", epsilon=7.9)
    reserve(ledger, "run-2", {"hr-mail": 10})
    ledger.settle("run-2", epsilon=7.9)
    # hr-mail has spent 15.8 of 20: another 8 would reach 23.8
    with pytest.raises(PrivacyBudgetExceeded, match="hr-mail -> 23.8") as err:
        reserve(ledger, "run-3", {"hr-mail": 10, "helpdesk": 5})
    assert "helpdesk" not in str(err.value)  # 7.9 + 8 is within budget
    assert {r["run_key"] for r in ledger.rows()} == {"run-1", "run-2"}  # nothing reserved
    reserve(ledger, "run-3", {"helpdesk": 5})  # a run on another source still may train
    assert budget_within_lifetime(ledger.rows(), lifetime_epsilon=20.0).passed


def test_the_ledger_persists_across_instances_and_a_crashed_run_keeps_its_reservation(tmp_path):
    path = tmp_path / "ledger.sqlite"
    reserve(PrivacyLedger(path), "crashed", {"hr-mail": 3})
    reopened = PrivacyLedger(path)
    assert reopened.spent() == {"hr-mail": 8.0}
    assert reopened.rows()[0]["status"] == "reserved"


def test_a_resumed_run_reuses_its_reservation_instead_of_charging_twice(tmp_path):
    ledger = PrivacyLedger(tmp_path / "ledger.sqlite")
    reserve(ledger, "run-1", {"hr-mail": 3}, epsilon=12.0)
    reserve(ledger, "run-1", {"hr-mail": 3}, epsilon=12.0)  # resumed: 12, not 24
    assert ledger.spent() == {"hr-mail": 12.0}
    assert ledger.settle("run-1", epsilon=11.5)[0]["status"] == "spent"
    # retraining later on unchanged data (same key) is a new attempt, charged on top
    with pytest.raises(PrivacyBudgetExceeded, match="hr-mail -> 23.5"):
        reserve(ledger, "run-1", {"hr-mail": 3}, epsilon=12.0)
    reserve(ledger, "run-1", {"hr-mail": 3}, epsilon=4.0)
    assert [r["attempt"] for r in ledger.rows()] == [1, 2]
    assert ledger.spent() == {"hr-mail": 15.5}


def test_the_budget_gate_fails_when_a_source_is_past_the_lifetime_budget():
    rows = [
        {"run_key": "a", "source": "hr-mail", "epsilon": 8.0},
        {"run_key": "b", "source": "hr-mail", "epsilon": 8.0},
        {"run_key": "b", "source": "helpdesk", "epsilon": 8.0},
    ]
    # planted defect: hr-mail at 16 against a budget of 10
    gate = budget_within_lifetime(rows, lifetime_epsilon=10.0)
    assert not gate.passed
    assert gate.metadata["sources_over_budget"] == 1
    assert gate.metadata["max_source_epsilon"] == 16.0
    assert budget_within_lifetime(rows, lifetime_epsilon=16.0).passed


def test_records_are_counted_by_source_label_or_landing_file():
    records = [
        Record("a", "mail.jsonl", 1, "chat", (Message("user", "x"),), source="hr-mail"),
        Record("b", "mail.jsonl", 2, "chat", (Message("user", "x"),)),
    ]
    assert records_per_source(records) == {"hr-mail": 1, "mail.jsonl": 1}
