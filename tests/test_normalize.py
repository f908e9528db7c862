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
    ],
)
def test_when_text_is_obfuscated_then_normalized_value_maps_back_to_the_original_span(
    text: str, normalized_value: str, original_value: str
) -> None:
    result = normalize(text)

    start = result.text.index(normalized_value)
    a, b = result.to_original(start, start + len(normalized_value))
    assert text[a:b] == original_value


@pytest.mark.parametrize("text", ["Look at the report, dot the i's.", "Version 1.2.3", "plain"])
def test_when_text_is_not_obfuscated_then_nothing_changes(text: str) -> None:
    result = normalize(text)

    assert result.text == text
    assert not result.changed
