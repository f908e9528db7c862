"""PERSON: a name written surname first with a slash, as tickets, passports' machine lines,
manifests and payment logs write it (`MURPHY/SEAN MR`, `ZHANG/XIAOHUI`, `holder=REN/JIAHUI`).

The airlines' form (IATA's `SURNAME/GIVEN TITLE`) is how a passenger, a card holder or a
traveller is named wherever a system copies a booking: boarding passes, manifests, hotel
folios, card-payment logs, in English and in Chinese text alike. A slash between two words is
also an abbreviation's (`TCP/IP`, `AND/OR`, `MEN/WOMEN`), so the two parts must read as a
name: a family name and a given name of the name lexicon (every Faker locale's; more given
names after it that are no English words: `NGUYEN/THI HUONG`), or a Chinese surname as
passports romanize it and a given name spelled as one or two Mandarin syllables (`XIAOHUI`:
romanized Chinese given names are made of the syllables of Mandarin, a closed set of sounds,
read here by their spelling's rules, not from a list of names). Written in capitals or
capitalized, as such forms write them; a title after the given name (`MR`, `MRS`, `MSTR` ...)
is left outside the span.
"""

import re
from functools import lru_cache

from faker.providers.person.zh_CN import Provider as MainlandProvider
from faker.providers.person.zh_TW import Provider as TaiwanProvider
from spacy.lang.en.stop_words import STOP_WORDS

from pipelines.steps.privacy.recognizers.base import RegexRecognizer
from pipelines.steps.privacy.recognizers.en_names import (
    english_words,
    is_english,
    known_place,
    name_lexicon,
)

_PART = r"[A-Z][A-Za-z]{1,19}"
_SLASHED = re.compile(
    rf"(?<![A-Za-z0-9/._\-])(?P<value>(?P<surname>{_PART})/(?P<given>{_PART}(?: {_PART})?))"
    r"(?![A-Za-z0-9/])"
)
_TITLES = frozenset({"mr", "mrs", "ms", "mstr", "miss", "dr", "chd", "inf"})
"""Titles and passenger types written after a given name in a booking (CHD: a child)."""
_SYLLABLE = (
    r"(?:(?:zh|ch|sh|[bpmfdtnlgkhjqxrzcsyw])?"
    r"(?:iang|iong|uang|ueng|ang|eng|ing|ong|uai|uan|ian|iao|ai|ei|ao|ou|an|en|in|un|er"
    r"|ia|ie|iu|ua|uo|ui|ue|ve|a|o|e|i|u|v))"
)


@lru_cache(maxsize=1)
def chinese_surnames() -> frozenset[str]:
    """Chinese surnames as passports and bookings romanize them (Faker's zh_CN list in pinyin,
    its zh_TW list in Wade-Giles: Zhang, Chang), lower-cased."""
    return frozenset(
        name.lower()
        for provider in (MainlandProvider, TaiwanProvider)
        for name in provider.last_romanized_names
    )


@lru_cache(maxsize=1)
def mainland_surnames() -> frozenset[str]:
    """Chinese surnames in pinyin alone (Faker's zh_CN list), lower-cased: the Wade-Giles forms
    of the Taiwan list (Kung, Tai, Chi) spell loanwords in running text (Kung Fu, Tai Chi)."""
    return frozenset(name.lower() for name in MainlandProvider.last_romanized_names)


_PINYIN_NAME = re.compile(rf"{_SYLLABLE}{{1,2}}")
"""A given name spelled as one or two Mandarin syllables (Li, Xiaohui)."""


class SlashedNameRecognizer(RegexRecognizer):
    """`SURNAME/GIVEN`: a family name and a given name (name lexicon or pinyin)."""

    ENTITY = "PERSON"
    FLAGS = 0

    def analyze(self, text, entities, nlp_artifacts=None):
        if self.ENTITY not in entities or "/" not in text:
            return []
        firsts, lasts = name_lexicon()
        english = english_words(nlp_artifacts)
        results = []
        for match in _SLASHED.finditer(text):
            surname, given = match.group("surname"), match.group("given")
            if not (surname.isupper() and given.replace(" ", "").isupper()) and not all(
                part[1:].islower() for part in (surname, *given.split())
            ):
                continue  # neither a form's capitals nor a name's capitals (IPv4/IPv6)
            parts = given.split()
            if len(parts) > 1 and parts[-1].lower() in _TITLES:
                parts = parts[:-1]
            end = match.start("given") + len(" ".join(parts))
            words = [surname.lower(), *(p.lower() for p in parts)]
            if all(word in STOP_WORDS for word in words):
                continue
            listed = (
                words[0] in lasts
                and (words[1] in firsts or words[1] in lasts)
                and not any(is_english(word, english) for word in words[2:])
            )
            chinese = words[0] in chinese_surnames() and all(
                _PINYIN_NAME.fullmatch(word) for word in words[1:]
            )
            if listed or chinese:
                results.append(self._result(match.start("value"), end, 0.85, "slashed name"))
        return results


_SPACED = re.compile(
    r"(?<![A-Za-z0-9/._@\-])(?P<value>(?P<first>[A-Za-z][a-z]{1,9}|[A-Z]{2,10})"
    r" (?P<second>[A-Za-z][a-z]{1,9}|[A-Z]{2,10}))(?![A-Za-z0-9/@\-])"
)
PINYIN_NAME_SCORE = 0.6


class PinyinNameRecognizer(RegexRecognizer):
    """A Chinese name romanized inside Chinese text (`英文名写的是Zhang Wei`, `ZHANG WEI`, `我叫
    liu jianguo`, `Wei Zhang`): a surname as passports romanize it and a given name of one or
    two Mandarin syllables, in either order, both capitalized, both in capitals or both in lower
    case. The Chinese pack's NER reads no Latin letters. Surnames in pinyin only (Kung and Tai
    are Wade-Giles, and Kung Fu, Tai Chi loanwords); not a place (`Hong Kong`), not two English
    words (`Yin Yang`), nor one in lower case (`he ran`), not a stop word but in capitals
    (`HE RAN`)."""

    ENTITY = "PERSON"
    FLAGS = 0

    def analyze(self, text, entities, nlp_artifacts=None):
        if self.ENTITY not in entities:
            return []
        english = None
        surnames = mainland_surnames()
        results = []
        for match in _SPACED.finditer(text):
            first, second = match.group("first"), match.group("second")
            cases = {_case(first), _case(second)}
            if len(cases) != 1 or None in cases:
                continue
            words = [first.lower(), second.lower()]
            if not any(
                surname in surnames and _PINYIN_NAME.fullmatch(given)
                for surname, given in (words, words[::-1])
            ):
                continue
            if cases != {"upper"} and any(word in STOP_WORDS for word in words):
                continue
            english = english if english is not None else english_words(nlp_artifacts)
            known = [is_english(word, english) for word in words]
            if all(known) or (cases == {"lower"} and any(known)):
                continue  # "Yin Yang"; "he ran"
            if known_place(match.group("value")):
                continue
            results.append(
                self._result(*match.span("value"), PINYIN_NAME_SCORE, "romanized Chinese name")
            )
        return results


def _case(word: str) -> str | None:
    if word.isupper():
        return "upper"
    if word.islower():
        return "lower"
    return "title" if word[0].isupper() and word[1:].islower() else None
