"""Small helpers that turn counts into Dagster metadata (never a record value)."""

import dagster as dg
from dagster._core.event_api import PartitionKeyFilter

from assets.partitions import DATA_DROP

OWNERS_STEWARDS = ["team:data-stewards"]
OWNERS_ML = ["team:ml-engineering"]
OWNERS_PRIVACY = ["team:privacy-office"]


def counts_table(counts: dict[str, int], *, key: str, value: str = "records") -> dg.MetadataValue:
    """A markdown table of counts, one row per key, sorted."""
    rows = [f"| {key} | {value} |", "|---|---:|"]
    rows += [f"| `{name}` | {n} |" for name, n in sorted(counts.items())] or ["| none | 0 |"]
    return dg.MetadataValue.md("\n".join(rows))


def latest_check_results(context: dg.AssetExecutionContext, required: list[str]) -> list[dict]:
    """The latest result of each required check (`asset:check`), read from the Dagster instance.

    A check that never ran, or whose latest execution did not pass, is reported as failed, so
    gates hold across runs, whichever way the run was launched, not only inside one run. A check
    on the data-drop partitions passes only when its latest result on **every** registered drop
    is a pass that targets that drop's latest materialization; `failing_drops` names the others
    and `measured` holds the worst drop's values (sums of counts, maxima of rates).
    """
    check_keys = [
        dg.AssetCheckKey(dg.AssetKey.from_user_string(asset), name)
        for asset, name in (item.rsplit(":", 1) for item in required)
    ]
    storage = context.instance.event_log_storage
    latest = storage.get_latest_asset_check_execution_by_key(check_keys)
    infos = {
        (info.check_key, info.partition_key): info
        for info in storage.get_asset_check_partition_info(check_keys)
        if info.partition_key is not None
    }
    partitioned = {key for key, _ in infos}
    drops = sorted(context.instance.get_dynamic_partitions(DATA_DROP)) if partitioned else []
    per_drop = {
        drop: storage.get_latest_asset_check_execution_by_key(
            sorted(partitioned, key=str), partition_filter=PartitionKeyFilter(key=drop)
        )
        for drop in drops
    }
    results = []
    for key in check_keys:
        if key in partitioned:
            results.append(_partitioned_result(key, drops, infos, per_drop))
            continue
        record = latest.get(key)
        passed, measured = _evaluation(record)
        results.append(
            {
                "asset": key.asset_key.to_user_string(),
                "check": key.name,
                "passed": passed,
                "status": record.status.value if record else "NEVER_RAN",
                "run_id": record.run_id if record else None,
                "measured": measured,
            }
        )
    return results


def _evaluation(record) -> tuple[bool, dict]:
    """(passed, numeric metadata) of a check execution record; (False, {}) without one. A
    failure of WARN severity counts as a pass with `warning` in the metadata."""
    if record is None or record.event is None:
        return False, {}
    evaluation = record.event.dagster_event.event_specific_data
    measured = {
        name: value.value
        for name, value in (getattr(evaluation, "metadata", None) or {}).items()
        if isinstance(value.value, int | float | bool)
    }
    passed = bool(getattr(evaluation, "passed", False))
    if not passed and getattr(evaluation, "severity", None) == dg.AssetCheckSeverity.WARN:
        # a WARN-severity failure (training.utility.action warn) warns, it does not gate
        passed, measured["warning"] = True, True
    return passed, measured


def _partitioned_result(key, drops: list[str], infos: dict, per_drop: dict) -> dict:
    statuses: dict[str, str] = {}
    measured: dict[str, int | float | bool] = {}
    run_ids = []
    for drop in drops:
        info, record = infos.get((key, drop)), per_drop[drop].get(key)
        passed, values = _evaluation(record)
        if info is None or record is None:
            statuses[drop] = "NEVER_RAN"
        elif not info.is_current:
            statuses[drop] = "NOT_CURRENT"
        else:
            planned = record.status.value == "PLANNED"
            statuses[drop] = "SUCCEEDED" if passed else ("PLANNED" if planned else "FAILED")
            run_ids.append(record.run_id)
        for name, value in values.items():
            measured[name] = _worst(measured.get(name), value)
    failing = [d for d in drops if statuses[d] != "SUCCEEDED"]
    status = (
        "FAILED"
        if "FAILED" in statuses.values()
        else (statuses[failing[0]] if failing else "SUCCEEDED" if drops else "NEVER_RAN")
    )
    return {
        "asset": key.asset_key.to_user_string(),
        "check": key.name,
        "passed": bool(drops) and not failing,
        "status": status,
        "run_id": run_ids[-1] if run_ids else None,
        "measured": measured,
        "drops": statuses,
        "failing_drops": failing,
    }


def _worst(current, value):
    if current is None:
        return value
    if isinstance(value, bool):
        return current and value
    if isinstance(value, int) and isinstance(current, int):
        return current + value
    return max(current, value)


def check_label(result: dict) -> str:
    """`asset:check`, with the failing drops named for a check on the data-drop partitions."""
    label = f"{result['asset']}:{result['check']}"
    if result.get("failing_drops"):
        label += f" (drops: {', '.join(result['failing_drops'])})"
    return label


def require_passing_checks(
    context: dg.AssetExecutionContext, required: list[str], *, action: str
) -> list[dict]:
    """The latest results of `required`; raises `dg.Failure` (refusing `action`) if any failed."""
    checks = latest_check_results(context, required)
    failing = [check_label(c) for c in checks if not c["passed"]]
    if failing:
        raise dg.Failure(
            f"refusing to {action}: the latest result of {len(failing)} upstream check(s) is not "
            f"a pass: {', '.join(failing)}"
        )
    return checks
