"""The data stages on Ray (`execution.engine: ray`, issue #21.2): same outputs as the local
engine, failing closed when the cluster is unreachable.

One local Ray cluster of 2 CPUs (module-scoped) serves every Ray test; the unreachable-cluster
tests run first, before this process is connected to it.
"""

import hashlib
import json
import re
import secrets
import socket
from pathlib import Path

import pytest

from pipelines.steps.config import ConfigError, CurationConfig, ExecutionConfig, load_config
from pipelines.steps.records import Message, Record, records_to_frame

pytest.importorskip("ray")

KEY_ENV = "SOVTUNE_RAY_TEST_KEY"
LOCAL_RAY = ExecutionConfig(engine="ray", address="local", workers=2, batch_size=16)
PERSON = "Wilhelmina Quackenbush"


def _closed_port_address() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"ray://127.0.0.1:{probe.getsockname()[1]}"


def _record(record_id: str, prompt: str, response: str = "Noted.") -> Record:
    messages = (Message("user", prompt), Message("assistant", response))
    return Record(record_id, "t.jsonl", 1, "sharegpt", messages, language="en")


def _corpus() -> list[Record]:
    """Chats with names, e-mails and phones (surrogates collide without the registry), copies
    and near copies (the screens' MinHash), and a long record for the scan budget."""
    first = ["Ana", "Bo", "Cy", "Di", "Ed", "Flo", "Gus", "Hal", "Ivy", "Jo", "Kai", "Lu"]
    records = []
    for i in range(40):
        name = f"{first[i % len(first)]} Moreland{i % 7}"
        records.append(
            _record(
                f"r{i:03d}",
                f"Please write to {name} at {name.split()[0].lower()}{i}@example.org or call "
                f"212-555-01{i % 100:02d} about order {1000 + i}.",
                f"I have written to {name}; the order ships on Monday {i % 5 + 1}.",
            )
        )
    template = (
        "Summarize the quarterly maintenance report for the northern depot and list the open "
        "work orders, the spare parts ordered, the costs so far and the staff on duty, week {}"
    )
    answer = "The depot report lists the open work orders, the spare parts and the costs."
    records += [_record(f"n{i}", template.format(i), answer) for i in range(6)]
    return records


def _sha(records: list[Record]) -> str:
    frame = records_to_frame(records)
    return hashlib.sha256(frame.to_json(orient="records").encode()).hexdigest()


@pytest.fixture()
def key(monkeypatch) -> str:
    monkeypatch.setenv(KEY_ENV, secrets.token_hex(32))
    return KEY_ENV


def test_when_the_profile_names_an_unknown_address_or_engine_then_loading_names_the_setting(
    tmp_path: Path,
) -> None:
    for execution, setting in (
        ({"engine": "ray", "address": "http://head:8265"}, "execution.address"),
        ({"engine": "spark"}, "execution.engine"),
        ({"engine": "ray", "workers": 0}, "execution.workers"),
    ):
        profile = tmp_path / "p.yaml"
        profile.write_text(json.dumps({"execution": execution}), encoding="utf-8")
        with pytest.raises(ConfigError, match=rf"p\.yaml\b.*: .*{re.escape(setting)}"):
            load_config(str(profile))
    assert load_config("default").execution.engine == "local"  # the default changes nothing


def test_the_kuberay_manifest_pins_the_locked_ray_and_keeps_telemetry_and_dashboard_off() -> None:
    import ray
    import yaml

    manifest = yaml.safe_load(
        (Path(__file__).resolve().parent.parent / "docs/deploy/raycluster.yaml").read_text()
    )
    assert (manifest["apiVersion"], manifest["kind"]) == ("ray.io/v1", "RayCluster")
    assert manifest["spec"]["rayVersion"] == ray.__version__  # the image's Ray is the driver's
    head = manifest["spec"]["headGroupSpec"]
    assert head["rayStartParams"]["include-dashboard"] == "false"
    groups = [head, *manifest["spec"]["workerGroupSpecs"]]
    containers = [c for group in groups for c in group["template"]["spec"]["containers"]]
    assert all({"name": "RAY_USAGE_STATS_ENABLED", "value": "0"} in c["env"] for c in containers)
    ports = {p["containerPort"] for p in head["template"]["spec"]["containers"][0]["ports"]}
    assert 10001 in ports  # the ray:// client port a profile's execution.address names


