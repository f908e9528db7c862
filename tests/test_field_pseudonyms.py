"""Ids, subjects, source labels and file names never leave the raw zone as they were dropped.

A landing writer can put personal data where the scrubber never looks: in a record's `id`,
`subject` or `source`, or in a file's name. Ingestion replaces each by a keyed pseudonym
(`pipelines/steps/privacy/identifiers.py`) and keeps the map in the raw zone. The test plants
e-mail addresses and names in every such field, runs the drop assets and the join on a tiny
corpus, charges the privacy ledger and renders the report's lineage and ledger as the release
does, then searches every file outside the raw zone (Parquet column by column, SQLite table by
table, JSON, text, Dagster's storage) and every log line for them.
"""

import json
import logging
import sqlite3
import stat
from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq
import pytest

from pipelines.definitions import build_resources
from pipelines.steps.ingest.drops import drop_key, landing_salt
from pipelines.steps.privacy.identifiers import (
    IDENTIFIER_MAP,
    IdentifierMap,
    candidate,
    pseudonymize_records,
)
from pipelines.steps.records import Message, Record
from tests.pipeline_runs import make_config, run_drops, run_release

EMAIL = "jane.doe@example.org"
NAME = "Jane Doe"
FILE_EMAIL = "li.wei.private@example.net"
SOURCE_EMAIL = "hr.mailbox.of.bob.smith@example.com"
QUARANTINED_EMAIL = "max.mustermann@example.de"
PLANTED = (EMAIL, NAME, FILE_EMAIL, SOURCE_EMAIL, QUARANTINED_EMAIL, "Bob Smith")
TEXTS = (
    "How do I reset the password of the shared printer on the third floor?",
    "Where can I find the travel expense form for the next quarter, please?",
    "The VPN client shows an authentication error every morning after the update.",
    "Which meeting room has the large screen and the video conference camera?",
    "Our team would like to order two new monitors and a docking station for the lab.",
)
RAW_ZONE = ("landing", "raw")


def _planted_drop(landing: Path) -> None:
    folder = landing / "tickets"  # a plain drop name: the partition key is the name itself
    folder.mkdir(parents=True)
    rows = [
        # planted: an e-mail in the id, a name and an e-mail in the subject
        {"id": f"cust-{EMAIL}", "subject": f"{NAME} <{EMAIL}>", "text": TEXTS[0]},
        {"id": f"cust-{EMAIL}-2", "subject": f"{NAME} <{EMAIL}>", "text": TEXTS[1]},
        # planted: an e-mail and a name in the free-form source label
        {"id": "t-3", "source": f"{SOURCE_EMAIL} (Bob Smith)", "text": TEXTS[2]},
        # planted: a quarantined line (text not a string) whose id is an e-mail
        {"id": f"q-{QUARANTINED_EMAIL}", "text": 42},
    ]
    lines = [json.dumps(r) for r in rows] + ["{not json"]  # planted: its id is `file:line`
    (folder / f"{FILE_EMAIL}.jsonl").write_text("\n".join(lines) + "\n")
    (folder / "plain.jsonl").write_text(json.dumps({"id": "t-4", "text": TEXTS[3]}) + "\n")
    # planted: a top-level drop named after a person: its partition key must not carry it
    (landing / f"Export of {NAME} ({EMAIL}).jsonl").write_text(
        json.dumps({"id": "t-5", "text": TEXTS[4]}) + "\n"
    )


def _strings_in_parquet(path: Path) -> list[str]:
    """Every value of every column, nested ones as JSON, plus the schema's metadata."""
    table = pq.read_table(path)
    values = [
        json.dumps(
            table.schema.metadata
            and {k.decode(): v.decode("utf-8", "replace") for k, v in table.schema.metadata.items()}
        )
    ]
    for column in table.column_names:
        values += [json.dumps(v, default=str) for v in table.column(column).to_pylist()]
    return values


