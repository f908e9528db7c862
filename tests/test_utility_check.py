"""Issue #18.4 and #18.6: the utility check on the adapter, its report section, and the
stronger #820 guard (the update follows the clipped gradient), on the tiny in-process Llama."""

import json
import math
from pathlib import Path

import dagster as dg
import pytest
import torch
from opacus.optimizers.optimizer import DPOptimizer, _generate_noise

from checks.utility import adapter_utility, update_follows_clipped_gradient
from pipelines.steps.config import TrainingConfig, UtilityConfig
from pipelines.steps.release.report import build_report, render_html, utility_facts
from pipelines.steps.training import dp_lora
from pipelines.steps.training.update_guard import GUARD_STEPS, UpdateGuard
from pipelines.steps.training.utility import (
    BUNDLED_PUBLIC_EVAL,
    DEFAULT_MIN_GAIN,
    PublicEvalError,
    measure_utility,
    min_gain,
    read_public_eval,
)
from tests.test_report import _facts
from tests.test_training import chat_records
from tests.tiny_model import make_tiny_model_dir

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_model_dir(tmp_path_factory.mktemp("tiny") / "model")


def _cfg(**overrides) -> TrainingConfig:
    settings = dict(
        target_epsilon=8.0,
        target_delta=1e-3,
        accountant="rdp",
        expected_batch_size=16,
        steps=GUARD_STEPS,
        learning_rate=2e-2,
        max_seq_len=32,
        lora_r=4,
        lora_alpha=8,
        noise_seed=0,
    )
    return TrainingConfig(**{**settings, **overrides})


def _train(tiny_dir: Path, out: Path, cfg: TrainingConfig | None = None):
    return dp_lora.train_dp_lora(
        chat_records(64),
        model_dir=tiny_dir,
        cfg=cfg or _cfg(),
        out_dir=out,
        progress=False,
        epsilon_every=GUARD_STEPS,  # one accountant query per run
    )


# --- the #820 guard ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def healthy(tiny_dir, tmp_path_factory):
    return _train(tiny_dir, tmp_path_factory.mktemp("healthy") / "adapter")


def test_when_the_run_is_healthy_then_the_update_follows_the_clipped_gradient(healthy):
    assert healthy.update_follows_gradient is True
    published = healthy.to_json()
    # only the verdict is published, never the statistic behind it
    assert published["update_follows_gradient"] is True
    assert not any("cosine" in key or key.startswith("guard_") for key in published)


def test_when_per_sample_gradients_are_zero_then_the_guard_fires(tiny_dir, tmp_path, monkeypatch):
    # Opacus #820: hooks missing on the LoRA tensors -> zero per-sample gradients, so the clipped
    # sum is zero and every update is pure noise (the tensors still move)
    def zeroed(params):
        for p in params:
            if getattr(p, "grad_sample", None) is not None:
                p.grad_sample = torch.zeros_like(p.grad_sample)

    monkeypatch.setattr(dp_lora, "_per_sample_gradients_fp32", zeroed)
    result = _train(tiny_dir, tmp_path / "adapter")
    assert result.update_follows_gradient is False
    check = update_follows_clipped_gradient(result.to_json())
    assert not check.passed and check.severity == dg.AssetCheckSeverity.ERROR


def test_when_the_update_is_noise_beside_a_real_clipped_sum_then_only_the_new_guard_fires(
    tiny_dir, tmp_path, monkeypatch
):
    # The clipped sum is computed (the old "nonzero clipped gradient" guard passes), but the
    # noise is applied without it: the update is pure noise, which only the cosine test sees.
    def noise_only(self):
        for p in self.params:
            noise = _generate_noise(
                std=self.noise_multiplier * self.max_grad_norm,
                reference=p.summed_grad,
                generator=self.generator,
                secure_mode=self.secure_mode,
            )
            p.grad = noise.view_as(p)

    monkeypatch.setattr(DPOptimizer, "add_noise", noise_only)
    result = _train(tiny_dir, tmp_path / "adapter")
    assert result.lora_tensors_with_clipped_gradient == result.lora_tensors_total
    assert result.update_follows_gradient is False


def _guard_run(update_of, *, noise_std: float, d: int = 4000, seed: int = 0) -> bool | None:
    """Drive an UpdateGuard by hand: each step's clipped sum S, and the update update_of(S)."""
    rng = torch.Generator().manual_seed(seed)
    param = torch.nn.Parameter(torch.zeros(d))

    class Optimizer:
        noise_multiplier, max_grad_norm = noise_std, 1.0

    guard = UpdateGuard([param], sgd=True)
    for _ in range(GUARD_STEPS):
        guard.before_update(Optimizer(), private=True)
        signal = torch.randn(d, generator=rng)
        signal = 2.0 * signal / signal.norm()  # |S| = 2C
        param.summed_grad = signal
        with torch.no_grad():
            param -= 0.01 * update_of(signal, rng)
        guard.after_update(private=True, units=8)
    return guard.verdict


