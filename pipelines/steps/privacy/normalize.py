"""Undo common obfuscations before detection, keeping a map back to the original offsets.

Detectors see a normalized copy of each text: NFKC (fullwidth digits and letters become ASCII),
invisible characters removed (`pipelines.steps.privacy.invisible`: default-ignorable, format,
filler and control characters), a run of Chinese numerals read one digit at a time as its
digits (幺三九… is 139…, `spoken.HAN_RUN`), "john at example dot com" spelled as an address, and
digits written one by one with spaces or dashes between them joined again. Every character
of the normalized text remembers the range of original characters it came from, so a finding on
the normalized text maps back to a span of the original text that covers the obfuscated value
(`Normalized.to_original`): the anonymizer always edits the text it was given.
"""

import re
import unicodedata
from dataclasses import dataclass

from pipelines.steps.privacy.invisible import INVISIBLE, has_invisible
from pipelines.steps.privacy.spoken import HAN_RUN, han_digits

_AT = r"(?:\s*[\[\(\{<]\s*(?:at|AT|At)\s*[\]\)\}>]\s*|\s+(?:at|AT|At)\s+)"
_DOT = r"(?:\s*[\[\(\{<]\s*(?:dot|DOT|Dot)\s*[\]\)\}>]\s*|\s+(?:dot|DOT|Dot)\s+)"
_SPELLED_EMAIL = re.compile(
    rf"(?<![\w.+-])([\w.+-]+){_AT}([A-Za-z0-9-]+(?:(?:{_DOT}|\.)[A-Za-z0-9-]+)*"
    rf"(?:{_DOT}|\.)[A-Za-z]{{2,12}})(?![\w@.-])"
)
_DOT_WORD = re.compile(_DOT)
# Seven or more digits, each one alone, separated by spaces, dashes or dots ("5 3 6 - 9 0 ...").
_SPACED_DIGITS = re.compile(
    r"(?<![A-Za-z0-9])\d(?:[ \t\-.\u2010-\u2015]{1,3}\d){6,}(?![A-Za-z0-9])"
)
_GAP = re.compile(r"[ \t\-.\u2010-\u2015]{1,3}")


@dataclass(frozen=True)
class Normalized:
    """A normalized text and, per character, the original range it stands for.

    Attributes:
        text: The normalized text that detectors scan.
        starts: `starts[i]` is the original offset where normalized character i begins.
        ends: `ends[i]` is the original offset (exclusive) where normalized character i ends.
        original_length: Length of the original text.
    """

    text: str
    starts: tuple[int, ...]
    ends: tuple[int, ...]
    original_length: int

    @property
    def changed(self) -> bool:
        """Whether normalization changed anything (else offsets map one to one)."""
        length = len(self.text)
        return (
            length != self.original_length
            or self.starts != tuple(range(length))
            or self.ends != tuple(range(1, length + 1))
        )

    def to_original(self, start: int, end: int) -> tuple[int, int]:
        """The original span covering normalized span `[start, end)` (end exclusive)."""
        if start >= end:
            position = self.starts[start] if start < len(self.starts) else self.original_length
            return position, position
        return self.starts[start], self.ends[end - 1]


def normalize(text: str) -> Normalized:
    """Normalize `text` for detection (see the module docstring for what changes).

    Args:
        text: The original text.

    Returns:
        The normalized text with its offset map.
    """
    if text.isascii() and not has_invisible(text):  # no control characters, nothing to fold
        length = len(text)
        current = Normalized(text, tuple(range(length)), tuple(range(1, length + 1)), length)
    else:
        chars: list[str] = []
        starts: list[int] = []
        ends: list[int] = []
        for index, char in enumerate(text):
            if char in INVISIBLE:
                continue
            folded = unicodedata.normalize("NFKC", char) if not char.isascii() else char
            for piece in folded:
                chars.append(piece)
                starts.append(index)
                ends.append(index + 1)
        current = Normalized("".join(chars), tuple(starts), tuple(ends), len(text))
        if HAN_RUN.search(current.text):
            # one digit per numeral: every offset stays where it was
            digits = HAN_RUN.sub(lambda match: han_digits(match.group()), current.text)
            current = Normalized(digits, current.starts, current.ends, len(text))
    current = _substitute(current, _SPELLED_EMAIL, _spell_email)
    return _substitute(current, _SPACED_DIGITS, _join_digits)


def _spell_email(match: re.Match[str]) -> str:
    return f"{match.group(1)}@{_DOT_WORD.sub('.', match.group(2))}"


def _join_digits(match: re.Match[str]) -> str:
    gaps = {gap.strip() for gap in _GAP.findall(match.group(0))}
    digits = re.findall(r"\d", match.group(0))
    if len(gaps) <= 1:
        # One kind of separator between every digit: it hides the number, it does not group it.
        return "".join(digits)
    parts = re.split(r"\s*([\-.\u2010-\u2015])\s*", re.sub(r"(?<=\d) (?=\d)", "", match.group(0)))
    return "".join(part.replace(" ", "") for part in parts)


def _substitute(current: Normalized, pattern: re.Pattern[str], replace) -> Normalized:
    """Apply `pattern.sub(replace)` to the normalized text, carrying the offset map along."""
    text = current.text
    if not pattern.search(text):
        return current
    chars: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    position = 0
    for match in pattern.finditer(text):
        a, b = match.span()
        chars.append(text[position:a])
        starts.extend(current.starts[position:a])
        ends.extend(current.ends[position:a])
        replacement = replace(match)
        chars.append(replacement)
        # Each replacement character stands for the whole matched original range.
        starts.extend([current.starts[a]] * len(replacement))
        ends.extend([current.ends[b - 1]] * len(replacement))
        position = b
    chars.append(text[position:])
    starts.extend(current.starts[position:])
    ends.extend(current.ends[position:])
    return Normalized("".join(chars), tuple(starts), tuple(ends), current.original_length)
