"""LOCATION: US street addresses over one or several lines, with units and zip codes.

A regex proposes candidates (house number ... street suffix, optional apartment/suite, city,
state and zip, across commas and line breaks); usaddress (a CRF address parser, offline) must
tag an AddressNumber and a StreetName in them to accept. A zip code alone counts next to a
context word ("zip", "postal").
"""

import re

import usaddress
from faker.providers.address.en_US import Provider as AddressProvider
from spacy.lang.en.stop_words import STOP_WORDS

from pipelines.steps.privacy.recognizers.base import CONTEXT_BOOST, RegexRecognizer, has_context
from pipelines.steps.privacy.recognizers.en_names import is_english
from pipelines.steps.privacy.recognizers.en_street import (
    MAXUNIT_BEFORE,
    PARTICLES,
    UNIT_BEFORE,
    USPS_ABBREVIATIONS,
    _street_word,
)

# Faker's en_US street suffixes (the USPS list) plus their abbreviations.
_SUFFIX = (
    "(?:"
    + "|".join(
        sorted(
            {
                *AddressProvider.street_suffixes,
                *("St", "Ave", "Rd", "Blvd", "Ln", "Dr", "Ct"),
                *USPS_ABBREVIATIONS,
            },
            key=len,
            reverse=True,
        )
    )
    + ")"
)
_UNIT = r"(?:,?\s*(?:Apt|Apartment|Suite|Ste|Unit|Room|Rm|Fl|Floor|#)\.?\s*#?\s*[\w-]+)"
_CITY_STATE_ZIP = r"(?:,?\s*\n?\s*[A-Z][A-Za-z .'-]{1,30},?\s+[A-Z]{2}\.?,?\s+\d{5}(?:-\d{4})?)"
STREET = (
    rf"\b\d{{1,6}}[A-Za-z]?\s+(?:[NSEW]\.?\s+)?(?:[A-Z0-9][A-Za-z0-9'.-]*\s+){{0,4}}"
    rf"{_SUFFIX}\b\.?(?:\s+[NSEW]{{1,2}}\b\.?)?{_UNIT}?(?:{_CITY_STATE_ZIP})?"
)


MIN_PARSES = 50
PARSES_PER_1000 = 25
"""usaddress parses per 1,000 characters of a text (at least `MIN_PARSES`): ordinary text has
a few street candidates per thousand characters, an adversarial run one per ten."""
MAX_REMEMBERED = 4096
_PARSES: dict[str, bool] = {}
"""usaddress's verdict per candidate already parsed (a repeated address is parsed once)."""


_EIRCODE_CHARACTER = "[0-9AC-FHKNPRTV-Y]"
_EIRCODE = (
    rf"(?:[AC-FHKNPRTV-Y]\d{{2}}|D6W) (?={_EIRCODE_CHARACTER}{{0,3}}\d)"
    rf"(?={_EIRCODE_CHARACTER}{{0,3}}[AC-FHKNPRTV-Y]){_EIRCODE_CHARACTER}{{4}}"
)
"""An Irish Eircode: a routing key, a space, four characters of An Post's alphabet holding a
digit and a letter (F91 K2X4)."""


