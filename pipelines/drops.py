"""The data-drops sensor: every top-level landing file or folder becomes a partition and a run.

Each tick scans the landing zone (`pipelines/steps/ingest/drops.py`). A new entry is registered as a
`data_drop` partition and gets a `sovtune_drop` run (ingestion, scrubbing, screening); a
registered entry whose sha256 changed gets a new run of its partition (its old output is never
re-used: training refuses a drop whose materialized hash is not the landing hash); an entry
that left the landing zone has its partition deleted, so training stops depending on it, and
its files are deleted from every zone (raw, scrubbed, curated; `withdraw_drop`, logged with the
key and counts only).
The cursor maps each drop key to the sha256 last requested, so a tick without changes requests
nothing. Run keys name the drop and its hash: the same content is never run twice by the sensor.
"""

import json
from pathlib import Path

import dagster as dg

from assets.partitions import DATA_DROP
from pipelines.jobs import drop_job
from pipelines.steps.ingest.drops import Drop, DropError, scan_landing, withdraw_drop
from resources import CorpusStorage

DROPS_SENSOR = "data_drops"
RAW = dg.AssetKey("raw_corpus")


def drop_run_request(drop: Drop, *, change: str) -> dg.RunRequest:
    """The `sovtune_drop` run for one drop's content, tagged with its key and sha256."""
    return dg.RunRequest(
        run_key=f"drop-{drop.key}-{drop.sha256[:16]}",
        partition_key=drop.key,
        tags={
            "sovtune/drop": drop.key,
            "sovtune/drop_sha256": drop.sha256,
            "sovtune/drop_change": change,
            "sovtune/launched_by": "data_drops_sensor",
        },
    )


def materialized_drop_sha256(instance: dg.DagsterInstance, key: str) -> str | None:
    """The drop sha256 that the latest `raw_corpus` materialization of `key` was read from."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=RAW, asset_partitions=[key]), limit=1
    ).records
    if not records:
        return None
    materialization = records[0].asset_materialization
    value = materialization.metadata.get("drop_sha256") if materialization else None
    return value.value if value is not None else None


@dg.sensor(
    name=DROPS_SENSOR,
    job=drop_job,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Registers each new top-level landing file or folder as a data_drop partition "
    "and runs it through ingestion, scrubbing and screening; re-runs a drop whose content "
    "changed; deletes the partition of a drop removed from the landing zone.",
)
def data_drops_sensor(
    context: dg.SensorEvaluationContext, storage: CorpusStorage
) -> dg.SensorResult | dg.SkipReason:
    """Partitions and runs for new, changed and removed drops of the landing zone."""
    try:
        drops = scan_landing(storage.landing)
    except DropError as exc:
        return dg.SkipReason(f"landing zone not scanned: {exc}")
    requested: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
    registered = set(context.instance.get_dynamic_partitions(DATA_DROP))
    current = {d.key for d in drops}
    new = [d for d in drops if d.key not in registered]
    changed = [
        d
        for d in drops
        if d.key in registered
        and requested.get(d.key) != d.sha256
        and materialized_drop_sha256(context.instance, d.key) != d.sha256
    ]
    removed = sorted(registered - current)
    cursor = json.dumps({d.key: d.sha256 for d in drops}, sort_keys=True)
    if not (new or changed or removed):
        context.update_cursor(cursor)
        return dg.SkipReason(f"no new, changed or removed drop in {storage.landing}")
    partition_requests = []
    if new:
        partition_requests.append(dg.AddDynamicPartitionsRequest(DATA_DROP, [d.key for d in new]))
    if removed:
        partition_requests.append(dg.DeleteDynamicPartitionsRequest(DATA_DROP, removed))
        context.log.info(f"drops left the landing zone, partitions deleted: {', '.join(removed)}")
        for key in removed:
            _withdraw(storage.root, key, context.log, context.instance)
    return dg.SensorResult(
        run_requests=[drop_run_request(d, change="new") for d in new]
        + [drop_run_request(d, change="changed") for d in changed],
        dynamic_partitions_requests=partition_requests,
        cursor=cursor,
    )


def register_drops(instance: dg.DagsterInstance, landing) -> list[Drop]:
    """Make the instance's `data_drop` partitions match the landing zone now (what the sensor
    does over its ticks), for in-process runs such as `sovtune demo`; returns the drops."""
    drops = scan_landing(landing)
    registered = set(instance.get_dynamic_partitions(DATA_DROP))
    new = [d.key for d in drops if d.key not in registered]
    if new:
        instance.add_dynamic_partitions(DATA_DROP, new)
    for key in sorted(registered - {d.key for d in drops}):
        instance.delete_dynamic_partition(DATA_DROP, key)
        _withdraw(Path(landing).parent, key, None, instance)
    return drops


def _withdraw(root: Path, key: str, log, instance: dg.DagsterInstance | None = None) -> None:
    """Delete a withdrawn drop's files and joined records from every zone, and its pickled
    step summaries; log the key and counts only (a re-join of the training corpus is due)."""
    pickles = Path(instance.storage_directory()) if instance is not None else None
    try:
        removed = withdraw_drop(root, key, pickles=pickles)
    except (DropError, OSError) as exc:
        if log is None:
            raise
        log.error(f"drop {key!r} withdrawn but its files could not be removed: {exc}")
        return
    if log is not None:
        zones = ", ".join(f"{zone} {n}" for zone, n in removed.items()) or "none"
        log.info(
            f"drop {key!r} withdrawn: files removed per zone: {zones}; its records left the "
            "joined corpora: materialize training_corpus again to re-join the other drops"
        )
