"""The planner's prediction for each row of a saved `dp_utility.py sweep` table (issue #18, 5b),
recomputed with `plan.py` as it is now, beside the prediction printed when the sweep ran, and
its leave-one-out prediction.

The sweep prints its prediction from `plan.py` as imported at its start; when the planner is
refitted later (`plan.CALIBRATION`), this script gives each measured row the refitted planner's
prediction without training again. For every row it rebuilds the row's setting (N records kept,
epsilon, batch, steps, LoRA rank, and the clipping norm the row prints under "C end", which is
the C of a fixed-clipping run; the other settings from the profile, as the sweep takes them),
calls `plan.predict_setting` (sigma from the configured accountant, as training derives it:
about 5 s per row with PRV) and checks that sigma against the one the run used.

Leave-one-out: a row that is one of `plan.CALIBRATION`'s runs (the run's sigma within 0.0015, batch,
steps, LoRA size and clipping regime) is also predicted by the model refitted without that run
(`plan.fit_share_model`); any other row is out of sample already, and its "LOO" is the
prediction now.

A row's error is predicted - measured share, in points and relative to the measured share (at
run time: the error the sweep printed, unrounded); within +-25% is the target of point 5b.

Usage (from the repository root; the sweep's printed output saved to a file):
    .venv/bin/python benchmarks/dp_utility.py sweep ... | tee sweep.log
    .venv/bin/python benchmarks/dp_sweep_predict.py sweep.log [--profile default] [--markdown]
    .venv/bin/python benchmarks/dp_sweep_predict.py --calibration   # the model's own runs
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
    clip: float
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
                clip=_number(cells[9]),
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
            "max_grad_norm": row.clip,
        }
    )
    return planner.predict_setting(
        n_records=row.n_records, cfg=cfg, lora_params_per_rank=row.lora_params // row.rank
    )


def loo_share(row: SweepRow, now: planner.Candidate) -> tuple[float, bool]:
    """(the share predicted without the row's calibration run, whether the row is one): the
    model refitted on `plan.CALIBRATION` less the matching run (matched by the sigma the run used),
    at the planner's sigma now, as the prediction now."""
    for i, run in enumerate(planner.CALIBRATION):
        if (
            abs(run.noise_multiplier - row.sigma) <= 0.0015
            and (run.batch, run.steps, run.lora_params) == (row.batch, row.steps, row.lora_params)
            and planner.normalized_clipping(run.clip) == planner.normalized_clipping(row.clip)
        ):
            model = planner.fit_share_model(planner.CALIBRATION[:i] + planner.CALIBRATION[i + 1 :])
            share = model.share(
                noise_multiplier=now.noise_multiplier,
                batch=row.batch,
                steps=row.steps,
                lora_params=row.lora_params,
                max_grad_norm=row.clip,
            )
            return share, True
    return now.expected_share, False


def print_calibration() -> None:
    """The model's runs as a Markdown table: each calibration run predicted in sample and by
    the model fitted without it, each validation run (never fitted) predicted; then the range
    of the errors per group."""
    model = planner.MODEL
    loo = {label: predicted for label, _, predicted in planner.leave_one_out()}
    print(
        "| run | fit | sigma | B | T | d | C | lr | control's gain | noise/C run | sigma/B | "
        "measured | predicted | error | left out | error |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    groups: dict[str, list[tuple[float, float]]] = {}
    for fitted, runs in (("yes", planner.CALIBRATION), ("held out", planner.VALIDATION)):
        for run in runs:
            predicted = model.predict(run)
            left_out = loo.get(run.label, predicted) if fitted == "yes" else predicted
            ratio = planner.run_noise_to_signal(
                noise_multiplier=run.noise_multiplier,
                batch=run.batch,
                steps=run.steps,
                lora_params=run.lora_params,
            )
            group = (
                "held out"
                if fitted != "yes"
                else "sweep"
                if run.label.startswith("sweep ")
                else f"clip {run.clip:g}"
            )
            groups.setdefault(group, []).append((run.share, predicted, left_out))
            print(
                f"| {run.label} | {fitted} | {run.noise_multiplier:.3f} | {run.batch} | "
                f"{run.steps} | {run.lora_params:,} | {run.clip:g} | {run.learning_rate:g} | "
                f"{run.control_gain:.3f} | {ratio:.2f} | "
                f"{run.noise_multiplier / run.batch:.4f} | {run.share:.1%} | {predicted:.1%} | "
                f"{_error(predicted - run.share, run.share)} | {left_out:.1%} | "
                f"{_error(left_out - run.share, run.share)} |"
            )
    print(
        f"\nModel: rho {model.rho:.3f} at clip 1, rho_normalized {model.rho_normalized:.4f} and "
        f"kappa {model.kappa:.3f} at clip <= {planner.NORMALIZED_CLIP:g}; margin "
        f"{planner.MODEL_MARGIN * 100:.1f} points"
    )
    for group, values in groups.items():
        for name, index in (("in sample", 1), ("left out", 2)):
            if group == "held out" and index == 2:
                continue
            points = [v[index] - v[0] for v in values]
            rel = [(v[index] - v[0]) / v[0] for v in values]
            within = sum(abs(r) <= TOLERANCE for r in rel)
            print(
                f"{group} ({len(values)} runs), {name}: {min(points) * 100:+.1f} to "
                f"{max(points) * 100:+.1f} points, {min(rel):+.0%} to {max(rel):+.0%}; within "
                f"+-{TOLERANCE:.0%}: {within} of {len(values)}"
            )


def _error(diff: float, measured: float) -> str:
    return f"{diff * 100:+.1f} pt ({diff / measured:+.0%})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "table", type=Path, nargs="?", help="the saved output of `dp_utility.py sweep`"
    )
    parser.add_argument("--profile", default="default", help="the sweep's profile")
    parser.add_argument("--markdown", action="store_true", help="a Markdown table")
    parser.add_argument(
        "--calibration",
        action="store_true",
        help="instead: every run of plan.CALIBRATION and VALIDATION, predicted and left out",
    )
    args = parser.parse_args(argv)
    if args.calibration:
        print_calibration()
        return 0
    if args.table is None:
        parser.error("give the saved sweep output, or --calibration")
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
        "LOO",
        "error LOO",
    ]
    print(sep.join(header) if not args.markdown else "| " + " | ".join(header) + " |")
    if args.markdown:
        print("|" + "---|" * len(header))
    within_then = within_now = within_loo = fitted = 0
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
        loo, in_fit = loo_share(row, now)
        fitted += in_fit
        within_loo += abs(loo - measured) <= TOLERANCE * abs(measured)
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
            f"{loo:.1%}" + ("" if in_fit else " (held out)"),
            _error(loo - measured, measured),
        ]
        print(sep.join(cells) if not args.markdown else "| " + " | ".join(cells) + " |")
    model = planner.MODEL
    print(
        f"within +-{TOLERANCE:.0%} of the measured share: {within_then} of {len(rows)} at run "
        f"time, {within_now} of {len(rows)} with plan.py now, {within_loo} of {len(rows)} left "
        f"out ({fitted} of the rows are calibration runs; the others are held out). Model: rho "
        f"{model.rho:.3f} at clip 1, rho_normalized {model.rho_normalized:.4f} and kappa "
        f"{model.kappa:.3f} at clip <= {planner.NORMALIZED_CLIP:g}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
