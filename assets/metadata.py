"""Small helpers that turn counts into Dagster metadata (never a record value)."""

import dagster as dg

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
    gates hold across runs, whichever way the run was launched, not only inside one run.
    """
    check_keys = [
        dg.AssetCheckKey(dg.AssetKey.from_user_string(asset), name)
        for asset, name in (item.rsplit(":", 1) for item in required)
    ]
    latest = context.instance.event_log_storage.get_latest_asset_check_execution_by_key(check_keys)
    results = []
    for key in check_keys:
        record = latest.get(key)
        passed, measured = False, {}
        if record is not None and record.event is not None:
            evaluation = record.event.dagster_event.event_specific_data
            passed = bool(getattr(evaluation, "passed", False))
            measured = {
                name: value.value
                for name, value in (getattr(evaluation, "metadata", None) or {}).items()
                if isinstance(value.value, int | float | bool)
            }
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


def require_passing_checks(
    context: dg.AssetExecutionContext, required: list[str], *, action: str
) -> list[dict]:
    """The latest results of `required`; raises `dg.Failure` (refusing `action`) if any failed."""
    checks = latest_check_results(context, required)
    failing = [f"{c['asset']}:{c['check']}" for c in checks if not c["passed"]]
    if failing:
        raise dg.Failure(
            f"refusing to {action}: the latest result of {len(failing)} upstream check(s) is not "
            f"a pass: {', '.join(failing)}"
        )
    return checks
