"""LOCATION: street addresses written the way most of the world writes them, in Latin script.

`en_address` reads US addresses (house number first, a USPS street suffix, usaddress to
confirm). Outside the US the street name often comes first and the house number after it
("Rua do Arenque 1634", "Kiannonkatu 98", "ul. Miła 53"), the street type is a word of the
country's language or the end of a compound ("-katu", "-vej", "-straße"), and the lines after
it hold a unit, a town, a region code, a postal code and a country.

A street core is proposed when it has the shape of one (a number, then words, optionally a
second number; or words, then a number) and holds evidence: a street word of one of many
languages (`STREET_WORDS`, `STREET_ENDINGS`), the number-words-number shape, or an address
word nearby ("address", "lives at", "corner of"). The span then grows over what follows an
address: units ("Apt. 4", "Suite 838") and place lines (capitalized words, region codes,
postal codes), token by token, stopping at the first token that reads as prose.
Military (PSC / Unit ... Box ..., APO / FPO / DPO) addresses and street corners ("the corner of
X and Y") are read too.
"""

import re

from faker.providers.address.en_US import Provider as AddressProvider
from spacy.lang.en.stop_words import STOP_WORDS

from pipelines.steps.privacy.recognizers.base import RegexRecognizer, check_deadline, has_context

USPS_ABBREVIATIONS = (
    *("Anx", "Byu", "Bch", "Bnd", "Blf", "Blfs", "Btm", "Brg", "Brk", "Brks", "Bgs"),
    *("Byp", "Cyn", "Cpe", "Cswy", "Ctr", "Ctrs", "Cir", "Cirs", "Clf", "Clfs", "Clb", "Cmn"),
    *("Cmns", "Crse", "Cts", "Cvs", "Crk", "Cres", "Crst", "Xing", "Xrd", "Curv", "Expy"),
    *("Fld", "Flds", "Flt", "Flts", "Frd", "Frds", "Frst", "Frg", "Frgs", "Frk", "Frks", "Fwy"),
    *("Gdn", "Gdns", "Gtwy", "Gln", "Glns", "Grn", "Grns", "Grv", "Grvs", "Hbr", "Hbrs", "Hvn"),
    *("Hts", "Hwy", "Hls", "Holw", "Inlt", "Jct", "Jcts", "Knl", "Knls", "Lndg", "Lgt", "Lgts"),
    *("Lck", "Lcks", "Ldg", "Mnr", "Mnrs", "Mdw", "Mdws", "Mtwy", "Mtn", "Mtns", "Nck", "Orch"),
    *("Opas", "Pkwy", "Psge", "Pnes", "Pln", "Plns", "Plz", "Prt", "Prts", "Rnch"),
    *("Rpd", "Rpds", "Rdg", "Rdgs", "Rte", "Shls", "Shrs", "Skwy", "Smt", "Spg", "Spgs"),
    *("Sqs", "Strm", "Trwy", "Trce", "Trak", "Trfy", "Trl", "Trlr", "Tunl", "Tpke"),
    *("Upas", "Vly", "Vlys", "Vws", "Vlg", "Vlgs", "Pl", "Sq"),
)
"""USPS standard street-suffix abbreviations (Publication 28, appendix C1; each one in
usaddress's `STREET_NAMES`, a test checks), less those that are words or units elsewhere
(Est, Ext, Sta, Vis, Pts, Drs: "ext 204", "12 pts") and those the name lists hold (Aly, Ter,
Radl: "Aly Ashour 7" is a scorer and his minute)."""
STREET_WORDS = frozenset(
    w.lower()
    for w in (
        *AddressProvider.street_suffixes,
        *USPS_ABBREVIATIONS,
        *("St", "St.", "Str", "Str.", "Rd", "Rd.", "Ave", "Ave.", "Blvd", "Ln", "Dr", "Ct"),
        *("close", "crescent", "parade", "terrace", "mews", "wynd", "row", "esplanade"),
        *("rue", "avenue", "boulevard", "bd", "chemin", "allée", "place", "quai", "impasse"),
        *("via", "viale", "piazza", "corso", "vicolo", "largo", "calle", "avenida", "avda"),
        *("paseo", "plaza", "carrer", "rua", "travessa", "praça", "estrada", "alameda"),
        *("straße", "strasse", "gasse", "weg", "platz", "allee", "ring", "damm", "ufer"),
        *("laan", "straat", "gracht", "plein", "dijk", "kade", "steenweg", "vej", "gade"),
        *("väg", "vägen", "gatan", "gata", "gränd", "vegur", "vegen", "veien", "gate"),
        *("katu", "tie", "kuja", "polku", "ul", "ul.", "ulica", "aleja", "al.", "u.", "utca"),
        *("út", "tér", "körút", "rkp.", "krt.", "náměstí", "nám.", "ulice", "trg", "cesta"),
        *("ulitsa", "tänav", "tn", "iela", "gatvė", "sokak", "caddesi", "odos", "leoforos"),
    )
)
"""Street-type words of many languages (Faker's USPS suffixes first)."""
STREET_ENDINGS = (
    *("katu", "tie", "kuja", "gade", "vej", "vägen", "gatan", "gata", "vegur", "vegen"),
    *("veien", "straße", "strasse", "gasse", "weg", "laan", "straat", "gracht", "dijk"),
    *("tänav", "iela", "platz", "allee", "stræde", "stien", "braut", "stígur", "terrasse"),
)
"""Endings of compound street names ("Kiannonkatu", "Magrethevej", "Friedhofstrasse")."""
CONTEXT = (
    "address",
    "live at",
    "lives at",
    "living at",
    "located at",
    "location",
    "moved to",
    "corner of",
    "meet me at",
    "arrived at",
    "stop at",
    "return to",
    "ship to",
    "deliver",
    "sent to",
    "mail to",
    "lives on",
    "side of",
    "office is at",
    "residing",
)
_W = r"[^\W\d_](?:[^\W\d_'’.\-]|['’][^\W\d_])*\.?"
"""One word in any letters (Latin script in practice), with an apostrophe inside (Queen's
Road) and an abbreviation's dot."""
_NUMBER = r"\d{1,6}[A-Za-z]?"
_S = r"[ \t]+"
_NUMBER_FIRST = re.compile(  # a house's number: not an IPv6 address's last group (…:7334 port)
    rf"(?<![\w.\-/])(?<![0-9A-Fa-f]:)(?P<first>{_NUMBER}(?:/{_NUMBER})?)(?:{_S}{_NUMBER})?{_S}"
    rf"(?P<words>{_W}(?:{_S}{_W}){{0,4}})"
    rf"(?:{_S}(?P<second>{_NUMBER}\.?))?(?![\w\-/])"
)
_NAME_FIRST = re.compile(
    rf"(?<![\w.\-])(?P<words>(?:[^\W\d_]{{1,4}}\.{_S})?[^\W\d_a-z][^\W\d_'’.\-]*\.?"
    rf"(?:{_S}(?:[^\W\d_]{{1,4}}|{_W})){{0,3}}){_S}(?P<second>{_NUMBER}\.?)(?![\w\-/])"
)
_QUOTE = r"(?:[>?*•·|]+[ \t]*)?"
"""What a quoted or bulleted block puts before each line ("> ", "??? ")."""
_UNIT = re.compile(
    rf"(?:[ \t]*,)?[ \t]*(?:\n[ \t]*{_QUOTE})?"
    r"(?:Apt|Apartment|Suite|Ste|Unit|Flat|Floor|Fl|Room|Rm|#)\.?[ \t]*#?\d+[\w\-]*",
    re.IGNORECASE,
)
UNIT_BEFORE = re.compile(
    r"(?:^|(?<=[\s,;:(]))(?:(?:Apt|Apartment|Suite|Ste|Unit|Flat|Floor|Fl|Level|Lvl|Room|Rm|Bldg"
    r"|Building|Shop|Blk|Block|Plot|(?:House|Door)[ \t]+No)\.?[ \t]*:?[ \t]*#?[ \t]*"
    r"\w{1,6}(?:-\w{1,4})?"
    r"|\d{1,4}[A-Za-z]|[A-Za-z]\d{1,4}(?=[ \t]*,))[ \t]*,?[ \t]*(?:\n[ \t]*)?$",
    re.IGNORECASE,
)
"""A unit written before its street ("Unit 7, 300 King St W", "Flat 3, 77 Queen's Road",
"Suite 1200, 1 Market St", "Blk 412 Ang Mo Kio Ave 10", a form's "Unit: 1204, 350 W 42nd St"), or
a flat's number of digits and a
letter alone ("4B, 211 Ocean Ave"): part of the address."""
MAXUNIT_BEFORE = 32
_PO_BOX = re.compile(
    r"\b(?:P\.?[ \t]?O\.?|Post[ \t]+Office|GPO)[ \t]+Box[ \t]+\d{1,6}\b|\b(?:Locked|Private)[ \t]+"
    r"Bag[ \t]+\d{1,6}\b",
    re.IGNORECASE,
)
"""A post office box (PO Box 4471, GPO Box 12, Locked Bag 5): an address's core, grown over the
town, region and postal code after it like a street."""
_GAP = re.compile(rf"(?:[ \t]*,[ \t]*|[ \t]*\n[ \t]*{_QUOTE})+|[ \t]+")
_PLACE_TOKEN = re.compile(
    r"[A-Z]\d[A-Z][ \t]?\d[A-Z]\d(?!\w)|[A-Z]{1,2}\d[A-Z\d]?(?:[ \t]\d[A-Z]{2})?(?!\w)"
    r"|\(?[^\W\d_][^\W\d_'’.\-]*\.?\)?|\d{2,6}(?:-\d{3,4})?|\d[A-Z]\d"
)
"""One token of a place line: a postal code of Canada (M5V 1J5) or the UK (SW1A 2AA, M1) first,
so that its letters are not read as a word of their own, then a word or a numeric code."""
PARTICLES = frozenset({"de", "do", "da", "dos", "das", "del", "la", "le", "van", "der", "den"})
PARTICLES |= {"von", "am", "an", "nad", "y", "e", "i", "di", "du", "des", "sur", "en", "op"}
MAX_PLACE_TOKENS = 10
_MORE_DIGITS = re.compile(r"[ \t]*[\-.]?[ \t]*\(?\d")
_SPACES = re.compile(r"[ \t]+")
_MILITARY = re.compile(
    r"\b(?:(?:PSC|Unit|USNS|USNV|USS|USCGC)[ \t]+[\w ]{1,20}?,?[ \t]+Box[ \t]+\d{1,5}"
    r"|(?:USNS|USNV|USS|USCGC)[ \t]+[^\W\d_][\w'’\-]*(?:[ \t]+[^\W\d_][\w'’\-]*)?)"
    r"(?:[ \t]*,)?\s*(?:APO|FPO|DPO)[ \t]+(?:AA|AE|AP)[ \t]+\d{5}\b",
    re.IGNORECASE,
)
_CORNER = re.compile(
    r"\b(?:corner|intersection) of[ \t]+(?P<value>(?:[\w.'’\-]+[ \t]+){1,5}and"
    r"(?:[ \t]+[A-Z0-9][\w.'’\-]*){1,4})"
)


