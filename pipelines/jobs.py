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
