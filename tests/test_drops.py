"""Data drops: the sensor registers each landing file or folder as a partition and requests a
run for it; each drop is processed on its own; training reads every accepted drop, with exact
copies and colliding ids across drops removed and counted."""

import json
import re
import shutil

import dagster as dg
import pandas as pd
import pytest

from assets.partitions import DATA_DROP
from pipelines.definitions import build_resources
from pipelines.drops import data_drops_sensor, register_drops
from pipelines.steps.ingest.drops import (
    CROSS_DROP_DUPLICATE_ID,
    CROSS_DROP_EXACT_DUPLICATE,
    WITHDRAWALS_LOG,
    DropError,
    drop_key,
    landing_salt,
    scan_landing,
    withdraw_drop,
)
from pipelines.steps.synthetic.corpus import CSV_FILE, JSONL_FILE, generate_corpus
from resources import CorpusStorage
from tests.pipeline_runs import check_evaluations, make_config, run_drops, run_release
from tests.tiny_model import make_tiny_model_dir


def tick(instance: dg.DagsterInstance, storage: CorpusStorage, cursor: str | None):
    """One sensor evaluation; applies its partition requests as the daemon would.

    The context is closed here, not whenever it is garbage-collected: closing it resets
    Dagster's defs-state context variable, and a late reset in another test's setup would
    restore a disposed instance's storage there."""
    with dg.build_sensor_context(
        instance=instance, cursor=cursor, resources={"storage": storage}
    ) as context:
        result = data_drops_sensor(context)
    if isinstance(result, dg.SensorResult):
        for request in result.dynamic_partitions_requests or []:
            if isinstance(request, dg.AddDynamicPartitionsRequest):
                instance.add_dynamic_partitions(DATA_DROP, list(request.partition_keys))
            else:
                for key in request.partition_keys:
                    instance.delete_dynamic_partition(DATA_DROP, key)
        return result, result.cursor
    return result, context.cursor


@pytest.fixture
def sensed(tmp_path):
    landing = tmp_path / "data" / "landing"
    landing.mkdir(parents=True)
    (landing / "tickets.jsonl").write_text('{"id": "a1", "text": "first drop"}\n')
    (landing / "exports").mkdir()
    (landing / "exports" / "hr.csv").write_text("id,text\nb1,second drop\n")
    (landing / ".upload.jsonl").write_text('{"id": "x", "text": "hidden: still being written"}\n')
    (landing / "late.jsonl.part").write_text('{"id": "y", "text": "a copy in progress"}\n')
    instance = dg.DagsterInstance.ephemeral(tempdir=str(tmp_path / "home"))
    storage = CorpusStorage(data_root=str(tmp_path / "data"))
    return landing, instance, storage


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("default", "default"),
        ("chat.jsonl", "chat.jsonl"),
        ("HR export 2026/07.csv", None),  # spaces and a slash are not kept
        ("../escape", None),
        ("Ärzte.jsonl", None),
    ],
)
def test_when_a_name_is_unsafe_then_its_key_is_sanitized_and_hash_suffixed(name, key):
    got = drop_key(name)
    assert got == key if key else (got != name and len(got) <= 64)
    assert all(c.isalnum() and c.isascii() or c in "._-" for c in got)
    assert not got.startswith(".")


@pytest.mark.parametrize(
    "name", ["536-90-4399", "John_Smith_4155550123", "jane.doe", "JaneDoe.jsonl", "4155550123.csv"]
)
def test_when_a_safe_name_looks_personal_then_its_key_is_a_keyed_hash(tmp_path, name):
    landing = tmp_path / "landing"
    (landing / name).mkdir(parents=True)
    (landing / name / "a.jsonl").write_text('{"text": "hello"}\n')
    [drop] = scan_landing(landing)
    assert re.fullmatch(r"drop-[0-9a-f]{12}", drop.key)
    assert drop.name == name  # the landing name stays on the raw side only
    for part in re.split(r"[._-]", name.removesuffix(".jsonl").removesuffix(".csv")):
        assert len(part) < 4 or part.lower() not in drop.key  # (2 hex digits match by chance)
    # keyed: the unsalted hash of the guessed name is not the key, and the salt is 0600
    assert drop.key != drop_key(name)
    salt = landing / ".sovtune-drop-key.salt"
    assert salt.stat().st_mode & 0o077 == 0
    assert [d.key for d in scan_landing(landing)] == [drop.key]  # stable across scans


