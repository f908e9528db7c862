"""The labelled set generator and the per-entity scoring."""

from pipelines.steps.pii_eval import Scores, generate_gold, score


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