def test_when_the_ray_cluster_is_unreachable_then_the_scrub_asset_fails_naming_the_address(
    tmp_path: Path, key: str
) -> None:
    import dagster as dg

    from assets.scrubbed import scrubbed_corpus
    from pipelines.steps.execution.ray_cluster import RayUnavailable
    from pipelines.steps.storage import write_parquet
    from resources import CorpusStorage, DataEngine, PIIEngine

    storage = CorpusStorage(data_root=str(tmp_path / "data"))
    raw = storage.drop_dir(storage.raw, "d1") / "raw_corpus.parquet"
    write_parquet(records_to_frame([_record("a", f"Call {PERSON}.")]), raw)
    address = _closed_port_address()
    with pytest.raises(RayUnavailable, match=r"^execution\.address: ") as refused:
        scrubbed_corpus(
            context=dg.build_asset_context(partition_key="d1"),
            raw_corpus={"drop": "d1", "drop_sha256": "x", "path": str(raw)},
            storage=storage,
            pii=PIIEngine(pseudonym_key_env=key, key_file=str(tmp_path / "data/secrets/k")),
            execution=DataEngine(engine="ray", address=address),
        )
    assert address in str(refused.value) and PERSON not in str(refused.value)
    assert not (storage.drop_dir(storage.scrubbed, "d1") / "scrubbed_corpus.parquet").exists()


@pytest.fixture(scope="module")
def ray_cluster():
    import ray

    from pipelines.steps.execution.ray_cluster import connect

    connect(LOCAL_RAY)
    assert ray.cluster_resources()["CPU"] == 2
    yield
    ray.shutdown()


def test_when_scrubbed_on_ray_in_batches_then_the_output_hashes_equal_the_local_engine(
    ray_cluster, tmp_path: Path, key: str
) -> None:
    from collections import Counter

    from pipelines.steps.privacy.pii import ScrubResult
    from pipelines.steps.storage import batched
    from resources import DataEngine, PIIEngine

    records = _corpus()
    ray_engine = DataEngine(**LOCAL_RAY.model_dump())
    results = {}
    for name, engine in (("local", DataEngine()), ("ray", ray_engine)):
        pii = PIIEngine(pseudonym_key_env=key, key_file=str(tmp_path / name / "secrets" / "k"))
        if name == "local":
            results[name] = engine.scrub(pii, records)  # the whole drop at once
            continue
        # as the asset scrubs a drop: in batches (#21.1), here of 16 records
        parts = [result for _, result in engine.scrub_batches(pii, batched(records, 16))]
        results[name] = ScrubResult(
            records=[r for part in parts for r in part.records],
            entity_counts=dict(
                sorted(sum((Counter(p.entity_counts) for p in parts), Counter()).items())
            ),
            records_with_pii=sum(p.records_with_pii for p in parts),
        )
    local, ray = results["local"], results["ray"]
    assert local.records_with_pii >= 40 and local.entity_counts["PERSON"] >= 40  # it scrubbed
    assert _sha(ray.records) == _sha(local.records)
    assert (ray.entity_counts, ray.records_with_pii) == (
        local.entity_counts,
        local.records_with_pii,
    )
    assert all(PERSON not in r.text for r in ray.records)


def test_when_the_residual_rescan_runs_on_ray_then_its_counts_equal_the_local_ones(
    ray_cluster, tmp_path: Path, key: str
) -> None:
    # The `no_residual_pii` check's re-scan (every pack, stricter threshold) as the check runs
    # it under each engine: on raw records it finds what the scrub would replace, and a Chinese
    # id card number in an English record only the Chinese pack finds (every pack, not the
    # record's own); on scrubbed records whatever is left.
    from resources import DataEngine, PIIEngine

    raw = [
        *_corpus(),
        _record("cn1", "My resident id is 11010519491231002X, please update the file."),
    ]
    pii = PIIEngine(pseudonym_key_env=key, key_file=str(tmp_path / "secrets" / "k"))
    scrubbed = DataEngine().scrub(pii, raw).records
    local_engine, ray_engine = DataEngine(), DataEngine(**LOCAL_RAY.model_dump())
    for records in (raw, scrubbed):
        local = local_engine.residual(pii, records)
        assert ray_engine.residual(pii, records) == local
    raw_counts = local_engine.residual(pii, raw)
    assert raw_counts["PERSON"] >= 40 and raw_counts.get("CN_ID_CARD", 0) >= 1


def test_when_a_record_runs_past_the_budget_on_ray_then_it_is_quarantined_as_locally(
    ray_cluster, tmp_path: Path, key: str
) -> None:
    from pipelines.steps.privacy.pii import SCAN_TIMEOUT
    from resources import DataEngine, PIIEngine

    long_prose = "Please forward the signed contract to the regional office today. " * 300
    records = [_record("ok", f"Call {PERSON}."), _record("slow", f"{PERSON} " + long_prose)]
    outcomes = []
    for name, engine in (("local", DataEngine()), ("ray", DataEngine(**LOCAL_RAY.model_dump()))):
        pii = PIIEngine(
            pseudonym_key_env=key,
            key_file=str(tmp_path / name / "secrets" / "k"),
            scan_budget_seconds=0.25,
        )
        result = engine.scrub(pii, records)
        # records in (2) = passed on (1) + quarantined (1, as scan_timeout by the asset)
        outcomes.append(([r.id for r in result.records], result.timed_out, _sha(result.records)))
    assert outcomes[0] == outcomes[1]
    assert outcomes[1][:2] == (["ok"], ("slow",)) and SCAN_TIMEOUT == "scan_timeout"


