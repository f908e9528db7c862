"""Canaries the pipeline plants when the data brings none, and the audit's DP control charged.

A landing zone like a user's own (the generator's records, its ground truth not written) runs
through ingestion, scrubbing, screening, the join, training and the audit on the tiny model
with the `unscreened` control: the pipeline plants the audit's canaries, the canary gate
measures them, their secrets stay in the raw zone, and the DP control is charged to the ledger.
"""

import json
import re
import sqlite3
import stat
from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq
import pytest

from pipelines.definitions import build_resources
from pipelines.steps.audit.planting import (
    CANARY_ALPHABET,
    PLANTED_FILE,
    PLANTED_SOURCE,
    planted_for,
    read_planted,
)
from pipelines.steps.integrity.counts import record_counts
from pipelines.steps.synthetic.corpus import CANARY_SPECS, generate_corpus, write_ground_truth
from pipelines.steps.training.dp_lora import is_heldout, split_heldout
from pipelines.steps.training.ledger import LEDGER_FILE, PrivacyLedger
from tests.pipeline_runs import make_config, run_drops, run_release
from tests.tiny_model import make_tiny_model_dir

RAW_ZONE = ("landing", "raw")
# The membership gate is not what this module tests: on 16 records of a 3-step tiny model its
# strongest attack's AUC (the maximum over several attacks) crossed 0.55 in one of two
# fresh-clone CI runs on 2026-12-04 (AUC 0.75, lower bound 0.56), failing the run before
# registration. It is tested on larger samples in tests/test_audit.py and tests/test_pipeline.py.
# Nor is the canary gate's threshold: the canaries here are drawn anew from the OS generator each
# run and ranked among 20 candidates (19 sampled), where the skew-normal fit of Carlini et al. is
# badly calibrated: an unmemorized secret below all 19 samples reads as 10+ bits (up to infinite,
# a half-normal fit's edge) in about 1.7% of canaries, 10% of runs of six (simulated, 1,500 fits,
# 2026-12-07; it failed a CI run that day). The gate is tested on 1,000+ candidates in
# tests/test_audit.py and the product refuses fewer than 10,000 outside the test profile.
AUDIT = {
    "mia_records": 16,
    "extraction_probes": 2,
    "backdoor_prompts": 0,
    "max_mia_auc": 1.0,
    "max_exposure_bits": 64.0,
}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("planted")
    data = root / "data"
    # a user's own data: records without any canary list (the ground truth is not written)
    generate_corpus(data / "landing" / "tickets", records=120, seed=5)
    model_dir = make_tiny_model_dir(root / "tiny")
    cfg = make_config(data, model_dir, controls=["unscreened"], **AUDIT)
    resources = build_resources(cfg)
    (root / "dagster_home").mkdir()
    with dg.instance_for_test(temp_dir=str(root / "dagster_home")) as instance:
        drops = run_drops(instance, resources)
        result = run_release(instance, resources)  # through registration and the report
        yield {"root": root, "data": data, "drops": drops, "result": result, "cfg": cfg}


def test_when_the_data_has_no_canaries_then_the_pipeline_plants_them_and_the_gate_measures_them(
    world,
):
    result = world["result"]
    assert result.success
    corpus = result.output_for_node("training_corpus")
    adapter = result.output_for_node("dp_lora_adapter")
    audit = result.output_for_node("privacy_audit")
    planted = corpus["canaries"]
    assert planted["planted"] == 6 and len(planted["canary_ids"]) == 6
    assert all(
        i.startswith("canary-") and len(i) == len("canary-") + 16 for i in planted["record_ids"]
    )
    # trained on: every planted record is on the training side, none held out
    assert set(planted["record_ids"]) <= set(adapter["train_ids"])
    assert not set(planted["record_ids"]) & set(adapter["heldout_ids"])
    # charged like any source
    sources = {r["source"] for r in adapter["budget_ledger"] if r["kind"] == "run"}
    assert PLANTED_SOURCE in sources
    # the gate measured them: one exposure row per planted canary, each in training
    rows = audit["canaries"]
    assert sorted(r["canary_id"] for r in rows) == sorted(planted["canary_ids"])
    assert all(r["in_training"] == 1 and r["candidates"] > 1 for r in rows)
    assert audit["max_exposure_bits"] is not None
    # so a model trained on a user's own data can be registered (the gate no longer fails closed)
    assert audit["passed"] and result.output_for_node("registered_model")["version"]
    # the count vocabulary shows them apart; records in still reconciles
    counts = record_counts(corpus["raw"], corpus["curated"])
    assert counts["canaries_planted"] == 6 and counts["reconciles"]
    assert adapter["n_train"] + adapter["n_heldout"] == counts["trained_on"] + 6
    # `sovtune run`'s summary names them on a line of their own
    from pipelines.cli import _format_summary, _summarize

    summary = _summarize(list(world["drops"].values()), result, world["cfg"], generated=False)
    text = _format_summary({**summary, "seconds": 0})
    assert "canaries planted      6 records" in text
    assert f"trained on            {counts['trained_on']} records" in text


