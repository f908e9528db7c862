"""The privacy budget ledger: what every training run spent, composed per privacy unit.

Scheduled retraining reuses the same people's data, so the guarantee that matters to them is
the one over all runs. Each run stores its mechanism — noise multiplier σ, Poisson sample rate
q, steps, the accountant it was calibrated with, its privacy unit and δ — and the ledger
composes the stored mechanisms of everything charged to one key with a numerical accountant
(Opacus's PRV accountant, which composes heterogeneous (σ, q, steps) histories): that tight ε,
at the lifetime δ, is what the lifetime budget bounds. The simple sum of the runs' ε and δ
(basic composition, always an upper bound) is stored and reported beside it. Three default
runs (ε 8 each at δ 1e-5, 50 steps of q ≈ 0.0047) compose to about ε 10 at δ 1e-5, not 24.

What is charged depends on the unit the guarantee is about:

- privacy_unit `example` (record-level DP): each data source is charged; a record belongs to
  one source, so a record's lifetime ε is its source's composition.
- privacy_unit `user` (subject-level DP): each data subject is charged, keyed by an HMAC of
  the subject key under a secret kept in the ledger file (never the key itself); a subject with
  records in two sources is one subject.

Record-level and subject-level charges are never added together: each is composed on its own
and bounded by `training.lifetime_epsilon` at `training.lifetime_delta`. (A record-level run
gives a subject with k records only a group-privacy guarantee, which the ledger does not claim.)

A run reserves its planned mechanism for every key it trains on *before* training, in one
transaction that refuses it if any key's composition would pass the lifetime budget; when the
run ends the reservation is settled to the mechanism that ran (status `spent`). A run that
crashes keeps its reservation (fail closed), and a resumed run with the same run key reuses
that open reservation instead of charging twice. A run key already spent (the same records,
settings and base model, trained to the end) is refused rather than trained again. Control
models that the audit trains on the same records are charged with `charge_control`.

Runs recorded by an older ledger (before mechanisms were stored) have only (ε, δ): they are
composed by basic composition, adding their ε and their δ to the tight figure of the rest.

The ledger is a SQLite file under the data root; rows carry source labels, subject hashes, run
keys and numbers, never record content.
"""

import hashlib
import hmac
import math
import secrets
import sqlite3
import time
import warnings
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from pipelines.steps.records import Record
from pipelines.steps.release.gates import GateResult

LEDGER_FILE = "privacy_ledger.sqlite"
SCOPES = {"example": "source", "user": "subject"}
"""The key a run is charged to, by privacy unit: a data source, or a data subject."""
TOLERANCE = 1e-9
"""Relative float tolerance of every budget comparison (no other slack)."""

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
_ADDED_COLUMNS = {
    # added after the first schema: ALTER TABLE adds them to an existing ledger file
    "scope": "TEXT NOT NULL DEFAULT 'source'",
    "kind": "TEXT NOT NULL DEFAULT 'run'",
    "noise_multiplier": "REAL",
    "sample_rate": "REAL",
    "steps": "INTEGER",
    "accountant": "TEXT",
}
_META = "CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)"
_ROW_COLUMNS = (
    "run_key",
    "attempt",
    "kind",
    "scope",
    "source",
    "epsilon",
    "delta",
    "status",
    "privacy_unit",
    "records",
    "noise_multiplier",
    "sample_rate",
    "steps",
    "accountant",
)


class PrivacyBudgetExceeded(RuntimeError):
    """A run refused by the ledger: it would push a data source or a data subject past
    `training.lifetime_epsilon` or `training.lifetime_delta` (nothing is reserved then)."""


@dataclass(frozen=True)
class Mechanism:
    """One run's DP-SGD mechanism: Poisson-subsampled Gaussian, composed `steps` times.

    Attributes:
        noise_multiplier: σ, noise std / clipping norm (0 for a non-private run).
        sample_rate: q, the Poisson sampling probability of one privacy unit per step.
        steps: Steps charged (repeated ones after a crash included).
        accountant: The accountant the run was calibrated with ("prv" or "rdp").
    """

    noise_multiplier: float
    sample_rate: float
    steps: int
    accountant: str = "prv"

    @property
    def private(self) -> bool:
        return self.noise_multiplier > 0 and math.isfinite(self.noise_multiplier)


@dataclass(frozen=True)
class Charge:
    """What one run spent on one key: its (ε, δ) and, when known, its mechanism."""

    epsilon: float
    delta: float
    mechanism: Mechanism | None = None


