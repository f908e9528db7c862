"""Numbers read out digit by digit in words, and back: "nine one seven" is 917 ("double five" is
55), 幺三九 is 139. Read by the spelled-number recognizer (`recognizers.en_spelled`), by
normalization (`normalize`: a run of Chinese numerals is read as the digits it spells) and by
the surrogates, which give a number read out a number read out (`surrogates`)."""

import re

DIGIT_WORDS = {
    "zero": "0", "oh": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5",
    "six": "6", "seven": "7", "eight": "8", "nine": "9",
}  # fmt: skip
"""Digit words and their digits."""
REPEATS = {"double": 2, "triple": 3}
_DIGIT = r"(?:zero|one|two|three|four|five|six|seven|eight|nine)"
_TOKEN = rf"(?:(?:double|triple)[ \t]+(?:{_DIGIT}|oh)|{_DIGIT}|oh|\d{{1,4}})(?!\w)"
_SEPARATOR = r"(?:[ \t]*[,.\-][ \t]*|[ \t]+)"
RUN = re.compile(rf"(?i)(?<![\w\-]){_TOKEN}(?:{_SEPARATOR}{_TOKEN}){{2,24}}(?![\w\-])")
"""A run of digit words and digit groups ("oh" and "double oh" for zeros, as a British number
is read: "oh seven seven zero zero, nine double oh"); bounded, so a long text of digit words is
read in linear time. An "oh" of speech ("oh, one more thing") makes no run: three digit words
and seven digits at least (`MIN_WORDS`, `MIN_DIGITS`)."""
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


_SPOKEN_TOKEN = re.compile(rf"(?i)\b(?:(?:double|triple)[ \t]+(?:{_DIGIT}|oh)|{_DIGIT}|oh)\b")


def written(value: str) -> str:
    """Digit words as digits, separators kept ("nine one seven, five" -> "917, 5")."""
    joined = _SPOKEN_TOKEN.sub(lambda match: spelled_digits(match.group()), value)
    return re.sub(r"(?<=\d)[ \t]+(?=\d)", "", joined)


_NUMERALS_OF = ("零〇", "一幺壹", "二两兩贰貳", "三叁參叄", "四肆")
_NUMERALS_OF += ("五伍", "六陆陸", "七柒", "八捌", "九玖")
HAN_DIGITS = {
    numeral: str(digit) for digit, numerals in enumerate(_NUMERALS_OF) for numeral in numerals
}
"""Chinese numerals as a number is read out one digit at a time (幺 and 两 for one and two on the
phone), in everyday and in financial form (壹贰叁: the form cheques and contracts use, and one
written to slip past a filter), simplified and traditional; 〇 and 零 are zero."""
_HAN_DIGIT_TABLE = str.maketrans(HAN_DIGITS)
_NUMERALS = "".join(HAN_DIGITS)
_UNITS = "十百千万亿拾佰仟萬億"
MIN_HAN_DIGITS = 7
"""Numerals in a run, at least, for it to be read as a number: a phone, card or id number has
more; words made of numerals (一一, 三三两两, 七七八八) have fewer."""
HAN_RUN = re.compile(
    rf"(?<![{_NUMERALS}{_UNITS}])[{_NUMERALS}](?:[ \t\-]?[{_NUMERALS}]){{{MIN_HAN_DIGITS - 1},}}"
    rf"(?![{_NUMERALS}{_UNITS}])"
)
"""A run of Chinese numerals read one digit at a time, single spaces or dashes allowed between
them (幺三九 零一二三 四五六七); next to a unit (十, 百, 万 ...) it is a number said by its places
(一千二百), not digits. Each numeral is one character, so is its digit: offsets do not move."""
_EVERYDAY = "零一二三四五六七八九"
_FINANCIAL = "零壹贰叁肆伍陆柒捌玖"


def han_digits(value: str) -> str:
    """`value` with every Chinese numeral replaced by its digit (one character each)."""
    return value.translate(_HAN_DIGIT_TABLE)


def in_han_numerals(value: str) -> bool:
    """Whether a number is written in Chinese numerals: some, and no ASCII digit."""
    return any(c in HAN_DIGITS for c in value) and not any("0" <= c <= "9" for c in value)


def han_numerals(digits: str, like: str) -> str:
    """`digits` written back in Chinese numerals, in the form `like` uses (壹贰叁 or 一二三)."""
    numerals = _FINANCIAL if any(c in _FINANCIAL[1:] for c in like) else _EVERYDAY
    return "".join(numerals[int(c)] if "0" <= c <= "9" else c for c in digits)
