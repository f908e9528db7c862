"""Jobs and the weekly retraining schedule of the code location.

Two jobs: `sovtune_drop` takes one data drop (a partition) through ingestion, scrubbing and
screening; `sovtune_main` joins every accepted drop and trains, audits, registers and reports.
"""

import dagster as dg

from assets.partitions import data_drops
from pipelines.automation import failing_checks
from pipelines.steps.ingest.drops import scan_landing, snapshot_fingerprint
from resources import CorpusStorage, DPTrainer

MAIN_JOB = "sovtune_main"
DROP_JOB = "sovtune_drop"
DROP_ASSETS = dg.AssetSelection.assets(
    "raw_corpus", "raw_quarantine", "scrubbed_corpus", "curated_corpus"
)
# steps of one drop run in parallel processes; drops run in parallel as separate runs, as many as
# the run queue allows (dagster_home/dagster.yaml: max_concurrent_runs)
DROP_STEP_PROCESSES = 2

drop_job = dg.define_asset_job(
    DROP_JOB,
    selection=DROP_ASSETS,
    partitions_def=data_drops,
    executor_def=dg.multiprocess_executor.configured({"max_concurrent": DROP_STEP_PROCESSES}),
    description="One data drop (partition) through ingestion, PII scrubbing and screening, each "
    "stage gated by its blocking checks. Launched per new or changed drop by the data_drops "
    "sensor.",
    tags={"sovtune/pipeline": "drop"},
)

main_job = dg.define_asset_job(
    MAIN_JOB,
    selection=dg.AssetSelection.all() - DROP_ASSETS,
    description="Every accepted data drop joined, then a DP-LoRA model version and its "
    "compliance report, every step gated by blocking asset checks (on every drop).",
    tags={"sovtune/pipeline": "main"},
)


def snapshot_tags(storage: CorpusStorage) -> dict[str, str]:
    """Tags naming the data snapshot a run reads: the landing zone's drops and their hashes."""
    drops = {d.key: d.sha256 for d in scan_landing(storage.landing)}
    return {
        "sovtune/profile": storage.profile,
        "sovtune/snapshot_sha256": snapshot_fingerprint(drops),
        "sovtune/drops": str(len(drops)),
    }


@dg.schedule(
    name="weekly_retraining",
    job=main_job,
    cron_schedule="0 3 * * 1",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.STOPPED,
)
def weekly_retraining(
    context: dg.ScheduleEvaluationContext, storage: CorpusStorage, trainer: DPTrainer
) -> dg.RunRequest | dg.SkipReason:
    """Retrain every Monday 03:00 UTC on what the landing zone holds; stopped by default.

    The tick is skipped, naming the checks, while the latest result of any check upstream of
    training is a failure: a steward re-runs the failing stage first. A check that never ran
    does not hold the tick: the run executes it before training, whose guard reads it. Checks
    downstream of training (audit, release) are not consulted here: the run re-trains and
    re-audits, and registration's blocking checks and guard decide inside it.
    The run is tagged with the data snapshot (a hash over every drop's key and sha256).
    """
    failing = failing_checks(context.instance, trainer.gate_checks, strict=False)
    if failing:
        return dg.SkipReason(
            f"training held: the latest result of {len(failing)} upstream check(s) is a "
            f"failure: {', '.join(failing)}"
        )
    return dg.RunRequest(tags={**snapshot_tags(storage), "sovtune/launched_by": "schedule"})
