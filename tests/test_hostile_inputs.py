"""Issue #16: the landing zone under attack. Each test plants one hostile input and names it."""

import io
import json
import os
import re
import socket

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines.steps.config import IngestLimits
from pipelines.steps.ingest.drops import drop_files, drop_fingerprint, scan_landing
from pipelines.steps.ingest.landing import REASONS, ingest_files, ingest_landing, iter_rows

EN = "Please reset the password of my laptop, it stopped working this morning."
EN_CSV = EN.replace(",", "")
SECRET = "hunter2-vault-key-do-not-leak"


def _ingest(landing, **kw):
    return ingest_landing(landing, languages=["en"], max_record_chars=10_000, **kw)


def _quarantine_frame(result) -> bytes:
    """The quarantine as raw.py writes it: it must encode whatever was landed."""
    frame = pd.DataFrame([vars(q) for q in result.quarantined])
    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), buffer)
    return buffer.getvalue()


def _lines_conserved(result) -> bool:
    return all(s.physical_lines == s.lines_accounted for s in result.sources)


# --- 1. symlinks and special files -------------------------------------------------------------


@pytest.fixture
def outside_secret(tmp_path):
    secret = tmp_path / "outside" / "environ.jsonl"
    secret.parent.mkdir()
    secret.write_text(json.dumps({"id": "leak", "text": f"{EN} {SECRET}"}) + "\n")
    return secret


def test_when_a_drop_holds_a_symlink_outside_the_landing_zone_then_it_is_refused_unread(
    landing, outside_secret
):
    (landing / "good.jsonl").write_text(json.dumps({"id": "ok", "text": EN}) + "\n")
    (landing / "env.jsonl").symlink_to(outside_secret)  # planted: points outside the zone
    result = _ingest(landing)
    assert [r.id for r in result.accepted] == ["ok"]
    assert result.quarantine_counts() == {"symlink_refused": 1}
    refused = result.quarantined[0]
    assert SECRET not in refused.raw + refused.detail
    assert outside_secret.name not in refused.raw + refused.detail
    assert result.records_in == len(result.accepted) + len(result.quarantined)


def test_when_a_symlink_points_at_proc_environ_then_no_environment_reaches_the_quarantine(
    landing, monkeypatch
):
    monkeypatch.setenv("SOVTUNE_VAULT_KEY", SECRET)
    (landing / "environ.jsonl").symlink_to("/proc/self/environ")  # planted: process environment
    result = _ingest(landing)
    assert result.quarantine_counts() == {"symlink_refused": 1}
    assert SECRET.encode() not in _quarantine_frame(result)


def test_when_a_symlink_stays_inside_the_landing_zone_then_it_is_still_not_followed(landing):
    (landing / "real.jsonl").write_text(json.dumps({"id": "ok", "text": EN}) + "\n")
    (landing / "alias.jsonl").symlink_to(landing / "real.jsonl")  # planted: an in-zone alias
    result = _ingest(landing)
    assert [r.id for r in result.accepted] == ["ok"]
    assert result.quarantine_counts() == {"symlink_refused": 1}


def test_when_a_drop_folder_is_a_symlink_then_the_drop_is_refused_whole(landing, outside_secret):
    (landing / "drop").symlink_to(outside_secret.parent, target_is_directory=True)  # planted
    drops = scan_landing(landing)
    assert [d.key for d in drops] == ["drop"]
    files = drop_files(drops[0].path)
    result = ingest_files(files, landing=landing, languages=["en"], max_record_chars=10_000)
    assert result.accepted == []
    assert result.quarantine_counts() == {"symlink_refused": 1}


def test_when_a_folder_inside_a_drop_is_a_symlink_then_nothing_under_it_is_read(
    landing, outside_secret
):
    drop = landing / "drop"
    drop.mkdir()
    (drop / "ok.jsonl").write_text(json.dumps({"id": "ok", "text": EN}) + "\n")
    (drop / "sub").symlink_to(outside_secret.parent, target_is_directory=True)  # planted
    files = drop_files(drop)
    result = ingest_files(files, landing=landing, languages=["en"], max_record_chars=10_000)
    assert [r.id for r in result.accepted] == ["ok"]
    assert result.quarantine_counts() == {"symlink_refused": 1}


