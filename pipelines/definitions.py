"""The Dagster code location: assets, checks, jobs and resources built from one profile.

The profile comes from `SOVTUNE_PROFILE` (a name under pipelines/config/ or a YAML path;
default `default`); `SOVTUNE_DATA_ROOT` overrides its data root.
"""

import functools
import os
from pathlib import Path

import dagster as dg

from assets import audit, curated, raw, registry, report, scrubbed, training, training_corpus
from checks import audit as audit_checks
from checks import curation, ingestion, release, scrubbing
from checks import training as training_checks
from checks import training_corpus as training_corpus_checks
from checks import utility as utility_checks
from pipelines.automation import automation_sensor, with_automation
from pipelines.drops import data_drops_sensor
from pipelines.jobs import drop_job, main_job, weekly_retraining
from pipelines.steps.config import PipelineConfig, load_config, with_environment
from pipelines.steps.offline import enforce_offline
from pipelines.steward import steward_decisions_sensor
from resources import (
    BaseModelStore,
    CorpusStorage,
    DataEngine,
    DPTrainer,
    MLflowRegistry,
    PIIEngine,
    PrivacyAuditor,
)
from resources.summary_io import SummaryIOManager
from resources.trainer import default_device

ASSET_MODULES = [raw, scrubbed, curated, training_corpus, training, audit, registry, report]
CHECK_MODULES = [
    ingestion,
    scrubbing,
    curation,
    training_corpus_checks,
    training_checks,
    utility_checks,
    audit_checks,
    release,
]


def active_config() -> PipelineConfig:
    """The profile named by the environment, with `SOVTUNE_DATA_ROOT` applied."""
    return with_environment(load_config(os.environ.get("SOVTUNE_PROFILE", "default")))


@functools.cache
def _asset_graph():
    # The graph alone, without resources: Definitions.resolve_asset_graph() would demand them.
    from dagster._core.definitions.assets.graph.asset_graph import AssetGraph

    return AssetGraph.from_assets(
        [
            *dg.load_assets_from_modules(ASSET_MODULES),
            *dg.load_asset_checks_from_modules(CHECK_MODULES),
        ]
    )


def upstream_checks(asset: str) -> list[str]:
    """Every check (`asset:check`) on the ancestors of `asset` in the full asset graph."""
    graph = _asset_graph()
    keys = graph.get_check_keys_for_assets(graph.get_ancestor_asset_keys(dg.AssetKey(asset)))
    return sorted(f"{k.asset_key.to_user_string()}:{k.name}" for k in keys)


def build_resources(cfg: PipelineConfig) -> dict:
    """Every resource of the pipeline, configured from one profile."""
    root = Path(cfg.data_root).resolve()
    return {
        "storage": CorpusStorage(
            data_root=str(root),
            profile=cfg.profile,
            languages=list(cfg.ingest.languages),
            max_record_chars=cfg.ingest.max_record_chars,
            ingest_limits_json=cfg.ingest.limits.model_dump_json(),
            min_chars=cfg.curation.min_chars,
            max_chars=cfg.curation.max_chars,
            curation_json=cfg.curation.model_dump_json(),
        ),
        "pii": PIIEngine(
            spacy_model=cfg.pii.spacy_model,
            score_threshold=cfg.pii.score_threshold,
            entities=list(cfg.pii.entities),
            pseudonym_key_env=cfg.pii.pseudonym_key_env,
            recognizers_file=cfg.pii.recognizers_file,
            residual_score_threshold=cfg.pii.residual_score_threshold,
            scan_budget_seconds=cfg.pii.scan_budget_seconds,
            operators=dict(cfg.pii.operators),
            vault=cfg.pii.vault,
            vault_key_env=cfg.pii.vault_key_env,
            key_file=str(root / "secrets" / "pseudonym.key"),
        ),
        "execution": DataEngine(**cfg.execution.model_dump()),
        "model_store": BaseModelStore(
            kind=cfg.model.kind,
            name=cfg.model.name,
            path=cfg.model.path,
            gguf_package=cfg.model.gguf_package,
            gguf_file=cfg.model.gguf_file,
            store_dir=str(root / "models"),
        ),
        "trainer": DPTrainer(
            **cfg.training.model_dump(exclude={"utility"}),
            utility_json=cfg.training.utility.model_dump_json(),
            device=default_device(),
            gate_checks=upstream_checks("dp_lora_adapter"),
        ),
        "auditor": PrivacyAuditor(
            candidates=cfg.audit.candidates,
            max_exposure_bits=cfg.audit.max_exposure_bits,
            canaries_file=cfg.audit.canaries_file or str(root / "raw" / "ground_truth.json"),
            plant_canaries=cfg.audit.plant_canaries,
            mia_records=cfg.audit.mia_records,
            max_mia_auc=cfg.audit.max_mia_auc,
            extraction_probes=cfg.audit.extraction_probes,
            backdoor_prompts=cfg.audit.backdoor_prompts,
            controls=list(cfg.audit.controls),
            seed=cfg.audit.seed,
        ),
        "registry": MLflowRegistry(
            tracking_uri=cfg.registry.tracking_uri,
            data_root=str(root),
            model_name=cfg.registry.model_name,
            experiment=cfg.registry.experiment,
            gate_checks=upstream_checks("registered_model"),
            report_checks=upstream_checks("compliance_report"),
        ),
        "io_manager": SummaryIOManager(data_root=str(root)),  # paths stored relative to it
    }


def build_definitions(cfg: PipelineConfig) -> dg.Definitions:
    """The code location for one profile."""
    enforce_offline()
    return dg.Definitions(
        assets=with_automation(dg.load_assets_from_modules(ASSET_MODULES)),
        asset_checks=dg.load_asset_checks_from_modules(CHECK_MODULES),
        jobs=[drop_job, main_job],
        schedules=[weekly_retraining],
        sensors=[data_drops_sensor, automation_sensor, steward_decisions_sensor],
        resources=build_resources(cfg),
    )


defs = build_definitions(active_config())
