"""Shared set-up of the training benchmarks: the base model, the corpus, timing and memory.

Not a benchmark itself. The base model is SmolLM2-135M-Instruct from the local model store
(converted once from the registry's GGUF by `modelstore.prepare_base_model`), the corpus the
curated (PII-scrubbed) bundled corpus under the data root, or, when no pipeline has run there
yet, the bundled generator's raw records parsed in memory.
"""

import ctypes
import gc
import os
import tempfile
from pathlib import Path

import torch

from pipelines.steps.config import ModelConfig
from pipelines.steps.records import Record, frame_to_records
from pipelines.steps.storage import read_parquet
from pipelines.steps.training.modelstore import prepare_base_model

REPO_ROOT = Path(__file__).resolve().parents[1]


def base_model_dir(data_root: Path) -> Path:
    """SmolLM2-135M-Instruct in the model store under `data_root/models` (converted once)."""
    return prepare_base_model(ModelConfig(), data_root / "models").path


def corpus_records(data_root: Path) -> list[Record]:
    """The curated bundled corpus, or the bundled generator's records when there is none."""
    curated = data_root / "curated" / "curated_corpus.parquet"
    if curated.exists():
        return frame_to_records(read_parquet(curated))
    from pipelines.steps.ingest.landing import ingest_landing
    from pipelines.steps.synthetic.corpus import generate_corpus

    with tempfile.TemporaryDirectory() as tmp:
        generate_corpus(Path(tmp), records=2000, seed=7)
        return ingest_landing(Path(tmp), languages=["en"], max_record_chars=20_000).accepted


def device_name(device: str) -> str:
    if device.startswith("cuda"):
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return f"cpu ({os.cpu_count()} cores visible, {torch.get_num_threads()} torch threads)"


def reset_peak_memory(device: str) -> int:
    """Start a new peak-memory window; returns the current baseline in bytes.

    CUDA: the allocator's peak counter. CPU: the process's peak RSS (VmHWM), reset through
    /proc/self/clear_refs after freed memory is returned to the OS (malloc_trim).
    """
    gc.collect()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        return torch.cuda.memory_allocated()
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    Path("/proc/self/clear_refs").write_text("5")
    return _status_kb("VmRSS") * 1024


def peak_memory(device: str) -> int:
    """Peak bytes since `reset_peak_memory` (allocated on CUDA, resident on CPU)."""
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated()
    return _status_kb("VmHWM") * 1024


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")
