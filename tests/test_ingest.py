"""Ingestion: every supported shape is normalized; every bad line is quarantined with a reason."""

import json

import pandas as pd
import pytest

from pipelines.steps.ingest.landing import RecordError, ingest_landing, normalize_row

EN = "Please reset the password of my laptop, it stopped working this morning."


def _jsonl(path, rows):
    path.write_bytes(
        b"".join(r if isinstance(r, bytes) else (json.dumps(r) + "\n").encode() for r in rows)
    )


@pytest.mark.parametrize(
    ("row", "fmt", "roles", "fields"),
    [
        ({"text": EN}, "text", ["user"], ["text"]),
        (
            {"instruction": EN, "input": "", "output": "Done."},
            "alpaca",
            ["user", "assistant"],
            ["instruction", "output"],
        ),
        (
            {"instruction": EN, "input": "ctx", "output": "Done."},
            "alpaca",
            ["user", "user", "assistant"],
            ["instruction", "input", "output"],
        ),
        (
            {"conversations": [{"from": "human", "value": EN}, {"from": "gpt", "value": "Ok."}]},
            "sharegpt",
            ["user", "assistant"],
            ["conversations[0].value", "conversations[1].value"],
        ),
        (
            {
                "messages": [
                    {"role": "user", "content": EN},
                    {"role": "assistant", "content": "Ok."},
                ]
            },
            "chat",
            ["user", "assistant"],
            ["messages[0].content", "messages[1].content"],
        ),
    ],
)
def test_when_a_supported_shape_is_normalized_then_roles_and_fields_are_kept(
    row, fmt, roles, fields
):
    record = normalize_row(row, source_file="f.jsonl", source_line=3)
    assert record.format == fmt
    assert [m.role for m in record.messages] == roles
    assert [m.field for m in record.messages] == fields
    assert record.id.startswith("sha-")


def test_when_ids_are_missing_then_the_same_content_gets_the_same_stable_id():
    a = normalize_row({"text": EN}, source_file="a", source_line=1)
    b = normalize_row({"text": EN}, source_file="b", source_line=9)
    assert a.id == b.id


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ({"foo": 1}, "missing_field"),
        ({"text": 5}, "bad_field_type"),
        ({"text": "   "}, "empty_text"),
        ({"messages": [{"role": "robot", "content": "x"}]}, "bad_field_type"),
        ({"messages": []}, "bad_field_type"),
        ({"text": EN, "id": [1]}, "bad_field_type"),
    ],
)
def test_when_a_row_is_malformed_then_it_raises_its_reason(row, reason):
    with pytest.raises(RecordError) as err:
        normalize_row(row, source_file="f", source_line=1)
    assert err.value.reason == reason


def test_when_a_file_has_every_kind_of_bad_line_then_all_are_quarantined_and_counted(landing):
    _jsonl(
        landing / "mixed.jsonl",
        [
            b"\xef\xbb\xbf" + (json.dumps({"id": "ok-1", "text": EN}) + "\n").encode(),  # BOM
            b'{"id": "bad", "text": "caf\xe9"}\n',  # invalid UTF-8
            b"\n",  # blank line
            b'{"id": "trunc", "text": "cut\n',  # truncated JSON
            b'{"id": "nul", "text": "a\x00b"}\n',  # NUL byte
            b"[1, 2]\n",  # not an object
            {"id": "ok-1", "text": EN + " again"},  # duplicate id
            # a script without a PII pack (Latin script of any language goes to the English pack)
            {"id": "ru", "text": "Здравствуйте, я хотел бы забронировать номер на две ночи."},
            {"id": "zh", "text": "您好，我的账户被锁定了，请帮忙处理一下这个问题。"},
            {"id": "nofield", "body": EN},  # schema drift
        ],
    )
    result = ingest_landing(landing, languages=["en"], max_record_chars=10_000)
    assert [r.id for r in result.accepted] == ["ok-1"]
    assert result.records_in == 10 == len(result.accepted) + len(result.quarantined)
    assert result.quarantine_counts() == {
        "bad_json": 1,
        "duplicate_id": 1,
        "empty_line": 1,
        "invalid_utf8": 1,
        "missing_field": 1,
        "not_an_object": 1,
        "nul_bytes": 1,
        "unsupported_language": 2,
    }
    assert all(q.source_file == "mixed.jsonl" and q.source_line >= 1 for q in result.quarantined)


def test_when_csv_and_parquet_are_landed_then_both_are_ingested(landing):
    (landing / "a.csv").write_text(
        'id,instruction,input,output\nc1,"' + EN + '",,"Sure, done."\n', encoding="utf-8"
    )
    pd.DataFrame(
        {
            "id": ["p1"],
            "conversations": [[{"from": "human", "value": EN}, {"from": "gpt", "value": "Done."}]],
        }
    ).to_parquet(landing / "b.parquet")
    (landing / "notes.docx").write_bytes(b"PK")
    result = ingest_landing(landing, languages=["en"], max_record_chars=10_000)
    assert sorted(r.id for r in result.accepted) == ["c1", "p1"]
    assert result.quarantine_counts() == {"unsupported_file_type": 1}
    assert {s.name for s in result.sources} == {"a.csv", "b.parquet", "notes.docx"}
    assert all(len(s.sha256) == 64 for s in result.sources)


def test_when_a_record_is_too_long_then_it_is_quarantined(landing):
    _jsonl(landing / "long.jsonl", [{"id": "x", "text": EN * 50}])
    result = ingest_landing(landing, languages=["en"], max_record_chars=100)
    assert result.quarantine_counts() == {"too_long": 1}


def test_when_quarantine_details_are_read_then_they_carry_no_record_text(landing):
    _jsonl(landing / "q.jsonl", [{"id": "ru", "text": "Здравствуйте, я хотел бы номер."}])
    result = ingest_landing(landing, languages=["en"], max_record_chars=10_000)
    assert "Здравствуйте" not in result.quarantined[0].detail
