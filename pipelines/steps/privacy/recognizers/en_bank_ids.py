"""ABA_ROUTING_NUMBER and US_PASSPORT: two 9-digit formats told apart by checksum and context.

Presidio's ABA recognizer scores any 9-digit number that passes the ABA checksum at 1.0 (one
random number in ten does), so a passport number next to "passport" was reported as a routing
number. Here a routing number needs a Federal Reserve prefix (00-12, 21-32, 61-72, 80) and
the checksum (python-stdnum `us.rtn`); without a context word it still scores just over the
scrub threshold (a bare valid number is replaced), with one it is confident. A passport number
(9 digits, or a letter and 8 digits for the next-generation books) has no checksum: it is
reported only next to a passport word, and then outranks a context-free routing number.

The class names differ from Presidio's on purpose: Presidio's default registry finds its
predefined recognizers by class name among all subclasses, so a namesake would replace them in a
vanilla `AnalyzerEngine()` in the same process.
"""

import re
import string

from presidio_analyzer.predefined_recognizers import IbanRecognizer
from stdnum.us import rtn

from pipelines.steps.privacy.recognizers.base import RegexRecognizer, has_context

_ROUTING_PREFIX = re.compile(r"(?:0[0-9]|1[0-2]|2[1-9]|3[0-2]|6[1-9]|7[0-2]|80)")


class RoutingNumberRecognizer(RegexRecognizer):
    """9-digit routing numbers (plain or dddd-dddd-d) with a valid prefix and checksum."""

    ENTITY = "ABA_ROUTING_NUMBER"
    PATTERNS = (
        (r"(?<![\d-])\d{9}(?![\d-])", 0.45),
        (r"(?<![\d-])\d{4}-\d{4}-\d(?![\d-])", 0.45),
    )
    CONTEXT = ("routing", "aba", "rtn", "transit", "wire", "ach")
    OTHER_CONTEXT = ("ssn", "social security", "passport", "tax id", "itin", "ein")
    """Words naming another 9-digit number: without a routing word, the value is theirs."""

    def analyze(self, text, entities, nlp_artifacts=None):
        return [
            result
            for result in super().analyze(text, entities, nlp_artifacts)
            if result.score > self.PATTERNS[0][1]
            or not has_context(text, result.start, result.end, self.OTHER_CONTEXT)
        ]

    def validate(self, value: str) -> bool:
        digits = value.replace("-", "")
        return bool(_ROUTING_PREFIX.match(digits)) and rtn.is_valid(digits)


class PassportNumberRecognizer(RegexRecognizer):
    """9 digits or a letter and 8 digits, reported only next to a passport word."""

    ENTITY = "US_PASSPORT"
    PATTERNS = ((r"(?<![0-9A-Za-z])(?:\d{9}|[A-Z]\d{8})(?![0-9A-Za-z])", 0.5),)
    CONTEXT = ("passport", "travel document")
    REQUIRES_CONTEXT = True
    FLAGS = 0


class AnyCaseIbanRecognizer(IbanRecognizer):
    """Presidio's IBAN recognizer (ISO 7064 mod-97 check) on the text with ASCII letters
    upper-cased, so "my iban is gb42nawi04454264788619" is found: the check is the same, the
    offsets are the text's (one character for one)."""

    def analyze(self, text, entities, nlp_artifacts=None, regex_flags=None):
        upper = text.translate(_ASCII_UPPER)
        return super().analyze(upper, entities, nlp_artifacts, regex_flags)


_ASCII_UPPER = str.maketrans(string.ascii_lowercase, string.ascii_uppercase)