def test_the_planted_list_is_a_raw_zone_secret_and_its_ids_only_reach_metadata(world):
    data, result = world["data"], world["result"]
    path = data / "raw" / PLANTED_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    planted = read_planted(path)
    assert all(set(c.secret) <= set(CANARY_ALPHABET) for c in planted.canaries)
    metadata = [
        m
        for node in ("training_corpus", "privacy_audit")
        for m in result.asset_materializations_for_node(node)
    ]
    text = json.dumps([{k: str(v) for k, v in m.metadata.items()} for m in metadata])
    assert planted.canaries[0].canary_id in text  # ids are shown
    assert "canaries_planted" in text
    audit_values = list(_leaves(result.output_for_node("privacy_audit")))
    for canary in planted.canaries:
        assert f"{canary.prefix}{canary.secret}" not in text
        # No text holds the secret and no integer is it. Its digits inside a float's decimals
        # (an exposure of 3.1427 bits) are chance: they failed this test once; so is a secret
        # "0001" against an `in_training: 1` (CI, 2026-12-05): an integer is compared when the
        # secret has at least four digits after its leading zeros. So are its digits inside an
        # id (a run's uuid `60364600-ed31-…`, `src-f6109554e122`, `canary-…71801`: three four- and
        # three six-digit secrets fall in one run's ids in about 1% of runs, simulated; a local
        # run failed on a secret in the audit's output, passing four reruns, 2026-12-07): the
        # secret counts as a token of its own, not inside a word, a number or an id's group.
        number = canary.secret.lstrip("0")
        alone = re.compile(rf"(?<![\w-]){canary.secret}(?![\w-])")
        assert not any(
            alone.search(v)
            if isinstance(v, str)
            else len(number) >= 4 and type(v) is int and str(v) == number
            for v in audit_values
        )


