"""Obfuscation normalization and its map back to original offsets."""

import pytest

from pipelines.steps.privacy.normalize import normalize


@pytest.mark.parametrize(
    ("text", "normalized_value", "original_value"),
    [
        ("mail john at example dot com now", "john@example.com", "john at example dot com"),
        ("mail john [at] example [dot] org", "john@example.org", "john [at] example [dot] org"),
        ("SSN 5 3 6 - 9 0 - 4 3 9 9 ok", "536-90-4399", "5 3 6 - 9 0 - 4 3 9 9"),
        ("card 4-1-1-1-1-1-1-1 end", "41111111", "4-1-1-1-1-1-1-1"),
        ("id １１０１０１ here", "110101", "１１０１０１"),
        ("a jo\u200bhn@exa\u00admple.com b", "john@example.com", "jo\u200bhn@exa\u00admple.com"),
        # a number read out in Chinese numerals, everyday or financial, spaced or not
        ("手机一三八一二三四五六七八谢谢", "13812345678", "一三八一二三四五六七八"),
        ("电话：幺三九 零一二三 四五六七", "139 0123 4567", "幺三九 零一二三 四五六七"),
        ("卡号陆贰贰贰零贰零贰零零壹壹", "622202020011", "陆贰贰贰零贰零贰零零壹壹"),
        ("号码一\u200b三八一二三四五六七八", "13812345678", "一\u200b三八一二三四五六七八"),
    ],
)
def test_when_text_is_obfuscated_then_normalized_value_maps_back_to_the_original_span(
    text: str, normalized_value: str, original_value: str
) -> None:
    result = normalize(text)

    start = result.text.index(normalized_value)
    a, b = result.to_original(start, start + len(normalized_value))
    assert text[a:b] == original_value


@pytest.mark.parametrize(
    "text",
    [
        "Look at the report, dot the i's.",
        "Version 1.2.3",
        "plain",
        "三三两两、七七八八",  # words made of numerals: too short a run
        "一千二百三十四万五千六百七十八",  # a number said by its places, not digit by digit
        "共计一二三四五六七十人",  # a run that runs into a unit
    ],
)
def test_when_text_is_not_obfuscated_then_nothing_changes(text: str) -> None:
    result = normalize(text)

    assert result.text == text
    assert not result.changed