def test_when_a_fifo_or_socket_is_landed_then_it_is_refused_without_opening_it(landing):
    os.mkfifo(landing / "pipe.jsonl")  # planted: a FIFO (reading it would block forever)
    sock = socket.socket(socket.AF_UNIX)
    try:
        sock.bind(str(landing / "s.jsonl"))  # planted: a socket
        result = _ingest(landing)
    finally:
        sock.close()
    assert result.quarantine_counts() == {"special_file_refused": 2}
    assert set(REASONS) >= {"symlink_refused", "special_file_refused"}


def test_when_a_drop_is_fingerprinted_then_symlinked_content_is_never_hashed(
    landing, outside_secret
):
    drop = landing / "drop"
    drop.mkdir()
    (drop / "env.jsonl").symlink_to(outside_secret)  # planted
    before = drop_fingerprint(drop)
    outside_secret.write_text("changed outside the landing zone\n")
    assert drop_fingerprint(drop) == before  # the target's bytes are not part of the drop


# --- 4. malformed input ------------------------------------------------------------------------


def test_when_a_quarantined_line_holds_a_lone_surrogate_then_the_quarantine_still_encodes(
    landing,
):
    (landing / "s.jsonl").write_text(
        '{"id": "\\ud800", "text": "x"}\n{"text": "\\udfff", "foo": "\\ud800"}\n'
    )
    result = _ingest(landing)
    assert len(result.quarantined) == 2
    assert _quarantine_frame(result)


def test_when_a_line_holds_a_5000_digit_integer_then_it_is_quarantined_not_raised(landing):
    (landing / "big.jsonl").write_text(
        '{"id": ' + "9" * 5000 + ', "text": "x"}\n' + json.dumps({"id": "ok", "text": EN}) + "\n"
    )
    result = _ingest(landing)
    assert [r.id for r in result.accepted] == ["ok"]
    assert result.quarantine_counts() == {"bad_json": 1}
    rows = list(iter_rows(landing / "big.jsonl"))  # what scan and screen read
    assert len(rows) == 2


def test_when_a_csv_field_is_over_the_csv_limit_then_the_rest_of_the_file_is_still_read(landing):
    rows = [f"r{i},{EN_CSV}" for i in range(5)]
    rows.insert(2, "huge," + "a" * 140_000)  # planted: over csv's 131,072-character field limit
    (landing / "a.csv").write_text("id,text\n" + "\n".join(rows) + "\n")
    result = _ingest(landing)
    assert sorted(r.id for r in result.accepted) == [f"r{i}" for i in range(5)]
    assert len(result.quarantined) == 1
    assert result.records_in == 6
    assert _lines_conserved(result)


def test_when_a_csv_quote_is_never_closed_then_the_following_rows_are_not_merged(landing):
    text = (
        f'id,text\nr0,{EN_CSV}\nbad,"unclosed {EN_CSV}\nr1,{EN_CSV}\nr2,"{EN_CSV}"\nr3,{EN_CSV}\n'
    )
    (landing / "q.csv").write_text(text)  # planted: the quote opened on line 3 is never closed
    result = _ingest(landing)
    assert sorted(r.id for r in result.accepted) == ["r0", "r1", "r2", "r3"]
    assert result.quarantine_counts() == {"bad_csv": 1}
    assert result.quarantined[0].source_line == 3
    assert _lines_conserved(result)


def test_when_an_unclosed_quote_runs_to_the_end_of_the_file_then_every_line_is_kept(landing):
    (landing / "q.csv").write_text(f'id,text\nbad,"oops\nr1,{EN_CSV}\nr2,{EN_CSV}')
    result = _ingest(landing)
    assert sorted(r.id for r in result.accepted) == ["r1", "r2"]
    assert result.quarantine_counts() == {"bad_csv": 1}
    assert _lines_conserved(result)


