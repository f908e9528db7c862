"""Operators per entity type, recorded surrogate spans, and the residual re-scan honouring them."""

import pytest
from presidio_analyzer import AnalyzerEngine
from presidio_anonymizer import AnonymizerEngine
from pydantic import ValidationError

from pipelines.steps.config import PIIConfig
from pipelines.steps.privacy.pii import (
    Finding,
    _operators,
    _outside_scrub_spans,
    _replace_findings,
    build_analyzer,
    pseudonym,
    residual_pii,
    scrub_records,
)
from pipelines.steps.privacy.surrogates import REDACTED
from pipelines.steps.records import Message, Record, frame_to_records, records_to_frame

KEY = b"scrub-test-key-0123456789abcdef"
CFG = PIIConfig()
TEXT = "Jane Doe called from 212-555-0123 and wrote to jane.doe@acme.io about the invoice."


@pytest.fixture(scope="module")
def analyzer() -> AnalyzerEngine:
    return build_analyzer(CFG)


def _record(*contents: str) -> Record:
    messages = tuple(Message("user", c, f"messages[{i}].content") for i, c in enumerate(contents))
    return Record("r1", "t.jsonl", 1, "chat", messages, language="en")


@pytest.fixture(scope="module")
def scrubbed(analyzer: AnalyzerEngine) -> Record:
    return scrub_records([_record(TEXT)], analyzer, CFG, key=KEY).records[0]


def test_when_pseudonymized_then_surrogates_are_realistic_and_spans_mark_them(scrubbed) -> None:
    message = scrubbed.messages[0]
    written = {t: message.content[s:e] for s, e, t in message.scrub_spans}

    assert written["PERSON"] == pseudonym("PERSON", "Jane Doe", key=KEY)
    assert written["PHONE_NUMBER"] == pseudonym("PHONE_NUMBER", "212-555-0123", key=KEY)
    assert written["EMAIL_ADDRESS"].endswith(("@example.com", "@example.org", "@example.net"))
    for value in ("Jane Doe", "212-555-0123", "jane.doe@acme.io"):
        assert value not in message.content


def test_when_spans_are_honoured_then_own_surrogates_are_not_residual(
    analyzer: AnalyzerEngine, scrubbed: Record
) -> None:
    forgotten = scrubbed.with_messages(
        tuple(Message(m.role, m.content, m.field) for m in scrubbed.messages)
    )

    assert residual_pii([forgotten], analyzer, CFG)  # realistic: a re-scan does find them
    assert residual_pii([scrubbed], analyzer, CFG) == {}


def test_when_a_real_value_sits_next_to_a_surrogate_then_it_is_residual(
    analyzer: AnalyzerEngine, scrubbed: Record
) -> None:
    message = scrubbed.messages[0]
    content = message.content + " Copy to bob.jones@acme.io please."
    tampered = scrubbed.with_messages(
        (Message(message.role, content, message.field, message.scrub_spans),)
    )

    assert residual_pii([tampered], analyzer, CFG) == {"EMAIL_ADDRESS": 1}


@pytest.mark.parametrize(
    ("content", "entity_type"),
    [
        ("The hire car 粤B12345 is in bay 4.", "CN_LICENSE_PLATE"),  # only the zh pack has it
        ("Her 护照号码 is E12345678 now.", "CN_PASSPORT"),
        ("我的身份证号是11010519491231002X。", "CN_ID_CARD"),
    ],
)
def test_when_an_english_record_holds_a_chinese_identifier_then_the_gate_finds_it(
    analyzer: AnalyzerEngine, content: str, entity_type: str
) -> None:
    record = _record(content)  # routed as English: the scrub scans it with the en pack only

    assert residual_pii([record], analyzer, CFG).get(entity_type, 0) >= 1


def test_when_numbers_are_read_out_in_chinese_numerals_then_numerals_replace_them(
    analyzer: AnalyzerEngine,
) -> None:
    said = ("一一零一零五一九四九一二三一零零二X", "幺三九 零一二三 四五六七")
    record = Record(
        "r1",
        "t.jsonl",
        1,
        "chat",
        (
            Message(
                "user", f"身份证号码是{said[0]}，电话{said[1]}，请核实。", "messages[0].content"
            ),
        ),
        language="zh",
    )

    done = scrub_records([record], analyzer, CFG, key=KEY).records[0]
    message = done.messages[0]
    written = sorted(message.content[s:e] for s, e, _ in message.scrub_spans)

    assert not any(value in message.content for value in said)
    assert len(written) == 2 and not any(c.isdigit() for c in "".join(written))
    assert residual_pii([done], analyzer, CFG) == {}


def test_a_value_repeated_without_its_key_gets_the_same_surrogate(analyzer) -> None:
    record = _record("Hello, employee ID EMP-20931 here.", "I can see the record for EMP-20931.")

    done = scrub_records([record], analyzer, CFG, key=KEY).records[0]
    written = [m.content[s:e] for m in done.messages for s, e, t in m.scrub_spans]

    assert not any("EMP-20931" in m.content for m in done.messages)
    assert len(written) == 2 and written[0] == written[1]


