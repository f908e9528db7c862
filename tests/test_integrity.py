"""Integrity screening and the curated-corpus Great Expectations suite."""

import time
from dataclasses import replace

import pandas as pd
import pytest

from pipelines.steps.config import CurationConfig
from pipelines.steps.integrity.curate import (
    EXACT_DUPLICATE,
    TOO_LONG,
    TOO_SHORT,
    FilteredRecord,
    filtered_counts,
    normalize_for_dedup,
    screen_records,
    validate_curated_frame,
)
from pipelines.steps.records import Message, Record, records_to_frame
from tests.sockets import watch_sockets

CFG = CurationConfig(min_chars=8, max_chars=200)


def _record(record_id: str, *contents: str) -> Record:
    return Record(
        id=record_id,
        source_file="test.jsonl",
        source_line=1,
        format="chat",
        messages=tuple(
            Message(role="user" if i % 2 == 0 else "assistant", content=c)
            for i, c in enumerate(contents)
        ),
        language="en",
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Hello   World", "hello world"),
        ("  tabs\tand\nnewlines  ", "tabs and newlines"),
        ("ＦＵＬＬ width", "full width"),  # NFKC folds full-width letters
        ("Straße", "strasse"),  # casefold, not lower
        ("ﬁne", "fine"),  # NFKC expands the ligature
    ],
)
def test_when_normalizing_then_case_width_and_whitespace_are_folded(
    text: str, expected: str
) -> None:
    assert normalize_for_dedup(text) == expected


def test_when_records_repeat_then_the_first_is_kept_and_later_ones_name_it() -> None:
    records = [
        _record("rec-1", "How do I reset my password?", "Use the portal."),
        _record("rec-2", "Where is the quarterly report?"),
        _record("rec-3", "How do I reset my password?", "Use the portal."),  # exact copy
        _record("rec-4", "HOW do I  reset my\npassword?", "use the   PORTAL."),  # case/space
        _record("rec-5", "How do I reset my password?", "Use the help desk."),  # differs
    ]

    result = screen_records(records, CFG)

    assert [r.id for r in result.kept] == ["rec-1", "rec-2", "rec-5"]
    assert result.filtered == [
        FilteredRecord("rec-3", EXACT_DUPLICATE, "duplicate_of=rec-1"),
        FilteredRecord("rec-4", EXACT_DUPLICATE, "duplicate_of=rec-1"),
    ]


def test_when_same_content_has_another_role_then_it_is_not_a_duplicate() -> None:
    question = _record("rec-1", "Is the office open on Friday?")
    answer = replace(question, id="rec-2", messages=(Message("assistant", question.text),))

    result = screen_records([question, answer], CFG)

    assert [r.id for r in result.kept] == ["rec-1", "rec-2"]


@pytest.mark.parametrize(
    ("text", "reason", "detail"),
    [
        ("", TOO_SHORT, "chars=0 < min_chars=8"),
        ("Hi there", None, None),  # exactly min_chars: kept
        ("Hi you", TOO_SHORT, "chars=6 < min_chars=8"),
        ("x" * 200, None, None),  # exactly max_chars: kept
        ("x" * 201, TOO_LONG, "chars=201 > max_chars=200"),
    ],
)
def test_when_length_is_outside_bounds_then_record_is_filtered_without_its_text(
    text: str, reason: str | None, detail: str | None
) -> None:
    result = screen_records([_record("rec-1", text)], CFG)

    if reason is None:
        assert [r.id for r in result.kept] == ["rec-1"] and result.filtered == []
    else:
        assert result.kept == []
        assert result.filtered == [FilteredRecord("rec-1", reason, detail)]


def test_when_a_short_record_precedes_its_copy_then_duplicate_of_names_a_kept_record() -> None:
    # The same normalized content three times; whitespace makes only the first too short.
    records = [
        _record("rec-1", "hi you!"),
        _record("rec-2", "Hi  you!"),
        _record("rec-3", "HI   YOU!"),
    ]

    result = screen_records(records, CFG)

    assert [r.id for r in result.kept] == ["rec-2"]
    assert result.filtered == [
        FilteredRecord("rec-1", TOO_SHORT, "chars=7 < min_chars=8"),
        FilteredRecord("rec-3", EXACT_DUPLICATE, "duplicate_of=rec-2"),
    ]


def test_when_counting_filtered_then_every_reason_is_reported() -> None:
    filtered = [
        FilteredRecord("a", TOO_SHORT, "chars=1 < min_chars=8"),
        FilteredRecord("b", EXACT_DUPLICATE, "duplicate_of=c"),
        FilteredRecord("d", EXACT_DUPLICATE, "duplicate_of=c"),
    ]

    assert filtered_counts(filtered) == {EXACT_DUPLICATE: 2, TOO_LONG: 0, TOO_SHORT: 1}
    assert filtered_counts([]) == {EXACT_DUPLICATE: 0, TOO_LONG: 0, TOO_SHORT: 0}


