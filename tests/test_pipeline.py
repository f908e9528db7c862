"""Whole-graph runs through Dagster on a temporary instance, with a tiny in-process model.

One module-scoped run materializes everything (the happy path: the bundled corpus as one data
drop, then the release part); further tests re-run parts of the graph on the same instance to
prove that a failing blocking check stops every downstream asset and registers no model,
within a run and across runs.
"""

from pathlib import Path

import dagster as dg
import pytest

from pipelines.definitions import build_resources
from pipelines.steps.config import PipelineConfig
from pipelines.steps.synthetic.corpus import generate_corpus, write_ground_truth
from scripts.pii_leak_scan import ZONES, planted_values, scan
from tests.pipeline_runs import (
    ASSETS,
    CHECKS,
    check_evaluations,
    make_config,
    run_all,
    run_drops,
    run_release,
    why_failed,
)
from tests.sockets import beyond_loopback, watch_sockets
from tests.tiny_model import make_tiny_model_dir

DOWNSTREAM_OF_AUDIT = {"privacy_audit", "registered_model", "compliance_report"}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("sovtune")
    model_dir = make_tiny_model_dir(root / "tiny-src")
    truth = generate_corpus(root / "data" / "landing" / "default", records=120, seed=3)
    write_ground_truth(truth, root / "data" / "raw" / "ground_truth.json")
    instance = dg.DagsterInstance.ephemeral(tempdir=str(root / "dagster_home"))
    cfg = make_config(root / "data", model_dir, controls=["non_private", "unscreened"])
    with watch_sockets() as sockets:
        drops, result = run_all(instance, cfg)
    return {
        "drops": drops,
        "root": root,
        "model_dir": model_dir,
        "instance": instance,
        "cfg": cfg,
        "result": result,
        "egress": beyond_loopback(sockets),
        "truth": truth,
    }


def materialized(result) -> set[str]:
    return {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}


def registered_versions(cfg: PipelineConfig) -> list:
    from mlflow import MlflowClient

    uri = build_resources(cfg)["registry"].resolved_uri
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    return client.search_model_versions(f"name='{cfg.registry.model_name}'")


def test_when_the_whole_graph_runs_then_a_model_version_and_a_report_exist(world):
    result = world["result"]
    assert list(world["drops"]) == ["default"]
    assert world["drops"]["default"].success, why_failed(world["drops"]["default"])
    assert result.success, why_failed(result)
    assert "compliance_report" in materialized(result)
    checks = check_evaluations(*world["drops"].values(), result)
    assert {c.partition for c in checks if c.asset_key.to_user_string() == "raw_corpus"} == {
        "default"
    }
    assert len(checks) >= 10
    # every check passed, but the utility check may warn: 3 steps of the tiny model learn little
    assert all(c.passed or c.severity == dg.AssetCheckSeverity.WARN for c in checks)
    assert {c.check_name for c in checks if not c.passed} <= {"adapter_utility"}
    versions = registered_versions(world["cfg"])
    assert len(versions) == 1
    tags = versions[0].tags
    assert float(tags["sovtune.epsilon"]) <= 8.0 * 1.05
    assert tags["sovtune.dagster_run_id"] == result.run_id
    assert len(tags["sovtune.fingerprint.curated_corpus"]) == 64
    assert tags["sovtune.check.scrubbed_corpus.no_residual_pii"] == "passed"
    assert tags["sovtune.check.privacy_audit.no_pii_extracted"] == "passed"
    assert 0.0 <= float(tags["sovtune.audit.mia_auc.loss"]) <= 1.0
    report = result.output_for_node("compliance_report")
    assert Path(report["html"]).is_file() and Path(report["json"]).is_file()