@dataclass(frozen=True)
class Composition:
    """The composition of every charge to one key.

    Attributes:
        epsilon: Tight ε at `delta`: the numerical accountant over the stored mechanisms, plus
            basic composition of charges without one (infinite if a charge is non-private).
        delta: The δ the tight ε holds at (the lifetime δ; the δs of charges without a stored
            mechanism when there are only those).
        epsilon_sum: Basic composition: the sum of the runs' ε.
        delta_sum: The sum of the runs' δ.
        runs: Charges composed.
        method: "prv", "rdp" (PRV could not be computed), "basic", or a sum like "prv+basic".
    """

    epsilon: float
    delta: float
    epsilon_sum: float
    delta_sum: float
    runs: int
    method: str

    def within(self, *, lifetime_epsilon: float, lifetime_delta: float) -> bool:
        return _at_most(self.epsilon, lifetime_epsilon) and _at_most(self.delta, lifetime_delta)


def _at_most(value: float, bound: float) -> bool:
    return math.isfinite(value) and value <= bound + TOLERANCE * max(1.0, abs(bound))


def compose(charges: Sequence[Charge], *, delta: float) -> Composition:
    """Compose the charges to one key at the lifetime δ `delta`.

    Charges with a mechanism are composed by Opacus's PRV accountant at δ' = `delta` minus the
    δ of the charges without one, which add their (ε, δ) by basic composition; the total then
    holds at `delta`. A non-private mechanism makes ε infinite.
    """
    known = [c.mechanism for c in charges if c.mechanism is not None]
    basic = [c for c in charges if c.mechanism is None]
    basic_eps = sum(c.epsilon for c in basic)
    basic_delta = sum(c.delta for c in basic)
    eps_sum = sum(c.epsilon for c in charges)
    delta_sum = sum(c.delta for c in charges)
    if not known:
        return Composition(basic_eps, basic_delta, eps_sum, delta_sum, len(charges), "basic")
    left = delta - basic_delta
    if left <= 0:
        tight, method = math.inf, "basic"
    else:
        tight, method = _tight_epsilon(_history(known), left)
    if basic:
        tight, method = tight + basic_eps, f"{method}+basic"
    return Composition(tight, delta, eps_sum, delta_sum, len(charges), method)


def _history(mechanisms: Iterable[Mechanism]) -> tuple[tuple[float, float, int], ...]:
    """(σ, q, steps) per distinct (σ, q), steps summed: the same composition, fewer PRVs."""
    steps: Counter = Counter()
    for m in mechanisms:
        steps[(float(m.noise_multiplier), float(m.sample_rate))] += int(m.steps)
    return tuple(sorted((s, q, n) for (s, q), n in steps.items()))


@lru_cache(maxsize=4096)
def _tight_epsilon(
    history: tuple[tuple[float, float, int], ...], delta: float
) -> tuple[float, str]:
    """ε of the composed history at δ: PRV's upper bound, else RDP's (both valid bounds)."""
    from opacus.accountants import PRVAccountant, RDPAccountant

    if any(s <= 0 or not math.isfinite(s) for s, _, _ in history):
        return math.inf, "none"  # a non-private run: no ε bounds what it released
    try:
        accountant = PRVAccountant()
        accountant.history = list(history)
        with np.errstate(divide="ignore"):  # q = 1 takes log(1 - q) = -inf, as intended
            return float(accountant.get_epsilon(delta)), "prv"
    except (ValueError, RuntimeError, OverflowError, FloatingPointError, IndexError):
        accountant = RDPAccountant()
        accountant.history = list(history)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "optimal order is the largest alpha"
            return float(accountant.get_epsilon(delta)), "rdp"


def data_source(record: Record) -> str:
    """The ledger's key for a record: its source label, else its landing file name."""
    return record.source or record.source_file


def records_per_source(records: Iterable[Record]) -> dict[str, int]:
    """How many records each data source contributes."""
    return dict(sorted(Counter(data_source(r) for r in records).items()))


