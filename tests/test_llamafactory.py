"""LLaMA-Factory dataset folders in (through dataset_info.json) and out (export), round-tripped.

The fixture under tests/fixtures/llamafactory is a tiny `data/` folder of each format this
reader supports (alpaca with mapped columns, system, tools and history; sharegpt with tool turns;
the OpenAI form through tags; a pre-training text set) and of each kind it refuses. The demo
datasets LLaMA-Factory ships (../shared/eval/clean_sft) are read too, when present.
"""

import json
import shutil
from collections import Counter
from pathlib import Path

import pytest

from pipelines.steps.ingest.drops import drop_files, scan_landing
from pipelines.steps.ingest.landing import REASONS, ingest_files, ingest_landing
from pipelines.steps.ingest.llamafactory import (
    DATASET_INFO,
    MANIFEST,
    export_dataset,
    export_element,
)
from pipelines.steps.records import Message, Record

FIXTURE = Path(__file__).parent / "fixtures" / "llamafactory"
CLEAN_SFT = Path(__file__).resolve().parents[2] / "shared" / "eval" / "clean_sft"
# the entries of LLaMA-Factory's own data/dataset_info.json for its demo files
DEMO_INFO = {
    "identity": {"file_name": "identity.json"},
    "alpaca_en_demo": {"file_name": "alpaca_en_demo.json"},
    "alpaca_zh_demo": {"file_name": "alpaca_zh_demo.json"},
    "glaive_toolcall_en_demo": {
        "file_name": "glaive_toolcall_en_demo.json",
        "formatting": "sharegpt",
        "columns": {"messages": "conversations", "tools": "tools"},
    },
    "glaive_toolcall_zh_demo": {
        "file_name": "glaive_toolcall_zh_demo.json",
        "formatting": "sharegpt",
        "columns": {"messages": "conversations", "tools": "tools"},
    },
}


def _ingest(landing: Path):
    return ingest_landing(landing, languages=["en", "zh"], max_record_chars=20_000)


@pytest.fixture
def fixture_landing(tmp_path: Path) -> Path:
    landing = tmp_path / "landing"
    shutil.copytree(FIXTURE, landing / "lf")
    return landing


def _conversations(records: list[Record]) -> dict[str, list[tuple[str, str, str]]]:
    """Roles, contents and LLaMA-Factory column roles (a turn's tag, not its index: a system
    turn read from the conversation is exported in the system column)."""
    return {
        r.id: [(m.role, m.content, m.field.split("].")[-1]) for m in r.messages] for r in records
    }


def test_when_a_dataset_folder_is_dropped_then_every_record_and_entry_is_accounted_for(
    fixture_landing,
):
    result = _ingest(fixture_landing)
    assert result.records_in == len(result.accepted) + len(result.quarantined)
    assert result.physical_lines == result.lines_accounted
    assert all(q.reason in REASONS for q in result.quarantined)
    by_file = Counter((q.source_file, q.reason) for q in result.quarantined)
    assert by_file == {
        ("lf/qa_alpaca.json", "empty_text"): 1,  # a blank answer
        ("lf/qa_alpaca.json", "not_an_object"): 1,  # a string element
        ("lf/support_sharegpt.jsonl", "bad_field_type"): 2,  # human twice; an odd turn count
        ("lf/prefs.json", "unsupported_dataset"): 1,  # a preference dataset
        ("lf/dataset_info.json", "unsupported_dataset"): 1,  # hub_only: offline
        ("lf/dataset_info.json", "bad_dataset_info"): 1,  # outside: ../escape.json
        ("lf/dataset_info.json", "unreadable_file"): 1,  # missing: not in the folder
        ("lf/README.md", "unreferenced_file"): 1,
    }
    details = " ".join(q.detail for q in result.quarantined)
    for name in ("'hub_only'", "'outside'", "'missing'", "'prefs'"):
        assert name in details  # the steward is told which entry to fix
    assert Counter(r.format for r in result.accepted) == {"alpaca": 2, "sharegpt": 2, "text": 1}


