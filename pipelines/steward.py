"""The steward loop: new decisions on quarantined records re-materialize the curated corpus.

Stewards approve or reject quarantined records by id in `curated/steward_decisions.csv`
(`pipelines/steps/integrity/decisions.py`). This sensor fingerprints the file; when the fingerprint
changes it requests one run of `curated_corpus` per registered data drop (its checks run with
it; one file serves every drop), keyed by the fingerprint and the drop so the same file is
never applied twice to a drop. A file that does not parse requests
nothing and says why, naming the file and line; the cursor stays put until it is fixed.
"""

import dagster as dg

from assets.curated import DECISIONS_FILE
from assets.partitions import DATA_DROP
from pipelines.steps.integrity.decisions import (
    DecisionsError,
    decisions_fingerprint,
    read_decisions,
)
from resources import CorpusStorage

STEWARD_SENSOR = "steward_decisions"
CURATED = dg.AssetKey("curated_corpus")


@dg.sensor(
    name=STEWARD_SENSOR,
    asset_selection=[CURATED],
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Re-materializes curated_corpus of every drop when the steward decisions file "
    "changes.",
)
def steward_decisions_sensor(context: dg.SensorEvaluationContext, storage: CorpusStorage):
    """Request a curated-corpus run for each new version of the steward decisions file."""
    path = storage.curated / DECISIONS_FILE
    fingerprint = decisions_fingerprint(path)
    if not fingerprint or fingerprint == context.cursor:
        return dg.SkipReason(f"no new steward decisions in {path}")
    try:
        decisions = read_decisions(path)
    except DecisionsError as exc:
        return dg.SkipReason(f"steward decisions not applied: {exc}")
    drops = sorted(context.instance.get_dynamic_partitions(DATA_DROP))
    if not drops:
        return dg.SkipReason("steward decisions waiting: no data drop is registered yet")
    context.update_cursor(fingerprint)
    return [
        dg.RunRequest(
            run_key=f"steward-{fingerprint[:16]}-{drop}",
            asset_selection=[CURATED],
            partition_key=drop,
            tags={"sovtune/steward_decisions": str(len(decisions)), "sovtune/drop": drop},
        )
        for drop in drops
    ]