def test_guard_statistics_separate_noise_from_signal_and_admit_when_they_cannot():
    def noised(s, rng):
        return s + 0.05 * torch.randn(s.shape, generator=rng)  # sigma 0.05: e ~ 28 per step

    def pure_noise(s, rng):
        return 0.05 * torch.randn(s.shape, generator=rng)

    assert _guard_run(noised, noise_std=0.05) is True
    assert all(_guard_run(pure_noise, noise_std=0.05, seed=seed) is False for seed in range(5))
    # sigma 5: a healthy step's expected z is ~0.4, too little to tell: inconclusive, passes
    assert _guard_run(pure_noise, noise_std=5.0) is True


# --- the utility check ---------------------------------------------------------------------


def test_the_bundled_public_set_reads_and_a_bad_line_is_named(tmp_path):
    assert len(read_public_eval(BUNDLED_PUBLIC_EVAL)) == 64
    bad = tmp_path / "public.jsonl"
    bad.write_text('{"id": "a", "messages": [{"role": "user", "content": "hi"}]}\nnot json\n')
    with pytest.raises(PublicEvalError, match=r"public_eval_file: .*public.jsonl line 2"):
        read_public_eval(bad)
    with pytest.raises(PublicEvalError, match="does not exist"):
        read_public_eval(tmp_path / "missing.jsonl")


def test_the_threshold_is_the_setting_else_half_the_predicted_gain_else_the_default():
    assert min_gain(UtilityConfig(min_gain=0.3), base_loss=4.0, share=0.2) == (
        0.3,
        "training.utility.min_gain",
    )
    threshold, source = min_gain(UtilityConfig(), base_loss=4.0, share=0.2)
    assert threshold == pytest.approx(0.5 * 0.2 * 0.6 * 4.0) and "plan" in source
    assert min_gain(UtilityConfig(), base_loss=4.0, share=None) == (DEFAULT_MIN_GAIN, "default")


@pytest.fixture(scope="module")
def utility(tiny_dir, tmp_path_factory, healthy):
    public = tmp_path_factory.mktemp("public") / "public.jsonl"
    public.write_text(
        "\n".join(
            json.dumps({"id": r.id, "messages": [vars(m) for m in r.messages]})
            for r in chat_records(16, seed=99)  # the same task, other prompts
        )
        + "\n"
    )
    cfg = _cfg(utility=UtilityConfig(public_eval_file=str(public), eval_records=8))
    return measure_utility(
        model_dir=tiny_dir,
        adapter_dir=healthy.adapter_dir,
        adapter_sha256=healthy.adapter_sha256,
        training=cfg,
        noise_multiplier=healthy.noise_multiplier,
        steps=healthy.steps,
    )


def test_utility_is_measured_on_the_public_set_with_the_plans_prediction(utility):
    assert utility["eval_records"] == 8 and utility["eval_set"] == "declared public"
    assert math.isfinite(utility["base_loss"]) and math.isfinite(utility["adapter_loss"])
    assert utility["gain"] == pytest.approx(utility["base_loss"] - utility["adapter_loss"])
    assert 0 < utility["predicted_share"] < 1
    assert utility["min_gain_source"] == "half the plan's predicted gain"


@pytest.mark.parametrize(
    "action, severity",
    [("block", dg.AssetCheckSeverity.ERROR), ("warn", dg.AssetCheckSeverity.WARN)],
)
def test_below_the_threshold_the_check_blocks_or_warns_per_setting(utility, action, severity):
    # a threshold above the measured gain: the adapter did not learn enough
    low = {**utility, "min_gain": utility["gain"] + 1.0, "action": action}
    result = adapter_utility({"utility": low})
    assert not result.passed and result.severity == severity
    assert result.metadata["min_gain"].value == pytest.approx(low["min_gain"])
    # at or above the threshold it passes, whatever the action
    high = {**utility, "min_gain": utility["gain"] - 1.0, "action": action}
    assert adapter_utility({"utility": high}).passed


def test_an_unreadable_public_set_fails_the_check_with_the_error():
    result = adapter_utility(
        {"utility": {"error": "training.utility.public_eval_file: x", "action": "block"}}
    )
    assert not result.passed and "public_eval_file" in result.description


# --- the report section --------------------------------------------------------------------


def test_the_report_shows_base_dp_prediction_and_control_losses(utility):
    controls = [{"name": "non_private", "public_loss": utility["base_loss"] - 2.0}]
    section = utility_facts(utility, controls)
    assert section["control_loss"] == pytest.approx(utility["base_loss"] - 2.0)
    assert section["measured_share"] == pytest.approx(utility["gain"] / 2.0)
    assert section["predicted_adapter_loss"] == pytest.approx(
        utility["base_loss"] - utility["predicted_share"] * 2.0
    )
    html = render_html(build_report({**_facts(), "utility": section}))
    assert "Utility beside privacy" in html
    for value in (
        utility["base_loss"],
        utility["adapter_loss"],
        section["predicted_adapter_loss"],
        section["control_loss"],
    ):
        assert f"{value:.3f}" in html
    # without a control: the prediction from the calibration's non-private gain, no control loss
    alone = utility_facts(utility, [])
    assert alone["control_loss"] is None and alone["predicted_adapter_loss"] is not None
    assert "not trained (audit.controls)" in render_html(
        build_report({**_facts(), "utility": alone})
    )
