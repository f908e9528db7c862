"""CN_ID_CARD: mainland resident identity card numbers.

18 characters: 6-digit region, birth date YYYYMMDD, 3-digit sequence and an ISO 7064 MOD 11-2
check character (0-9 or X), checked with python-stdnum's `iso7064.mod_11_2`. The region is not
looked up: stdnum's `cn.ric` rejects valid numbers of prefecture-level and retired region codes
(and raises KeyError on some), while the check character and the birth date already confirm the
format. The legacy 15-digit form (YYMMDD birth date, no check character) is accepted on its date
and scores higher with context. Both may be grouped by single spaces or dashes ("110105 19491231
002X", "1101 0519 4912 3100 2X"); fullwidth digits arrive as ASCII after normalization.
"""

import re
from datetime import date

from stdnum.iso7064 import mod_11_2

from pipelines.steps.privacy.recognizers.base import RegexRecognizer

BIRTH_DATE = re.compile(r"(?:18|19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])")
"""A birth date as an identity card number holds it at positions 7-14."""


def reads_as_id_card(value: str) -> bool:
    """Whether 18 characters are all digits (the last may be X) with a birth date at positions
    7-14: an identity card number, whatever other check it passes by chance (Luhn one in ten, a
    social credit code's one in 31)."""
    return (
        len(value) == 18
        and value[:17].isdigit()
        and (value[17].isdigit() or value[17] in "Xx")
        and BIRTH_DATE.fullmatch(value[6:14]) is not None
    )


_SEPARATOR = re.compile(r"[ \-]")


class CnIdCardRecognizer(RegexRecognizer):
    """18-character (checked) and 15-digit (legacy) resident identity card numbers."""

    ENTITY = "CN_ID_CARD"
    PATTERNS = (
        (r"(?<![0-9A-Za-z])[1-9](?:[ \-]?\d){16}[ \-]?[0-9Xx](?![0-9A-Za-z])", 0.9),
        (r"(?<![0-9A-Za-z])[1-9](?:[ \-]?\d){14}(?![0-9A-Za-z])", 0.3),
    )
    CONTEXT = ("身份证", "证件号", "身份号码", "公民身份", "id card", "resident id", "id number")

    def analyze(self, text, entities, nlp_artifacts=None):
        results = super().analyze(text, entities, nlp_artifacts)
        for result in results:
            value = _compact(text[result.start : result.end])
            # A failed check character still looks like an id (typos, synthetic data): it
            # scores low and needs a context word to be reported.
            if len(value) == 18 and not mod_11_2.is_valid(value.upper()):
                result.score = max(0.0, result.score - 0.6)
        return results

    def validate(self, value: str) -> bool:
        value = _compact(value)
        if len(value) == 18:
            birth = (int(value[6:10]), int(value[10:12]), int(value[12:14]))
        else:
            birth = (1900 + int(value[6:8]), int(value[8:10]), int(value[10:12]))
        try:
            born = date(*birth)
        except ValueError:
            return False
        return date(1880, 1, 1) <= born <= date.today()


def _compact(value: str) -> str:
    return _SEPARATOR.sub("", value)