def test_when_a_quoted_csv_field_spans_lines_then_it_is_one_record_covering_both(landing):
    (landing / "m.csv").write_text(f'id,text\nm1,"{EN}\nsecond paragraph"\n')
    result = _ingest(landing)
    assert [r.id for r in result.accepted] == ["m1"]
    assert _lines_conserved(result)


def test_when_a_csv_header_never_closes_its_quote_then_no_row_is_read_under_a_wrong_header(
    landing,
):
    (landing / "h.csv").write_text(f'id,"text\nr1,{EN_CSV}\nr2,{EN_CSV}\n')  # planted
    result = _ingest(landing)
    assert result.accepted == []
    assert result.quarantine_counts() == {"unreadable_file": 1}
    assert _lines_conserved(result)


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
def test_when_a_string_holds_an_escaped_nul_then_it_is_refused_like_a_raw_nul(landing, fmt):
    text = EN + "\u0000" + "hidden"  # planted: a NUL character inside the text
    if fmt == "jsonl":
        (landing / "n.jsonl").write_text(json.dumps({"id": "n", "text": text}) + "\n")
    elif fmt == "csv":
        (landing / "n.csv").write_text(f"id,text\nn,{text}\n")
    else:
        pd.DataFrame({"id": ["n"], "text": [text]}).to_parquet(landing / "n.parquet")
    result = _ingest(landing)
    assert result.accepted == []
    assert result.quarantine_counts() == {"nul_bytes": 1}


# --- 6. size limits ----------------------------------------------------------------------------


def test_when_a_small_parquet_expands_past_the_limit_then_the_file_is_refused_unread(landing):
    frame = pd.DataFrame({"text": [EN] * 50_000})  # planted: compresses ~1000x
    frame.to_parquet(landing / "bomb.parquet", compression="zstd")
    limits = IngestLimits(max_decompressed_bytes=1_000_000, max_expansion_ratio=1e9)
    result = _ingest(landing, limits=limits)
    assert result.accepted == []
    assert result.quarantine_counts() == {"file_too_large": 1}
    assert "ingest.limits.max_decompressed_bytes" in result.quarantined[0].detail
    assert _lines_conserved(result)
    by_ratio = _ingest(landing)  # the default expansion ratio catches it too
    assert by_ratio.quarantine_counts() == {"file_too_large": 1}
    assert "ingest.limits.max_expansion_ratio" in by_ratio.quarantined[0].detail


def test_when_a_parquet_has_more_rows_than_allowed_then_it_is_refused(landing):
    pd.DataFrame({"text": [EN] * 20}).to_parquet(landing / "rows.parquet")
    result = _ingest(landing, limits=IngestLimits(max_file_rows=10))
    assert result.quarantine_counts() == {"file_too_large": 1}
    assert "ingest.limits.max_file_rows" in result.quarantined[0].detail


def test_when_a_jsonl_is_over_the_byte_or_row_limit_then_it_is_refused_with_the_setting(landing):
    lines = "".join(json.dumps({"id": f"r{i}", "text": EN}) + "\n" for i in range(20))
    (landing / "a.jsonl").write_text(lines)
    by_bytes = _ingest(landing, limits=IngestLimits(max_file_bytes=100))
    assert by_bytes.quarantine_counts() == {"file_too_large": 1}
    assert "ingest.limits.max_file_bytes" in by_bytes.quarantined[0].detail
    by_rows = _ingest(landing, limits=IngestLimits(max_file_rows=5))
    assert by_rows.quarantine_counts() == {"file_too_large": 1}
    assert "ingest.limits.max_file_rows" in by_rows.quarantined[0].detail
    assert _lines_conserved(by_rows)


