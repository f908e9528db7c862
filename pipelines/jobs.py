"""Jobs of the code location."""

import dagster as dg

MAIN_JOB = "sovtune_main"

main_job = dg.define_asset_job(
    MAIN_JOB,
    selection=dg.AssetSelection.all(),
    description="Landing files to a registered DP-LoRA model version and its compliance report, "
    "every step gated by blocking asset checks.",
    tags={"sovtune/pipeline": "main"},
)


weekly_retraining = dg.ScheduleDefinition(
    name="weekly_retraining",
    job=main_job,
    cron_schedule="0 3 * * 1",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Retrain every Monday 03:00 UTC on what the landing zone holds. Stopped by "
    "default: a steward starts it in the UI. Training and registration refuse to run while the "
    "latest result of any upstream check is a failure.",
)
