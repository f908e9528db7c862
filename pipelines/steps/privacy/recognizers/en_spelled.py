"""A number read out digit by digit in words: a call's transcript or a dictated note.

"nine one seven, five five five, zero one four two", "917 five five five 0142", "double five"
(the UK's way of reading 55). Speech-to-text writes a phone number, a social security number
or an account number so, and every pattern recognizer looks for digits. A run of digit words
(with digit groups between them) is read as the digits it spells: ten to fifteen digits are a
PHONE_NUMBER, nine after a social security word a US_SSN, any other run of seven digits or
more an identifier (ID_NUMBER, the type that fills gaps: a validated type on the same span
wins). Three digit words at least: "one two three" in prose counts something, and a run of
written digits is the other recognizers'. "oh" is a zero ("oh seven seven zero zero, nine
double oh ...", a British mobile read out).
"""

from pipelines.steps.privacy.recognizers.base import RegexRecognizer, has_context
from pipelines.steps.privacy.spoken import (
    ANY_DIGIT_WORD,
    MIN_DIGITS,
    MIN_WORDS,
    RUN,
    SSN_WORDS,
    counting,
    digit_words,
    spelled_digits,
)


class SpelledNumberRecognizer(RegexRecognizer):
    """Phone numbers, social security numbers and identifiers read out in digit words."""

    ENTITY = "PHONE_NUMBER"
    ENTITIES = ("PHONE_NUMBER", "US_SSN", "ID_NUMBER")
    CONTEXT = ()
    FLAGS = 0

    def __init__(self, *, language: str, context: list[str] | None = None) -> None:
        super().__init__(language=language, context=context)
        self.supported_entities = list(self.ENTITIES)

    def analyze(self, text, entities, nlp_artifacts=None):
        results = []
        if not ANY_DIGIT_WORD.search(text):
            return results
        for match in RUN.finditer(text):
            value = match.group().rstrip(" \t,.-")
            start, end = match.start(), match.start() + len(value)
            if digit_words(value) < MIN_WORDS:
                continue
            digits = spelled_digits(value)
            if len(digits) < MIN_DIGITS or counting(digits):
                continue
            if len(digits) == 9 and has_context(text, start, end, SSN_WORDS):
                kind = "US_SSN"
            elif 10 <= len(digits) <= 15:
                kind = "PHONE_NUMBER"
            else:
                kind = "ID_NUMBER"
            if kind in entities:
                result = self._result(start, end, 0.6, "spelled digits")
                result.entity_type = kind
                results.append(result)
        return results
