"""The labelled set generator and the per-entity scoring."""

from stdnum.iso7064 import mod_11_2

from pipelines.steps.privacy.pii_eval import Scores, generate_gold, score
from pipelines.steps.privacy.recognizers.cn_names import _name_rule
from pipelines.steps.privacy.recognizers.en_person import listed_names


def test_when_gold_set_is_generated_then_spans_are_valid_and_both_languages_present() -> None:
    rows = generate_gold(per_template=2, seed=1)

    assert {row["language"] for row in rows} == {"en", "zh"}
    for row in rows:
        for gold in row["gold"]:
            assert 0 <= gold["start"] < gold["end"] <= len(row["text"])
    assert generate_gold(per_template=2, seed=1) == rows


def test_when_scoring_then_overlap_of_same_type_counts_and_other_types_do_not() -> None:
    gold = [[("text", 0, 5, "PERSON")], [("text", 3, 8, "EMAIL_ADDRESS")]]
    predicted = [[("text", 1, 4, "PERSON"), ("text", 10, 12, "PERSON")], [("text", 3, 8, "URL")]]

    scores = score(gold, predicted)

    assert scores["PERSON"] == Scores(gold=1, predicted=2, found=1, correct=1)
    assert scores["PERSON"].precision == 0.5 and scores["PERSON"].recall == 1.0
    assert scores["EMAIL_ADDRESS"].recall == 0.0
    assert round(scores["PERSON"].f2, 4) == round(5 * 0.5 * 1 / (4 * 0.5 + 1), 4)


def test_when_gold_set_is_generated_then_person_names_are_held_out_from_the_name_rules() -> None:
    rows = generate_gold(per_template=20, seed=3)
    firsts, lasts = listed_names()

    names = [
        row["text"][g["start"] : g["end"]].replace("\u200b", "")
        for row in rows
        for g in row["gold"]
        if g["entity_type"] == "PERSON"
    ]

    english = [n for n in names if n.isascii()]
    chinese = [n for n in names if not n.isascii()]
    assert english and chinese
    for name in english:  # no word of an English gold name is in the rule's lists
        assert not any(word.lower() in firsts | lasts for word in name.split())
    for name in chinese:  # the surname + listed given name rule cannot match them
        assert _name_rule().fullmatch(name) is None


def test_when_gold_set_is_generated_then_id_numbers_carry_valid_check_characters() -> None:
    rows = generate_gold(per_template=20, seed=3)

    ids = [
        row["text"][g["start"] : g["end"]]
        for row in rows
        for g in row["gold"]
        if g["entity_type"] == "CN_ID_CARD"
    ]

    compact = [
        "".join(chr(ord(c) - 0xFEE0) if c > "\uff00" else c for c in i if c != " ") for i in ids
    ]
    assert any(" " in i for i in ids) and any(not i.isascii() for i in ids)  # both forms
    assert all(mod_11_2.is_valid(c) for c in compact)