def test_when_every_gate_passed_then_the_version_is_approved_and_the_cli_finds_its_report(
    world, tmp_path
):
    import yaml
    from typer.testing import CliRunner

    from pipelines.cli import app

    [version] = registered_versions(world["cfg"])
    registry = build_resources(world["cfg"])["registry"]
    approved = registry.client.get_model_version_by_alias("sovtune-dp-lora", "approved")
    assert str(approved.version) == "1"
    profile = tmp_path / "profile.yaml"
    profile.write_text(yaml.safe_dump(world["cfg"].model_dump()))
    out = CliRunner().invoke(app, ["report", "sovtune-dp-lora:1", "--profile", str(profile)])
    assert out.exit_code == 0, out.output
    assert "approved" in out.output and "candidate" in out.output
    assert world["result"].output_for_node("compliance_report")["html"] in out.output


def test_when_the_registered_adapter_is_loaded_with_peft_then_it_is_the_trained_one(
    world, tmp_path
):
    from peft import PeftModel

    from pipelines.steps.records import frame_to_records
    from pipelines.steps.storage import read_parquet
    from pipelines.steps.training.dp_lora import heldout_loss, load_adapter_model
    from pipelines.steps.training.modelstore import load_base_model

    adapter = world["result"].output_for_node("dp_lora_adapter")
    base = world["result"].output_for_node("base_model")
    bundle = build_resources(world["cfg"])["registry"].download("1", tmp_path / "bundle")
    model, tokenizer = load_base_model(Path(base["path"]))
    model = PeftModel.from_pretrained(model, bundle / "adapter", is_trainable=False).eval()
    curated = world["result"].output_for_node("training_corpus")
    by_id = {r.id: r for r in frame_to_records(read_parquet(curated["path"]))}
    heldout = [by_id[i] for i in adapter["heldout_ids"]]
    loss = heldout_loss(model, tokenizer, heldout, max_seq_len=world["cfg"].training.max_seq_len)
    # the held-out loss of private records is not published (#17.1): compare with the adapter
    assert "heldout_loss_after" not in adapter and "losses" not in adapter
    trained, _ = load_adapter_model(
        base["path"], adapter["adapter_dir"], expected_sha256=adapter["adapter_sha256"]
    )
    max_seq_len = world["cfg"].training.max_seq_len
    assert loss == pytest.approx(heldout_loss(trained, tokenizer, heldout, max_seq_len=max_seq_len))


def test_when_controls_are_configured_then_they_are_audited_reported_and_never_kept(world):
    import json

    audit = world["result"].output_for_node("privacy_audit")
    controls = {c["name"]: c for c in audit["controls"]}
    assert set(controls) == {"non_private", "unscreened"}
    assert controls["non_private"]["epsilon"] == "no DP"
    assert 0 < controls["unscreened"]["epsilon"] <= 8.0 * 1.05
    # The unscreened control trains on the scrubbed corpus, before the screens filtered it.
    assert controls["unscreened"]["train_records"] >= controls["non_private"]["train_records"]
    for control in controls.values():
        assert "heldout_loss" not in control  # an un-noised statistic of private records
        assert 0.0 <= control["max_mia_auc"] <= 1.0
        assert control["pii_probes"] >= 0
    report = json.loads(
        Path(world["result"].output_for_node("compliance_report")["json"]).read_text()
    )
    assert [c["name"] for c in report["audit"]["controls"]] == ["non_private", "unscreened"]
    # the epsilon ledger and the screens' and stewards' counts are in the same report
    assert report["ledger"] and all(
        0 < row["epsilon_spent"] <= row["lifetime_epsilon"] for row in report["ledger"]
    )
    assert set(report["records"]["steward"]) >= {"approved", "rejected", "pending"}
    assert report["filtering"]["by_screen"]
    adapters = Path(world["cfg"].data_root) / "adapters"
    assert not [p for p in adapters.iterdir() if "control" in p.name]
    assert len(registered_versions(world["cfg"])) == 1


def test_when_the_whole_graph_runs_then_no_socket_reaches_beyond_loopback(world):
    assert world["result"].success
    assert world["egress"] == []