def test_when_a_name_is_plain_then_the_steward_keeps_a_readable_key():
    for name in ("default", "exports", "tickets.jsonl", "hr_alpaca.csv", "batch-2026"):
        assert drop_key(name, b"s" * 32) == name


def test_when_two_names_map_to_one_key_then_the_scan_names_both(tmp_path):
    (tmp_path / "a b.jsonl").write_text("{}\n")
    (tmp_path / "a_b.jsonl").write_text("{}\n")
    assert drop_key("a b.jsonl") != drop_key("a_b.jsonl")  # the hash suffix keeps them apart
    long = "x" * 70
    (tmp_path / f"{long}1").write_text("{}\n")
    (tmp_path / f"{long}2").write_text("{}\n")
    assert len({d.key for d in scan_landing(tmp_path)}) == 4
    # a name shaped like another entry's hashed key is hashed in turn (whatever its digits: a
    # key with four or fewer once kept its own name and collided)
    (tmp_path / "c d").mkdir()
    (tmp_path / "c d" / "f.jsonl").write_text("{}\n")
    collide = drop_key("c d", landing_salt(tmp_path))
    (tmp_path / collide).write_text("{}\n")
    keys = [d.key for d in scan_landing(tmp_path)]
    assert len(set(keys)) == len(keys) == 6


def test_when_two_drops_land_then_the_sensor_registers_two_partitions_and_a_run_each(sensed):
    landing, instance, storage = sensed
    result, cursor = tick(instance, storage, None)
    assert isinstance(result, dg.SensorResult)
    [added] = result.dynamic_partitions_requests
    assert isinstance(added, dg.AddDynamicPartitionsRequest)
    assert sorted(added.partition_keys) == ["exports", "tickets.jsonl"]
    assert sorted(instance.get_dynamic_partitions(DATA_DROP)) == ["exports", "tickets.jsonl"]
    requests = {r.partition_key: r for r in result.run_requests}
    assert sorted(requests) == ["exports", "tickets.jsonl"]
    drops = {d.key: d for d in scan_landing(landing)}
    for key, request in requests.items():
        assert request.tags["sovtune/drop_sha256"] == drops[key].sha256
        assert request.tags["sovtune/drop_change"] == "new"
        assert drops[key].sha256[:16] in request.run_key
    assert json.loads(cursor) == {k: d.sha256 for k, d in drops.items()}


def test_when_the_sensor_runs_again_without_new_files_then_it_registers_nothing(sensed):
    _, instance, storage = sensed
    _, cursor = tick(instance, storage, None)
    again, _ = tick(instance, storage, cursor)
    assert isinstance(again, dg.SkipReason)
    assert len(instance.get_dynamic_partitions(DATA_DROP)) == 2


def test_when_a_drop_changes_then_its_partition_is_rerun_and_never_re_registered(sensed):
    landing, instance, storage = sensed
    _, cursor = tick(instance, storage, None)
    (landing / "exports" / "hr.csv").write_text("id,text\nb1,second drop, edited\n")
    result, cursor = tick(instance, storage, cursor)
    assert isinstance(result, dg.SensorResult)
    assert not result.dynamic_partitions_requests
    [request] = result.run_requests
    assert request.partition_key == "exports"
    assert request.tags["sovtune/drop_change"] == "changed"
    assert request.tags["sovtune/drop_sha256"] == scan_landing(landing)[0].sha256
    assert isinstance(tick(instance, storage, cursor)[0], dg.SkipReason)