class PrivacyLedger:
    """Charges per (run, data source or data subject), in a SQLite file.

    Args:
        path: The SQLite file (created with its folder on first use; an older ledger file is
            migrated in place by adding the mechanism columns).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.execute(_SCHEMA)
            db.execute(_META)
            have = {row[1] for row in db.execute("PRAGMA table_info(charges)")}
            for name, spec in _ADDED_COLUMNS.items():
                if name not in have:
                    db.execute(f"ALTER TABLE charges ADD COLUMN {name} {spec}")

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        return db

    def subject_keys(self, subjects: Iterable[str]) -> dict[str, int]:
        """Records per data subject, keyed by an HMAC-SHA256 of the subject key (32 hex digits).

        The HMAC key is drawn once and kept in the ledger file, so the same subject gets the
        same key in every run, while reports and metadata that show the keys cannot be matched
        to subject keys by guessing (whether the key given is raw or already a pseudonym).
        """
        secret = bytes.fromhex(self._subject_secret())
        counts: Counter = Counter()
        for subject in subjects:
            digest = hmac.new(secret, str(subject).encode("utf-8"), hashlib.sha256)
            counts[digest.hexdigest()[:32]] += 1
        return dict(sorted(counts.items()))

    def _subject_secret(self) -> str:
        with self._connect() as db:
            db.execute(
                "INSERT OR IGNORE INTO meta VALUES ('subject_hmac_key', ?)",
                (secrets.token_hex(32),),
            )
            return db.execute("SELECT value FROM meta WHERE name = 'subject_hmac_key'").fetchone()[
                0
            ]

    def spent(self) -> dict[str, float]:
        """Sum of ε (reserved or spent) per charged key (basic composition; see `compositions`)."""
        with self._connect() as db:
            rows = db.execute("SELECT source, SUM(epsilon) FROM charges GROUP BY source").fetchall()
        return {source: float(total) for source, total in rows}

    def reserve(
        self,
        run_key: str,
        keys: dict[str, int],
        *,
        epsilon: float,
        delta: float,
        lifetime_epsilon: float,
        privacy_unit: str,
        mechanism: Mechanism | None = None,
        lifetime_delta: float | None = None,
    ) -> list[dict[str, Any]]:
        """Reserve a run's planned charge on every key it trains on, or refuse the whole run.

        Re-reserving a `run_key` whose reservation is still open (a resumed run) replaces that
        reservation; a `run_key` already spent starts a new attempt, charged anew (an identical
        rerun trains a new model with fresh noise: a second release).

        Args:
            run_key: Identifies the run across crashes and resumes.
            keys: Data source (privacy_unit example) or subject HMAC (user, see
                `subject_keys`) -> records the run trains on.
            epsilon: The run's target ε (what is composed when `mechanism` is None).
            delta: The run's δ.
            lifetime_epsilon: The budget on each key's composed ε over all runs.
            privacy_unit: "example" or "user": what the keys are (see `SCOPES`).
            mechanism: The planned (σ, q, steps); None charges `epsilon` by basic composition.
            lifetime_delta: The δ the lifetime budget holds at (default: `delta`).

        Returns:
            The ledger rows after the reservation (see `rows`).

        Raises:
            PrivacyBudgetExceeded: A key's composition would pass `training.lifetime_epsilon`
                or `training.lifetime_delta` (keys as labels or hashes, never content);
                nothing is reserved then.
        """
        return self._charge(
            run_key,
            keys,
            Charge(epsilon, delta, mechanism),
            lifetime_epsilon=lifetime_epsilon,
            lifetime_delta=delta if lifetime_delta is None else lifetime_delta,
            privacy_unit=privacy_unit,
            kind="run",
            status="reserved",
        )

    def charge_control(
        self,
        run_key: str,
        keys: dict[str, int],
        *,
        name: str,
        epsilon: float,
        delta: float,
        mechanism: Mechanism,
        lifetime_epsilon: float,
        lifetime_delta: float,
        privacy_unit: str,
    ) -> list[dict[str, Any]]:
        """Charge a DP control model (trained by the audit on the same people's records) before
        it trains: spent at once (a control that crashes stays charged), composed with the runs.

        Args:
            run_key: Unique per control training (e.g. the audit's run id and the control name).
            keys: As for `reserve`.
            name: The control's name (`audit.controls`), stored as kind `control:<name>`.
            epsilon, delta, mechanism: The control's target (ε, δ) and mechanism.
            lifetime_epsilon, lifetime_delta, privacy_unit: As for `reserve`.

        Raises:
            ValueError: The control is not private (σ = 0): no ε covers what it releases, so it
                cannot be charged; publish only what the officer needs from it instead.
            PrivacyBudgetExceeded: As for `reserve`; the control must not train then.
        """
        if not mechanism.private or not math.isfinite(epsilon):
            raise ValueError(
                f"audit.controls: {name} is not differentially private (no finite ε), so the "
                "ledger cannot charge it; publish only what the officer needs from it"
            )
        return self._charge(
            run_key,
            keys,
            Charge(epsilon, delta, mechanism),
            lifetime_epsilon=lifetime_epsilon,
            lifetime_delta=lifetime_delta,
            privacy_unit=privacy_unit,
            kind=f"control:{name}",
            status="spent",
        )

    def _charge(
        self,
        run_key: str,
        keys: dict[str, int],
        charge: Charge,
        *,
        lifetime_epsilon: float,
        lifetime_delta: float,
        privacy_unit: str,
        kind: str,
        status: str,
    ) -> list[dict[str, Any]]:
        if privacy_unit not in SCOPES:
            raise ValueError(f"training.privacy_unit: {privacy_unit!r} is not one of {SCOPES}")
        scope = SCOPES[privacy_unit]
        if not _at_most(charge.delta, lifetime_delta):
            raise PrivacyBudgetExceeded(
                f"training.target_delta = {charge.delta:g} is above training.lifetime_delta = "
                f"{lifetime_delta:g}: no run may spend more δ than the lifetime budget; lower "
                "training.target_delta"
            )
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                attempt = self._attempt(db, run_key)
                db.execute(
                    "DELETE FROM charges WHERE run_key = ? AND status = 'reserved'", (run_key,)
                )
                history = _charges_by_key(_select(db, "WHERE scope = ?", (scope,)))
                planned = {
                    key: compose(history.get(key, []) + [charge], delta=lifetime_delta)
                    for key in keys
                }
                _refuse_if_over(planned, scope, lifetime_epsilon, lifetime_delta)
                now = time.time()
                mech = charge.mechanism
                db.executemany(
                    "INSERT INTO charges (run_key, attempt, source, epsilon, delta, status, "
                    "privacy_unit, records, updated_at, scope, kind, noise_multiplier, "
                    "sample_rate, steps, accountant) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [
                        (run_key, attempt, key, charge.epsilon, charge.delta, status)
                        + (privacy_unit, n, now, scope, kind)
                        + _mechanism_columns(mech)
                        for key, n in keys.items()
                    ],
                )
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return self.rows()

    @staticmethod
    def _attempt(db: sqlite3.Connection, run_key: str) -> int:
        """The attempt a charge of `run_key` belongs to: its open reservation's (a resumed run),
        else one past its last settled attempt (an identical rerun trains a new model with fresh
        noise and is charged anew), else 1."""
        open_attempt = db.execute(
            "SELECT MAX(attempt) FROM charges WHERE run_key = ? AND status = 'reserved'",
            (run_key,),
        ).fetchone()[0]
        if open_attempt is not None:
            return int(open_attempt)
        last = db.execute(
            "SELECT MAX(attempt) FROM charges WHERE run_key = ?", (run_key,)
        ).fetchone()[0]
        return int(last or 0) + 1

    def settle(
        self, run_key: str, *, epsilon: float, mechanism: Mechanism | None = None
    ) -> list[dict[str, Any]]:
        """Replace a run's reservation by what ran: the accountant's ε and the mechanism
        (status `spent`). The caller retires the run's checkpoint only after this."""
        with self._connect() as db:
            if mechanism is None:
                db.execute(
                    "UPDATE charges SET epsilon = ?, status = 'spent', updated_at = ? "
                    "WHERE run_key = ? AND status = 'reserved'",
                    (epsilon, time.time(), run_key),
                )
            else:
                db.execute(
                    "UPDATE charges SET epsilon = ?, status = 'spent', updated_at = ?, "
                    "noise_multiplier = ?, sample_rate = ?, steps = ?, accountant = ? "
                    "WHERE run_key = ? AND status = 'reserved'",
                    (epsilon, time.time(), *_mechanism_columns(mechanism), run_key),
                )
        return self.rows()

    def cancel(self, run_key: str) -> list[dict[str, Any]]:
        """Drop a run's open reservation: only for a run refused before its first step (no
        noised update was released); a run that took a step keeps it."""
        with self._connect() as db:
            db.execute("DELETE FROM charges WHERE run_key = ? AND status = 'reserved'", (run_key,))
        return self.rows()

    def status(self, run_key: str) -> str | None:
        """The latest attempt's status: 'spent', 'reserved' (open), or None when the ledger
        holds no charge of `run_key`."""
        with self._connect() as db:
            row = db.execute(
                "SELECT status FROM charges WHERE run_key = ? ORDER BY attempt DESC, "
                "status = 'reserved' DESC LIMIT 1",
                (run_key,),
            ).fetchone()
        return None if row is None else str(row[0])

    def rows(self) -> list[dict[str, Any]]:
        """Every charge, oldest first: run_key, attempt, kind (run or control:<name>), scope
        (source or subject), source (the charged key: a source label or a subject HMAC),
        epsilon, delta, status, privacy_unit, records, and the mechanism (noise_multiplier,
        sample_rate, steps, accountant; None for a charge recorded before mechanisms were)."""
        with self._connect() as db:
            return _select(db, "", ())


def _select(db: sqlite3.Connection, where: str, args: tuple) -> list[dict[str, Any]]:
    cursor = db.execute(
        f"SELECT {', '.join(_ROW_COLUMNS)} FROM charges {where} "
        "ORDER BY updated_at, run_key, source",
        args,
    )
    return [dict(zip(_ROW_COLUMNS, row, strict=True)) for row in cursor.fetchall()]


def _mechanism_columns(m: Mechanism | None) -> tuple:
    if m is None:
        return (None, None, None, None)
    return (float(m.noise_multiplier), float(m.sample_rate), int(m.steps), m.accountant)


def _row_charge(row: dict[str, Any]) -> Charge:
    mechanism = None
    if row.get("noise_multiplier") is not None and row.get("steps") is not None:
        mechanism = Mechanism(
            float(row["noise_multiplier"]),
            float(row["sample_rate"]),
            int(row["steps"]),
            row.get("accountant") or "prv",
        )
    return Charge(float(row["epsilon"]), float(row.get("delta", 0.0)), mechanism)


def _charges_by_key(rows: Iterable[dict[str, Any]]) -> dict[str, list[Charge]]:
    out: dict[str, list[Charge]] = {}
    for row in rows:
        out.setdefault(row["source"], []).append(_row_charge(row))
    return out


def _refuse_if_over(
    planned: dict[str, Composition], scope: str, lifetime_epsilon: float, lifetime_delta: float
) -> None:
    over = {
        k: c
        for k, c in planned.items()
        if not c.within(lifetime_epsilon=lifetime_epsilon, lifetime_delta=lifetime_delta)
    }
    if not over:
        return
    worst = sorted(over.items(), key=lambda kv: (-kv[1].epsilon, kv[0]))
    shown = ", ".join(
        f"{_label(scope, k)} -> ε {c.epsilon:.3g} at δ {c.delta:.3g} (sum {c.epsilon_sum:.3g})"
        for k, c in worst[:5]
    )
    more = f" and {len(over) - 5} more" if len(over) > 5 else ""
    raise PrivacyBudgetExceeded(
        f"training.lifetime_epsilon = {lifetime_epsilon:g} at training.lifetime_delta = "
        f"{lifetime_delta:g} would be exceeded for {len(over)} data {scope}(s) (composed over "
        f"every run that trained on them): {shown}{more}; raise the budget only with the "
        "privacy officer's approval, or train on other data"
    )


def _label(scope: str, key: str) -> str:
    return key if scope == "source" else f"subject {key[:12]}"


def compositions(
    rows: Iterable[dict[str, Any]], *, lifetime_delta: float
) -> dict[tuple[str, str], Composition]:
    """The composition of every (scope, key) in the ledger rows, at the lifetime δ.

    Keys whose charges are the same list of (ε, δ, mechanism) are composed once (subjects that
    were in the same runs), so a ledger of many subjects stays fast.
    """
    by_key: dict[tuple[str, str], list[Charge]] = {}
    for row in rows:
        scope = row.get("scope") or SCOPES.get(row.get("privacy_unit", "example"), "source")
        by_key.setdefault((scope, row["source"]), []).append(_row_charge(row))
    cache: dict[tuple, Composition] = {}
    out = {}
    for key, charges in by_key.items():
        signature = tuple(sorted(charges, key=repr))
        if signature not in cache:
            cache[signature] = compose(charges, delta=lifetime_delta)
        out[key] = cache[signature]
    return out


def _lifetime_delta(rows: list[dict[str, Any]], lifetime_delta: float | None) -> float:
    if lifetime_delta is not None:
        return lifetime_delta
    return max((float(r.get("delta", 0.0)) for r in rows), default=0.0)


def budget_within_lifetime(
    rows: list[dict[str, Any]], *, lifetime_epsilon: float, lifetime_delta: float | None = None
) -> GateResult:
    """Every data source (record-level runs) and every data subject (user-level runs) has a
    composed ε within the lifetime budget at the lifetime δ (default: the largest run δ)."""
    delta = _lifetime_delta(rows, lifetime_delta)
    comps = compositions(rows, lifetime_delta=delta)
    over = sorted(
        k
        for k, c in comps.items()
        if not c.within(lifetime_epsilon=lifetime_epsilon, lifetime_delta=delta)
    )
    worst = max((c.epsilon for c in comps.values()), default=0.0)
    worst_sum = max((c.epsilon_sum for c in comps.values()), default=0.0)
    counts = Counter(scope for scope, _ in comps)
    over_counts = Counter(scope for scope, _ in over)
    return GateResult(
        not over,
        f"{over_counts['source']} of {counts['source']} data sources and "
        f"{over_counts['subject']} of {counts['subject']} data subjects past the lifetime "
        f"budget; highest composed epsilon {worst:.3f} at delta {delta:.3g} (sum of runs "
        f"{worst_sum:.3f}) vs {lifetime_epsilon:g}",
        {
            "sources": counts["source"],
            "subjects": counts["subject"],
            "sources_over_budget": over_counts["source"],
            "subjects_over_budget": over_counts["subject"],
            "max_source_epsilon": float(worst),
            "max_epsilon_sum": float(worst_sum),
            "lifetime_epsilon": float(lifetime_epsilon),
            "lifetime_delta": float(delta),
        },
    )


def ledger_summary(
    rows: list[dict[str, Any]],
    *,
    lifetime_epsilon: float,
    lifetime_delta: float,
    controls: Sequence[str] = (),
    top_subjects: int = 10,
) -> dict[str, Any]:
    """What the report shows of the ledger: per data source and (the most charged) data
    subjects the tight ε at the lifetime δ beside the simple sums, and how each control model
    the audit trained was treated.

    Args:
        rows: `PrivacyLedger.rows()`.
        lifetime_epsilon, lifetime_delta: The budget.
        controls: The names of the control models the audit trained (`audit.controls`).
        top_subjects: How many of the most charged subjects to list (all are counted).
    """
    comps = compositions(rows, lifetime_delta=lifetime_delta)
    runs: dict[tuple[str, str], set] = {}
    kinds: dict[tuple[str, str], set] = {}
    for row in rows:
        key = (row.get("scope") or "source", row["source"])
        runs.setdefault(key, set()).add(row["run_key"])
        kinds.setdefault(key, set()).add(row.get("kind") or "run")

    def entry(key: tuple[str, str]) -> dict[str, Any]:
        c = comps[key]
        return {
            "scope": key[0],
            "source": key[1] if key[0] == "source" else key[1][:12],
            "privacy_unit": "example" if key[0] == "source" else "user",
            "runs": len(runs[key]),
            "controls": sum(1 for k in kinds[key] if k.startswith("control:")),
            "epsilon_spent": c.epsilon,
            "delta": c.delta,
            "epsilon_sum": c.epsilon_sum,
            "delta_sum": c.delta_sum,
            "method": c.method,
            "lifetime_epsilon": lifetime_epsilon,
            "lifetime_delta": lifetime_delta,
            "within": c.within(lifetime_epsilon=lifetime_epsilon, lifetime_delta=lifetime_delta),
        }

    sources = [entry(k) for k in sorted(k for k in comps if k[0] == "source")]
    subject_keys = sorted(
        (k for k in comps if k[0] == "subject"), key=lambda k: (-comps[k].epsilon, k[1])
    )
    charged_controls = {
        (row.get("kind") or "").split(":", 1)[1]
        for row in rows
        if (row.get("kind") or "").startswith("control:")
    }
    return {
        "composition": "PRV accountant over each run's stored (σ, q, steps), at the lifetime δ",
        "lifetime_epsilon": lifetime_epsilon,
        "lifetime_delta": lifetime_delta,
        "sources": sources,
        "subjects": len(subject_keys),
        "subjects_over_budget": sum(
            1
            for k in subject_keys
            if not comps[k].within(lifetime_epsilon=lifetime_epsilon, lifetime_delta=lifetime_delta)
        ),
        "top_subjects": [entry(k) for k in subject_keys[:top_subjects]],
        "controls": [
            {
                "name": name,
                "treatment": "charged to the ledger (composed with the runs)"
                if name in charged_controls
                else "not charged: its published statistics are not covered by any ε "
                "(the report publishes only the attack results the officer needs from it)",
            }
            for name in controls
        ],
    }