_AFTER_AN_INITIAL = re.compile(r"(?<![\w.])[A-Z]\.[ \t]+$")
_CALENDAR = frozenset(
    {"january", "february", "march", "april", "may", "june", "july", "august", "september"}
    | {"october", "november", "december", "jan", "feb", "mar", "apr", "jun", "jul", "aug"}
    | {"sep", "sept", "oct", "nov", "dec", "monday", "tuesday", "wednesday", "thursday"}
    | {"friday", "saturday", "sunday", "week", "day", "year", "chapter", "page", "section"}
)
"""Words before a number that make it a date or a reference, not a house number."""


def _next_word(text: str, position: int) -> int:
    """Where the word after the one at `position` starts (the end of the text if none)."""
    gap = _WORD_GAP.search(text, position)
    return gap.end() if gap is not None else len(text)


_WORD_GAP = re.compile(r"\s+")


def _street_word(word: str) -> bool:
    lowered = word.lower()
    return (
        lowered in STREET_WORDS
        or lowered.rstrip(".") in STREET_WORDS
        or (len(lowered) > 5 and lowered.endswith(STREET_ENDINGS))
    )


def _written_as_a_name(word: str) -> bool:
    """A word of a street's name as one is written: capitalized, a digit in it (5th), a street
    type abbreviated (st, rd, ave, blvd) or one that means nothing but a street (street, road,
    avenue), where `square`, `points` or `park` mean other things too."""
    stem = word.rstrip(".").lower()
    return (
        word[:1].isupper()
        or any(c.isdigit() for c in word)
        or stem in _ABBREVIATED
        or stem in _ONLY_STREETS
    )


