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


def _write(path, text):
    path.write_text(text, encoding="utf-8")
    return str(path)


@pytest.mark.parametrize("profile", ["quick", "default"])
def test_when_a_bundled_profile_is_loaded_then_it_is_its_own_yaml_over_default(profile):
    import yaml

    from pipelines.steps.config import PROFILE_DIR, PipelineConfig

    # inheritance changes nothing for the bundled profiles: they set what they use
    own = yaml.safe_load((PROFILE_DIR / f"{profile}.yaml").read_text(encoding="utf-8"))
    own.pop("extends", None)
    assert load_config(profile) == PipelineConfig.model_validate(own)


def test_when_a_profile_leaves_a_key_out_then_default_yaml_gives_it_not_the_schema(tmp_path):
    from pipelines.steps.config import PipelineConfig

    cfg = load_config(_write(tmp_path / "mine.yaml", "training:\n  steps: 7\n"))
    assert cfg.training.steps == 7
    # default.yaml's batch and audit bound, not the schema's (16 and 8.0)
    assert cfg.training.expected_batch_size == 32 != PipelineConfig().training.expected_batch_size
    assert cfg.audit.max_exposure_bits == 9.5
    # never inherited: the profile's own name and data root (no cross-talk with default)
    assert (cfg.profile, cfg.data_root) == ("mine", "var/mine")


def test_when_a_profile_extends_quick_then_it_takes_quicks_model_unless_it_names_another_kind(
    tmp_path,
):
    cfg = load_config(_write(tmp_path / "a.yaml", "extends: quick\ncorpus:\n  records: 50\n"))
    assert (cfg.model.kind, cfg.model.name, cfg.corpus.records) == ("tiny", "tiny-llama", 50)
    assert cfg.training.steps == 20  # quick's
    other = load_config(
        _write(tmp_path / "b.yaml", "extends: quick\nmodel:\n  kind: hf\n  path: /models/x\n")
    )
    # a model of another kind replaces the whole section: quick's name does not carry over
    assert (other.model.kind, other.model.name) == ("hf", "SmolLM2-135M-Instruct")


def test_when_extends_loops_or_names_nothing_then_the_files_are_named(tmp_path):
    _write(tmp_path / "a.yaml", "extends: b.yaml\n")
    _write(tmp_path / "b.yaml", "extends: a.yaml\n")
    with pytest.raises(ConfigError, match=r"extends loops: .*a\.yaml -> .*b\.yaml -> .*a\.yaml"):
        load_config(str(tmp_path / "a.yaml"))
    with pytest.raises(ConfigError, match="nope.yaml not found"):
        load_config(_write(tmp_path / "c.yaml", "extends: nope.yaml\n"))


def test_when_an_inherited_value_is_wrong_then_the_message_names_both_files(tmp_path):
    _write(tmp_path / "base.yaml", "training:\n  target_epsilon: -1\n")
    with pytest.raises(ConfigError) as err:
        load_config(_write(tmp_path / "child.yaml", "extends: base.yaml\n"))
    assert "child.yaml (extends " in str(err.value) and "base.yaml" in str(err.value)
    assert "training.target_epsilon" in str(err.value)
