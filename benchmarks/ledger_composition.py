"""The privacy ledger's composition: tight (PRV) vs summed epsilon, and its cost per subject.

Part 1 composes 1..N default runs (ε 8 at δ 1e-5, batch 8, 50 steps over 1,700 records: σ from
Opacus's PRV calibration) with the ledger's `compose` and prints the tight ε beside the sum.
Part 2 times a user-level ledger: `--subjects` data subjects charged by three overlapping runs
(reserve, settle, the lifetime gate, the report summary); the baseline is composing every
subject on its own without the ledger's grouping of identical histories, in the same run
(timed on 40 subjects and scaled to all).

Usage: nice .venv/bin/python benchmarks/ledger_composition.py [--runs 5] [--subjects 2000]
"""

import argparse
import math
import tempfile
import time
from pathlib import Path

from opacus.accountants.utils import get_noise_multiplier

from pipelines.steps.training.ledger import (
    Charge,
    Mechanism,
    PrivacyLedger,
    budget_within_lifetime,
    compose,
    ledger_summary,
)

BASELINE_SAMPLE = 40


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--subjects", type=int, default=2000)
    args = parser.parse_args()
    q = 1 / math.ceil(1700 / 8)
    sigma = get_noise_multiplier(
        target_epsilon=8.0, target_delta=1e-5, sample_rate=q, steps=50, accountant="prv"
    )
    run = Charge(8.0, 1e-5, Mechanism(sigma, q, 50, "prv"))
    print(f"default run: sigma {sigma:.4f}, q {q:.5f}, 50 steps")
    print("runs  tight eps at delta 1e-5  sum of eps  sum of delta")
    for n in range(1, args.runs + 1):
        c = compose([run] * n, delta=1e-5)
        print(
            f"{n:>4}  {c.epsilon:>22.3f}  {c.epsilon_sum:>10.1f}  {c.delta_sum:>12.0e}",
            flush=True,
        )
    _subjects(run.mechanism, args.subjects)


def _subjects(mechanism: Mechanism, n: int) -> None:
    subjects = [f"subject-{i}" for i in range(n)]
    step = n // 5
    with tempfile.TemporaryDirectory() as folder:
        ledger = PrivacyLedger(Path(folder) / "ledger.sqlite")
        started = time.perf_counter()
        for i in range(3):
            keys = ledger.subject_keys(subjects[i * step : i * step + 3 * step])
            ledger.reserve(
                f"run-{i}",
                keys,
                epsilon=8.0,
                delta=1e-5,
                lifetime_epsilon=24.0,
                lifetime_delta=1e-5,
                privacy_unit="user",
                mechanism=mechanism,
            )
            ledger.settle(f"run-{i}", epsilon=8.0, mechanism=mechanism)
        charged = time.perf_counter() - started
        rows = ledger.rows()
        started = time.perf_counter()
        gate = budget_within_lifetime(rows, lifetime_epsilon=24.0, lifetime_delta=1e-5)
        ledger_summary(rows, lifetime_epsilon=24.0, lifetime_delta=1e-5)
        checked = time.perf_counter() - started
    from opacus.accountants import PRVAccountant

    histories: dict[str, list[tuple[float, float, int]]] = {}
    for row in rows:
        histories.setdefault(row["source"], []).append(
            (row["noise_multiplier"], row["sample_rate"], row["steps"])
        )
    sample = list(histories.values())[:BASELINE_SAMPLE]
    started = time.perf_counter()
    for history in sample:
        # baseline: each subject composed alone by a fresh accountant (no grouping, no cache)
        accountant = PRVAccountant()
        accountant.history = history
        accountant.get_epsilon(1e-5)
    baseline = (time.perf_counter() - started) * len(histories) / len(sample)
    print(
        f"{n} subjects, {len(rows)} charges: three reserve+settle {charged:.2f} s; gate + "
        f"report summary {checked:.2f} s; baseline (each subject composed alone, timed on "
        f"{len(sample)} and scaled) {baseline:.1f} s ({baseline / max(checked, 1e-9):.0f}x)",
        flush=True,
    )
    print(gate.description)


if __name__ == "__main__":
    main()