def test_when_a_drop_leaves_the_landing_zone_then_its_partition_is_deleted(sensed):
    landing, instance, storage = sensed
    _, cursor = tick(instance, storage, None)
    (landing / "tickets.jsonl").unlink()
    result, _ = tick(instance, storage, cursor)
    [deleted] = result.dynamic_partitions_requests
    assert isinstance(deleted, dg.DeleteDynamicPartitionsRequest)
    assert list(deleted.partition_keys) == ["tickets.jsonl"]
    assert instance.get_dynamic_partitions(DATA_DROP) == ["exports"]
    assert result.run_requests == []


def test_when_a_drop_is_withdrawn_then_its_files_leave_every_zone_and_the_log_has_counts(
    sensed,
):
    landing, instance, storage = sensed
    _, cursor = tick(instance, storage, None)
    for zone in ("raw", "scrubbed", "curated"):  # what the drop's runs wrote
        for key in ("tickets.jsonl", "exports"):
            folder = storage.drop_dir(storage.root / zone, key)
            folder.mkdir(parents=True)
            (folder / "corpus.parquet").write_text("first drop")
    (landing / "tickets.jsonl").unlink()  # the owner withdraws the drop
    tick(instance, storage, cursor)
    for zone in ("raw", "scrubbed", "curated"):
        assert not storage.drop_dir(storage.root / zone, "tickets.jsonl").exists()
        assert storage.drop_dir(storage.root / zone, "exports").is_dir()
    [line] = (storage.root / WITHDRAWALS_LOG).read_text().splitlines()
    logged = json.loads(line)
    assert logged["drop"] == "tickets.jsonl"
    assert logged["files_removed"] == {"curated": 1, "raw": 1, "scrubbed": 1}
    assert "first drop" not in line


def test_when_drops_are_registered_in_process_then_a_withdrawn_one_leaves_every_zone(sensed):
    landing, instance, storage = sensed
    register_drops(instance, landing)
    folder = storage.drop_dir(storage.scrubbed, "tickets.jsonl")
    folder.mkdir(parents=True)
    (folder / "scrubbed_corpus.parquet").write_text("first drop")
    (landing / "tickets.jsonl").unlink()  # withdrawn between two `sovtune demo` runs
    register_drops(instance, landing)
    assert instance.get_dynamic_partitions(DATA_DROP) == ["exports"]
    assert not folder.exists()


def test_when_a_drop_is_withdrawn_then_its_records_leave_the_joined_corpora_too(tmp_path):
    from pipelines.steps.records import Message, Record, records_to_frame
    from pipelines.steps.storage import read_parquet, write_json, write_parquet

    def record(i: str, file: str) -> Record:
        return Record(i, file, 1, "text", (Message("user", f"text of {i}", "text"),), language="en")

    mine = [record("rec-1", "file-a.jsonl"), record("rec-2", "file-a.jsonl")]
    other = [record("rec-1", "file-b.jsonl"), record("rec-3", "file-b.jsonl")]  # rec-1 reused
    for zone, name in (("raw", "raw"), ("scrubbed", "scrubbed"), ("curated", "curated")):
        for key, records in (("gone", mine), ("kept", other)):
            folder = tmp_path / zone / "drops" / key
            folder.mkdir(parents=True)
            write_parquet(records_to_frame(records), folder / f"{name}_corpus.parquet")
        write_parquet(records_to_frame(mine + other), tmp_path / zone / f"{name}_corpus.parquet")
    cross = pd.DataFrame(
        [("gone", "rec-9", "x"), ("kept", "rec-8", "y")], columns=["drop", "id", "reason"]
    )
    write_parquet(cross, tmp_path / "curated" / "cross_drop_removed.parquet")
    write_json(
        {"drops": [{"drop": "gone"}, {"drop": "kept"}]},
        tmp_path / "curated" / "training_corpus.json",
    )
    pickles = tmp_path / "home" / "storage"
    for asset in ("raw_corpus", "curated_corpus"):
        (pickles / asset).mkdir(parents=True)
        (pickles / asset / "gone").write_bytes(b"pickled summary")
        (pickles / asset / "kept").write_bytes(b"pickled summary")

    withdraw_drop(tmp_path, "gone", pickles=pickles)

    for zone in ("raw", "scrubbed", "curated"):
        joined = read_parquet(tmp_path / zone / f"{zone}_corpus.parquet")
        assert sorted(zip(joined["id"], joined["source_file"], strict=True)) == [
            ("rec-1", "file-b.jsonl"),
            ("rec-3", "file-b.jsonl"),
        ]
    assert list(read_parquet(tmp_path / "curated" / "cross_drop_removed.parquet")["drop"]) == [
        "kept"
    ]
    summary = json.loads((tmp_path / "curated" / "training_corpus.json").read_text())
    assert summary["drops"] == [{"drop": "kept"}] and summary["stale"] is True
    assert summary["withdrawn_since_join"] == ["gone"]
    assert not (pickles / "raw_corpus" / "gone").exists()
    assert (pickles / "raw_corpus" / "kept").exists()
    [line] = (tmp_path / WITHDRAWALS_LOG).read_text().splitlines()
    logged = json.loads(line)
    assert logged["joined_records_removed"] == {
        "raw": 2,
        "scrubbed": 2,
        "curated": 2,
        "cross_drop_removed": 1,
        "training_summary": 1,
    }
    assert logged["rejoin_needed"] is True and logged["pickled_summaries_removed"] == 2
    assert "text of" not in line


