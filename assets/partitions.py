"""The data-drop partitions: one dynamic partition per top-level landing file or folder.

Partitions are added (and removed) by the `data_drops` sensor (pipelines/drops.py) and by
`sovtune demo`; raw, scrubbed and curated corpora and their checks are partitioned by drop.
"""

import warnings

import dagster as dg

DATA_DROP = "data_drop"

data_drops = dg.DynamicPartitionsDefinition(name=DATA_DROP)

# Checks on a partitioned asset are partitioned with it (one result per drop, which the gates
# read per drop); dagster 1.13 marks `partitions_def` on a check as preview.
warnings.filterwarnings(
    "ignore", message="Specifying a partitions_def on an AssetCheckSpec", category=dg.PreviewWarning
)