def test_when_an_alpaca_entry_maps_its_columns_then_system_tools_and_history_are_messages(
    fixture_landing,
):
    records = {
        r.source_line: r for r in _ingest(fixture_landing).accepted if "alpaca" in r.source_file
    }
    full = records[1]
    assert [(m.role, m.field) for m in full.messages] == [
        ("system", "system"),
        ("system", "tools"),
        ("user", "history[0][0]"),
        ("assistant", "history[0][1]"),
        ("user", "instruction"),
        ("user", "input"),
        ("assistant", "output"),
    ]
    assert "maria.keller@example.org" in full.messages[0].content
    assert "oncall.lead@example.net" in json.loads(full.messages[1].content)[0]["description"]
    assert [m.field for m in records[2].messages] == ["instruction", "output"]


def test_when_a_sharegpt_entry_has_tool_turns_then_each_turn_keeps_its_tag(fixture_landing):
    accepted = _ingest(fixture_landing).accepted
    [booking] = [r for r in accepted if r.source_file == "lf/support_sharegpt.jsonl"]
    assert [(m.role, m.field) for m in booking.messages] == [
        ("system", "system"),
        ("system", "tools"),
        ("user", "conversations[0].human"),
        ("assistant", "conversations[1].function_call"),
        ("user", "conversations[2].observation"),
        ("assistant", "conversations[3].gpt"),
    ]
    [chat] = [r for r in accepted if r.source_file == "lf/chat_openai/part-1.jsonl"]
    # the OpenAI form: a system turn first is the system prompt (tags map role/content)
    assert [(m.role, m.field) for m in chat.messages][:2] == [
        ("system", "system"),
        ("user", "conversations[1].human"),
    ]


def test_when_the_fixture_is_scrubbed_then_no_value_of_any_turn_system_or_tools_remains(
    fixture_landing,
):
    from pipelines.steps.config import PIIConfig
    from pipelines.steps.privacy.pii import build_analyzer, scrub_records

    accepted = _ingest(fixture_landing).accepted
    cfg = PIIConfig()
    scrubbed = scrub_records(accepted, build_analyzer(cfg), cfg, key=b"k" * 32).records
    text = "\n".join(m.content for r in scrubbed for m in r.messages)
    for value in (
        "maria.keller@example.org",  # alpaca system column
        "oncall.lead@example.net",  # alpaca tools column (a JSON list)
        "facilities.team@example.com",  # sharegpt tools column
        "212-555-0187",  # an observation turn
    ):
        assert value in "\n".join(m.content for r in accepted for m in r.messages)
        assert value not in text


def test_when_the_fixture_is_exported_and_read_back_then_the_conversations_are_the_same(
    fixture_landing, tmp_path
):
    first = _ingest(fixture_landing).accepted
    out = tmp_path / "back" / "landing" / "export"
    result = export_dataset(first, out, corpus_sha256="abc")
    assert result.datasets == {"sovtune_alpaca": 2, "sovtune_sharegpt": 2, "sovtune_text": 1}
    assert result.not_exported == []
    info = json.loads((out / DATASET_INFO).read_text())
    assert info["sovtune_sharegpt"]["columns"] == {
        "messages": "conversations",
        "system": "system",
        "tools": "tools",
    }
    assert json.loads((out / MANIFEST).read_text())["corpus_sha256"] == "abc"
    again = _ingest(tmp_path / "back" / "landing")
    assert again.quarantined == []
    assert _conversations(again.accepted) == _conversations(first)


def test_when_a_record_cannot_alternate_then_it_is_listed_as_not_exported(tmp_path):
    messages = (Message("user", "one", "messages[0].content"), Message("user", "two", "x"))
    record = Record("r1", "a.jsonl", 1, "chat", (*messages, Message("assistant", "ok", "y")))
    with pytest.raises(ValueError, match="turns_not_alternating"):
        export_element(record)
    result = export_dataset([record], tmp_path / "out")
    assert result.not_exported == [{"id": "r1", "reason": "turns_not_alternating"}]
    manifest = json.loads((tmp_path / "out" / MANIFEST).read_text())
    assert manifest["records_in"] == 1
    assert manifest["not_exported_by_reason"] == {"turns_not_alternating": 1}


