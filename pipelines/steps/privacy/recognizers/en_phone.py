"""PHONE_NUMBER: international, dotted and spaced numbers, with extensions (phonenumbers).

Presidio's phone recognizer checks eight regions at strict leniency. This one lets
phonenumbers' matcher find possible numbers (a national number without country code is read as
American; one with a country code as that country's) and keeps extensions ("ext. 204", "x31")
in the span. An international prefix written as `00` ("001-526-422-4393", "0044 20 7946 0958",
common outside North America) is read as `+`: phonenumbers' US pass only knows `011`.
"""

import re

import phonenumbers

from pipelines.steps.privacy.recognizers.base import RegexRecognizer, has_context

REGIONS = ("US",)
"""Numbers with a country code (+44 ..., 0049 ...) are found in any region's pass."""
CONTEXT_REGIONS = ("GB", "DE", "IT", "NL", "DK", "HU")
"""Regions whose national formats count only next to a phone word ("Mobile: 723 813 266",
"call me on 9472 7916"): their numbering plans accept most digit groups, so without context a
quantity or an id would pass for a phone."""
_DATE = re.compile(r"\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|\d{1,2}[-/.]\d{1,2}[-/.]\d{4}")
# Only where a number starts: "00" inside "200-0010" is part of the number.
_DOUBLE_ZERO_PREFIX = re.compile(r"(?<![^\s(:])00(?=[1-9])")
_OTHER_NUMBER_CONTEXT = ("account", "acct", "routing", "iban", "card number", "ssn", "passport")
"""Words naming another kind of number: a bare digit run next to them is not a phone."""
_NANP_LAYOUT = re.compile(
    r"(?:\+?1[-.\s]?)?(?:\(\d{3}\)\s?|\d{3}[-.\s])(?!555[-.\s]01\d\d$)\d{3}[-.\s]\d{4}"
)
"""A number written the North American way, "(555) 123-4567" or "555-123-4567": a phone by its
layout even when phonenumbers finds its area code unassigned (an invented or mistyped number is
still one to scrub); 555-0100 to 555-0199, reserved for fiction (and our surrogates), excepted."""
_EXTENSION = re.compile(r"\s*(?:,\s*)?(?:ext\.?|extension|x|#)\s*\d{1,6}", re.IGNORECASE)


class IntlPhoneRecognizer(RegexRecognizer):
    """Phone numbers found by phonenumbers' matcher in several regions."""

    ENTITY = "PHONE_NUMBER"
    CONTEXT = (
        "phone",
        "call",
        "tel",
        "mobile",
        "cell",
        "fax",
        "line",
        "reach",
        "whatsapp",
        "office",
        "desk",
        "answering",
        "dial",
        "text me",
    )

    def __init__(self, *, language: str, context: list[str] | None = None) -> None:
        super().__init__(language=language, context=context)
        # Words, not substrings: "tel" in "hotel" or "line" in "online" call for no extra pass.
        self._phone_word = re.compile(
            r"\b(?:" + "|".join(re.escape(w) for w in self.words) + ")", re.IGNORECASE
        )

    def analyze(self, text, entities, nlp_artifacts=None):
        if self.ENTITY not in entities or sum(c.isdigit() for c in text) < 7:
            return []
        spans: dict[tuple[int, int], float] = {}
        # " +" has the length of "00": offsets into `searched` are offsets into `text`.
        searched = _DOUBLE_ZERO_PREFIX.sub(" +", text)
        worded = self._phone_word.search(text) is not None
        for region in REGIONS + (CONTEXT_REGIONS if worded else ()):
            needs_context = region not in REGIONS
            for match in phonenumbers.PhoneNumberMatcher(
                searched, region, leniency=phonenumbers.Leniency.POSSIBLE
            ):
                start, end = match.start, match.end
                if searched[start] == "+" and text[start] == "0":
                    start -= 1  # the span covers the written "00"
                digits = sum(c.isdigit() for c in match.raw_string)
                if digits < 7 or _glued(text, start, end) or _DATE.fullmatch(match.raw_string):
                    continue
                valid = phonenumbers.is_valid_number(match.number)
                score = 0.45 if valid or _NANP_LAYOUT.fullmatch(match.raw_string) else 0.3
                extension = _EXTENSION.match(text, end)
                if extension and not match.number.extension:
                    end = extension.end()
                if has_context(text, start, end, self.words):
                    score += 0.35
                elif needs_context:
                    continue
                elif match.raw_string.isdigit() and has_context(
                    text, start, end, _OTHER_NUMBER_CONTEXT
                ):
                    continue  # "account number 15487585862": the bank number recognizer's
                if spans.get((start, end), 0) < score:
                    spans[(start, end)] = score
        return [self._result(s, e, score, "phonenumbers") for (s, e), score in spans.items()]


def _glued(text: str, start: int, end: int) -> bool:
    """Whether the match is part of a longer token (an id such as `<US_SSN_00000000>`)."""
    before = text[start - 1] if start else " "
    after = text[end] if end < len(text) else " "
    return before.isalnum() or before == "_" or after.isalnum() or after == "_"
