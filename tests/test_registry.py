"""The MLflow registry resource: only safe file types, and a version with alias `candidate`."""

import pytest

from resources.registry import MLflowRegistry, RegistryError, assert_no_pickle


def _adapter(folder):
    folder.mkdir(parents=True)
    (folder / "adapter_model.safetensors").write_bytes(b"\x00" * 16)
    (folder / "adapter_config.json").write_text("{}")
    return folder


def test_when_a_folder_holds_only_safetensors_and_json_then_it_passes(tmp_path):
    assert_no_pickle(_adapter(tmp_path / "a"))


@pytest.mark.parametrize("name", ["pytorch_model.bin", "training_args.pkl", "opt.pt", "x.pickle"])
def test_when_a_pickle_is_present_then_registration_is_refused(tmp_path, name):
    folder = _adapter(tmp_path / "a")
    (folder / name).write_bytes(b"\x80\x04")  # a pickle header
    with pytest.raises(RegistryError, match=name):
        assert_no_pickle(folder)


def test_when_an_adapter_is_registered_then_the_version_holds_no_pickle_and_is_candidate(
    tmp_path,
):
    registry = MLflowRegistry(data_root=str(tmp_path), model_name="m")
    tokenizer = tmp_path / "tok"
    tokenizer.mkdir()
    (tokenizer / "tokenizer.json").write_text("{}")
    (tokenizer / "model.safetensors").write_bytes(b"\x00")  # base weights are not registered
    version = registry.register_adapter(
        adapter_dir=_adapter(tmp_path / "adapter"),
        tokenizer_dir=tokenizer,
        model_card="# m\n",
        params={"epsilon": "1.0"},
        tags={"sovtune.epsilon": "1.0"},
        step_metrics={"epsilon": [(1, 0.5), (2, 1.0)]},
        run_name="t",
    )
    assert version.version == "1"
    client = registry.client
    assert str(client.get_model_version_by_alias("m", "candidate").version) == "1"
    bundle = registry.download("1", tmp_path / "dl")
    files = sorted(p.relative_to(bundle).as_posix() for p in bundle.rglob("*") if p.is_file())
    assert files == [
        "README.md",
        "adapter/adapter_config.json",
        "adapter/adapter_model.safetensors",
        "tokenizer/tokenizer.json",
    ]


def test_when_an_adapter_folder_holds_a_pickle_then_no_run_or_version_is_created(tmp_path):
    registry = MLflowRegistry(data_root=str(tmp_path), model_name="m")
    adapter = _adapter(tmp_path / "adapter")
    (adapter / "pytorch_model.bin").write_bytes(b"\x80")
    with pytest.raises(RegistryError):
        registry.register_adapter(
            adapter_dir=adapter,
            tokenizer_dir=adapter,
            model_card="",
            params={},
            tags={},
            step_metrics={},
            run_name="t",
        )
    assert registry.client.search_model_versions("name='m'") == []
