"""The planner's prediction for each row of a saved `dp_utility.py sweep` table (issue #18, 5b),
recomputed with `plan.py` as it is now, beside the prediction printed when the sweep ran.

The sweep prints its prediction from `plan.py` as imported at its start; when the planner is
refitted later (`plan.CALIBRATION`), this script gives each measured row the refitted planner's
prediction without training again. For every row it rebuilds the row's setting (N records kept,
epsilon, batch, steps, LoRA rank; the other settings from the profile, as the sweep takes them),
calls `plan.predict_setting` (sigma from the configured accountant, as training derives it:
about 5 s per row with PRV) and checks that sigma against the one the run used.

A row's error is predicted - measured share, in points and relative to the measured share (at
run time: the error the sweep printed, unrounded); within +-25% is the target of point 5b.

Usage (from the repository root; the sweep's printed output saved to a file):
    .venv/bin/python benchmarks/dp_utility.py sweep ... | tee sweep.log
    .venv/bin/python benchmarks/dp_sweep_predict.py sweep.log [--profile default] [--markdown]
"""

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipelines.steps.config import load_config  # noqa: E402
from pipelines.steps.training import plan as planner  # noqa: E402

TOLERANCE = 0.25
"""Point 5b's target: the prediction within +-25% of the measured share."""


@dataclass(frozen=True)
class SweepRow:
    """One printed row of `dp_utility.py sweep` (the columns of its HEADER)."""

    n_records: int
    epsilon: float
    batch: int
    steps: int
    rank: int
    lora_params: int
    sigma: float
    base: float
    dp: float
    control: float
    predicted_then: float
    error_then: float
    seconds: float

    @property
    def share(self) -> float:
        return (self.base - self.dp) / (self.base - self.control)


def _number(text: str) -> float:
    return float(text.strip().replace(",", "").rstrip("%"))


def parse_rows(lines: list[str]) -> list[SweepRow]:
    """The table rows of a sweep's output (other lines, warnings and progress, are skipped).

    Raises:
        ValueError: a row with the wrong number of columns, naming its line.
    """
    rows = []
    for number, line in enumerate(lines, 1):
        if not line.startswith("sweep N "):
            continue
        cells = [c.strip() for c in line.split("|")]
        if len(cells) != 17:
            raise ValueError(f"line {number}: {len(cells)} columns, the sweep prints 17")
        rows.append(
            SweepRow(
                n_records=int(_number(cells[1])),
                epsilon=_number(cells[2]),
                batch=int(_number(cells[3])),
                steps=int(_number(cells[4])),
                rank=int(_number(cells[5])),
                lora_params=int(_number(cells[6])),
                sigma=_number(cells[7]),
                base=_number(cells[10]),
                dp=_number(cells[11]),
                control=_number(cells[12]),
                predicted_then=_number(cells[14]) / 100,
                error_then=_number(cells[15].split("pt")[0]) / 100,
                seconds=_number(cells[16]),
            )
        )
    return rows


def predict_now(row: SweepRow, profile: str) -> planner.Candidate:
    """`plan.predict_setting` for the row's setting, the profile's other training settings."""
    cfg = load_config(profile).training.model_copy(
        update={
            "target_epsilon": row.epsilon,
            "expected_batch_size": row.batch,
            "steps": row.steps,
            "lora_r": row.rank,
        }
    )
    return planner.predict_setting(
        n_records=row.n_records, cfg=cfg, lora_params_per_rank=row.lora_params // row.rank
    )


def _error(diff: float, measured: float) -> str:
    return f"{diff * 100:+.1f} pt ({diff / measured:+.0%})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("table", type=Path, help="the saved output of `dp_utility.py sweep`")
    parser.add_argument("--profile", default="default", help="the sweep's profile")
    parser.add_argument("--markdown", action="store_true", help="a Markdown table")
    args = parser.parse_args(argv)
    rows = parse_rows(args.table.read_text(encoding="utf-8").splitlines())
    if not rows:
        raise SystemExit(f"{args.table}: no row of `dp_utility.py sweep` in it")
    sep = "|" if args.markdown else " | "
    header = [
        "N",
        "eps",
        "B",
        "T",
        "r",
        "sigma",
        "noise/C run",
        "base",
        "DP",
        "non-private",
        "measured",
        "predicted then",
        "error then",
        "predicted now",
        "error now",
    ]
    print(sep.join(header) if not args.markdown else "| " + " | ".join(header) + " |")
    if args.markdown:
        print("|" + "---|" * len(header))
    within_then = within_now = 0
    for row in rows:
        now = predict_now(row, args.profile)
        if abs(now.noise_multiplier - row.sigma) > 0.0015:
            print(
                f"warning: N {row.n_records} eps {row.epsilon:g}: sigma {now.noise_multiplier:.3f} "
                f"now, {row.sigma:.3f} in the run (accountant or setting differs)",
                file=sys.stderr,
            )
        measured = row.share
        within_then += abs(row.error_then) <= TOLERANCE * abs(measured)
        within_now += abs(now.expected_share - measured) <= TOLERANCE * abs(measured)
        cells = [
            f"{row.n_records:,}",
            f"{row.epsilon:g}",
            str(row.batch),
            str(row.steps),
            str(row.rank),
            f"{row.sigma:.3f}",
            f"{now.run_noise_to_signal:.2f}",
            f"{row.base:.3f}",
            f"{row.dp:.3f}",
            f"{row.control:.3f}",
            f"{measured:.1%}",
            f"{row.predicted_then:.1%}",
            _error(row.error_then, measured),
            f"{now.expected_share:.1%}",
            _error(now.expected_share - measured, measured),
        ]
        print(sep.join(cells) if not args.markdown else "| " + " | ".join(cells) + " |")
    print(
        f"within +-{TOLERANCE:.0%} of the measured share: {within_then} of {len(rows)} at run "
        f"time, {within_now} of {len(rows)} with plan.py now (rho {planner.RHO:.3f})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
