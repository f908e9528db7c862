"""Runs of the pipeline for tests: every data drop through screening, then the release part.

What the `data_drops` sensor and the two jobs do under the daemon, in process: drops are
registered as partitions, each is materialized on its own, then the unpartitioned assets.
"""

import hashlib
import os
from pathlib import Path

import dagster as dg

from pipelines.definitions import ASSET_MODULES, CHECK_MODULES, build_resources
from pipelines.drops import register_drops
from pipelines.steps.config import PipelineConfig
from pipelines.steps.privacy.vault import private_dir

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


TEST_PSEUDONYM_KEY = hashlib.sha256(b"sovtune tests: a fixed pseudonym key").digest()
"""The data root's pseudonym key in test runs. Record ids are keyed pseudonyms and the held-out
split goes by id, so a random key drew 5 to 16 held-out records per run and the audit's statistics
with them; a fixed key makes a test run repeatable (the key itself is tested elsewhere)."""


def pin_pseudonym_key(root: Path) -> None:
    """Write `TEST_PSEUDONYM_KEY` where the pipeline reads the data root's key (none there yet)."""
    path = root.resolve() / "secrets" / "pseudonym.key"
    if path.exists():
        return
    private_dir(path.parent)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(TEST_PSEUDONYM_KEY)


def make_config(root: Path, model_dir: Path, **audit) -> PipelineConfig:
    """A profile for the tiny in-process model: a few DP steps, a small audit; the data root's
    pseudonym key pinned (`pin_pseudonym_key`)."""
    pin_pseudonym_key(root)
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


def why_failed(result: dg.ExecuteInProcessResult) -> str:
    """The failed steps and failed checks of a run, for an assertion's message."""
    steps = [
        f"{e.step_key}: {e.event_specific_data.error.message.strip()[:300]}"
        for e in result.all_events
        if e.event_type_value == "STEP_FAILURE" and e.event_specific_data.error
    ]
    checks = [f"{c.check_name}: {c.description}" for c in check_evaluations(result) if not c.passed]
    return f"failed steps {steps}; failed checks {checks}"


def check_evaluations(*results) -> list:
    """Every asset check evaluation of the given runs."""
    return [
        e.asset_check_evaluation_data
        for result in results
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION"
    ]