def test_when_screened_on_ray_then_decisions_and_scores_equal_the_local_engine(
    ray_cluster, monkeypatch
) -> None:
    from pipelines.steps.execution import ray_screens
    from pipelines.steps.integrity import curate
    from pipelines.steps.integrity.packed import PackedRecords

    records = _corpus()
    cfg = CurationConfig()
    local = curate.curate_records(records, cfg)
    ran = []
    runner = ray_screens.ray_screen_runner(LOCAL_RAY)

    def recording_runner(execution):
        def run(candidates, cfg):
            found = runner(candidates, cfg)
            ran.extend(found)
            return found

        return run

    def not_here(*args, **kwargs):
        raise AssertionError("a screen ran in the driver")

    monkeypatch.setattr(ray_screens, "ray_screen_runner", recording_runner)
    # The driver's screens fail: the workers import the module unpatched, so equal results
    # below come from the Ray tasks.
    for name in ("screen_part", "_dedup_and_quality", "_backdoor_scores", "_inserted_phrases"):
        monkeypatch.setattr(curate, name, not_here)
    on_ray = ray_screens.curate_on_ray(records, cfg, None, LOCAL_RAY)
    assert sorted(ran) == sorted(curate.SCREEN_PARTS)
    assert local.near_duplicate_clusters  # the near copies were found
    assert curate.decision_lines(on_ray) == curate.decision_lines(local)
    assert on_ray.scores == local.scores
    assert on_ray.trigger_clusters == local.trigger_clusters
    assert [r.id for r in on_ray.kept] == [r.id for r in local.kept]
    # The drop's screening hands packed records (what `curated_corpus` reads): the same again.
    packed = ray_screens.curate_on_ray(PackedRecords(records), cfg, None, LOCAL_RAY)
    assert curate.decision_lines(packed) == curate.decision_lines(local)
    assert [r.id for r in packed.kept] == [r.id for r in local.kept]


def test_when_a_screen_fails_on_ray_then_no_record_is_decided_and_the_part_is_named(
    ray_cluster,
) -> None:
    from pipelines.steps.execution.ray_screens import RayScreenError, ray_screen_runner

    # A record whose prompt is no text (it packs, then fails the screens in their workers).
    broken = Record("x1", "t.jsonl", 1, "sharegpt", (Message("user", 12345),), language="en")
    run = ray_screen_runner(LOCAL_RAY)
    with pytest.raises(RayScreenError, match=r"screen \w+ failed on the Ray cluster at local") as e:
        run([*_corpus(), broken], CurationConfig())
    assert "12345" not in str(e.value)


def test_when_sovtune_screen_reads_a_ray_profile_then_its_decisions_equal_the_local_ones(
    ray_cluster, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from pipelines.cli import app

    src = tmp_path / "in.jsonl"
    rows = [
        {"id": r.id, "messages": [{"role": m.role, "content": m.content} for m in r.messages]}
        for r in _corpus()
    ]
    src.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    outputs = {}
    for name, execution in (
        ("local", {}),
        ("ray", {"execution": {"engine": "ray", "address": "local", "workers": 2}}),
        ("unreachable", {"execution": {"engine": "ray", "address": _closed_port_address()}}),
    ):
        profile = tmp_path / f"{name}.yaml"
        profile.write_text(json.dumps({"extends": "default", **execution}), encoding="utf-8")
        out = tmp_path / f"{name}.jsonl"
        result = CliRunner().invoke(
            app, ["screen", str(src), "--out", str(out), "--profile", str(profile)]
        )
        outputs[name] = (result.exit_code, out.read_text() if out.exists() else result.output)
    assert outputs["local"][0] == 0 and '"near_duplicate"' in outputs["local"][1]
    assert outputs["ray"] == outputs["local"]
    # This process is connected to the local cluster: another address is refused, named.
    assert outputs["unreachable"][0] == 2 and "execution.address" in outputs["unreachable"][1]


def test_when_a_sibling_phrase_waits_on_ray_then_the_driver_reads_it_as_locally(
    ray_cluster,
) -> None:
    # The inserted-phrase part runs in a worker; its pending siblings come back to the driver,
    # where the base model (a stand-in here: the test is about where it is asked) reads them.
    from pipelines.steps.execution import ray_screens
    from pipelines.steps.integrity import curate
    from tests.test_screens import _SIBLING_CFG, _WEAK, _model_says, _multi_trigger

    records = _multi_trigger(_WEAK["two prompts"], triggers=1)
    calls_here: list[str] = []
    calls_ray: list[str] = []

    local = curate.curate_records(
        records, _SIBLING_CFG, disruption=_model_says(lambda w: True, calls_here)
    )
    on_ray = ray_screens.curate_on_ray(
        records,
        _SIBLING_CFG,
        None,
        LOCAL_RAY,
        disruption=_model_says(lambda w: True, calls_ray),
    )

    assert calls_ray == calls_here and calls_here
    assert on_ray.siblings == local.siblings and local.siblings.confirmed >= 1
    assert curate.decision_lines(on_ray) == curate.decision_lines(local)
