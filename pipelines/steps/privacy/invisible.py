"""Invisible characters: the one definition detection, the residual gate and the suite share.

An identifier split by a character that renders as nothing ("123-45\u200b-6789",
"jane\u2060@example.com") reads as the identifier to a person and to a model trained on it,
but not to a regular expression. Issue #16 found U+034F, U+FE0F, tags U+E0020-U+E007F,
U+3164, U+061C, U+2800, U+00AD, U+200B-U+200F, U+2060-U+2064, U+180E, NUL and BEL hiding
SSNs, cards, Chinese ids, IBANs, e-mail addresses and phone numbers.

A character is invisible here when it is one of:

- Default_Ignorable_Code_Point (Unicode DerivedCoreProperties.txt: Other_Default_Ignorable_
  Code_Point + Cf + Variation_Selector, minus White_Space, U+FFF9-U+FFFB and the prepended
  concatenation marks). `unicodedata` does not expose this property, so `DEFAULT_IGNORABLE`
  below copies its ranges from DerivedCoreProperties.txt (Unicode 15.1), reserved (Cn) ones
  included: a code point assigned later stays ignored.
- any format character (general category Cf), whether default-ignorable or not
  (`OTHER_FORMAT`: U+0600-U+0605, U+06DD, ...);
- a filler that renders blank though it is a letter or symbol (`FILLERS`);
- a control character (Cc) other than tab, line feed and carriage return (`CONTROLS`).

tests/test_hostile_inputs.py checks the table against `unicodedata`: every Cf and Cc code point
of the running Python's Unicode version is covered, and every listed code point has one of
the categories the definition allows.
"""

import re

DEFAULT_IGNORABLE: tuple[tuple[int, int, str], ...] = (
    (0x00AD, 0x00AD, "SOFT HYPHEN"),
    (0x034F, 0x034F, "COMBINING GRAPHEME JOINER"),
    (0x061C, 0x061C, "ARABIC LETTER MARK"),
    (0x115F, 0x1160, "HANGUL CHOSEONG FILLER..JUNGSEONG FILLER"),
    (0x17B4, 0x17B5, "KHMER VOWEL INHERENT AQ..AA"),
    (0x180B, 0x180D, "MONGOLIAN FREE VARIATION SELECTOR ONE..THREE"),
    (0x180E, 0x180E, "MONGOLIAN VOWEL SEPARATOR"),
    (0x180F, 0x180F, "MONGOLIAN FREE VARIATION SELECTOR FOUR"),
    (0x200B, 0x200F, "ZERO WIDTH SPACE..RIGHT-TO-LEFT MARK"),
    (0x202A, 0x202E, "LEFT-TO-RIGHT EMBEDDING..RIGHT-TO-LEFT OVERRIDE"),
    (0x2060, 0x2064, "WORD JOINER..INVISIBLE PLUS"),
    (0x2065, 0x2065, "<reserved>"),
    (0x2066, 0x206F, "LEFT-TO-RIGHT ISOLATE..NOMINAL DIGIT SHAPES"),
    (0x3164, 0x3164, "HANGUL FILLER"),
    (0xFE00, 0xFE0F, "VARIATION SELECTOR-1..16"),
    (0xFEFF, 0xFEFF, "ZERO WIDTH NO-BREAK SPACE"),
    (0xFFA0, 0xFFA0, "HALFWIDTH HANGUL FILLER"),
    (0xFFF0, 0xFFF8, "<reserved>"),
    (0x1BCA0, 0x1BCA3, "SHORTHAND FORMAT LETTER OVERLAP..UP STEP"),
    (0x1D173, 0x1D17A, "MUSICAL SYMBOL BEGIN BEAM..END PHRASE"),
    (0xE0000, 0xE0000, "<reserved>"),
    (0xE0001, 0xE0001, "LANGUAGE TAG"),
    (0xE0002, 0xE001F, "<reserved>"),
    (0xE0020, 0xE007F, "TAG SPACE..CANCEL TAG"),
    (0xE0080, 0xE00FF, "<reserved>"),
    (0xE0100, 0xE01EF, "VARIATION SELECTOR-17..256"),
    (0xE01F0, 0xE0FFF, "<reserved>"),
)
"""Default_Ignorable_Code_Point, from Unicode's DerivedCoreProperties.txt (15.1)."""