def test_when_dataset_info_is_not_json_then_every_file_of_the_folder_is_refused(fixture_landing):
    (fixture_landing / "lf" / DATASET_INFO).write_text("{not json", encoding="utf-8")
    result = _ingest(fixture_landing)
    assert result.accepted == []
    assert {q.reason for q in result.quarantined} == {"bad_dataset_info"}
    files = {p.name for p in (fixture_landing / "lf").rglob("*") if p.is_file()}
    assert {Path(q.source_file).name for q in result.quarantined} == files


def test_when_the_folder_is_a_data_drop_then_its_drop_reads_it_through_dataset_info(
    fixture_landing,
):
    [drop] = scan_landing(fixture_landing)
    result = ingest_files(
        drop_files(drop.path),
        landing=fixture_landing,
        languages=["en", "zh"],
        max_record_chars=20_000,
    )
    assert len(result.accepted) == 5


@pytest.mark.skipif(not CLEAN_SFT.is_dir(), reason="../shared/eval/clean_sft is not present")
def test_when_the_llamafactory_demo_datasets_are_read_and_exported_then_they_round_trip(
    tmp_path,
):
    folder = tmp_path / "landing" / "data"
    folder.mkdir(parents=True)
    for name in DEMO_INFO:
        shutil.copy(CLEAN_SFT / f"{name}.json", folder / f"{name}.json")
    (folder / DATASET_INFO).write_text(json.dumps(DEMO_INFO), encoding="utf-8")
    first = _ingest(tmp_path / "landing")
    sizes = {n: len(json.loads((folder / f"{n}.json").read_text())) for n in DEMO_INFO}
    assert first.records_in == sum(sizes.values())
    # only exact copies inside a file (as LLaMA-Factory ships them) and one record in a
    # script without a PII pack are quarantined; every tool-call conversation is read
    assert set(first.quarantine_counts()) <= {"duplicate_id", "unsupported_language"}
    assert first.quarantine_counts().get("unsupported_language", 0) <= 1
    tools = [r for r in first.accepted if any(m.field == "tools" for m in r.messages)]
    assert len(tools) > 300
    assert any(m.field.endswith("function_call") for r in tools for m in r.messages)

    export_dataset(first.accepted, tmp_path / "back" / "export")
    again = _ingest(tmp_path / "back")
    assert again.quarantined == []
    assert _conversations(again.accepted) == _conversations(first.accepted)


def test_when_a_json_file_holds_json_lines_then_each_line_is_a_record(tmp_path):
    folder = tmp_path / "landing" / "lf"
    folder.mkdir(parents=True)
    rows = [{"instruction": f"Name a colour, please ({i}).", "output": "Blue."} for i in range(3)]
    (folder / "data.json").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    (folder / DATASET_INFO).write_text(json.dumps({"d": {"file_name": "data.json"}}))
    result = _ingest(tmp_path / "landing")
    assert (len(result.accepted), result.quarantined) == (3, [])
    assert [r.source_line for r in result.accepted] == [1, 2, 3]


def test_when_a_dataset_file_is_a_symbolic_link_then_it_is_never_read(tmp_path):
    outside = tmp_path / "outside.json"
    outside.write_text(json.dumps([{"instruction": "Secret plans?", "output": "None."}]))
    folder = tmp_path / "landing" / "lf"
    folder.mkdir(parents=True)
    (folder / "data.json").symlink_to(outside)
    (folder / DATASET_INFO).write_text(json.dumps({"d": {"file_name": "data.json"}}))
    result = _ingest(tmp_path / "landing")
    assert result.accepted == []
    # named by file_name but resolving outside the folder: refused, and the link unread
    assert {q.reason for q in result.quarantined} == {"bad_dataset_info", "symlink_refused"}
    assert "Secret plans" not in " ".join(q.raw + q.detail for q in result.quarantined)