def test_when_a_line_is_over_the_record_byte_limit_then_only_that_line_is_refused(landing):
    (landing / "a.jsonl").write_text(
        json.dumps({"id": "big", "text": "a" * 5000})
        + "\n"
        + json.dumps({"id": "ok", "text": EN})
        + "\n"
    )
    result = _ingest(landing, limits=IngestLimits(max_record_bytes=1000))
    assert [r.id for r in result.accepted] == ["ok"]
    assert result.quarantine_counts() == {"too_long": 1}
    assert "ingest.limits.max_record_bytes" in result.quarantined[0].detail
    assert len(result.quarantined[0].raw) <= 1000


def test_when_the_profile_sets_limits_then_they_are_validated():
    from pipelines.steps.config import PipelineConfig

    cfg = PipelineConfig.model_validate({"ingest": {"limits": {"max_file_rows": 10}}})
    assert cfg.ingest.limits.max_file_rows == 10
    with pytest.raises(ValueError, match="max_file_bytes"):
        PipelineConfig.model_validate({"ingest": {"limits": {"max_file_bytes": 0}}})


def test_when_screen_reads_a_hostile_file_then_every_line_gets_a_decision(tmp_path):
    from typer.testing import CliRunner

    from pipelines.cli import app

    src = tmp_path / "in.jsonl"
    src.write_text(
        '{"id": ' + "9" * 5000 + ', "text": "x"}\n'  # planted: a 5,000-digit integer
        '{"id": "\\ud800", "text": "x"}\n'  # planted: a lone surrogate
         + json.dumps({"id": "ok", "text": EN}) + "\n"
    )
    out = tmp_path / "out.jsonl"
    result = CliRunner().invoke(app, ["screen", str(src), "--out", str(out), "--profile", "quick"])
    assert result.exit_code == 0, result.output
    assert len(out.read_text().splitlines()) == 3


def test_when_lines_are_lost_then_the_conservation_check_fails():
    from checks.ingestion import records_conserved

    counts = {"records_in": 4, "accepted": 3, "quarantined": 1}
    kept = records_conserved(raw_corpus={**counts, "physical_lines": 4, "lines_accounted": 4})
    assert kept.passed
    # planted: a CSV reader that stopped after an error covered 4 of the file's 9 lines
    lost = records_conserved(raw_corpus={**counts, "physical_lines": 9, "lines_accounted": 4})
    assert not lost.passed
    assert lost.metadata["physical_lines"].value == 9


# --- 2. invisible characters -------------------------------------------------------------------

# Each character the issue reproduced hiding an identifier.
REPORTED_INVISIBLE = [
    "\u034f", "\ufe0f", "\U000e0020", "\U000e007f", "\u3164", "\u061c", "\u2800", "\u00ad",
    "\u200b", "\u200e", "\u200f", "\u2060", "\u2064", "\u180e", "\x00", "\x07",
]  # fmt: skip
SPLIT_IDENTIFIERS = [
    ("US_SSN", "en", "My social security number is {} for the form.", "536-90-4399"),
    ("CREDIT_CARD", "en", "Charge my card number {} please.", "4111 1111 1111 1111"),
    ("CN_ID_CARD", "zh", "我的身份证号码是{}，请核对。", "11010519491231002X"),
    ("IBAN_CODE", "en", "Please wire it to IBAN {} by Friday.", "GB82 WEST 1234 5698 7654 32"),
    ("EMAIL_ADDRESS", "en", "Write to {} about the invoice.", "jane.doe@fastmail.com"),
    ("PHONE_NUMBER", "en", "Call me on my phone at {} tomorrow.", "(415) 882-2671"),
]


