"""The adapter sovtune writes loads unchanged where engineers take it: PEFT, LLaMA-Factory, vLLM.

LLaMA-Factory's `adapter_name_or_path` loads a folder with `PeftModel.from_pretrained`; vLLM's
LoRA loader (`vllm/lora/peft_helper.py`, `PEFTHelper.from_dict`) needs `r`, `lora_alpha` and
`target_modules` in adapter_config.json and refuses `modules_to_save` and DoRA.
"""

import json
from pathlib import Path

import pytest
import torch

from pipelines.steps.config import TrainingConfig
from pipelines.steps.records import Message, Record
from pipelines.steps.training.dp_lora import ADAPTER_FILES, train_dp_lora
from tests.tiny_model import make_tiny_model_dir


@pytest.fixture(scope="module")
def adapter(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("interop")
    model_dir = make_tiny_model_dir(root / "model")
    records = [
        Record(
            f"r{i}",
            "a.jsonl",
            i,
            "chat",
            (
                Message("user", f"Which desk handles ticket {i}?", "messages[0].content"),
                Message("assistant", "The help desk on the second floor.", "messages[1].content"),
            ),
            language="en",
        )
        for i in range(24)
    ]
    cfg = TrainingConfig(
        target_delta=1e-3,
        accountant="rdp",
        expected_batch_size=8,
        steps=3,
        max_seq_len=32,
        lora_r=4,
        lora_alpha=8,
    )
    train_dp_lora(records, model_dir=model_dir, cfg=cfg, out_dir=root / "adapter", progress=False)
    return model_dir, root / "adapter"


def test_the_adapter_folder_holds_only_safetensors_and_its_config(adapter):
    _, folder = adapter
    assert sorted(p.name for p in folder.iterdir()) == sorted(ADAPTER_FILES)


def test_the_adapter_config_has_what_vllm_and_llamafactory_read(adapter):
    _, folder = adapter
    config = json.loads((folder / "adapter_config.json").read_text())
    assert config["peft_type"] == "LORA" and config["task_type"] == "CAUSAL_LM"
    assert (config["r"], config["lora_alpha"]) == (4, 8)
    assert config["target_modules"] == ["q_proj", "v_proj"]
    # vLLM refuses both; a bias other than none needs its bias support
    assert not config.get("modules_to_save") and not config.get("use_dora")
    assert config["bias"] == "none"


def test_the_adapter_config_names_its_base_model_by_name_not_by_a_local_folder(adapter):
    """LLaMA-Factory (`model_name_or_path` + `adapter_name_or_path`) and vLLM (`LLM(model=...)`
    + `LoRARequest(name, id, path)`) are given the base model themselves; PEFT's
    `base_model_name_or_path` only names it. It holds the model's name (a store folder's
    manifest name; here the folder's own), never this machine's path, which moves with the
    data root; the registered version carries the base model's sha256."""
    model_dir, folder = adapter
    config = json.loads((folder / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == model_dir.name
    assert str(model_dir.parent) not in (folder / "adapter_config.json").read_text()


def test_the_adapter_loads_with_peft_from_pretrained_and_generates(adapter):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model_dir, folder = adapter
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    base = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    model = PeftModel.from_pretrained(base, folder, is_trainable=False).eval()
    # the trained LoRA weights are loaded, not a fresh initialization (B starts at zero)
    lora_b = [p for n, p in model.named_parameters() if "lora_B" in n]
    assert lora_b and any(bool(p.abs().sum() > 0) for p in lora_b)
    prompt = tokenizer("Which desk handles ticket 3?", return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**prompt, max_new_tokens=5, do_sample=False)
    assert out.shape[1] == prompt["input_ids"].shape[1] + 5
