"""benchmarks/dp_sweep_predict.py: the planner's prediction recomputed for a saved sweep table."""

import importlib.util
from pathlib import Path

import pytest

from pipelines.steps.config import load_config
from pipelines.steps.training import plan as planner

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "dp_sweep_predict.py"
PER_RANK = 57_600  # SmolLM2-135M's q_proj/v_proj: LoRA parameters per unit of rank


def _module():
    spec = importlib.util.spec_from_file_location("dp_sweep_predict", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _line(n: int, sigma: float, predicted: str, error: str) -> str:
    # the columns `dp_utility.py sweep` prints (its HEADER); base 4, DP 3.5, control 2: 25%
    return (
        f"sweep N 2,000 | {n:,} | 8 | 8 | 50 | 8 | {8 * PER_RANK:,} | {sigma:.3f} | 3.000 | 0.1 | "
        f"4.000 | 3.500 | 2.000 | 25.0% | {predicted} | {error} | 300"
    )


def test_rows_are_read_from_a_sweep_output_and_other_lines_skipped():
    module = _module()
    lines = [
        "device: cpu",
        "setting | N | eps | ...",
        "  warnings.warn(",
        _line(1795, 0.4, "30.0%", "+5.0 pt (+20%)"),
    ]
    (row,) = module.parse_rows(lines)
    assert (row.n_records, row.epsilon, row.batch, row.steps, row.rank) == (1795, 8.0, 8, 50, 8)
    assert row.lora_params == 460_800 and row.sigma == 0.4
    assert row.predicted_then == pytest.approx(0.30)
    assert row.share == pytest.approx(0.25)
    assert row.error_then == pytest.approx(0.05)


def test_a_row_with_missing_columns_is_refused_naming_its_line():
    module = _module()
    with pytest.raises(ValueError, match="line 2: 3 columns"):
        module.parse_rows(["device: cpu", "sweep N 2,000 | 1,795 | 8"])


def test_the_prediction_now_is_the_planners_for_the_rows_setting(tmp_path, capsys):
    module = _module()
    cfg = load_config("default").training.model_copy(
        update={"target_epsilon": 8.0, "expected_batch_size": 8, "steps": 50, "lora_r": 8}
    )
    expected = planner.predict_setting(n_records=1795, cfg=cfg, lora_params_per_rank=PER_RANK)
    table = tmp_path / "sweep.log"
    table.write_text(
        _line(1795, expected.noise_multiplier, "99.0%", "+74.0 pt (+296%)") + "\n", encoding="utf-8"
    )
    assert module.main([str(table)]) == 0
    out, err = capsys.readouterr()
    assert "warning" not in err  # the sigma the row gives is the accountant's
    assert f"| 99.0% | +74.0 pt (+296%) | {expected.expected_share:.1%} |" in out
    within = 1 if abs(expected.expected_share - 0.25) <= 0.25 * 0.25 else 0
    assert f"0 of 1 at run time, {within} of 1 with plan.py now" in out


def test_a_row_that_is_a_calibration_run_is_also_predicted_by_the_model_fitted_without_it():
    from types import SimpleNamespace

    module = _module()
    # the sweep's N 1,701 epsilon 8 row (docs/benchmarks.md "The sweep on SmolLM2")
    line = (
        "sweep N 2,000 | 1,701 | 8 | 8 | 30 | 8 | 460,800 | 0.385 | 5.950 | 0.1 | 3.961 | 3.321 | "
        "1.568 | 26.7% | 14.0% | -12.8 pt (-48%) | 240"
    )
    (row,) = module.parse_rows([line])
    assert row.clip == 0.1
    now = SimpleNamespace(noise_multiplier=0.385, expected_share=0.5)
    (i,) = [i for i, r in enumerate(planner.CALIBRATION) if r.label == "sweep N 1,701 eps 8"]
    without = planner.fit_share_model(planner.CALIBRATION[:i] + planner.CALIBRATION[i + 1 :])
    share, in_fit = module.loo_share(row, now)
    assert in_fit and without != planner.MODEL
    assert share == without.share(
        noise_multiplier=0.385, batch=8, steps=30, lora_params=460_800, max_grad_norm=0.1
    )
    # another sigma is no calibration run: its prediction is already out of sample
    other = module.parse_rows([line.replace("| 0.385 |", "| 0.395 |")])[0]
    assert module.loo_share(other, now) == (0.5, False)


def test_the_calibration_table_lists_every_run_with_its_left_out_prediction(capsys):
    module = _module()
    assert module.main(["--calibration"]) == 0
    out = capsys.readouterr().out
    runs = (*planner.CALIBRATION, *planner.VALIDATION)
    assert sum(line.startswith("| ") and "|---" not in line for line in out.splitlines()) == (
        1 + len(runs)
    )
    assert "sweep (7 runs), left out:" in out and "within +-25%: 7 of 7" in out
    with pytest.raises(SystemExit):
        module.main([])  # neither a table nor --calibration
