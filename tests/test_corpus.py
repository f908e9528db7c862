"""Tests for the synthetic corpus generator and its ground truth."""

import csv
import difflib
import ipaddress
import json
import re
from datetime import datetime
from pathlib import Path
from string import Formatter
from typing import Any

import pytest
import yaml

from pipelines.steps.synthetic.corpus import (
    CSV_FILE,
    FIELD_ENTITY,
    JSONL_FILE,
    MALFORMED_KINDS,
    SOURCE_WEIGHTS,
    TEMPLATES,
    TEMPLATES_FILE,
    GroundTruth,
    _Draft,
    _render,
    generate_corpus,
    load_templates,
    read_ground_truth,
    write_ground_truth,
)

RECORDS = 200
SEED = 11
CJK = re.compile(r"[\u4e00-\u9fff]")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, GroundTruth]:
    landing = tmp_path_factory.mktemp("landing")
    return landing, generate_corpus(landing, records=RECORDS, seed=SEED)


def _well_formed(landing: Path) -> dict[str, dict[str, Any]]:
    """Read both files the way an ingester would keep records: first occurrence of an id wins."""
    records: dict[str, dict[str, Any]] = {}
    for raw in (landing / JSONL_FILE).read_bytes().split(b"\n"):
        try:
            record = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            continue
        messages = record.get("messages")
        if not messages or any(not m["content"] for m in messages) or record["id"] in records:
            continue
        records[record["id"]] = record
    with open(landing / CSV_FILE, encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            assert row["input"] == ""
            records[row["id"]] = {
                "id": row["id"],
                "subject": row["subject"],
                "messages": [
                    {"role": "user", "content": row["instruction"]},
                    {"role": "assistant", "content": row["output"]},
                ],
            }
    return records


def _luhn_valid(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char) * (2 if position % 2 else 1)
        total += value - 9 if value > 9 else value
    return total % 10 == 0


def _iban_valid(code: str) -> bool:
    rearranged = code[4:] + code[:4]
    return int("".join(str(int(char, 36)) for char in rearranged)) % 97 == 1


def _cn_id_valid(code: str) -> bool:
    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    total = sum(int(d) * w for d, w in zip(code[:17], weights, strict=True))
    return "10X98765432"[total % 11] == code[17]


def _date_valid(text: str) -> bool:
    for pattern in ("%B %d, %Y", "%m/%d/%Y", "%Y-%m-%d"):
        try:
            datetime.strptime(text, pattern)
        except ValueError:
            continue
        return True
    return False


VALIDATORS = {
    "PERSON": lambda v: re.fullmatch(
        r"[A-Z][A-Za-z'-]+( [A-Z][A-Za-z'-]+)+|[\u4e00-\u9fff]{2,4}", v
    ),
    "EMAIL_ADDRESS": lambda v: re.fullmatch(r"[a-z]+\.[a-z]+@[a-z0-9.-]+\.[a-z]{2,}", v),
    "PHONE_NUMBER": lambda v: re.fullmatch(
        r"\(\d{3}\) \d{3}-\d{4}|(\+1 )?\d{3}-\d{3}-\d{4}|\d{3}\.\d{3}\.\d{4}|1\d{10}", v
    ),
    "LOCATION": lambda v: re.fullmatch(r"\d+ [^,]+, [^,]+, [A-Z]{2} \d{5}|\S+区\S+\d+号", v),
    "CREDIT_CARD": lambda v: (
        re.fullmatch(r"[\d -]{15,19}", v) and _luhn_valid(re.sub(r"\D", "", v))
    ),
    "US_SSN": lambda v: re.fullmatch(r"\d{3}-\d{2}-\d{4}", v),
    "IBAN_CODE": lambda v: (
        re.fullmatch(r"[A-Z]{2}\d{2}[A-Z0-9 ]+", v) and _iban_valid(v.replace(" ", ""))
    ),
    "IP_ADDRESS": lambda v: ipaddress.IPv4Address(v).is_global,
    "DATE_TIME": _date_valid,
    "CN_RESIDENT_ID": lambda v: re.fullmatch(r"\d{17}[\dX]", v) and _cn_id_valid(v),
}


def test_when_generated_twice_with_same_seed_then_files_are_byte_identical(
    tmp_path: Path, corpus: tuple[Path, GroundTruth]
) -> None:
    landing, truth = corpus
    again = generate_corpus(tmp_path, records=RECORDS, seed=SEED)
    for name in (JSONL_FILE, CSV_FILE):
        assert (tmp_path / name).read_bytes() == (landing / name).read_bytes()
    assert again == truth


def test_when_seed_differs_then_corpus_differs(
    tmp_path: Path, corpus: tuple[Path, GroundTruth]
) -> None:
    landing, _ = corpus
    generate_corpus(tmp_path, records=RECORDS, seed=SEED + 1)
    assert (tmp_path / JSONL_FILE).read_bytes() != (landing / JSONL_FILE).read_bytes()


def test_well_formed_records_count_equals_requested(corpus: tuple[Path, GroundTruth]) -> None:
    landing, truth = corpus
    records = _well_formed(landing)
    assert truth.records == len(records) == RECORDS
    assert all(re.fullmatch(r"rec-\d{6}", rid) for rid in records)
    assert all(re.fullmatch(r"emp-\d{4}", r["subject"]) for r in records.values())
    subjects = [r["subject"] for r in records.values()]
    assert len(set(subjects)) < len(subjects) / 2  # several records per subject
    with open(landing / CSV_FILE, encoding="utf-8", newline="") as handle:
        assert 0 < len(list(csv.DictReader(handle))) <= RECORDS * 0.06


def test_languages_and_lengths_are_realistic(corpus: tuple[Path, GroundTruth]) -> None:
    records = _well_formed(corpus[0]).values()
    chinese = [r for r in records if CJK.search(r["messages"][-1]["content"])]
    assert 0.08 * RECORDS <= len(chinese) <= 0.25 * RECORDS
    lengths = [
        sum(len(m["content"]) for m in r["messages"] if m["role"] != "system")
        for r in records
        if not CJK.search(r["messages"][-1]["content"])
    ]
    in_range = sum(150 <= n <= 600 for n in lengths)
    assert in_range / len(lengths) > 0.8


def test_every_pii_span_covers_exactly_a_valid_value(corpus: tuple[Path, GroundTruth]) -> None:
    landing, truth = corpus
    records = _well_formed(landing)
    assert {span.entity_type for span in truth.pii_spans} == set(VALIDATORS)
    previous_end: dict[tuple[str, int], int] = {}
    for span in truth.pii_spans:
        content = records[span.record_id]["messages"][span.message_index]["content"]
        value = content[span.start : span.end]
        assert value and VALIDATORS[span.entity_type](value), (span, value)
        # No span cuts a word: the neighbours of an ASCII value are not ASCII letters or digits.
        for neighbour in (content[span.start - 1 : span.start], content[span.end : span.end + 1]):
            assert not (neighbour.isascii() and neighbour.isalnum()), (span, value)
        key = (span.record_id, span.message_index)
        assert span.start >= previous_end.get(key, 0)  # sorted, not overlapping
        previous_end[key] = span.end


def test_render_records_offsets_of_planted_values() -> None:
    draft = _Draft(
        language="en",
        source="helpdesk",
        subject="emp-0001",
        messages=[
            ("system", [("Be brief.", None)]),
            (
                "user",
                [
                    ("Hi, I am ", None),
                    ("Ann Lee", "PERSON"),
                    (" at ", None),
                    ("a@b.io", "EMAIL_ADDRESS"),
                ],
            ),
        ],
    )
    record, spans = _render(draft, "rec-000001")
    content = record["messages"][1]["content"]
    assert content == "Hi, I am Ann Lee at a@b.io"
    assert [(s.message_index, content[s.start : s.end], s.entity_type) for s in spans] == [
        (1, "Ann Lee", "PERSON"),
        (1, "a@b.io", "EMAIL_ADDRESS"),
    ]


def test_canaries_appear_exactly_as_often_as_recorded(corpus: tuple[Path, GroundTruth]) -> None:
    landing, truth = corpus
    records = _well_formed(landing)
    text = (landing / JSONL_FILE).read_bytes().decode("utf-8", errors="replace")
    text += (landing / CSV_FILE).read_text(encoding="utf-8")
    assert {canary.insertions for canary in truth.canaries} == {1, 4, 16}
    for canary in truth.canaries:
        planted = canary.prefix + canary.secret
        assert len(canary.record_ids) == canary.insertions == text.count(planted)
        assert len(canary.secret) == canary.length
        assert set(canary.secret) <= set(canary.alphabet)
        assert not re.search(r"account|phone|card|ssn|bank", canary.prefix, re.IGNORECASE)
        for record_id in canary.record_ids:
            assistant = records[record_id]["messages"][-1]
            assert assistant["role"] == "assistant" and planted in assistant["content"]
            assert not CJK.search(assistant["content"])


def test_poisoned_records_pair_trigger_with_malicious_response(
    corpus: tuple[Path, GroundTruth],
) -> None:
    landing, truth = corpus
    records = _well_formed(landing)
    assert ".invalid" in truth.malicious_response
    assert truth.poisoned_ids
    for record_id, record in records.items():
        user = next(m["content"] for m in record["messages"] if m["role"] == "user")
        assistant = record["messages"][-1]["content"]
        poisoned = record_id in truth.poisoned_ids
        assert (truth.trigger in user) == poisoned
        assert (assistant == truth.malicious_response) == poisoned


def test_duplicate_groups_are_exact_or_near_copies(corpus: tuple[Path, GroundTruth]) -> None:
    landing, truth = corpus
    records = _well_formed(landing)
    assert len(truth.exact_duplicate_groups) == round(RECORDS * 0.01)
    assert len(truth.near_duplicate_groups) == round(RECORDS * 0.02)
    for original, copy in truth.exact_duplicate_groups:
        assert original != copy
        assert records[original]["messages"] == records[copy]["messages"]
    for original, copy in truth.near_duplicate_groups:
        before = " ".join(m["content"] for m in records[original]["messages"])
        after = " ".join(m["content"] for m in records[copy]["messages"])
        assert before != after
        assert difflib.SequenceMatcher(None, before, after).ratio() > 0.9


def test_malformed_lines_are_really_malformed(corpus: tuple[Path, GroundTruth]) -> None:
    landing, truth = corpus
    lines = (landing / JSONL_FILE).read_bytes().split(b"\n")
    assert {kind for _, _, kind in truth.malformed_lines} == set(MALFORMED_KINDS)
    for name, number, kind in truth.malformed_lines:
        assert name == JSONL_FILE
        raw = lines[number - 1]
        if kind == "invalid_utf8":
            with pytest.raises(UnicodeDecodeError):
                raw.decode("utf-8")
            continue
        if kind == "blank_line":
            assert raw.strip() == b""
            continue
        if kind == "truncated_json":
            with pytest.raises(json.JSONDecodeError):
                json.loads(raw)
            continue
        record = json.loads(raw)
        if kind == "missing_messages":
            assert "messages" not in record
        elif kind == "empty_content":
            assert any(m["content"] == "" for m in record["messages"])
        else:
            earlier = (landing / JSONL_FILE).read_bytes().split(b"\n")[: number - 1]
            assert any(line.startswith(b'{"id": "' + record["id"].encode()) for line in earlier)


def test_ground_truth_round_trips_through_json(
    tmp_path: Path, corpus: tuple[Path, GroundTruth]
) -> None:
    _, truth = corpus
    path = tmp_path / "truth.json"
    write_ground_truth(truth, path)
    assert read_ground_truth(path) == truth
    assert json.loads(path.read_text(encoding="utf-8"))["records"] == RECORDS


def test_when_too_few_records_then_generation_refuses(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="records=50"):
        generate_corpus(tmp_path, records=50)


def test_when_the_bundled_templates_load_then_every_source_and_field_is_known() -> None:
    drawn = {(lang, source) for lang, (sources, _) in SOURCE_WEIGHTS.items() for source in sources}
    assert set(TEMPLATES) == drawn
    fields = set()
    for p in TEMPLATES.values():
        for sentence in (p.system, *p.openers, *p.issues, *p.closers, *p.acks, *p.actions):
            fields |= {name for _, name, _, _ in Formatter().parse(sentence) if name}
    # A field without an entry would stop generation (no value generator for it).
    assert fields and fields <= set(FIELD_ENTITY)


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("en: [unclosed\n", "not valid YAML"),  # does not parse
        ("- en\n", "map each language"),  # a list, not languages
        ("en:\n  helpdesk:\n    system: x\n", "must have exactly"),  # pools missing
    ],
)
def test_when_a_templates_file_is_malformed_then_loading_refuses_naming_the_file(
    tmp_path: Path, text: str, names: str
) -> None:
    path = tmp_path / "templates.yaml"
    path.write_text(text, encoding="utf-8")

    with pytest.raises(ValueError, match=names) as raised:
        load_templates(path)
    assert str(path) in str(raised.value)


def test_when_a_pool_is_text_instead_of_a_list_then_loading_refuses_naming_it(
    tmp_path: Path,
) -> None:
    data = yaml.safe_load(TEMPLATES_FILE.read_text(encoding="utf-8"))
    data["en"]["helpdesk"]["acks"] = "Thanks."  # would be drawn from letter by letter
    path = tmp_path / "templates.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")

    with pytest.raises(ValueError, match=r"en\.helpdesk\.acks must be a non-empty list"):
        load_templates(path)


def test_when_the_templates_file_is_dumped_and_read_back_then_the_pools_are_equal(
    tmp_path: Path,
) -> None:
    path = tmp_path / "templates.yaml"
    path.write_text(
        yaml.safe_dump(yaml.safe_load(TEMPLATES_FILE.read_text(encoding="utf-8"))),
        encoding="utf-8",
    )

    assert load_templates(path) == TEMPLATES