def _strings_in_sqlite(path: Path) -> list[str]:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        tables = [t for (t,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return [
            json.dumps(row, default=lambda b: b.decode("utf-8", "replace"))
            for table in tables
            for row in db.execute(f'SELECT * FROM "{table}"')
        ]
    finally:
        db.close()


def _found(paths: list[Path], extra_text: str) -> dict[str, list[str]]:
    """File (or `log`) -> planted values found, case-insensitively, in any of its forms."""
    needles = [v.lower() for v in PLANTED]
    hits: dict[str, list[str]] = {}
    for path in paths:
        texts = [str(path), path.read_bytes().decode("utf-8", "replace")]
        if path.suffix == ".parquet":
            texts += _strings_in_parquet(path)
        elif path.read_bytes()[:16] == b"SQLite format 3\x00":
            texts += _strings_in_sqlite(path)
        blob = "\n".join(texts).lower()
        found = [n for n in needles if n in blob]
        if found:
            hits[str(path)] = found
    found = [n for n in needles if n in extra_text.lower()]
    if found:
        hits["log"] = found
    return hits


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("fields")
    data = root / "data"
    _planted_drop(data / "landing")
    cfg = make_config(data, root / "no-model")
    resources = build_resources(cfg)
    handler = _Capture()
    root_logger = logging.getLogger()
    level = root_logger.level
    # every library's records at every level (Presidio's DEBUG lines quote context words)
    root_logger.setLevel(logging.DEBUG)
    root_logger.addHandler(handler)
    # an instance on disk: its SQLite run and event log storage (metadata included), compute
    # logs and pickled outputs are files under dagster_home/, searched like the zones
    (root / "dagster_home").mkdir()
    with dg.instance_for_test(temp_dir=str(root / "dagster_home")) as instance:
        try:
            drops = run_drops(instance, resources)
            joined = run_release(instance, resources, selection=["training_corpus"])
            _charge_and_report(data, joined.output_for_node("training_corpus"))
        finally:
            root_logger.removeHandler(handler)
            root_logger.setLevel(level)
        yield {
            "root": root,
            "data": data,
            "drops": drops,
            "joined": joined,
            "resources": resources,
            "instance": instance,
            "log": "\n".join(handler.lines),
        }


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


def _charge_and_report(data: Path, training_corpus: dict) -> None:
    """What training and the release write from these records: the ledger and the report."""
    from assets.report import _ledger_by_source, _lineage_facts
    from pipelines.steps.records import frame_to_records
    from pipelines.steps.release.report import build_report, render_html
    from pipelines.steps.storage import read_parquet, write_json, write_text
    from pipelines.steps.training.ledger import LEDGER_FILE, PrivacyLedger, records_per_source

    records = frame_to_records(read_parquet(training_corpus["path"]))
    ledger = PrivacyLedger(data / LEDGER_FILE)
    keys = records_per_source(records)
    ledger.reserve(
        "run-1", keys, epsilon=1.0, delta=1e-5, lifetime_epsilon=8.0, privacy_unit="example"
    )
    rows = ledger.settle("run-1", epsilon=1.0)
    facts = {
        "lineage": _lineage_facts(
            training_corpus,
            training_corpus["raw"],
            {"fingerprints": {"curated_corpus": training_corpus["sha256"]}},
            {"name": "tiny", "sha256": "0" * 64},
        ),
        "ledger": _ledger_by_source({"budget_ledger": rows, "lifetime_epsilon": 8.0}),
    }
    folder = data / "reports" / "m" / "v1"
    write_json(facts, folder / "lineage.json")
    report = build_report({**_report_stub(), **facts})
    write_text(render_html(report), folder / "report.html")


def _report_stub() -> dict:
    from tests.test_report import _facts

    return _facts()


def test_when_fields_hold_pii_then_the_drop_and_the_join_still_run(world):
    assert all(result.success for result in world["drops"].values())
    assert world["joined"].success
    assert sorted(world["drops"]) == [
        drop_key(f"Export of {NAME} ({EMAIL}).jsonl", landing_salt(world["data"] / "landing")),
        "tickets",
    ]
    raw = world["drops"]["tickets"].output_for_node("raw_corpus")
    assert (raw["accepted"], raw["quarantined"]) == (4, 2)


def test_when_every_file_outside_the_raw_zone_is_searched_then_no_planted_value_is_found(world):
    data, root = world["data"], world["root"]
    outside = [
        p
        for p in sorted(data.rglob("*"))
        if p.is_file() and p.relative_to(data).parts[0] not in RAW_ZONE
    ]
    outside += [p for p in sorted((root / "dagster_home").rglob("*")) if p.is_file()]
    assert any(p.suffix == ".db" for p in outside)  # Dagster's event log, on disk
    assert any(p.suffix == ".parquet" for p in outside)
    assert any(p.name == "report.html" for p in outside)
    assert any(p.name.endswith(".sqlite") for p in outside)  # the privacy ledger
    assert world["log"]  # the capture saw the libraries' log lines (Presidio's DEBUG ones too)
    assert _found(outside, world["log"]) == {}


def test_when_dagster_metadata_is_read_then_it_names_pseudonyms_only(world):
    instance = world["instance"]
    text = ""
    for key in ("raw_corpus", "raw_quarantine", "scrubbed_corpus", "curated_corpus"):
        event = instance.get_latest_materialization_event(dg.AssetKey(key))
        text += json.dumps(
            {k: str(v.value) for k, v in event.asset_materialization.metadata.items()}
        )
    assert "rec-" in text  # the quarantine ids are listed, by pseudonym
    assert _found([], text) == {}


def test_when_the_raw_zone_is_searched_then_it_keeps_the_originals_and_resolves_them(world):
    data = world["data"]
    raw_files = [p for p in (data / "raw").rglob("*") if p.is_file()]
    assert set(_found(raw_files, "").get(str(data / "raw" / IDENTIFIER_MAP), [])) >= {
        v.lower() for v in (EMAIL, NAME, FILE_EMAIL, SOURCE_EMAIL, QUARANTINED_EMAIL)
    }
    key = world["resources"]["pii"].pseudonym_key()
    idmap = IdentifierMap(data / "raw" / IDENTIFIER_MAP, key)
    pseudonym = candidate("id", f"cust-{EMAIL}", key)
    assert pseudonym.startswith("rec-") and len(pseudonym) == len("rec-") + 12
    assert idmap.resolve(pseudonym) == ("id", f"cust-{EMAIL}")
    assert idmap.resolve(candidate("source_file", f"tickets/{FILE_EMAIL}.jsonl", key)) == (
        "source_file",
        f"tickets/{FILE_EMAIL}.jsonl",
    )
    assert stat.S_IMODE((data / "raw" / IDENTIFIER_MAP).stat().st_mode) == 0o600


def test_when_records_are_pseudonymized_then_subjects_group_and_files_keep_their_format(world):
    from pipelines.steps.storage import read_parquet

    curated = read_parquet(world["joined"].output_for_node("training_corpus")["path"])
    subjects = curated["subject"].dropna()
    assert len(subjects) == 2 and subjects.nunique() == 1  # one person, one pseudonym
    assert subjects.iloc[0].startswith("subj-")
    assert all(f.startswith("file-") and f.endswith(".jsonl") for f in curated["source_file"])
    assert all(i.startswith("rec-") for i in curated["id"])


def test_when_the_same_values_come_again_then_they_get_the_same_pseudonyms(tmp_path):
    key = bytes(range(32))
    record = Record(f"cust-{EMAIL}", f"{FILE_EMAIL}.csv", 1, "text", (Message("user", "hi"),))
    first = pseudonymize_records([record], IdentifierMap(tmp_path / "a.sqlite", key))
    again = pseudonymize_records([record], IdentifierMap(tmp_path / "a.sqlite", key))
    fresh = pseudonymize_records([record], IdentifierMap(tmp_path / "b.sqlite", key))
    other_key = pseudonymize_records([record], IdentifierMap(tmp_path / "c.sqlite", key[::-1]))
    assert first == again == fresh
    assert first[0].id != other_key[0].id
    assert first[0].source_file.endswith(".csv") and FILE_EMAIL not in first[0].source_file


def test_when_two_values_share_the_first_digits_then_the_second_gets_a_longer_pseudonym(
    tmp_path,
):
    key = bytes(range(32))
    idmap = IdentifierMap(tmp_path / "ids.sqlite", key)
    taken = candidate("id", "b", key)
    with sqlite3.connect(idmap.path) as db:  # planted: another value already holds b's digits
        db.execute(
            "INSERT INTO identifiers VALUES (?, ?, 'id', 'a', 'd', 't')", (idmap.key_id, taken)
        )
    assigned = idmap.pseudonyms("id", ["b"])["b"]
    assert assigned != taken and assigned == candidate("id", "b", key, 16)
    assert idmap.pseudonyms("id", ["b"])["b"] == assigned  # remembered, stable
    assert idmap.resolve(assigned) == ("id", "b")


def test_when_a_steward_resolves_a_pseudonym_then_the_original_is_printed_and_logged(
    world, tmp_path
):
    import yaml
    from typer.testing import CliRunner

    from pipelines.cli import app
    from pipelines.steps.config import PipelineConfig

    cfg = make_config(world["data"], world["root"] / "no-model")
    profile = tmp_path / "profile.yaml"
    profile.write_text(yaml.safe_dump(PipelineConfig.model_validate(cfg).model_dump()))
    key = world["resources"]["pii"].pseudonym_key()
    subject = candidate("subject", f"{NAME} <{EMAIL}>", key)
    out = CliRunner().invoke(app, ["ids", "resolve", subject, "--profile", str(profile)])
    assert out.exit_code == 0, out.output
    assert out.output.strip() == f"subject\t{NAME} <{EMAIL}>"
    missing = CliRunner().invoke(
        app, ["ids", "resolve", "rec-000000000000", "--profile", str(profile)]
    )
    assert missing.exit_code == 2
    log = (world["data"] / "secrets" / "vault_access.log").read_text()
    assert [json.loads(line)["outcome"] for line in log.splitlines()][-2:] == ["found", "no_match"]
    assert EMAIL not in log and subject not in log


def test_when_the_audit_reads_the_ground_truth_then_canary_ids_map_to_their_pseudonyms(world):
    from types import SimpleNamespace

    from assets.audit import _canary_records
    from resources import CorpusStorage

    storage = CorpusStorage(data_root=str(world["data"]))
    pii = world["resources"]["pii"]
    key = pii.pseudonym_key()
    truth = SimpleNamespace(
        canaries=[SimpleNamespace(canary_id="c0", record_ids=(f"cust-{EMAIL}", "never-seen"))]
    )
    # an id ingestion never saw has no pseudonym: it is not counted as trained on
    assert _canary_records(truth, storage, pii) == {"c0": [candidate("id", f"cust-{EMAIL}", key)]}
    assert _canary_records(None, storage, pii) == {}


def test_when_a_drop_is_withdrawn_then_only_the_values_no_other_drop_uses_leave_the_map(
    tmp_path,
):
    from pipelines.steps.ingest.drops import WITHDRAWALS_LOG, withdraw_drop

    key = bytes(range(32))
    idmap = IdentifierMap(tmp_path / "raw" / IDENTIFIER_MAP, key)
    idmap.pseudonyms("subject", [NAME, "Shared Person"], drop="a")
    idmap.pseudonyms("subject", ["Shared Person"], drop="b")
    removed = withdraw_drop(tmp_path, "a")
    assert removed == {}  # no zone folder existed; the map is not a drop folder
    assert idmap.known("subject", [NAME, "Shared Person"]) == {
        "Shared Person": candidate("subject", "Shared Person", key)
    }
    [line] = (tmp_path / WITHDRAWALS_LOG).read_text().splitlines()
    assert json.loads(line)["identifiers_forgotten"] == 1
    withdraw_drop(tmp_path, "b")
    assert idmap.known("subject", ["Shared Person"]) == {}
