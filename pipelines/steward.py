"""The steward loop: new decisions on quarantined records re-materialize the curated corpus.

Stewards approve or reject quarantined records by id in `curated/steward_decisions.csv`
(`pipelines/steps/integrity/decisions.py`). This sensor fingerprints the file; when the fingerprint
changes it requests one run of `curated_corpus` per registered data drop (its checks run with
it; one file serves every drop), keyed by the fingerprint and the drop so the same file is
never applied twice to a drop. A file that does not parse requests
nothing and says why, naming the file and line, in the tick's skip reason and in the cursor
(the sensor page shows the cursor beside each tick, so the refusal is seen without a click);
the applied fingerprint stays put until the file is fixed.
"""

import json

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
    applied = _applied(context.cursor)
    fingerprint = decisions_fingerprint(path)
    if not fingerprint or fingerprint == applied:
        if context.cursor not in (None, applied, _cursor(applied)):  # a refusal undone
            context.update_cursor(_cursor(applied))
        return dg.SkipReason(f"no new steward decisions in {path}")
    try:
        decisions = read_decisions(path)
    except DecisionsError as exc:
        refused = f"steward decisions not applied: {exc}"
        context.update_cursor(_cursor(applied, refused=refused))
        return dg.SkipReason(refused)
    drops = sorted(context.instance.get_dynamic_partitions(DATA_DROP))
    if not drops:
        return dg.SkipReason("steward decisions waiting: no data drop is registered yet")
    context.update_cursor(_cursor(fingerprint))
    return [
        dg.RunRequest(
            run_key=f"steward-{fingerprint[:16]}-{drop}",
            asset_selection=[CURATED],
            partition_key=drop,
            tags={"sovtune/steward_decisions": str(len(decisions)), "sovtune/drop": drop},
        )
        for drop in drops
    ]


def _cursor(applied: str, *, refused: str = "") -> str:
    """The cursor: the fingerprint last applied and, while the file is refused, why."""
    return json.dumps({"applied": applied, **({"refused": refused} if refused else {})})


def _applied(cursor: str | None) -> str:
    """The applied fingerprint of a cursor (a bare fingerprint: the cursor before #19)."""
    if not cursor:
        return ""
    try:
        return str(json.loads(cursor).get("applied", ""))
    except (ValueError, AttributeError):
        return cursor
