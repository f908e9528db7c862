"""DP-friendly parameterization and clipping (issue #18, points 2 and 3) on the tiny Llama:
adaptive clipping, FFA-LoRA, DP-SGD, and the validation of their settings."""

import importlib.util
import math
from pathlib import Path

import pytest
import torch
from opacus.accountants import RDPAccountant
from pydantic import ValidationError
from safetensors.torch import load_file

from pipelines.steps.config import PipelineConfig, TrainingConfig
from pipelines.steps.training import dp_lora
from pipelines.steps.training.dp_lora import (
    TrainingConfigError,
    adaptive_noise,
    attach_lora,
    train_dp_lora,
)
from pipelines.steps.training.modelstore import load_base_model
from tests.test_training import chat_records, small_cfg
from tests.tiny_model import make_tiny_model_dir


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_model_dir(tmp_path_factory.mktemp("tiny") / "model")


def train(tiny_dir: Path, out: Path, **changes):
    return train_dp_lora(
        chat_records(40),
        model_dir=tiny_dir,
        cfg=small_cfg(**changes),
        out_dir=out,
        progress=False,
        epsilon_every=3,
    )


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("clip_bound", "sometimes"),
        ("optimizer", "rmsprop"),
        ("lora_freeze_a", "perhaps"),
        ("clip_target_quantile", 1.5),
        ("clip_learning_rate", 0),
        ("clip_min", -1),
        ("clip_count_noise_std", 0),
    ],
)
def test_a_bad_value_of_a_new_setting_is_refused_naming_it(setting, value):
    with pytest.raises(ValidationError, match=f"training.{setting}"):
        PipelineConfig(training={setting: value})


def test_inconsistent_adaptive_clipping_settings_are_refused_naming_them():
    with pytest.raises(ValidationError, match="training.clip_min .* training.clip_max"):
        TrainingConfig(clip_min=2.0, clip_max=1.0)
    with pytest.raises(ValidationError, match="training.clip_bound"):
        TrainingConfig(clip_bound="adaptive", clipping="ghost")
    with pytest.raises(ValidationError, match="training.max_grad_norm"):
        TrainingConfig(clip_bound="adaptive", max_grad_norm=5.0, clip_max=2.0)
    # a fixed bound ignores the adaptive range
    assert TrainingConfig(max_grad_norm=5.0, clip_max=2.0).clip_bound == "fixed"


def test_when_the_count_noise_is_too_small_for_sigma_then_training_is_refused(tiny_dir, tmp_path):
    # a count noise of 0.1 cannot carry its share of any sigma above 0.2
    with pytest.raises(TrainingConfigError, match="training.clip_count_noise_std"):
        train(tiny_dir, tmp_path / "a", clip_bound="adaptive", clip_count_noise_std=0.1)


def test_the_adaptive_split_composes_to_the_accounted_sigma():
    cfg = TrainingConfig(clip_bound="adaptive", expected_batch_size=64)  # count std 3.2
    gradient, count = adaptive_noise(cfg, 0.9)
    assert count == pytest.approx(3.2)
    assert gradient > 0.9
    assert gradient**-2 + (2 * count) ** -2 == pytest.approx(0.9**-2)


def test_adaptive_clipping_moves_the_bound_and_the_epsilon_covers_the_count(
    tiny_dir, tmp_path, monkeypatch
):
    stds = []
    generate = dp_lora._generate_noise

    def recording(std, reference, **kwargs):
        stds.append((float(std), reference.dim()))
        return generate(std=std, reference=reference, **kwargs)

    monkeypatch.setattr(dp_lora, "_generate_noise", recording)
    bounds = []
    update = dp_lora.AdaptiveClipOptimizer.update_max_grad_norm

    def recording_update(self):
        update(self)
        bounds.append(float(self.max_grad_norm))

    monkeypatch.setattr(dp_lora.AdaptiveClipOptimizer, "update_max_grad_norm", recording_update)
    result = train(
        tiny_dir,
        tmp_path / "adaptive",
        clip_bound="adaptive",
        max_grad_norm=0.01,  # far below the tiny model's gradient norms: the bound must rise
        clip_learning_rate=1.0,
        steps=4,
    )
    # the bound changed at every step, upwards (every gradient was clipped at 0.01)
    assert len(bounds) == 4 and bounds[0] > 0.01
    assert all(b2 > b1 for b1, b2 in zip(bounds, bounds[1:], strict=False))
    assert result.max_grad_norm_final == pytest.approx(bounds[-1])
    assert result.clip_bound == "adaptive"
    # the noise drawn: gradient noise at sigma_g * C_t for every LoRA tensor, then the count's
    sigma, sigma_g, sigma_b = (
        result.noise_multiplier,
        result.gradient_noise_multiplier,
        result.count_noise_std,
    )
    assert sigma_g**-2 + (2 * sigma_b) ** -2 == pytest.approx(sigma**-2)
    count_stds = [std for std, dim in stds if dim == 0]
    grad_stds = sorted({round(std, 9) for std, dim in stds if dim > 0})
    assert count_stds == [pytest.approx(sigma_b)] * 4
    expected = sorted(round(sigma_g * c, 9) for c in [0.01, *bounds[:-1]])
    assert grad_stds == pytest.approx(expected)
    # the epsilon reported is the accountant's for the whole mechanism sigma: the same as a
    # fixed-bound run at this sigma, though the gradient alone got less privacy than that
    accountant = RDPAccountant()
    accountant.history = [(sigma, result.sample_rate, 4)]
    assert result.epsilon == pytest.approx(accountant.get_epsilon(delta=1e-3))
    assert result.epsilon <= 8.0 + 1e-6
    fixed = train(tiny_dir, tmp_path / "fixed", max_grad_norm=0.01, steps=4)
    assert fixed.noise_multiplier == pytest.approx(sigma)
    assert fixed.gradient_noise_multiplier == pytest.approx(sigma) and sigma_g > sigma
    assert fixed.max_grad_norm_final == pytest.approx(0.01)