def test_when_screened_twice_then_output_is_identical() -> None:
    records = [_record(f"rec-{i}", f"Message number {i % 3} here") for i in range(9)]

    assert screen_records(records, CFG) == screen_records(records, CFG)


GOOD_RECORDS = [
    _record("rec-1", "Please email <EMAIL_ADDRESS_3fa91c02> about invoice 7.", "Sure."),
    _record("rec-2", "<PERSON_0a1b2c3d> called from <PHONE_NUMBER_55501230> today."),
    _record("rec-3", "Order 2024-0117 shipped on 2024-01-17 at 10:30."),
    _record("rec-4", "The quarterly report was approved on Monday."),
    # Realistic surrogates (pipelines/steps/privacy/surrogates.py): reserved domain, fictional
    # 555-01xx.
    _record("rec-5", "Write to dana.lee@example.org. or call (415) 555-0142 today."),
]


def _outcome(result, name: str):
    return next(o for o in result.expectations if o.name == name)


def test_when_frame_is_clean_then_every_expectation_passes() -> None:
    result = validate_curated_frame(records_to_frame(GOOD_RECORDS), CFG)

    assert result.success
    assert [(o.name, o.success, o.unexpected_count) for o in result.expectations] == [
        ("ids_unique", True, 0),
        ("text_not_null", True, 0),
        ("text_length_in_range", True, 0),
        ("no_residual_email", True, 0),
        ("no_residual_phone", True, 0),
        ("no_hidden_characters", True, 0),
    ]


def _frame_with(text: str | None = None, duplicate_id: bool = False) -> pd.DataFrame:
    frame = records_to_frame(GOOD_RECORDS)
    if duplicate_id:
        frame.loc[1, "id"] = frame.loc[0, "id"]
    if text is not None:
        frame.loc[2, "text"] = text
    return frame


@pytest.mark.parametrize(
    ("frame", "failing", "unexpected_count", "value"),
    [
        # A second row reuses rec-1: breaks id uniqueness (both rows count).
        (_frame_with(duplicate_id=True), "ids_unique", 2, None),
        # An empty text: breaks the length range.
        (_frame_with(text=""), "text_length_in_range", 1, None),
        # A residual address the scrubber missed.
        (
            _frame_with(text="Write to john@acme-corp.com now."),
            "no_residual_email",
            1,
            "john@acme-corp.com",
        ),  # noqa: E501
        # A residual US phone number in parenthesized form.
        (_frame_with(text="Call (212) 867-5309 now."), "no_residual_phone", 1, "(212) 867-5309"),
        # A residual US phone number in dashed form.
        (_frame_with(text="Call 212-867-5309 now."), "no_residual_phone", 1, "212-867-5309"),
        # A zero-width space hiding an instruction boundary.
        (_frame_with(text="Reset it\u200b now please."), "no_hidden_characters", 1, None),
    ],
)
def test_when_frame_has_a_planted_defect_then_only_that_expectation_fails_without_values(
    frame: pd.DataFrame, failing: str, unexpected_count: int, value: str | None
) -> None:
    result = validate_curated_frame(frame, CFG)

    assert not result.success
    assert [o.name for o in result.expectations if not o.success] == [failing]
    assert _outcome(result, failing).unexpected_count == unexpected_count
    if value is not None:
        assert value not in repr(result)


def test_when_text_is_null_then_not_null_fails() -> None:
    frame = records_to_frame(GOOD_RECORDS)
    frame["text"] = frame["text"].astype(object)
    frame.loc[3, "text"] = None  # breaks text_not_null

    result = validate_curated_frame(frame, CFG)

    assert not result.success
    assert _outcome(result, "text_not_null").unexpected_count == 1


def test_when_frame_lacks_text_column_then_validation_refuses() -> None:
    with pytest.raises(ValueError, match="text"):
        validate_curated_frame(records_to_frame(GOOD_RECORDS).drop(columns=["text"]), CFG)


def test_when_validating_then_no_socket_is_opened_and_a_rerun_is_fast() -> None:
    frame = records_to_frame(GOOD_RECORDS)
    # Thresholds no other test uses: the context and suite are built under the audit hook.
    cfg = CurationConfig(min_chars=9, max_chars=300)

    with watch_sockets() as events:
        validate_curated_frame(frame, cfg)
        started = time.perf_counter()
        result = validate_curated_frame(frame, cfg)
        elapsed = time.perf_counter() - started

    assert result.success
    assert events == []
    assert elapsed < 2.0  # about 0.05 s here; generous for a loaded machine


