"""PHONE_NUMBER: international, dotted and spaced numbers, with extensions (phonenumbers).

Presidio's phone recognizer checks eight regions at strict leniency. This one lets
phonenumbers' matcher find possible numbers (a national number without country code is read as
American; one with a country code as that country's) and keeps extensions ("ext. 204", "x31")
in the span. An international prefix written as `00` ("001-526-422-4393", "0044 20 7946 0958",
common outside North America) is read as `+`: phonenumbers' US pass only knows `011`.
"""

import re
from collections.abc import Iterator

import phonenumbers

from pipelines.steps.ingest.language import HAN
from pipelines.steps.privacy.recognizers.base import (
    RegexRecognizer,
    check_deadline,
    has_context,
    windows,
)

REGIONS = ("US",)
"""Numbers with a country code (+44 ..., 0049 ...) are found in any region's pass."""
CONTEXT_REGIONS = ("GB", "DE", "IT", "NL", "DK", "HU")
"""Regions whose national formats count only next to a phone word ("Mobile: 723 813 266",
"call me on 9472 7916"): their numbering plans accept most digit groups, so without context a
quantity or an id would pass for a phone."""
_DATE = re.compile(r"\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|\d{1,2}[-/.]\d{1,2}[-/.]\d{4}")
"""A date, or one that opens the digits (2012-08-1115:40:42: a time glued to it): no phone."""
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
_UK_MOBILE_LAYOUT = re.compile(r"07(?!700[ ]?900)\d{3}[ ]?\d{6}")
"""A British mobile number as Britons write it, `07412 345678` or `07412345678`: 07 and nine
digits, a space after the fifth if any. A phone by its layout, with or without a phone word
and valid or not (a mistyped number is still one): no North American number opens with 0, and
the layout is the mobile plan's own. 07700 900000 to 900999, Ofcom's numbers for drama (as
555-01xx in North America), excepted."""
_UK_MOBILE = re.compile(r"(?<![\d+])07\d{3}[ ]?\d{6}(?!\d)")
_DIGIT_RUN = re.compile(r"\d[\d\s().\-/\[\]~\u2010-\u2015\u2212\uff0d]*")
"""Digits and what a phone number puts between them: a number lies inside one such run."""
MIN_DIGITS = 7
RUN_MARGIN = 40
"""Characters read on either side of a run: a `+` or `00` before it, an extension after it."""
_EXTENSION = re.compile(r"\s*(?:,\s*)?(?:ext\.?|extension|x|#)\s*\d{1,6}", re.IGNORECASE)


class IntlPhoneRecognizer(RegexRecognizer):
    """Phone numbers found by phonenumbers' matcher in several regions."""

    ENTITY = "PHONE_NUMBER"
    REGIONS = REGIONS
    CONTEXT_REGIONS = CONTEXT_REGIONS
    HAN_APART = False
    """Whether a Han character beside a number leaves it apart (`_glued`): in the recognizer
    that needs a phone word, not in the one that reads any digits of the text."""
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
        # how a message or a note gives a number ("contact Morag on 0141 …", "new number 07412 …";
        # words that no other word holds: not "ring" of "during", "mob" of "Mobil")
        "ring me",
        "contact",
        "landline",
        "my number",
        "new number",
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
        british = "GB" in self.CONTEXT_REGIONS and _UK_MOBILE.search(text) is not None
        pieces = list(_pieces(searched))
        for region in self.REGIONS + (self.CONTEXT_REGIONS if worded or british else ()):
            needs_context = region not in self.REGIONS
            for match, start, end in _matches(searched, pieces, region):
                if needs_context and not worded:
                    # no phone word: only a British mobile number, by its layout
                    if region != "GB" or not _UK_MOBILE_LAYOUT.fullmatch(match.raw_string):
                        continue
                if searched[start] == "+" and text[start] == "0":
                    start -= 1  # the span covers the written "00"
                digits = sum(c.isdigit() for c in match.raw_string)
                glued = _glued(text, start, end, self.HAN_APART)
                raw = match.raw_string
                if digits < 7 or glued or _DATE.match(raw) or _IP_ADDRESS.fullmatch(raw):
                    continue
                valid = phonenumbers.is_valid_number(match.number)
                laid_out = _NANP_LAYOUT.fullmatch(raw) or _UK_MOBILE_LAYOUT.fullmatch(raw)
                score = 0.45 if valid or laid_out else 0.3
                extension = _EXTENSION.match(text, end)
                if extension and not match.number.extension:
                    end = extension.end()
                if has_context(text, start, end, self.words):
                    score += 0.35
                elif needs_context and not _UK_MOBILE_LAYOUT.fullmatch(raw):
                    continue
                elif match.raw_string.isdigit() and has_context(
                    text, start, end, _OTHER_NUMBER_CONTEXT
                ):
                    continue  # "account number 15487585862": the bank number recognizer's
                if spans.get((start, end), 0) < score:
                    spans[(start, end)] = score
        return [self._result(s, e, score, "phonenumbers") for (s, e), score in spans.items()]