def test_adaptive_counts_span_the_physical_batches_of_a_logical_batch(tiny_dir, tmp_path):
    # Same sampling and noise: the bound moves the same whether a logical batch is cut into
    # physical batches or not (Opacus's AdaClip reset its counts at every physical batch).
    whole = train(tiny_dir, tmp_path / "whole", clip_bound="adaptive", max_grad_norm=0.05)
    chunked = train(
        tiny_dir,
        tmp_path / "chunked",
        clip_bound="adaptive",
        max_grad_norm=0.05,
        max_physical_batch_size=3,
    )
    assert whole.max_grad_norm_final != pytest.approx(0.05)
    assert chunked.max_grad_norm_final == pytest.approx(whole.max_grad_norm_final, rel=1e-5)


def test_ffa_lora_trains_only_b_and_leaves_a_at_its_initialization(tiny_dir, tmp_path):
    result = train(tiny_dir, tmp_path / "ffa", lora_freeze_a=True)
    cfg = small_cfg(lora_freeze_a=True)
    model, _ = load_base_model(tiny_dir)
    initial = {
        name: p.detach().clone()
        for name, p in attach_lora(model, cfg, device="cpu").named_parameters()
        if "lora_" in name
    }
    trainable = [
        n
        for n, p in attach_lora(load_base_model(tiny_dir)[0], cfg, device="cpu").named_parameters()
        if p.requires_grad
    ]
    assert trainable and all("lora_B" in n for n in trainable)
    saved = load_file(str(result.adapter_dir / "adapter_model.safetensors"))
    a_names = [n for n in saved if "lora_A" in n]
    b_names = [n for n in saved if "lora_B" in n]
    assert a_names and b_names
    for name in a_names:
        key = next(
            k
            for k in initial
            if k.endswith(
                name.removeprefix("base_model.model.").replace(".weight", ".default.weight")
            )
        )
        torch.testing.assert_close(saved[name], initial[key], rtol=0, atol=0)
    assert all(saved[n].abs().max() > 1e-4 for n in b_names)  # B (zero at start) trained
    assert result.lora_tensors_total == len(b_names)
    assert result.lora_tensors_with_clipped_gradient == len(b_names)
    assert result.lora_freeze_a


def test_dp_sgd_trains_with_plain_sgd(tiny_dir, tmp_path):
    sgd = train(tiny_dir, tmp_path / "sgd", optimizer="sgd", learning_rate=0.5)
    adam = train(tiny_dir, tmp_path / "adam")
    assert (sgd.optimizer, adam.optimizer) == ("sgd", "adam")
    assert sgd.epsilon == pytest.approx(adam.epsilon)
    a = load_file(str(sgd.adapter_dir / "adapter_model.safetensors"))
    b = load_file(str(adam.adapter_dir / "adapter_model.safetensors"))
    assert any(not torch.allclose(a[n], b[n]) for n in a)
    assert all(math.isfinite(float(t.abs().max())) for t in a.values())


def test_the_gpu_benchmark_runs_its_table_on_cpu_with_a_tiny_model(tiny_dir, capsys):
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu" / "dp_utility_gpu.py"
    spec = importlib.util.spec_from_file_location("dp_utility_gpu", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    rows = module.main(
        [
            *("--model-dir", str(tiny_dir), "--device", "cpu", "--records", "100"),
            *("--batch", "16", "--steps", "2", "--epsilons", "8,4", "--seq-len", "24"),
            *("--max-physical", "8", "--rank", "2", "--accountant", "rdp"),
        ]
    )
    out = capsys.readouterr().out
    assert "measured share | predicted" in out
    assert [row.epsilon for row in rows] == [8.0, 4.0]
    for row in rows:
        assert row.cfg.expected_batch_size == 16 and row.cfg.max_physical_batch_size == 8
        assert row.dp.steps == 2 and row.dp.epsilon <= row.epsilon + 1e-6
        assert row.control.epsilon == math.inf
        assert math.isfinite(row.share) and 0 < row.predicted.expected_share < 1
        assert f"sweep N 100 | {row.n_records:,} | {row.epsilon:g} | 16 | 2 | 2 |" in out
    # one control per N, shared by the epsilons; the learning rate scaled by sqrt(16 / 8)
    assert rows[0].control is rows[1].control
    assert rows[0].cfg.learning_rate == pytest.approx(2e-3 * math.sqrt(2))


def test_the_utility_benchmark_parses_its_settings_and_refuses_an_unknown_one():
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "dp_utility.py"
    spec = importlib.util.spec_from_file_location("dp_utility", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    settings = module._settings(
        ["max_grad_norm=0.1", "learning_rate=1e-2", "target_modules=[q_proj, k_proj]"]
    )
    assert settings == {
        "max_grad_norm": 0.1,
        "learning_rate": 0.01,
        "target_modules": ["q_proj", "k_proj"],
    }
    TrainingConfig.model_validate(settings)  # typed as the profile's settings are
    with pytest.raises(SystemExit, match="max_grad_nrm"):
        module._settings(["max_grad_nrm=0.1"])