_ONLY_STREETS = frozenset(
    {"street", "road", "avenue", "boulevard", "lane", "highway", "parkway", "alley", "terrace"}
    | {"crescent", "rua", "calle", "strasse", "straße", "via", "rue", "avenida"}
)


MAX_PARTS = 6
"""Most unit and place parts an address grows over after its street (unit, district, town,
region, postal code, country): more is a list of addresses, each found on its own."""


_ENDS_A_SENTENCE = re.compile(r"[^\W\d_]{3,}\.")
"""A street's last word written in full with a full stop (`Drive.`, `Street.`, `Way.`): the
sentence's end, where an abbreviation's dot (`Blvd.`, `Pkwy.`, `Ave.`) goes on to the town."""
_ABBREVIATED = frozenset(a.lower() for a in USPS_ABBREVIATIONS) | {
    *("ave", "blvd", "str", "apt", "ter", "ext", "est", "sta", "aly", "ste", "bldg", "hwy"),
    *("rte", "mt", "ft", "pt", "jr", "sr", "inc", "ltd", "corp", "co", "st", "rd", "dr", "ln"),
    "ct",
}
_LINE_NEXT = re.compile(r"[ \t]*\n")


def _ends_a_sentence(word: str) -> bool:
    return bool(_ENDS_A_SENTENCE.fullmatch(word)) and word[:-1].lower() not in _ABBREVIATED


