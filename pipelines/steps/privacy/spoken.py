"""Numbers read out digit by digit in words, and back: "nine one seven" is 917 ("double five" is
55). Read by the spelled-number recognizer (`recognizers.en_spelled`) and by the surrogates,
which give a number read out a number read out (`surrogates`)."""

import re

DIGIT_WORDS = {
    "zero": "0", "oh": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5",
    "six": "6", "seven": "7", "eight": "8", "nine": "9",
}  # fmt: skip
"""Digit words and their digits."""
REPEATS = {"double": 2, "triple": 3}
_DIGIT = r"(?:zero|one|two|three|four|five|six|seven|eight|nine)"
_TOKEN = rf"(?:(?:double|triple)[ \t]+{_DIGIT}|{_DIGIT}|oh|\d{{1,4}})(?!\w)"
_SEPARATOR = r"(?:[ \t]*[,.\-][ \t]*|[ \t]+)"
RUN = re.compile(
    rf"(?i)(?<![\w\-])(?:(?:double|triple)[ \t]+{_DIGIT}|{_DIGIT}|\d{{1,4}})(?!\w)"
    rf"(?:{_SEPARATOR}{_TOKEN}){{2,24}}(?![\w\-])"
)
"""A run of digit words and digit groups, opened by a digit (never by "oh"); bounded, so a long
text of digit words is read in linear time."""
_WORD = re.compile(r"(?i)(double|triple)[ \t]+(\w+)|([a-z]+)|(\d+)")
ANY_DIGIT_WORD = re.compile(rf"(?i)\b{_DIGIT}\b")
MIN_WORDS = 3
MIN_DIGITS = 7
SSN_WORDS = ("ssn", "social security", "social-security")


def spelled_digits(value: str) -> str:
    """The digits a run of digit words and digit groups spells ("double five" is 55)."""
    out = []
    for match in _WORD.finditer(value):
        repeat, word, name, number = match.groups()
        if repeat:
            out.append(DIGIT_WORDS.get(word.lower(), "") * REPEATS[repeat.lower()])
        elif name:
            out.append(DIGIT_WORDS.get(name.lower(), ""))
        else:
            out.append(number)
    return "".join(out)


def digit_words(value: str) -> int:
    """How many digit words `value` holds (a "double five" counts two)."""
    return sum(
        REPEATS[m.group(1).lower()] if m.group(1) else 1
        for m in _WORD.finditer(value)
        if m.group(1) or (m.group(3) and m.group(3).lower() in DIGIT_WORDS)
    )


def counting(digits: str) -> bool:
    """Whether the digits count up or down one by one ("one two three four five six seven")."""
    steps = {int(b) - int(a) for a, b in zip(digits, digits[1:], strict=False)}
    return steps in ({1}, {-1})


def spoken(digits_and_separators: str) -> str:
    """Digits as digit words, separators kept ("917, 555" -> "nine one seven, five five five")."""
    words = {digit: word for word, digit in DIGIT_WORDS.items() if word != "oh"}
    out = re.sub(r"\d", lambda m: f" {words[m.group()]} ", digits_and_separators)
    return re.sub(r" +([,.\-])", r"\1", " ".join(out.split()))


_SPOKEN_TOKEN = re.compile(rf"(?i)\b(?:(?:double|triple)[ \t]+{_DIGIT}|{_DIGIT}|oh)\b")


def written(value: str) -> str:
    """Digit words as digits, separators kept ("nine one seven, five" -> "917, 5")."""
    joined = _SPOKEN_TOKEN.sub(lambda match: spelled_digits(match.group()), value)
    return re.sub(r"(?<=\d)[ \t]+(?=\d)", "", joined)
