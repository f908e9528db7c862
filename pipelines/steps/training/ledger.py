"""The privacy budget ledger: epsilon spent per data source across every training run.

Scheduled retraining reuses the same people's data, so the guarantee that matters to them is
the total over all runs. The ledger composes runs by basic composition (epsilons and deltas
add up), which is an upper bound whatever the runs did. A run reserves its target epsilon for
every source it trains on *before* training, in one transaction that refuses it if any source
would pass its lifetime budget; when the run ends the reservation is settled to the
accountant's epsilon. A run that crashes keeps its reservation (fail closed), and a resumed run
with the same run key reuses that open reservation instead of charging twice; once settled, a
run with the same key (retraining on unchanged data) is a new attempt, charged again.

The ledger is a SQLite file under the data root; rows carry source labels, run keys and
numbers, never record content.
"""

import sqlite3
import time
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pipelines.steps.records import Record
from pipelines.steps.release.gates import GateResult

LEDGER_FILE = "privacy_ledger.sqlite"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS charges (
    run_key TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    source TEXT NOT NULL,
    epsilon REAL NOT NULL,
    delta REAL NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('reserved', 'spent')),
    privacy_unit TEXT NOT NULL,
    records INTEGER NOT NULL,
    updated_at REAL NOT NULL,
    PRIMARY KEY (run_key, attempt, source)
)
"""


class PrivacyBudgetExceeded(RuntimeError):
    """A training run that would push a data source past `training.lifetime_epsilon`."""


def data_source(record: Record) -> str:
    """The ledger's key for a record: its source label, else its landing file name."""
    return record.source or record.source_file


def records_per_source(records: Iterable[Record]) -> dict[str, int]:
    """How many records each data source contributes."""
    return dict(sorted(Counter(data_source(r) for r in records).items()))


class PrivacyLedger:
    """Epsilon reserved and spent per (run, data source), in a SQLite file.

    Args:
        path: The SQLite file (created with its folder on first use).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.execute(_SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        return db

    def spent(self) -> dict[str, float]:
        """Total epsilon (reserved or spent) per source."""
        with self._connect() as db:
            rows = db.execute("SELECT source, SUM(epsilon) FROM charges GROUP BY source").fetchall()
        return {source: float(total) for source, total in rows}

    def reserve(
        self,
        run_key: str,
        sources: dict[str, int],
        *,
        epsilon: float,
        delta: float,
        lifetime_epsilon: float,
        privacy_unit: str,
    ) -> list[dict[str, Any]]:
        """Reserve `epsilon` for every source of a run, or refuse the whole run.

        Re-reserving a `run_key` whose reservation is still open (a resumed run) replaces
        that reservation; after `settle`, the same key starts a new attempt.

        Args:
            run_key: Identifies the run across crashes and resumes.
            sources: Data source -> records the run trains on.
            epsilon: The run's target epsilon.
            delta: The run's delta.
            lifetime_epsilon: The per-source budget over all runs.
            privacy_unit: "example" or "user", recorded with the charge.

        Returns:
            The ledger rows after the reservation (see `rows`).

        Raises:
            PrivacyBudgetExceeded: Naming the sources (labels, not content) that would exceed
                `training.lifetime_epsilon`; nothing is reserved then.
        """
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                open_attempt = db.execute(
                    "SELECT attempt FROM charges WHERE run_key = ? AND status = 'reserved'",
                    (run_key,),
                ).fetchone()
                last = db.execute(
                    "SELECT MAX(attempt) FROM charges WHERE run_key = ?", (run_key,)
                ).fetchone()[0]
                attempt = open_attempt[0] if open_attempt else (last or 0) + 1
                db.execute(
                    "DELETE FROM charges WHERE run_key = ? AND status = 'reserved'", (run_key,)
                )
                totals = dict(
                    db.execute("SELECT source, SUM(epsilon) FROM charges GROUP BY source")
                )
                over = {
                    s: totals.get(s, 0.0) + epsilon
                    for s in sources
                    if totals.get(s, 0.0) + epsilon > lifetime_epsilon + 1e-9
                }
                if over:
                    raise PrivacyBudgetExceeded(
                        f"training.lifetime_epsilon = {lifetime_epsilon:g} would be exceeded for "
                        f"{len(over)} data source(s): "
                        + ", ".join(f"{s} -> {v:.3g}" for s, v in sorted(over.items()))
                        + "; raise the budget only with the privacy officer's approval, or "
                        "train on other sources"
                    )
                now = time.time()
                db.executemany(
                    "INSERT INTO charges VALUES (?, ?, ?, ?, ?, 'reserved', ?, ?, ?)",
                    [
                        (run_key, attempt, s, epsilon, delta, privacy_unit, n, now)
                        for s, n in sources.items()
                    ],
                )
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return self.rows()

    def settle(self, run_key: str, *, epsilon: float) -> list[dict[str, Any]]:
        """Replace a run's reservation by the accountant's final epsilon (status `spent`)."""
        with self._connect() as db:
            db.execute(
                "UPDATE charges SET epsilon = ?, status = 'spent', updated_at = ? "
                "WHERE run_key = ? AND status = 'reserved'",
                (epsilon, time.time(), run_key),
            )
        return self.rows()

    def rows(self) -> list[dict[str, Any]]:
        """Every charge, oldest first: run_key, attempt, source, epsilon, delta, status,
        privacy_unit, records."""
        with self._connect() as db:
            cursor = db.execute(
                "SELECT run_key, attempt, source, epsilon, delta, status, privacy_unit, records "
                "FROM charges ORDER BY updated_at, run_key, source"
            )
            names = [c[0] for c in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def budget_within_lifetime(rows: list[dict[str, Any]], *, lifetime_epsilon: float) -> GateResult:
    """Every data source's total epsilon in the ledger is within its lifetime budget."""
    totals: dict[str, float] = {}
    for row in rows:
        totals[row["source"]] = totals.get(row["source"], 0.0) + float(row["epsilon"])
    worst = max(totals.values(), default=0.0)
    over = sorted(s for s, v in totals.items() if v > lifetime_epsilon + 1e-9)
    return GateResult(
        not over,
        f"{len(over)} of {len(totals)} data sources past the lifetime budget; highest total "
        f"epsilon {worst:.3f} vs {lifetime_epsilon:g}",
        {
            "sources": len(totals),
            "sources_over_budget": len(over),
            "max_source_epsilon": float(worst),
            "lifetime_epsilon": float(lifetime_epsilon),
        },
    )
