"""Runs of the pipeline for tests: every data drop through screening, then the release part.

What the `data_drops` sensor and the two jobs do under the daemon, in process: drops are
registered as partitions, each is materialized on its own, then the unpartitioned assets.
"""

from pathlib import Path

import dagster as dg

from pipelines.definitions import ASSET_MODULES, CHECK_MODULES, build_resources
from pipelines.drops import register_drops
from pipelines.steps.config import PipelineConfig

ASSETS = dg.load_assets_from_modules(ASSET_MODULES)
CHECKS = dg.load_asset_checks_from_modules(CHECK_MODULES)
DROP_ASSETS = ["raw_corpus", "raw_quarantine", "scrubbed_corpus", "curated_corpus"]
RELEASE_ASSETS = [
    "training_corpus",
    "base_model",
    "dp_lora_adapter",
    "privacy_audit",
    "registered_model",
    "compliance_report",
]


def make_config(root: Path, model_dir: Path, **audit) -> PipelineConfig:
    """A profile for the tiny in-process model: a few DP steps, a small audit."""
    return PipelineConfig.model_validate(
        {
            "profile": "test",
            "data_root": str(root),
            "model": {"kind": "hf", "name": "tiny-test", "path": str(model_dir)},
            "training": {
                "target_epsilon": 8.0,
                "target_delta": 1e-5,
                "accountant": "rdp",
                "expected_batch_size": 16,
                "steps": 3,
                "max_seq_len": 48,
                "learning_rate": 1e-2,
                "noise_seed": 0,
            },
            "audit": {"candidates": 20, "max_exposure_bits": 10.0, **audit},
        }
    )


def run_drops(
    instance: dg.DagsterInstance, resources: dict
) -> dict[str, dg.ExecuteInProcessResult]:
    """Register every landing drop and materialize each one (ingest, scrub, screen) alone."""
    drops = register_drops(instance, resources["storage"].landing)
    return {
        drop.key: dg.materialize(
            [*ASSETS, *CHECKS],
            selection=DROP_ASSETS,
            partition_key=drop.key,
            instance=instance,
            resources=resources,
            raise_on_error=False,
        )
        for drop in drops
    }


def run_release(
    instance: dg.DagsterInstance, resources: dict, selection: list[str] = RELEASE_ASSETS
) -> dg.ExecuteInProcessResult:
    """Materialize the unpartitioned assets (every drop joined, training onwards)."""
    return dg.materialize(
        [*ASSETS, *CHECKS],
        selection=selection,
        instance=instance,
        resources=resources,
        raise_on_error=False,
    )


def run_all(instance: dg.DagsterInstance, cfg: PipelineConfig):
    """Every drop, then the release part: (drop results by key, release result)."""
    resources = build_resources(cfg)
    drops = run_drops(instance, resources)
    return drops, run_release(instance, resources)


def check_evaluations(*results) -> list:
    """Every asset check evaluation of the given runs."""
    return [
        e.asset_check_evaluation_data
        for result in results
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION"
    ]