def test_when_a_withdrawn_key_is_unsafe_then_nothing_is_deleted(tmp_path):
    (tmp_path / "raw" / "drops").mkdir(parents=True)
    with pytest.raises(DropError, match="not a safe folder name"):
        withdraw_drop(tmp_path, "../raw")
    assert (tmp_path / "raw" / "drops").is_dir()


@pytest.fixture(scope="module")
def two_drops(tmp_path_factory):
    """The synthetic corpus as two drops: a file, and a folder with the CSV and two planted
    cross-drop records (an exact copy of a ticket under a new id; a new text under a ticket's id).
    """
    root = tmp_path_factory.mktemp("drops")
    source = root / "generated"
    truth = generate_corpus(source, records=120, seed=3)
    landing = root / "data" / "landing"
    (landing / "exports").mkdir(parents=True)
    shutil.copy(source / JSONL_FILE, landing / JSONL_FILE)
    shutil.copy(source / CSV_FILE, landing / "exports" / CSV_FILE)
    special = set(truth.poisoned_ids) | {i for c in truth.canaries for i in c.record_ids}
    special |= {i for g in truth.near_duplicate_groups + truth.exact_duplicate_groups for i in g}
    tickets = []
    for line in (source / JSONL_FILE).read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            tickets.append(json.loads(line))
        except ValueError:
            continue  # the generator's malformed lines
    plain = [
        t for t in tickets if isinstance(t, dict) and "messages" in t and t.get("id") not in special
    ]
    copy = {**plain[0], "id": "planted-exact-copy"}
    reused = {"id": plain[1]["id"], "text": "Reminder: the garden volunteers meet on Thursday."}
    (landing / "exports" / "planted.jsonl").write_text(
        "\n".join(json.dumps(r, ensure_ascii=False) for r in (copy, reused)) + "\n",
        encoding="utf-8",
    )
    model_dir = make_tiny_model_dir(root / "tiny-src")
    cfg = make_config(root / "data", model_dir)
    resources = build_resources(cfg)
    instance = dg.DagsterInstance.ephemeral(tempdir=str(root / "home"))
    drops = run_drops(instance, resources)
    release = run_release(
        instance, resources, selection=["training_corpus", "base_model", "dp_lora_adapter"]
    )
    return {
        "root": root,
        "landing": landing,
        "instance": instance,
        "resources": resources,
        "drops": drops,
        "release": release,
    }


