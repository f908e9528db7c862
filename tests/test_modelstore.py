"""The local model store: safetensors only, verified manifests, errors naming the setting."""

import json
from pathlib import Path

import pytest
import torch

from pipelines.steps.config import ModelConfig
from pipelines.steps.storage import sha256_file
from pipelines.steps.training.modelstore import (
    MANIFEST_NAME,
    ModelStoreError,
    load_base_model,
    prepare_base_model,
)
from tests.tiny_model import make_tiny_model_dir


@pytest.fixture
def tiny_dir(tmp_path: Path) -> Path:
    return make_tiny_model_dir(tmp_path / "user-model")


@pytest.fixture
def stored(tiny_dir: Path, tmp_path: Path):
    cfg = ModelConfig(kind="hf", name="tiny", path=str(tiny_dir))
    return cfg, prepare_base_model(cfg, tmp_path / "store")


def test_hf_model_is_copied_into_the_store_with_a_manifest(stored, tiny_dir):
    cfg, info = stored
    assert info.path == tiny_dir.parent / "store" / "tiny"
    manifest = json.loads((info.path / MANIFEST_NAME).read_text())
    assert info.sha256 == sha256_file(info.path / MANIFEST_NAME)
    assert sorted(manifest["files"]) == sorted(p.name for p in tiny_dir.iterdir())
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= set(manifest["files"])
    assert not (tiny_dir / MANIFEST_NAME).exists()  # the user's folder is only read
    assert [p.name for p in info.path.parent.iterdir()] == ["tiny"]  # no temp folders left


def test_when_prepared_twice_then_the_folder_is_reused(stored, tmp_path):
    cfg, info = stored
    mtime = (info.path / "model.safetensors").stat().st_mtime_ns
    assert prepare_base_model(cfg, tmp_path / "store") == info
    assert (info.path / "model.safetensors").stat().st_mtime_ns == mtime


def test_load_base_model_gives_an_eval_float32_model_and_tokenizer(stored):
    _, info = stored
    model, tokenizer = load_base_model(info.path)
    assert not model.training
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    assert tokenizer.eos_token == "<eos>"


def test_when_a_folder_holds_pickle_weights_then_loading_is_refused(tiny_dir):
    (tiny_dir / "pytorch_model.bin").write_bytes(b"not really a pickle")
    with pytest.raises(ModelStoreError, match="pickle"):
        load_base_model(tiny_dir)


def test_when_an_hf_source_holds_pickle_weights_then_it_is_not_stored(tiny_dir, tmp_path):
    (tiny_dir / "pytorch_model.bin").write_bytes(b"not really a pickle")
    cfg = ModelConfig(kind="hf", name="tiny", path=str(tiny_dir))
    with pytest.raises(ModelStoreError, match="pickle"):
        prepare_base_model(cfg, tmp_path / "store")


@pytest.mark.parametrize(
    "tamper",
    [
        # A changed byte in a listed file breaks the weights' fingerprint.
        lambda folder: (folder / "tokenizer_config.json").write_text("{}"),
        # An unlisted file could be loaded without ever having been hashed.
        lambda folder: (folder / "extra.safetensors").write_bytes(b"x"),
        # A missing file means the folder is not what was fingerprinted.
        lambda folder: (folder / "tokenizer.json").unlink(),
    ],
    ids=["changed", "extra", "missing"],
)
def test_when_the_manifest_does_not_match_then_load_and_reuse_are_refused(stored, tmp_path, tamper):
    cfg, info = stored
    tamper(info.path)
    with pytest.raises(ModelStoreError, match="manifest"):
        load_base_model(info.path)
    with pytest.raises(ModelStoreError, match="manifest"):
        prepare_base_model(cfg, tmp_path / "store")


def test_when_the_hf_source_changed_then_the_stored_copy_is_not_reused(stored, tiny_dir, tmp_path):
    cfg, _ = stored
    (tiny_dir / "generation_config.json").write_text("{}")
    with pytest.raises(ModelStoreError, match="model.name"):
        prepare_base_model(cfg, tmp_path / "store")


def test_when_the_gguf_package_is_missing_then_the_error_names_the_setting(tmp_path):
    cfg = ModelConfig(kind="gguf", gguf_package="sovtune_no_such_package")
    with pytest.raises(ModelStoreError, match="model.gguf_package"):
        prepare_base_model(cfg, tmp_path)


def test_when_the_gguf_file_is_missing_then_the_error_names_the_setting(tmp_path):
    cfg = ModelConfig(kind="gguf", gguf_package="json", gguf_file="missing.gguf")
    with pytest.raises(ModelStoreError, match="model.gguf_file"):
        prepare_base_model(cfg, tmp_path)


def test_when_the_gguf_path_is_missing_then_the_error_names_the_setting(tmp_path):
    cfg = ModelConfig(kind="tiny", path=str(tmp_path / "missing.gguf"))
    with pytest.raises(ModelStoreError, match="model.path"):
        prepare_base_model(cfg, tmp_path)


def test_when_the_hf_path_is_not_a_model_folder_then_the_error_names_the_setting(tmp_path):
    cfg = ModelConfig(kind="hf", path=str(tmp_path))
    with pytest.raises(ModelStoreError, match="model.path"):
        prepare_base_model(cfg, tmp_path / "store")
