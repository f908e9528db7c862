"""Profiles load, and a bad profile fails closed with a message naming what to fix."""

import pytest

from pipelines.steps.config import ConfigError, load_config


@pytest.mark.parametrize("profile", ["quick", "default"])
def test_when_a_bundled_profile_is_loaded_then_it_validates(profile):
    cfg = load_config(profile)
    assert cfg.profile == profile
    assert cfg.training.target_delta < 1e-3


def test_when_the_yaml_does_not_parse_then_the_file_is_named(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("training: [unclosed\n")
    with pytest.raises(ConfigError, match="bad.yaml: not valid YAML"):
        load_config(str(path))


@pytest.mark.parametrize(
    ("text", "setting"),
    [
        ("training:\n  target_epsilon: -1\n", "training.target_epsilon"),
        ("training:\n  accountant: gdp\n", "training.accountant"),
        ("training:\n  epsilon: 3\n", "training.epsilon"),  # unknown setting, a typo
        ("model:\n  kind: hf\n", "model"),  # hf without a path
        ("pii:\n  score_threshold: 2\n", "pii.score_threshold"),
    ],
)
def test_when_a_setting_is_wrong_then_it_is_named(tmp_path, text, setting):
    path = tmp_path / "p.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config(str(path))
    assert setting in str(err.value) and "p.yaml" in str(err.value)


def test_when_a_profile_is_unknown_then_the_known_ones_are_listed():
    with pytest.raises(ConfigError, match="known profiles: default, quick"):
        load_config("nope")


def test_when_a_profile_sets_curation_and_pii_operators_then_the_resources_carry_them(tmp_path):
    from pipelines.definitions import build_resources
    from pipelines.steps.config import PipelineConfig

    cfg = PipelineConfig.model_validate(
        {
            "data_root": str(tmp_path),
            "curation": {"max_quarantine_rate": 0.25, "near_duplicate_threshold": 0.9},
            "pii": {"operators": {"PERSON": "placeholder"}, "vault": True},
        }
    )
    resources = build_resources(cfg)
    assert resources["storage"].curation.max_quarantine_rate == 0.25
    assert resources["storage"].curation.near_duplicate_threshold == 0.9
    assert resources["pii"].config.operators == {"PERSON": "placeholder"}
    assert resources["pii"].config.vault is True