def test_when_two_drops_are_materialized_then_training_consumes_both(two_drops):
    drops, release = two_drops["drops"], two_drops["release"]
    assert sorted(drops) == ["exports", JSONL_FILE]
    assert all(r.success for r in drops.values())
    assert release.success
    raw = {key: r.output_for_node("raw_corpus") for key, r in drops.items()}
    curated = {key: r.output_for_node("curated_corpus") for key, r in drops.items()}
    for key in drops:  # each drop in its own folder, conserved on its own
        assert f"/drops/{key}/" in raw[key]["path"]
        assert raw[key]["records_in"] == raw[key]["accepted"] + raw[key]["quarantined"]
        assert curated[key]["records_in"] == curated[key]["kept"] + curated[key]["filtered"]
    corpus = release.output_for_node("training_corpus")
    assert [d["drop"] for d in corpus["drops"]] == ["exports", JSONL_FILE]
    assert {d["drop"] for d in corpus["drops"] if d["kept"] > 0} == set(drops)
    # the two planted records: one exact copy, one reused id, each removed once and counted
    assert corpus["curated"]["cross_drop_removed_by_reason"] == {
        CROSS_DROP_DUPLICATE_ID: 1,
        CROSS_DROP_EXACT_DUPLICATE: 1,
    }
    kept_per_drop = sum(c["kept"] for c in curated.values())
    assert corpus["curated"]["kept"] == kept_per_drop - 2
    total_in = sum(r["records_in"] for r in raw.values())
    assert corpus["raw"]["records_in"] == total_in
    assert total_in == (
        corpus["curated"]["kept"] + corpus["curated"]["filtered"] + corpus["raw"]["quarantined"]
    )
    assert {s["drop"] for s in corpus["raw"]["sources"]} == set(drops)
    adapter = release.output_for_node("dp_lora_adapter")
    # and the audit's canaries the pipeline planted (no canary list here), records of their own
    planted = corpus["canaries"]["planted"]
    assert adapter["n_train"] + adapter["n_heldout"] == corpus["curated"]["kept"] + planted
    assert adapter["drops"] == ["exports", JSONL_FILE]
    assert adapter["snapshot_sha256"] == corpus["snapshot_sha256"]
    checks = check_evaluations(*drops.values(), release)
    per_drop = {(c.check_name, c.partition) for c in checks if c.partition}
    assert ("no_residual_pii", "exports") in per_drop
    assert ("no_residual_pii", JSONL_FILE) in per_drop
    # the utility check may warn (WARN severity): a few steps of the tiny model learn little
    assert all(c.passed or c.check_name == "adapter_utility" for c in checks)


def test_when_a_drop_changed_after_screening_then_joining_is_refused(two_drops):
    landing = two_drops["landing"]
    planted = landing / "exports" / "planted.jsonl"
    before = planted.read_bytes()
    planted.write_bytes(before + b'{"id": "late", "text": "added after screening"}\n')
    try:
        result = run_release(
            two_drops["instance"], two_drops["resources"], selection=["training_corpus"]
        )
    finally:
        planted.write_bytes(before)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert "exports changed or left the landing zone" in str(failure.event_specific_data.error)


def test_when_a_drop_fails_its_gate_then_training_on_every_drop_is_refused(two_drops):
    instance = two_drops["instance"]
    instance.report_runless_asset_event(
        dg.AssetCheckEvaluation(
            asset_key=dg.AssetKey("scrubbed_corpus"),
            check_name="no_residual_pii",
            passed=False,
            partition="exports",
        )
    )
    result = run_release(instance, two_drops["resources"], selection=["training_corpus"])
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert "scrubbed_corpus:no_residual_pii (drops: exports)" in str(
        failure.event_specific_data.error
    )


def test_when_a_name_has_the_shape_of_a_hashed_key_then_it_is_hashed_whatever_its_digits():
    # 'drop-abcdefabcdef' has no digit, so `looks_personal` passes it; kept as its own key it
    # could take the key another entry's name hashes to and fail the scan for every drop
    for name in ("drop-abcdefabcdef", "drop-f28bbf9afb1e", "drop-123456789012"):
        key = drop_key(name, b"s" * 32)
        assert key != name and key.startswith("drop-")
    assert drop_key("drop-notahexkey") == "drop-notahexkey"