def test_when_stored_as_parquet_then_spans_survive_and_hold_no_original_value(
    scrubbed: Record,
) -> None:
    frame = records_to_frame([scrubbed])

    assert frame_to_records(frame) == [scrubbed]
    stored = frame.to_json()
    for value in ("Jane Doe", "212-555-0123", "jane.doe@acme.io"):
        assert value not in stored


def test_when_operators_are_configured_then_each_type_gets_its_operator(
    analyzer: AnalyzerEngine,
) -> None:
    cfg = PIIConfig(operators={"PERSON": "placeholder", "EMAIL_ADDRESS": "redact"})
    remembered: list[tuple[str, str, str]] = []

    result = scrub_records(
        [_record(TEXT)], analyzer, cfg, key=KEY, remember=lambda *e: remembered.append(e)
    )
    message = result.records[0].messages[0]

    assert message.content.startswith("<PERSON> called from ")
    assert REDACTED in message.content
    assert pseudonym("PHONE_NUMBER", "212-555-0123", key=KEY) in message.content
    # only pseudonyms have an original worth keeping (for the vault)
    assert remembered == [
        ("PHONE_NUMBER", pseudonym("PHONE_NUMBER", "212-555-0123", key=KEY), "212-555-0123")
    ]
    assert residual_pii(result.records, analyzer, cfg) == {}


def test_when_a_secret_is_configured_as_pseudonym_then_config_fails_closed() -> None:
    with pytest.raises(ValidationError, match=r"pii\.operators: SECRET must be redact"):
        PIIConfig(operators={"SECRET": "pseudonym"})


def test_when_type_is_unknown_or_secret_then_placeholder_or_mark_never_the_value() -> None:
    text = "token sk_live_abcdef123456 for ACME-77"
    findings = [Finding("text", 6, 26, "SECRET", 0.9), Finding("text", 31, 38, "NEW_TYPE", 0.9)]

    message = _replace_findings(
        AnonymizerEngine(),
        Message("user", text),
        findings,
        _operators(PIIConfig(entities=["PERSON"]), KEY, ["SECRET", "NEW_TYPE"]),
        None,
    )

    assert message.content == f"token {REDACTED} for <NEW_TYPE>"
    assert [message.content[s:e] for s, e, _ in message.scrub_spans] == [REDACTED, "<NEW_TYPE>"]


def test_when_a_later_pass_replaces_more_then_earlier_spans_move_with_the_text() -> None:
    # pass 1 wrote "<PERSON>" at 12..20; pass 2 finds a phone before it and a grown name over it
    earlier = Message("user", "Call 555-1234 or <PERSON> Smith now.", scrub_spans=((17, 25, "X"),))
    findings = [
        Finding("text", 5, 13, "PHONE_NUMBER", 0.9),
        Finding("text", 17, 31, "PERSON", 0.9),
    ]
    cfg = PIIConfig(operators={"PHONE_NUMBER": "placeholder", "PERSON": "placeholder"})

    message = _replace_findings(AnonymizerEngine(), earlier, findings, _operators(cfg, KEY), None)

    assert message.content == "Call <PHONE_NUMBER> or <PERSON> now."
    assert [message.content[s:e] for s, e, _ in message.scrub_spans] == [
        "<PHONE_NUMBER>",
        "<PERSON>",
    ]


def test_a_later_pass_reading_two_surrogates_as_one_keeps_what_joins_them() -> None:
    # pass 1 replaced two names; pass 2 reads the two surrogates and "and" as one person
    text = "Ask Nick Ortiz and Amy Lee, or Bo Chan about it."
    spans = ((4, 14, "PERSON"), (19, 26, "PERSON"), (31, 38, "PERSON"))
    joined = [Finding("text", 4, 26, "PERSON", 0.85), Finding("text", 19, 38, "PERSON", 0.85)]

    assert _outside_scrub_spans(joined, spans, text) == []  # nothing new: " and ", ", or "


def test_a_later_pass_keeps_what_it_reads_beyond_a_surrogate_and_a_name_between_two() -> None:
    text = "Ask Nick Ortiz, Jan Kowalski, Amy Lee Smith about it."
    spans = ((4, 14, "PERSON"), (30, 37, "PERSON"))
    grown = [Finding("text", 4, 43, "PERSON", 0.85)]

    kept = [(f.start, f.end) for f in _outside_scrub_spans(grown, spans, text)]

    # the name the first pass missed between the two is its own finding; "Smith" grows the
    # second surrogate
    assert kept == [(16, 28), (30, 43)]


def test_a_later_pass_does_not_grow_a_chinese_place_over_the_words_before_it() -> None:
    # pass 1 replaced 中国 in "渣打中国业绩" with a city; LAC then reads 渣打 + the city as a place
    text = "2008年渣打佛山业绩显示"
    company = [Finding("text", 5, 9, "LOCATION", 0.8)]
    assert _outside_scrub_spans(company, ((7, 9, "LOCATION"),), text) == []

    # a larger unit before it is part of the address; in English a house number is
    province = [Finding("text", 0, 6, "LOCATION", 0.8)]
    assert _outside_scrub_spans(province, ((3, 6, "LOCATION"),), "广东省佛山市南海区") == province
    street = [Finding("text", 0, 20, "LOCATION", 0.8)]
    assert _outside_scrub_spans(street, ((5, 20, "LOCATION"),), "0912 362 Castro Trail") == street