def test_invisible_table_covers_every_format_and_control_character_of_unicodedata():
    import unicodedata

    from pipelines.steps.privacy.invisible import FILLERS, INVISIBLE, INVISIBLE_REGEX

    every = [chr(c) for c in range(0x110000)]
    expected = {c for c in every if unicodedata.category(c) in ("Cf", "Cc")} - set("\t\n\r")
    assert expected <= INVISIBLE
    fillers = {chr(c) for a, b, _ in FILLERS for c in range(a, b + 1)}
    allowed = {"Cf", "Cc", "Cn", "Mn"}  # Mn: variation selectors, CGJ, Khmer/Mongolian
    assert all(unicodedata.category(c) in allowed or c in fillers for c in INVISIBLE)
    assert {"\t", "\n", "\r", " ", "a", "\u00a0"}.isdisjoint(INVISIBLE)
    pattern = re.compile(INVISIBLE_REGEX)
    assert all(pattern.fullmatch(c) for c in INVISIBLE)
    assert set(REPORTED_INVISIBLE) <= INVISIBLE


@pytest.fixture(scope="module")
def analyzer():
    from pipelines.steps.config import PIIConfig
    from pipelines.steps.privacy.pii import build_analyzer

    return build_analyzer(PIIConfig())


def _split(identifier: str, char: str) -> str:
    middle = len(identifier) // 2
    return identifier[:middle] + char + identifier[middle:]


@pytest.mark.parametrize("char", REPORTED_INVISIBLE, ids=lambda c: f"U+{ord(c):04X}")
def test_when_an_invisible_character_splits_an_identifier_then_it_is_still_found(analyzer, char):
    from pipelines.steps.config import PIIConfig
    from pipelines.steps.privacy.pii import scan_text

    for entity, language, sentence, identifier in SPLIT_IDENTIFIERS:
        hidden = _split(identifier, char)  # planted: the identifier split by an invisible char
        text = sentence.format(hidden)
        start = sentence.index("{}")
        findings = scan_text(analyzer, text, PIIConfig(), language=language)
        assert any(
            f.entity_type == entity and f.start <= start and f.end >= start + len(hidden)
            for f in findings
        ), (entity, f"U+{ord(char):04X}")


def test_when_a_scrubbed_record_still_holds_a_split_ssn_then_the_residual_gate_counts_it(
    analyzer,
):
    from pipelines.steps.config import PIIConfig
    from pipelines.steps.privacy.pii import residual_pii
    from pipelines.steps.records import Message, Record

    text = "My social security number is 536-90\u2800-4399 for the form."  # planted
    record = Record("r", "f.jsonl", 1, "text", (Message("user", text, "text"),), language="en")
    assert residual_pii([record], analyzer, PIIConfig()).get("US_SSN") == 1


@pytest.mark.parametrize("char", REPORTED_INVISIBLE, ids=lambda c: f"U+{ord(c):04X}")
def test_when_the_curated_text_holds_an_invisible_character_then_the_suite_fails(char):
    from pipelines.steps.integrity.curate import HIDDEN_CHARACTER_REGEX
    from pipelines.steps.integrity.screens.injection import hidden_text_score
    from pipelines.steps.records import Message, Record

    text = f"Reset it{char} now please."  # planted: one invisible character
    assert re.search(HIDDEN_CHARACTER_REGEX, text)
    record = Record("r", "f.jsonl", 1, "text", (Message("user", text, "text"),))
    assert hidden_text_score(record) >= 1


def test_when_a_drop_holds_a_symlink_then_the_steward_sees_it_in_the_raw_metadata(
    tmp_path, outside_secret
):
    import dagster as dg

    from assets.partitions import DATA_DROP
    from assets.raw import raw_corpus
    from resources import CorpusStorage, DataEngine, PIIEngine

    drop = tmp_path / "data" / "landing" / "drop"
    drop.mkdir(parents=True)
    (drop / "ok.jsonl").write_text(json.dumps({"id": "ok", "text": EN}) + "\n")
    (drop / "env.jsonl").symlink_to(outside_secret)  # planted
    storage = CorpusStorage(data_root=str(tmp_path / "data"))
    pii = PIIEngine(key_file=str(tmp_path / "data" / "secrets" / "pseudonym.key"))
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(DATA_DROP, ["drop"])
        with dg.build_asset_context(partition_key="drop", instance=instance) as context:
            out = raw_corpus(context, storage, pii, DataEngine())
            metadata = context.get_output_metadata("result")
    assert out["quarantine_by_reason"] == {"symlink_refused": 1}
    assert out["physical_lines"] == out["lines_accounted"] == 1
    assert metadata["refused_entries"] == 1
    quarantine = pd.read_parquet(out["quarantine_path"])
    assert list(quarantine["reason"]) == ["symlink_refused"]
    assert SECRET not in quarantine.to_json()