class UsAddressRecognizer(RegexRecognizer):
    """Street addresses confirmed by usaddress, and zip codes next to a context word."""

    _parses_left = MIN_PARSES

    ENTITY = "LOCATION"
    PATTERNS = (
        # A full address outranks the names inside it ("910 Jason Green Apt. 954").
        (STREET, 0.9),
        (r"(?<![\w-])(?P<value>\d{5}(?:-\d{4})?)(?![\w-])", 0.05),
        (r"\b(?P<value>P\.?\s?O\.?\s+Box\s+\d{1,6})\b", 0.7),
    )
    CONTEXT = ("address", "live at", "lives at", "residing", "zip", "postal", "mail to", "ship to")
    FLAGS = 0

    def analyze(self, text, entities, nlp_artifacts=None):
        # usaddress (a CRF) costs about 0.2 ms per candidate: a text packed with street-shaped
        # candidates (`12 Main St 13 Main St ...`, #16.3) gets a bounded number of parses, and
        # the candidates past them are taken as addresses unconfirmed (fail closed).
        self._parses_left = max(MIN_PARSES, len(text) * PARSES_PER_1000 // 1000)
        results = super().analyze(text, entities, nlp_artifacts)
        for result in results:
            # a unit written before the street (`Unit: 1204, 350 W 42nd St`) is the address's
            before = UNIT_BEFORE.search(text, max(0, result.start - MAXUNIT_BEFORE), result.start)
            if before is not None and " " in text[result.start : result.end].strip():
                result.start = before.start()
        return results

    def validate(self, value: str) -> bool:
        if value[:1].isdigit() and " " not in value.strip():
            return True  # a zip code: context decides
        if value.upper().startswith("P"):
            return True
        value = " ".join(value.split())
        known = _PARSES.get(value)
        if known is not None:
            return known
        if self._parses_left <= 0:
            return True
        self._parses_left -= 1
        if len(_PARSES) >= MAX_REMEMBERED:
            _PARSES.clear()
        _PARSES[value] = _street_parse(value)
        return _PARSES[value]


def _street_parse(value: str) -> bool:
    """Whether usaddress tags an AddressNumber and a StreetName in `value`."""
    try:
        tags = {label for _, label in usaddress.parse(value)}
    except Exception:  # noqa: BLE001 - usaddress raises on odd input; not an address then
        return False
    return "AddressNumber" in tags and "StreetName" in tags


class PostalCodeRecognizer(RegexRecognizer):
    """Postal codes of many countries' formats, next to a postal word ("ZIP: 394 13") or next
    to the place they belong to ("Acquapendente 1021", "75008 Paris").

    Formats: 3 to 6 digits (Iceland's 3, most of Europe's 4 or 5), with a suffix (US zip+4,
    Brazil 00000-000, Portugal 0000-000), 000 00 (Czechia, Slovakia, Sweden, Greece), 00-000
    (Poland), 0000 AA (Netherlands), A0A 0A0 (Canada) and the UK's outward + inward code.

    A code without a postal word counts where it stands beside a place (`_beside_place`): a
    place spaCy's NER found, or a place name read after a preposition of place ("in Quinta de
    São Tiago 3610-114", "from ÖVERTURINGEN 840 24"); a 4-digit number that could be a year
    (1900-2099) and a number followed by the noun it counts ("Paris 500 people") do not.
    """

    def analyze(self, text, entities, nlp_artifacts=None):
        if self.ENTITY not in entities:
            return []
        places = [
            (entity.start_char, entity.end_char)
            for entity in getattr(nlp_artifacts, "entities", None) or ()
            if entity.label_ in PLACE_LABELS
        ]
        english = getattr(getattr(nlp_artifacts, "nlp_engine", None), "english_words", None)
        caseless = not any(c.isupper() for c in text)
        results: list = []
        seen: set[tuple[int, int]] = set()
        for pattern, score in self._compiled:
            for match in pattern.finditer(text):
                start, end = match.span("value")
                if (start, end) in seen:
                    continue
                if has_context(text, start, end, self.words):
                    final = min(1.0, score + CONTEXT_BOOST)
                elif _SELF_EVIDENT.fullmatch(text, start, end) or _beside_place(
                    text, start, end, places, english or frozenset(), caseless
                ):
                    final = BESIDE_PLACE_SCORE
                else:
                    continue
                seen.add((start, end))
                results.append(self._result(start, end, final, pattern.pattern))
        return results

    ENTITY = "LOCATION"
    PATTERNS = (
        (r"(?<![\w-])(?P<value>\d{3,6}(?:-\d{3,4})?)(?![\w-])", 0.5),
        (r"(?<![\w-])(?P<value>\d{3} \d{2})(?![\w-])", 0.5),
        (r"(?<![\w-])(?P<value>\d{2}-\d{3})(?![\w-])", 0.5),
        (r"(?<![\w-])(?P<value>\d{4} ?[A-Z]{2})(?![\w-])", 0.5),
        (r"(?<![\w-])(?P<value>[A-Z]\d[A-Z] ?\d[A-Z]\d)(?![\w-])", 0.5),
        (r"(?<![\w-])(?P<value>[A-Z]{1,2}\d[A-Z\d]? ?\d[A-Z]{2})(?![\w-])", 0.5),
        # an Irish Eircode: a routing key (a letter and two digits, or D6W), then four
        # characters of the code's own alphabet (F91 K2X4, D04 X2K7)
        (rf"(?<![\w-])(?P<value>{_EIRCODE})(?![\w-])", 0.5),
    )
    CONTEXT = ("zip", "postal", "postcode", "post code", "eircode")
    FLAGS = 0


BESIDE_PLACE_SCORE = 0.6
_SELF_EVIDENT = re.compile(
    r"[A-PR-UWYZ][A-HK-Y]?\d[A-HJKMNPR-Y\d]? \d[ABD-HJLNP-UW-Z]{2}"
    r"|[ABCEGHJ-NPRSTVXY]\d[ABCEGHJ-NPRSTV-Z] \d[ABCEGHJ-NPRSTV-Z]\d"
    rf"|{_EIRCODE}"
)
"""A whole UK postcode (outward code, a space, an inward code whose letters leave out C I K M
O V: WC2R 0EZ), a Canadian one (A0A 0A0 with the letters Canada Post uses) or an Irish Eircode
with its space (a routing key, then a unique identifier that holds a digit and a letter): a
code of that shape is a postal code wherever it stands, with no place beside it."""
PLACE_LABELS = frozenset({"LOCATION", "GPE", "LOC", "FAC"})
"""NER labels of a place (Presidio's name and spaCy's)."""
PLACE_PREPOSITIONS = frozenset(
    {"in", "at", "from", "near", "to", "into", "outside", "around", "via", "of"}
)
"""Prepositions before a place name: "in Acquapendente 1021", "offices at Lyon 69002"."""
NOT_COUNTED = frozenset({"yesterday", "today", "tonight", "tomorrow", "now", "again", "soon"})
"""Words after a number that it does not count (adverbs of time; and words in -ly, -ed: an
adverb or a verb, "1209 closed", not a noun)."""
MAX_PLACE_WORDS = 4
_WORD_BEFORE = re.compile(r"([^\W\d_][\w'’.\-]*)(,?[ \t]+|,?\n[ \t]*)$")
_NEXT_WORD = re.compile(r"[ \t]+([^\W\d_]+)")


def _beside_place(
    text: str,
    start: int,
    end: int,
    places: list[tuple[int, int]],
    english: frozenset[str],
    caseless: bool,
) -> bool:
    """Whether the postal-format number `text[start:end]` stands beside a place name.

    A place is an NER place span ending just before the code or starting just after it, or a
    run of up to `MAX_PLACE_WORDS` capitalized words (lower-case particles inside; any case
    in a text with no capital letter at all) right before the code, after a preposition of
    place, with a word that is not an ordinary English word ("in Room 1021" is not a place).
    A code that could be a year, or that a noun follows ("500 people"), is a number.
    """
    value = text[start:end]
    if value.isdigit() and len(value) == 4 and 1900 <= int(value) <= 2099:
        return False
    following = _NEXT_WORD.match(text, end)
    if following is not None:
        word = following.group(1)
        lowered = word.lower()
        if (
            word[:1].islower()
            and lowered not in STOP_WORDS
            and lowered not in NOT_COUNTED
            and not lowered.endswith(("ly", "ed"))
        ):
            return False  # "15000 units": a quantity
    for place_start, place_end in places:
        if place_start < start and end <= place_end and text[place_start:start].strip():
            return True  # NER read the code as the end of the place ("Lyon 69002")
        if 0 < start - place_end <= 2 and text[place_end:start] in (" ", ", ", "\n"):
            return True
        if 0 < place_start - end <= 1 and text[end:place_start] == " ":
            # "75008 Paris"; before a street ("123 Main Street") it is a house number
            return not any(_street_word(w) for w in text[place_start:place_end].split())
    position, words = start, []
    while len(words) <= MAX_PLACE_WORDS:
        before = _WORD_BEFORE.search(text, max(0, position - 60), position)
        if before is None:
            return False
        word = before.group(1)
        if words and word.lower() in PLACE_PREPOSITIONS:
            break
        capital = word[:1].isupper()
        if not (capital or caseless or (words and word.lower() in PARTICLES)):
            return False
        words.append(word)
        position = before.start()
    else:
        return False
    named = [w for w in words if w.lower() not in PARTICLES]
    return bool(named) and not all(is_english(w, english) for w in named)