class IntlAddressRecognizer(RegexRecognizer):
    """Street addresses in the world's common forms, grown over unit and place lines."""

    ENTITY = "LOCATION"
    CONTEXT = CONTEXT
    FLAGS = 0

    def analyze(self, text, entities, nlp_artifacts=None):
        if self.ENTITY not in entities:
            return []
        results = []
        places: dict[int, int | None] = {}  # place-line ends by position, read once per text
        for pattern in (_NUMBER_FIRST, _NAME_FIRST) if any(c.isdigit() for c in text) else ():
            position = 0
            while (match := pattern.search(text, position)) is not None:
                check_deadline()
                found = self._street(text, match, places)
                if found is not None:
                    results.append(self._result(*found, "street"))
                    position = match.end()
                elif pattern is _NAME_FIRST:
                    # "He lives at Nørregade 10": the candidate opened with words of the
                    # sentence; its next word may open the street (each word is tried once).
                    position = _next_word(text, match.start())
                else:
                    position = match.end()
        for match in _PO_BOX.finditer(text):
            check_deadline()
            end, _ = self._grow(text, match.end(), places)
            results.append(self._result(match.start(), end, 0.85, "post office box"))
        for match in _MILITARY.finditer(text):
            results.append(self._result(match.start(), match.end(), 0.85, "military"))
        for match in _CORNER.finditer(text):
            start, end = match.span("value")
            results.append(self._result(start, end, 0.75, "corner"))
        return results

    def _street(
        self, text: str, match: re.Match, places: dict[int, int | None]
    ) -> tuple[int, int, float] | None:
        """`(start, end, score)` of the address a street-core match starts, if it is one.

        Its words end before the first stop word ("5 Main Street and then" -> "5 Main Street").
        """
        base = match.start("words")
        words = list(re.finditer(r"\S+", match.group("words")))
        kept = []
        for word in words:
            value = word.group()
            if value.lower().rstrip(".") in STOP_WORDS and not _street_word(value):
                break
            kept.append(word)
            if _ends_a_sentence(value):
                break  # `300 Riverside Drive. Tenant ref …`: the next sentence is no street
        if not kept:
            return None
        start = match.start()
        if all(w.group().lower().rstrip(".,") in _CALENDAR for w in kept):
            return None  # "August 10", "2 Sept 2015": a date
        if match.groupdict().get("first") is None and _AFTER_AN_INITIAL.search(
            text, max(0, start - 4), start
        ):
            return None  # "A. Dale 69": a person's name and a score
        whole = len(kept) == len(words)
        end = match.end() if whole else base + kept[-1].end()
        evidence = 0.0
        if any(_street_word(w.group()) for w in kept):
            # in lower case throughout and with a street word that is an ordinary word in
            # full (`15 square units`, `2 points`), a street only with more evidence
            # (`lives at 42 maple avenue`, a town after it); `12 main st` abbreviates
            evidence += 0.45 if any(_written_as_a_name(w.group()) for w in kept) else 0.2
        if whole and match.groupdict().get("first") and match.group("second"):
            evidence += 0.3
        if not whole and match.group("second") and not match.groupdict().get("first"):
            return None  # name-first needs its number right after the words
        if _ends_a_sentence(kept[-1].group()):
            # `300 Riverside Drive. My ref is …`: a word in full then a full stop ends the
            # sentence, and the address with it, unless a line break sets the next line apart;
            # the full stop is the sentence's
            if end == base + kept[-1].end():
                end -= 1
            grown, lines = end, 0
            if _LINE_NEXT.match(text, end + 1):
                grown, lines = self._grow(text, end + 1, places)
        else:
            grown, lines = self._grow(text, end, places)
        if lines:
            evidence += 0.2 * min(lines, 2)
        if has_context(text, start, grown, self.words):
            evidence += 0.35
        # A street word standing alone ("Ring", "Place", "Via") before a number is common in
        # prose; a compound street name ("Kiannonkatu 98") or a house number first is not.
        compound = any(
            len(w.group()) > 5 and w.group().lower().endswith(STREET_ENDINGS) for w in kept
        )
        needed = 0.45 if match.groupdict().get("first") or compound else 0.65
        if evidence < needed:
            return None
        before = UNIT_BEFORE.search(text, max(0, start - MAXUNIT_BEFORE), start)
        if before is not None:
            start = before.start()
        return start, grown, min(1.0, 0.4 + evidence)

    def _grow(self, text: str, end: int, places: dict[int, int | None]) -> tuple[int, int]:
        """End of the address after its street core, and how many unit or place parts it has.

        `places` remembers the place line read at each position: on a run of street-like lines
        (`12 Main St 12 Main St ...`) every street core would otherwise read the same lines
        after it again (six parts of ten tokens each, #16.3).
        """
        parts = 0
        while parts < MAX_PARTS:  # bounded: a run of street-like lines stays linear (#16.3)
            unit = _UNIT.match(text, end)
            if unit is not None:
                end, parts = unit.end(), parts + 1
                continue
            if end not in places:
                places[end] = self._place(text, end)
            place_end = places[end]
            if place_end is None:
                return end, parts
            end, parts = place_end, parts + 1
        return end, parts

    def _place(self, text: str, end: int) -> int | None:
        """End of one place line (town, region code, postal code, country) after `end`."""
        gap = _GAP.match(text, end)
        if gap is None:
            return None
        position, last, taken = gap.end(), None, 0
        for _ in range(MAX_PLACE_TOKENS):
            token = _PLACE_TOKEN.match(text, position)
            if token is None:
                break
            value = token.group().strip("()")
            lowered = value.lower().rstrip(".")
            if value[:1].isdigit() and last is None and _MORE_DIGITS.match(text, token.end()):
                break  # "21 253 109 8211": digit groups opening a line are a phone, not a place
            if value[:1].islower() and lowered not in PARTICLES and lowered != "nan":
                break
            if value[:1].isupper() and lowered in STOP_WORDS and len(value) > 3:
                break
            if text[token.end() : token.end() + 1] == ":":
                break  # "Mobile:", "Phone:": a field label, not a place
            last = token.end()
            if value.endswith(".") and len(value) > 5:
                last -= 1  # "Italy." ends a sentence; "St." and "Vic." are abbreviations
            if value[:1].isdigit() and taken:
                break  # a postal code after the town ends its line ("Hungary 34796")
            taken += 1
            spaces = _SPACES.match(text, last)
            if spaces is None:
                break
            position = spaces.end()
        return last