def test_when_records_are_counted_then_none_is_lost(world):
    corpus = world["result"].output_for_node("training_corpus")
    raw, curated = corpus["raw"], corpus["curated"]
    assert raw["records_in"] == raw["accepted"] + raw["quarantined"]
    assert raw["records_in"] == curated["kept"] + curated["filtered"] + raw["quarantined"]
    assert raw["quarantined"] >= len(world["truth"].malformed_lines)


def test_when_outputs_are_searched_then_no_planted_pii_value_or_canary_appears(world):
    data = world["root"] / "data"
    values = planted_values(data)
    assert len(values) > 100
    outside_raw = [data / zone for zone in ZONES] + [world["root"] / "dagster_home"]
    assert scan(outside_raw, values) == {}


def test_when_a_blocking_check_fails_then_nothing_downstream_runs_and_no_model_is_added(world):
    # an exposure bound of zero bits cannot be met: the audit gate must fail
    cfg = make_config(world["root"] / "data", world["model_dir"], max_exposure_bits=0.0)
    before = len(registered_versions(cfg))
    result = dg.materialize(
        [*ASSETS, *CHECKS],
        selection=sorted(DOWNSTREAM_OF_AUDIT),
        instance=world["instance"],
        resources=build_resources(cfg),
        raise_on_error=False,
    )
    assert not result.success
    assert materialized(result) == {"privacy_audit"}
    assert len(registered_versions(cfg)) == before


def test_when_registration_is_launched_alone_after_a_failed_gate_then_it_is_refused(world):
    # the previous test left the latest canary_exposure_bounded result failed
    result = dg.materialize(
        [*ASSETS, *CHECKS],
        selection=["registered_model"],
        instance=world["instance"],
        resources=build_resources(world["cfg"]),
        raise_on_error=False,
    )
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert "canary_exposure_bounded" in str(failure.event_specific_data.error)
    assert len(registered_versions(world["cfg"])) == 1


def test_when_the_landing_zone_holds_only_bad_lines_then_every_downstream_asset_is_skipped(
    tmp_path, world
):
    landing = tmp_path / "data" / "landing"
    landing.mkdir(parents=True)
    (landing / "bad.jsonl").write_bytes(b'{"id": 1, "text": \n\xff\xfe\n')
    cfg = make_config(tmp_path / "data", world["model_dir"])
    instance = dg.DagsterInstance.ephemeral(tempdir=str(tmp_path / "home"))
    resources = build_resources(cfg)
    [drop] = run_drops(instance, resources).values()
    assert not drop.success
    assert materialized(drop) <= {"raw_corpus", "raw_quarantine"}
    result = run_release(instance, resources)
    assert not result.success
    assert materialized(result) <= {"base_model"}
    assert not (tmp_path / "data" / "mlflow").exists() or registered_versions(cfg) == []


def test_when_code_resolves_a_public_host_then_the_egress_hook_records_it():
    # control for the zero-egress test above: the hook must see a lookup when one happens
    import socket

    with watch_sockets() as events:
        try:
            socket.getaddrinfo("example.com", 443)
        except OSError:
            pass  # no network here; the audit event fires before the lookup
    assert beyond_loopback(events) == ["getaddrinfo example.com"]


def test_when_an_upstream_check_last_failed_then_a_manual_training_run_is_refused(world):
    # a steward's manual materialization of training alone, after the curated suite failed
    world["instance"].report_runless_asset_event(
        dg.AssetCheckEvaluation(
            asset_key=dg.AssetKey("curated_corpus"),
            check_name="curated_expectations",
            passed=False,
            partition="default",
        )
    )
    result = dg.materialize(
        [*ASSETS, *CHECKS],
        selection=["dp_lora_adapter"],
        instance=world["instance"],
        resources=build_resources(world["cfg"]),
        raise_on_error=False,
    )
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert "refusing to train" in str(failure.event_specific_data.error)
    assert "curated_corpus:curated_expectations (drops: default)" in str(
        failure.event_specific_data.error
    )