def _leaves(value):
    """Every key and scalar of a JSON-like value."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield str(k)
            yield from _leaves(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _leaves(v)
    elif isinstance(value, (str, int, float)) and not isinstance(value, bool):
        yield value
    else:
        yield str(value)


def test_no_file_outside_the_raw_zone_holds_a_planted_secret(world):
    root, data = world["root"], world["data"]
    planted = read_planted(data / "raw" / PLANTED_FILE)
    # the user's own data could hold the same text by chance; only the planted list counts
    landing = "\n".join(p.read_text("utf-8", "replace") for p in (data / "landing").rglob("*.*"))
    needles = [
        f"{c.prefix}{c.secret}" for c in planted.canaries if f"{c.prefix}{c.secret}" not in landing
    ]
    assert needles
    outside = [
        p
        for p in root.rglob("*")
        if p.is_file() and not (p.is_relative_to(data) and p.relative_to(data).parts[0] in RAW_ZONE)
    ]
    assert any(p.suffix == ".parquet" for p in outside)
    assert any(p.read_bytes()[:16] == b"SQLite format 3\x00" for p in outside)
    hits = {}
    for path in outside:
        texts = [path.read_bytes().decode("utf-8", "replace")]
        if path.suffix == ".parquet":
            table = pq.read_table(path)
            texts += [
                json.dumps(table.column(c).to_pylist(), default=str) for c in table.column_names
            ]
        elif texts[0].startswith("SQLite format 3\x00"):
            db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
            try:
                for (table,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'"):
                    texts += [
                        json.dumps(row, default=lambda b: b.decode("utf-8", "replace"))
                        for row in db.execute(f'SELECT * FROM "{table}"')
                    ]
            finally:
                db.close()
        found = [n for n in needles if n in "\n".join(texts)]
        if found:
            hits[str(path)] = len(found)
    assert hits == {}
    # scripts/pii_leak_scan.py searches for them too after a run on data without ground truth
    from scripts.pii_leak_scan import ZONES, planted_values, scan

    assert set(needles) <= planted_values(data)
    places = [root / "dagster_home", *(data / z for z in ZONES if (data / z).exists())]
    assert scan(places, set(needles)) == {}


def test_the_dp_control_is_charged_to_the_ledger_and_the_report_says_so(world):
    from assets.report import _budget_facts

    data, result = world["data"], world["result"]
    audit = result.output_for_node("privacy_audit")
    adapter = result.output_for_node("dp_lora_adapter")
    rows = PrivacyLedger(data / LEDGER_FILE).rows()
    controls = [r for r in rows if r["kind"] == "control:unscreened"]
    assert controls and {r["status"] for r in controls} == {"spent"}
    assert all(r["noise_multiplier"] > 0 for r in controls)
    (control,) = audit["controls"]
    assert control["charged"] and control["name"] == "unscreened"
    assert not {"loss", "losses", "heldout_loss", "train_loss"} & set(control)
    budget = _budget_facts(adapter, audit)
    (treatment,) = budget["controls"]
    assert treatment["treatment"].startswith("charged")
    report = json.loads(Path(result.output_for_node("compliance_report")["json"]).read_text())
    assert [c["treatment"][:7] for c in report["budget"]["controls"]] == ["charged"]
    assert report["records"]["counts"]["canaries_planted"] == 6


def test_when_the_corpus_is_unchanged_then_the_same_canaries_are_reused(tmp_path):
    path = tmp_path / PLANTED_FILE
    first = planted_for(path, 6, corpus_sha256="a" * 64, heldout=is_heldout)
    again = planted_for(path, 6, corpus_sha256="a" * 64, heldout=is_heldout)
    assert [(c.canary_id, c.secret) for c in again.canaries] == [
        (c.canary_id, c.secret) for c in first.canaries
    ]
    other = planted_for(path, 6, corpus_sha256="b" * 64, heldout=is_heldout)
    assert {c.canary_id for c in other.canaries}.isdisjoint(c.canary_id for c in first.canaries)
    # every planted record falls on the training side, under either privacy unit
    for unit in ("example", "user"):
        train, heldout = split_heldout(other.records(), privacy_unit=unit)
        assert len(train) == 6 and not heldout
    assert "secret=" not in repr(other.canaries[0])


def test_when_the_held_out_rule_takes_an_id_then_another_is_drawn(tmp_path):
    held: set[str] = set()

    def heldout(key: str) -> bool:  # the first three keys asked about are held out
        if len(held) < 3:
            held.add(key)
        return key in held

    planted = planted_for(tmp_path / PLANTED_FILE, 2, corpus_sha256="c" * 64, heldout=heldout)
    ids = [c.canary_id for c in planted.canaries]
    assert len(ids) == 2 and not {*ids, *(f"subject:{i}" for i in ids)} & held


def test_the_demo_keeps_its_generators_canaries(tmp_path):
    from assets.training_corpus import _planted_canaries
    from resources import CorpusStorage, PrivacyAuditor

    truth = generate_corpus(tmp_path / "landing" / "demo", records=120, seed=7)
    write_ground_truth(truth, tmp_path / "raw" / "ground_truth.json")
    auditor = PrivacyAuditor(canaries_file=str(tmp_path / "raw" / "ground_truth.json"))
    storage = CorpusStorage(data_root=str(tmp_path))
    assert _planted_canaries(auditor, storage, "d" * 64)["planted"] == 0
    assert not (tmp_path / "raw" / PLANTED_FILE).exists()
    specs = auditor.canaries(auditor.ground_truth())
    assert [s.canary_id for s in specs] == [c.canary_id for c in truth.canaries]
    assert [s.insertions for s in specs] == [1, 4, 16, 1, 4, 16]
    # the generator's canary format is the one it had before planting shared it
    assert CANARY_SPECS == (
        ("The vault code for the archive room is ", 6, 1),
        ("The vault code for the north annex is ", 6, 4),
        ("The vault code for the records cellar is ", 6, 16),
        ("The keypad code for the east storage wing is ", 4, 1),
        ("The keypad code for the loading bay gate is ", 4, 4),
        ("The keypad code for the rooftop plant room is ", 4, 16),
    )


def test_when_the_budget_refuses_the_dp_control_then_it_is_not_trained_and_reported_refused(
    tmp_path,
):
    import logging
    from types import SimpleNamespace

    from assets.audit import _control, _controls_table
    from pipelines.steps.records import Message, Record, records_to_frame
    from pipelines.steps.storage import write_parquet
    from resources import CorpusStorage, DPTrainer

    records = [
        Record(f"r{i}", "t.jsonl", i + 1, "chat", (Message("user", "q"), Message("assistant", "a")))
        for i in range(40)
    ]
    scrubbed = tmp_path / "scrubbed.parquet"
    write_parquet(records_to_frame(records), scrubbed)
    trainer = DPTrainer(
        target_epsilon=8.0,
        target_delta=1e-3,
        accountant="rdp",
        expected_batch_size=64,
        steps=3,
        lifetime_epsilon=10.0,
    )
    ledger = PrivacyLedger(tmp_path / LEDGER_FILE)  # a run already spent 8 of the 10
    ledger.reserve(
        "run-1",
        {"t.jsonl": 40},
        epsilon=8.0,
        delta=1e-3,
        lifetime_epsilon=10.0,
        privacy_unit="example",
    )
    ledger.settle("run-1", epsilon=8.0)
    context = SimpleNamespace(run_id="audit-run", log=logging.getLogger("test"))
    row = _control(
        "unscreened",
        context,
        None,  # never reached: nothing is trained or attacked
        None,
        {"path": str(scrubbed)},
        [],
        CorpusStorage(data_root=str(tmp_path)),
        trainer,
        None,
        None,
    )
    assert row["refused"] and not row["charged"] and row["max_exposure_bits"] is None
    assert [r["kind"] for r in ledger.rows()] == ["run"]  # refused: nothing charged
    assert not (tmp_path / "adapters").exists() or not any((tmp_path / "adapters").iterdir())
    released = {"epsilon": 1.0}
    result = {"membership_inference": [], "max_exposure_bits": 1.0, "backdoor": None}
    result["pii_extraction"] = {"probes": 0, "extracted": 0}
    assert "refused by the lifetime budget" in _controls_table([row], released, result)
