"""LOCATION: US street addresses over one or several lines, with units and zip codes.

A regex proposes candidates (house number ... street suffix, optional apartment/suite, city,
state and zip, across commas and line breaks); usaddress (a CRF address parser, offline) must
tag an AddressNumber and a StreetName in them to accept. A zip code alone counts next to a
context word ("zip", "postal").
"""

import usaddress
from faker.providers.address.en_US import Provider as AddressProvider

from pipelines.steps.privacy.recognizers.base import RegexRecognizer

# Faker's en_US street suffixes (the USPS list) plus their common abbreviations.
_SUFFIX = (
    "(?:"
    + "|".join(
        sorted(
            {*AddressProvider.street_suffixes, "St", "Ave", "Rd", "Blvd", "Ln", "Dr", "Ct", "Pl"},
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
        return super().analyze(text, entities, nlp_artifacts)

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
    """Postal codes of many countries' formats, only next to a postal word ("ZIP: 394 13").

    Formats: 3 to 6 digits (Iceland's 3, most of Europe's 4 or 5), with a suffix (US zip+4,
    Brazil 00000-000, Portugal 0000-000), 000 00 (Czechia, Slovakia, Sweden, Greece),
    0000 AA (Netherlands), A0A 0A0 (Canada) and the UK's outward + inward code.
    """

    ENTITY = "LOCATION"
    PATTERNS = (
        (r"(?<![\w-])(?P<value>\d{3,6}(?:-\d{3,4})?)(?![\w-])", 0.5),
        (r"(?<![\w-])(?P<value>\d{3} \d{2})(?![\w-])", 0.5),
        (r"(?<![\w-])(?P<value>\d{4} ?[A-Z]{2})(?![\w-])", 0.5),
        (r"(?<![\w-])(?P<value>[A-Z]\d[A-Z] ?\d[A-Z]\d)(?![\w-])", 0.5),
        (r"(?<![\w-])(?P<value>[A-Z]{1,2}\d[A-Z\d]? ?\d[A-Z]{2})(?![\w-])", 0.5),
    )
    CONTEXT = ("zip", "postal", "postcode", "post code")
    REQUIRES_CONTEXT = True
    FLAGS = 0