def test_when_the_profile_sets_ingest_limits_then_the_storage_resource_carries_them(tmp_path):
    from pipelines.definitions import build_resources
    from pipelines.steps.config import PipelineConfig

    cfg = PipelineConfig.model_validate(
        {"data_root": str(tmp_path), "ingest": {"limits": {"max_file_rows": 7}}}
    )
    assert build_resources(cfg)["storage"].ingest_limits.max_file_rows == 7


def test_when_a_file_cannot_be_opened_then_it_is_quarantined_as_unreadable_not_as_a_link(
    landing, monkeypatch
):
    import errno

    from pipelines.steps.ingest import landing as landing_module

    (landing / "locked.jsonl").write_text(json.dumps({"id": "x", "text": EN}) + "\n")
    real_open = os.open

    def denied(path, flags, *args):
        if str(path).endswith("locked.jsonl"):  # planted: no read permission (tests run as root)
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_open(path, flags, *args)

    monkeypatch.setattr(landing_module.os, "open", denied)
    result = _ingest(landing)
    assert result.quarantine_counts() == {"unreadable_file": 1}
    assert "EACCES" in result.quarantined[0].detail


# --- 1. hard links (a second name for a file, possibly outside the zone) ------------------------


def test_when_a_drop_holds_a_hard_link_to_a_file_outside_then_it_is_refused_unread(
    landing, outside_secret
):
    (landing / "good.jsonl").write_text(json.dumps({"id": "ok", "text": EN}) + "\n")
    os.link(outside_secret, landing / "hard.jsonl")  # planted: same inode as the outside file
    result = _ingest(landing)
    assert [r.id for r in result.accepted] == ["ok"]
    assert result.quarantine_counts() == {"hardlink_refused": 1}
    assert SECRET.encode() not in _quarantine_frame(result)
    assert "hardlink_refused" in REASONS
    assert _lines_conserved(result)
    rows = list(iter_rows(landing / "hard.jsonl"))  # what scan and screen read
    assert [type(v).__name__ for _, v in rows] == ["RecordError"]
    assert rows[0][1].reason == "hardlink_refused"


def test_when_a_llamafactory_folder_holds_a_hard_link_then_it_is_refused_unread(
    landing, outside_secret
):
    folder = landing / "lf"
    folder.mkdir()
    os.link(outside_secret, folder / "hard.jsonl")  # planted, and named by dataset_info.json
    (folder / "dataset_info.json").write_text(
        json.dumps({"hard": {"file_name": "hard.jsonl", "columns": {"prompt": "text"}}})
    )
    result = _ingest(landing)
    assert result.accepted == []
    assert result.quarantine_counts() == {"hardlink_refused": 1}
    assert SECRET.encode() not in _quarantine_frame(result)


def test_when_a_hard_linked_file_is_fingerprinted_then_its_bytes_are_not_hashed(
    landing, outside_secret
):
    drop = landing / "drop"
    drop.mkdir()
    os.link(outside_secret, drop / "hard.jsonl")  # planted
    before = drop_fingerprint(drop)
    with open(outside_secret, "a") as handle:  # the same inode, changed from outside the zone
        handle.write("more\n")
    assert drop_fingerprint(drop) == before


