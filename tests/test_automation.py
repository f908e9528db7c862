"""Retraining launch paths: automation, the weekly schedule and a manual materialization.

Each path must refuse to start training while the latest result of an upstream check is a
failure. Upstream materializations and check results are recorded as runless events on a
temporary instance, so nothing trains here: the tests are about the launch decision.
"""

import uuid

import dagster as dg
import pytest
from dagster._core.definitions.asset_checks.asset_check_evaluation import (
    AssetCheckEvaluationTargetMaterializationData,
)
from dagster._core.events import DagsterEvent, DagsterEventType

from assets.partitions import DATA_DROP
from assets.training import dp_lora_adapter
from pipelines.automation import AUTOMATION_SENSOR, FOLLOWERS, TRAINING_INPUT
from pipelines.definitions import build_definitions, build_resources, upstream_checks
from pipelines.steps.config import load_config

DROP = "drop.jsonl"
PER_DROP = {"raw_corpus", "raw_quarantine", "scrubbed_corpus", "curated_corpus"}
UPSTREAM = ["raw_corpus", "raw_quarantine", "scrubbed_corpus", "curated_corpus", "base_model"]
FAILING = "scrubbed_corpus:no_residual_pii"


@pytest.fixture(scope="module")
def cfg(tmp_path_factory):
    root = tmp_path_factory.mktemp("automation")
    (root / "landing").mkdir()
    (root / "landing" / "drop.jsonl").write_text('{"id": "1", "text": "hello"}\n')
    return load_config("quick").model_copy(update={"data_root": str(root)})


@pytest.fixture(scope="module")
def defs(cfg):
    return build_definitions(cfg)


@pytest.fixture
def instance(tmp_path):
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        instance.add_dynamic_partitions(DATA_DROP, [DROP])
        yield instance


def materialize_upstream(instance, *keys: str) -> None:
    for key in keys:
        partition = DROP if key in PER_DROP else None
        instance.report_runless_asset_event(dg.AssetMaterialization(key, partition=partition))


def report_checks(instance, *, failing: str | None = None) -> None:
    for item in upstream_checks("dp_lora_adapter"):
        asset, name = item.rsplit(":", 1)
        partition = DROP if asset in PER_DROP else None
        evaluation = dg.AssetCheckEvaluation(
            asset_key=dg.AssetKey(asset),
            check_name=name,
            passed=item != failing,
            partition=partition,
            target_materialization_data=latest_materialization(instance, asset, partition),
        )
        # each report as its own run, as a re-run stage would record it (runless results on a
        # partition share one key in the event log)
        instance.report_dagster_event(
            DagsterEvent(
                event_type_value=DagsterEventType.ASSET_CHECK_EVALUATION.value,
                job_name="checks",
                event_specific_data=evaluation,
            ),
            run_id=uuid.uuid4().hex,
        )


def latest_materialization(instance, asset: str, partition: str | None):
    """What a check run after a materialization targets: a per-drop gate only counts a result
    on the drop's latest materialization."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(
            asset_key=dg.AssetKey(asset), asset_partitions=[partition] if partition else None
        ),
        limit=1,
    ).records
    if not records:
        return None
    return AssetCheckEvaluationTargetMaterializationData(
        storage_id=records[0].storage_id,
        run_id=records[0].run_id,
        timestamp=records[0].timestamp,
    )


def tick(defs, instance, cursor=None):
    return dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=cursor)


def requested(result) -> set[str]:
    return {r.key.to_user_string() for r in result.results if r.true_subset.size}


def test_the_schedule_and_the_automation_sensor_are_stopped_by_default(defs):
    assert defs.get_schedule_def("weekly_retraining").default_status.name == "STOPPED"
    sensor = defs.get_sensor_def(AUTOMATION_SENSOR)
    assert sensor.default_status.name == "STOPPED"
    targeted = sensor.asset_selection.resolve(defs.resolve_asset_graph())
    assert targeted == {TRAINING_INPUT, *FOLLOWERS}


def test_when_new_curated_data_arrives_and_every_check_passed_then_training_runs_once(
    defs, instance
):
    first = tick(defs, instance)
    assert first.total_requested == 0  # nothing materialized yet
    materialize_upstream(instance, *UPSTREAM)
    report_checks(instance)
    second = tick(defs, instance, first.cursor)
    # the joined drops, training and its followers are requested together: one run, never
    # registration alone
    assert requested(second) == {
        "training_corpus",
        "dp_lora_adapter",
        "privacy_audit",
        "registered_model",
        "compliance_report",
    }
    third = tick(defs, instance, second.cursor)
    assert third.total_requested == 0  # no new accepted data since


def test_when_data_arrives_but_an_upstream_check_last_failed_then_automation_holds_training(
    defs, instance
):
    first = tick(defs, instance)
    materialize_upstream(instance, *UPSTREAM)
    report_checks(instance, failing=FAILING)
    held = tick(defs, instance, first.cursor)
    assert held.total_requested == 0
    # a check that never ran holds training too: automation launches training alone
    fresh = tick(defs, instance, held.cursor)
    assert fresh.total_requested == 0
    # once the steward re-ran the stage and the check passes, the pending data is trained on
    report_checks(instance)
    released = tick(defs, instance, fresh.cursor)
    assert {"training_corpus", "dp_lora_adapter"} <= requested(released)


def test_when_only_upstream_checks_ran_and_no_new_data_arrived_then_nothing_is_requested(
    defs, instance
):
    first = tick(defs, instance)
    materialize_upstream(instance, "raw_corpus", "scrubbed_corpus", "base_model")
    report_checks(instance)
    assert tick(defs, instance, first.cursor).total_requested == 0  # curated is missing


def test_when_an_upstream_check_last_failed_then_the_schedule_skips_and_names_it(
    defs, instance, cfg
):
    schedule = defs.get_schedule_def("weekly_retraining")
    resources = build_resources(cfg)
    with dg.build_schedule_context(instance=instance, resources=resources) as context:
        report_checks(instance, failing=FAILING)
        skipped = schedule.evaluate_tick(context)
        assert skipped.run_requests == []
        assert f"{FAILING} (drops: {DROP})" in skipped.skip_message
        report_checks(instance)
        [request] = schedule.evaluate_tick(context).run_requests
    assert request.tags["sovtune/launched_by"] == "schedule"
    assert len(request.tags["sovtune/snapshot_sha256"]) == 64
    assert request.tags["sovtune/drops"] == "1"


def test_when_no_check_ever_ran_then_the_schedule_runs_the_whole_job(defs, instance, cfg):
    # the run executes every check before training; training's own guard reads their results
    schedule = defs.get_schedule_def("weekly_retraining")
    with dg.build_schedule_context(instance=instance, resources=build_resources(cfg)) as context:
        [request] = schedule.evaluate_tick(context).run_requests
    assert request.asset_selection is None  # the schedule's job: every asset


def test_when_an_upstream_check_last_failed_then_a_manual_training_is_refused(instance, cfg):
    report_checks(instance, failing=FAILING)
    resources = build_resources(cfg)
    with (
        dg.build_asset_context(instance=instance) as context,
        pytest.raises(dg.Failure, match="refusing to train") as refused,
    ):
        dp_lora_adapter(
            context,
            training_corpus={"path": "never-read.parquet"},
            base_model={"path": "never-loaded"},
            storage=resources["storage"],
            trainer=resources["trainer"],
        )
    assert FAILING in str(refused.value)