def _pieces(text: str) -> Iterator[tuple[int, int, int, int]]:
    """Bounded windows `(start, end, own start, own end)` around the digit runs of `text` that
    hold enough digits for a phone number; phonenumbers' matcher reads only these.

    The matcher parses every digit group it meets (a text of `ab12ab12...` cost 12 ms per
    thousand characters) and slows on long digit runs (#16.3): a run with fewer than
    `MIN_DIGITS` digits holds no phone number, and a long run is read in overlapping windows,
    the deadline checked between them.
    """
    regions: list[list[int]] = []
    for run in _DIGIT_RUN.finditer(text):
        if sum(c.isdigit() for c in run.group()) < MIN_DIGITS:
            continue
        start, end = max(0, run.start() - RUN_MARGIN), min(len(text), run.end() + RUN_MARGIN)
        if regions and start <= regions[-1][1]:
            regions[-1][1] = end
        else:
            regions.append([start, end])
    for start, end in regions:
        yield from windows(start, end)


def _matches(
    text: str, pieces: list[tuple[int, int, int, int]], region: str
) -> Iterator[tuple[phonenumbers.PhoneNumberMatch, int, int]]:
    """phonenumbers' matches in the pieces, with their offsets in `text`, each kept once."""
    for start, end, own_start, own_end in pieces:
        check_deadline()
        for match in phonenumbers.PhoneNumberMatcher(
            text[start:end], region, leniency=phonenumbers.Leniency.POSSIBLE
        ):
            if own_start <= start + match.start < own_end:
                yield match, start + match.start, start + match.end


def _glued(text: str, start: int, end: int, han_apart: bool = False) -> bool:
    """Whether the match is part of a longer token (an id such as `<US_SSN_00000000>`). With
    `han_apart`, a Han character beside it is none: Chinese writes no space between a word and
    a number (致電2888 8888)."""
    before = text[start - 1] if start else " "
    after = text[end] if end < len(text) else " "
    return _word_character(before, han_apart) or _word_character(after, han_apart)


def _word_character(character: str, han_apart: bool) -> bool:
    if han_apart and HAN.match(character):
        return False
    return character.isalnum() or character == "_"


_IP_ADDRESS = re.compile(r"\d{1,3}(?:\.\d{1,3}){3}")
"""Four dotted groups: an IP address (192.168.0.1), which the IP recognizer takes."""


class GreaterChinaPhoneRecognizer(IntlPhoneRecognizer):
    """Taiwan's, Hong Kong's and Macau's numbers in Chinese text (手機：0912-345-678, 電話
    2345 6789, +852 9123 4567), next to a phone word: their national formats accept most digit
    groups, as `CONTEXT_REGIONS` do. The mainland's are `cn_phone`'s."""

    REGIONS = ()
    CONTEXT_REGIONS = ("TW", "HK", "MO")
    HAN_APART = True
    CONTEXT = (
        "電話", "电话", "手機", "手机", "聯絡", "联络", "聯繫", "联系", "致電", "致电", "傳真",
        "传真", "熱線", "热线", "whatsapp", "phone", "tel", "mobile", "fax",
        # "call me on" in Taiwan's and Hong Kong's speech (打給我, 打俾我)
        "打給", "打给", "打俾", "打畀", "撥打", "拨打",
    )  # fmt: skip

    def __init__(self, *, language: str, context: list[str] | None = None) -> None:
        super().__init__(language=language, context=context)
        # Chinese words stand between other characters: no word boundary to look for.
        self._phone_word = re.compile("|".join(re.escape(w) for w in self.words), re.IGNORECASE)