def test_when_a_hard_linked_file_is_landed_then_the_steward_sees_it_in_the_raw_metadata(
    tmp_path, outside_secret
):
    import dagster as dg

    from assets.partitions import DATA_DROP
    from assets.raw import raw_corpus
    from resources import CorpusStorage, DataEngine, PIIEngine

    drop = tmp_path / "data" / "landing" / "drop"
    drop.mkdir(parents=True)
    (drop / "ok.jsonl").write_text(json.dumps({"id": "ok", "text": EN}) + "\n")
    os.link(outside_secret, drop / "hard.jsonl")  # planted
    storage = CorpusStorage(data_root=str(tmp_path / "data"))
    pii = PIIEngine(key_file=str(tmp_path / "data" / "secrets" / "pseudonym.key"))
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(DATA_DROP, ["drop"])
        with dg.build_asset_context(partition_key="drop", instance=instance) as context:
            out = raw_corpus(context, storage, pii, DataEngine())
            metadata = context.get_output_metadata("result")
    assert out["quarantine_by_reason"] == {"hardlink_refused": 1}
    assert metadata["refused_entries"] == 1
    assert SECRET not in pd.read_parquet(out["quarantine_path"]).to_json()


# --- 6. JSON arrays (LLaMA-Factory .json files) are streamed, not parsed whole -------------------


def _lf_array(landing, body: bytes):
    folder = landing / "lf"
    folder.mkdir()
    (folder / "a.json").write_bytes(body)
    (folder / "dataset_info.json").write_text(json.dumps({"a": {"file_name": "a.json"}}))
    return folder / "a.json"


def _element(i: int, text: str = EN) -> dict:
    return {"instruction": f"{text} ({i})", "output": "Sure, here is how to do it."}


def test_when_a_json_array_is_over_the_row_limit_then_it_is_refused_whole_like_a_jsonl(landing):
    _lf_array(landing, json.dumps([_element(i) for i in range(12)]).encode())
    result = _ingest(landing, limits=IngestLimits(max_file_rows=5))
    assert result.accepted == []  # counted while streaming, no element built
    assert result.quarantine_counts() == {"file_too_large": 1}  # one slot covering all twelve
    assert "ingest.limits.max_file_rows" in result.quarantined[0].detail
    source = next(s for s in result.sources if s.name.endswith("a.json"))
    assert source.physical_lines == source.lines_accounted == 12
    assert _lines_conserved(result)


def test_when_a_json_array_element_is_over_the_record_limit_then_only_it_is_refused(landing):
    elements = [_element(0), _element(1, "a" * 5000), _element(2)]
    _lf_array(landing, json.dumps(elements).encode())
    result = _ingest(landing, limits=IngestLimits(max_record_bytes=1000))
    assert len(result.accepted) == 2
    assert result.quarantine_counts() == {"too_long": 1}
    assert "ingest.limits.max_record_bytes" in result.quarantined[0].detail
    assert result.quarantined[0].source_line == 2
    assert len(result.quarantined[0].raw) <= 1000
    assert _lines_conserved(result)


def test_when_a_json_array_breaks_midway_then_the_elements_before_are_kept_and_the_rest_refused(
    landing,
):
    body = json.dumps([_element(0), _element(1)])[:-1] + ', {"instruction": "x", "out' + SECRET
    _lf_array(landing, body.encode())
    result = _ingest(landing)
    assert len(result.accepted) == 2
    assert result.quarantine_counts() == {"unreadable_file": 1}
    refused = result.quarantined[0]
    assert refused.source_line == 3 and "JSON array" in refused.detail
    assert SECRET not in refused.detail + refused.raw  # the parser's excerpt is not kept
    assert _lines_conserved(result)


def test_when_a_json_array_holds_scalars_then_each_is_quarantined_in_its_place(landing):
    _lf_array(landing, json.dumps([_element(0), 5, "text", [1], None]).encode())
    result = _ingest(landing)
    assert len(result.accepted) == 1
    assert result.quarantine_counts() == {"not_an_object": 4}
    assert [q.source_line for q in result.quarantined] == [2, 3, 4, 5]
    assert _lines_conserved(result)