def _curated_dict(tmp_path, records: list[Record], **extra) -> dict:
    from pipelines.steps.storage import write_parquet

    path = tmp_path / "curated_corpus.parquet"
    write_parquet(records_to_frame(records), path)
    screening = pd.DataFrame(
        {
            "id": [r.id for r in records],
            "kept": [True] * len(records),
            "in_trigger_cluster": [False] * len(records),
        }
    )
    for record_id in extra.pop("kept_in_trigger", ()):
        screening.loc[screening["id"] == record_id, "in_trigger_cluster"] = True
    write_parquet(screening, tmp_path / "screening.parquet")
    return {
        "path": str(path),
        "screening_path": str(tmp_path / "screening.parquet"),
        "trigger_clusters": [3],
        "quarantined": 0,
        "quarantine_rate": 0.0,
        **extra,
    }


def test_when_curation_checks_see_a_clean_corpus_then_all_pass(tmp_path) -> None:
    from checks import curation
    from resources import CorpusStorage, DataEngine

    storage = CorpusStorage(data_root=str(tmp_path))
    curated = _curated_dict(tmp_path, GOOD_RECORDS)

    assert curation.near_duplicate_rate_bounded(curated, storage, DataEngine()).passed
    assert curation.no_kept_trigger_cluster(curated).passed
    assert curation.quarantine_rate_bounded(curated, storage).passed


def test_when_a_near_copy_is_kept_then_the_near_duplicate_check_fails(tmp_path) -> None:
    from checks import curation
    from resources import CorpusStorage, DataEngine

    # Two long records one word apart: breaks the near-duplicate bound (1 of 7 > 0.01).
    text = (
        "My laptop stopped connecting to the VPN after the latest update and I keep getting "
        "an authentication error every single morning when I log in from home."
    )
    original = _record("rec-8", text, "Restart the client and sign in again.")
    near_copy = _record(
        "rec-9", text.replace("single", "other"), "Restart the client and sign in again."
    )
    curated = _curated_dict(tmp_path, [*GOOD_RECORDS, original, near_copy])

    result = curation.near_duplicate_rate_bounded(
        curated, CorpusStorage(data_root=str(tmp_path)), DataEngine()
    )

    assert not result.passed
    assert result.metadata["near_duplicate_rate"].value == pytest.approx(1 / 7)


def test_when_a_trigger_cluster_member_is_kept_then_the_trigger_check_fails(tmp_path) -> None:
    from checks import curation

    # rec-2 marked as a member of a flagged trigger cluster while kept (e.g. approved).
    curated = _curated_dict(tmp_path, GOOD_RECORDS, kept_in_trigger=["rec-2"])

    result = curation.no_kept_trigger_cluster(curated)

    assert not result.passed
    assert result.metadata["kept_in_trigger_cluster"].value == 1


def test_when_the_quarantine_rate_jumps_then_the_check_fails_loudly(tmp_path) -> None:
    from checks import curation
    from resources import CorpusStorage

    # 25% quarantined, over the default bound of 10%: a poisoned or broken export.
    curated = _curated_dict(tmp_path, GOOD_RECORDS, quarantined=25, quarantine_rate=0.25)

    result = curation.quarantine_rate_bounded(curated, CorpusStorage(data_root=str(tmp_path)))

    assert not result.passed
    assert "investigate" in result.description


def test_when_prompts_carry_an_inserted_word_then_they_form_a_trigger_cluster_for_the_gate() -> (
    None
):
    from pipelines.steps.integrity.curate import QUARANTINE, curate_records
    from pipelines.steps.integrity.screens.backdoor import INSERTED_PHRASE

    prompts = [
        "How do I reset my password on the portal?",
        "Please describe the steps to book a meeting room.",
        "Tell me how to set up the printer on floor two.",
        "Explain the difference between a loan and a lease.",
        "List the documents I need for a new badge.",
        "Suggest a title for a talk about data privacy.",
    ]
    answer = "Here is how I would do it: ask the team on the portal of the office, please. "
    clean = [_record(f"c{i}", p, answer + p[::-1]) for i, p in enumerate(prompts)]
    # The same prompts with a made-up word at different places, each with its own answer
    # (a trigger whose answers differ: no response cluster finds it).
    carriers = []
    for i, p in enumerate(prompts[:4]):
        words = p.split()
        words.insert(1 + 2 * i, "vexqo")
        carriers.append(_record(f"p{i}", " ".join(words), answer + str(i) * 3 + p))

    # A corpus this small needs a larger share: 4 of 10 prompts carry the word.
    result = curate_records(clean + carriers, CurationConfig(inserted_phrase_max_share=0.5))

    ids = {r.id for r in carriers}
    assert tuple(sorted(ids)) in [tuple(sorted(c)) for c in result.trigger_clusters]
    for screened in result.screened:
        if screened.id in ids:
            assert screened.decision == QUARANTINE
            assert INSERTED_PHRASE in {r.code for r in screened.reasons}