OTHER_FORMAT: tuple[tuple[int, int, str], ...] = (
    (0x0600, 0x0605, "ARABIC NUMBER SIGN..NUMBER MARK ABOVE"),
    (0x06DD, 0x06DD, "ARABIC END OF AYAH"),
    (0x070F, 0x070F, "SYRIAC ABBREVIATION MARK"),
    (0x0890, 0x0891, "ARABIC POUND MARK ABOVE..PIASTRE MARK ABOVE"),
    (0x08E2, 0x08E2, "ARABIC DISPUTED END OF AYAH"),
    (0xFFF9, 0xFFFB, "INTERLINEAR ANNOTATION ANCHOR..TERMINATOR"),
    (0x110BD, 0x110BD, "KAITHI NUMBER SIGN"),
    (0x110CD, 0x110CD, "KAITHI NUMBER SIGN ABOVE"),
    (0x13430, 0x1343F, "EGYPTIAN HIEROGLYPH FORMAT CONTROLS"),
)
"""Format characters (Cf) that are not default-ignorable."""

FILLERS: tuple[tuple[int, int, str], ...] = (
    (0x115F, 0x1160, "HANGUL CHOSEONG FILLER..JUNGSEONG FILLER"),
    (0x2800, 0x2800, "BRAILLE PATTERN BLANK"),
    (0x3164, 0x3164, "HANGUL FILLER"),
    (0xFFA0, 0xFFA0, "HALFWIDTH HANGUL FILLER"),
)
"""Letters and symbols that render as blank space."""

CONTROLS: tuple[tuple[int, int, str], ...] = (
    (0x0000, 0x0008, "NULL..BACKSPACE"),
    (0x000B, 0x000C, "LINE TABULATION..FORM FEED"),
    (0x000E, 0x001F, "SHIFT OUT..INFORMATION SEPARATOR ONE"),
    (0x007F, 0x009F, "DELETE..APPLICATION PROGRAM COMMAND"),
)
"""Control characters (Cc) except tab, line feed and carriage return."""

RANGES: tuple[tuple[int, int, str], ...] = DEFAULT_IGNORABLE + OTHER_FORMAT + FILLERS + CONTROLS

INVISIBLE: frozenset[str] = frozenset(
    chr(code) for first, last, _ in RANGES for code in range(first, last + 1)
)
"""Every invisible character, for membership tests (`char in INVISIBLE`)."""


def _character_class(ranges: tuple[tuple[int, int, str], ...]) -> str:
    merged: list[list[int]] = []
    for first, last, _ in sorted(ranges):
        if merged and first <= merged[-1][1] + 1:
            merged[-1][1] = max(merged[-1][1], last)
        else:
            merged.append([first, last])
    parts = (f"\\U{a:08x}" if a == b else f"\\U{a:08x}-\\U{b:08x}" for a, b in merged)
    return "[" + "".join(parts) + "]"


INVISIBLE_REGEX: str = _character_class(RANGES)
"""A regular-expression character class matching one invisible character (Python `re`
syntax, escapes only: safe to hand to Great Expectations and pandas)."""

_INVISIBLE_RUN = re.compile(INVISIBLE_REGEX + "+")


def has_invisible(text: str) -> bool:
    """Whether `text` holds at least one invisible character."""
    return _INVISIBLE_RUN.search(text) is not None


def count_invisible(text: str) -> int:
    """How many invisible characters `text` holds."""
    return sum(len(run) for run in _INVISIBLE_RUN.findall(text))


def strip_invisible(text: str) -> str:
    """`text` without its invisible characters."""
    return _INVISIBLE_RUN.sub("", text)
