"""What a personal name is made of, in Latin script: a name lexicon and an English lexicon.

- Given and family names of every Faker person locale written in Latin script (86 locales:
  European, Latin American, African, Asian romanized lists; about 20,000 each), so that
  "Miklós Hajdu" or "Tomomi Nishiyama" is known as a name, not only US census names.
- Ordinary English words: the lemma index of the installed spaCy model's lemmatizer
  (WordNet-derived nouns, verbs, adjectives, adverbs) and spaCy's stop words. A capitalized
  word that is an ordinary word ("Discipline", "Orchestra") is weak evidence of a name; one
  that is not ("Yefremova") is strong.

Nothing here is downloaded: both come from installed packages, loaded once per process.
"""

import importlib
import pkgutil
import re
from functools import lru_cache
from pathlib import Path

import faker.providers.person
import spacy.util
from spacy.lang.en.stop_words import STOP_WORDS
from spacy.lookups import Lookups

_LATIN_WORD = re.compile(r"^[a-z\u00df-\u024f\u1e00-\u1eff']+$")
_PARTS = re.compile(r"[\s\-]+")
NAME_ATTRIBUTES = (
    ("first_names", "first_names_male", "first_names_female", "first_names_nonbinary"),
    ("last_names", "last_names_male", "last_names_female"),
)


@lru_cache(maxsize=1)
def name_lexicon() -> tuple[frozenset[str], frozenset[str]]:
    """Lower-cased given names and family names of every Faker person locale (Latin script).

    Stop words are left out: "van", "de", "will" never count as a name by themselves.
    """
    lexicons: tuple[set[str], set[str]] = (set(), set())
    for module in pkgutil.iter_modules(faker.providers.person.__path__):
        try:
            provider = importlib.import_module(f"faker.providers.person.{module.name}").Provider
        except (ImportError, AttributeError):  # a locale without a person provider
            continue
        for lexicon, attributes in zip(lexicons, NAME_ATTRIBUTES, strict=True):
            for attribute in attributes:
                values = provider.__dict__.get(attribute)
                if not isinstance(values, (list, tuple, dict, set, frozenset)):
                    continue  # inherited or computed: the locale has no list of its own
                for value in values:
                    for part in _PARTS.split(str(value).lower()):
                        part = part.strip(".")
                        if len(part) > 1 and _LATIN_WORD.match(part) and part not in STOP_WORDS:
                            lexicon.add(part)
    return frozenset(lexicons[0]), frozenset(lexicons[1])


def all_listed(words) -> bool:
    """Whether every one of `words` (one at least) is a given or a family name of the name
    lexicon, in any case (`Henrik Lund`, `sarah`)."""
    firsts, lasts = name_lexicon()
    lowered = [word.lower() for word in words]
    return bool(lowered) and all(word in firsts or word in lasts for word in lowered)


@lru_cache(maxsize=4)
def english_lexicon(spacy_model: str) -> frozenset[str]:
    """Ordinary English words: the model's lemma index plus stop words (empty if absent)."""
    words = set(STOP_WORDS)
    try:
        root = Path(spacy.util.get_package_path(spacy_model))
    except (ImportError, ModuleNotFoundError, OSError):
        return frozenset(words)
    for folder in root.glob("**/lemmatizer/lookups"):
        lookups = Lookups().from_disk(folder)
        if "lemma_index" in lookups.tables:
            index = lookups.get_table("lemma_index")
            for pos in ("noun", "verb", "adj", "adv"):
                words.update(w for w in index.get(pos, ()) if "_" not in w)
        break
    return frozenset(words)


def english_words(nlp_artifacts) -> frozenset[str]:
    """Ordinary English words: the scan's NLP engine's (`PackNlpEngine.english_words`), or the
    configured spaCy model's where none is handed over (a recognizer called on its own)."""
    engine = getattr(nlp_artifacts, "nlp_engine", None)
    return getattr(engine, "english_words", None) or _default_english()


@lru_cache(maxsize=1)
def _default_english() -> frozenset[str]:
    from pipelines.steps.config import PIIConfig

    return english_lexicon(PIIConfig.model_fields["spacy_model"].default)


@lru_cache(maxsize=2)
def common_words(english: frozenset[str]) -> frozenset[str]:
    """Words of two general dictionaries (english-words' lists): the headwords of GNU's
    Collaborative International Dictionary of English and the words Webster's Second
    International writes in lower case (its `web2` list capitalizes proper nouns alone).

    spaCy's lemma index comes from WordNet, whose nouns include famous people ("arafat",
    "gaddafi", "suharto", "seles"): a word in it is not ordinary for that alone. These
    dictionaries keep the ordinary ones ("dole", "croft", "discipline", "box") apart.

    Only the words of `english` (the lemma index) are kept: no other word is looked up here,
    and the two lists whole take 42 MiB (the part kept, a few MiB).
    """
    from english_words import get_english_words_set

    webster = {word for word in get_english_words_set(["web2"]) if word.islower()}
    return frozenset(english & (webster | get_english_words_set(["gcide"], lower=True)))


def in_a_dictionary(word: str, english: frozenset[str]) -> bool:
    """An ordinary English word by both lists: spaCy's lemma index (`english`) and a general
    dictionary (`common_words`), so not a famous person that WordNet lists ("Arafat")."""
    return is_english(word, english) and is_english(word, common_words(english))


ENGLISH_PREFIXES = ("tele", "cyber", "micro", "multi", "inter", "over", "under", "non", "super")
"""Prefixes that make a new English word of an old one (telepharmacy, cyberattack)."""


def made_of_english(word: str, english: frozenset[str]) -> bool:
    """Whether `word`, in no dictionary itself, is made of English words a dictionary holds: a
    compound of two (timesheet = time + sheet, onboarding = on + boarding; the second of five
    letters at least: a handle's Princeboss, a hero's Nightwing stay names) or a prefix and one
    (telepharmacy). A new word of the trade, not a name (no name list holds it: `Ingrid` is
    in + grid too, but a listed name)."""
    lowered = word.lower()
    if not english or len(lowered) < 6 or not lowered.isalpha():
        return False
    for prefix in ENGLISH_PREFIXES:
        rest = lowered[len(prefix) :]
        if lowered.startswith(prefix) and len(rest) >= 4 and in_a_dictionary(rest, english):
            return True
    for cut in range(2, len(lowered) - 4):
        first, second = lowered[:cut], lowered[cut:]
        if first in english and in_a_dictionary(second, english):
            if len(first) > 2 or first in STOP_WORDS:
                return True
    return False


def is_english(word: str, english: frozenset[str]) -> bool:
    """Whether `word` (any case) is an ordinary English word or a plural / -s form of one."""
    lowered = word.lower().strip(".'’")
    if lowered in english:
        return True
    for suffix, replacement in (("ies", "y"), ("es", ""), ("s", ""), ("'s", ""), ("’s", "")):
        if lowered.endswith(suffix) and lowered[: -len(suffix)] + replacement in english:
            return True
    return False


PARTICLES = frozenset({"van", "von", "de", "da", "del", "der", "den", "ten", "ter", "di", "du"})
"""Lower-case words inside a name ("Willemine ten Pas"), never a name alone."""
_INITIAL = re.compile(r"^[A-Z]\.?$")


def name_evidence(
    words: list[str], english: frozenset[str], model_words: frozenset[str]
) -> float | None:
    """How much `words` (a run of capitalized words) look like a personal name, or None.

    None when any word is an ordinary English word that no name list holds ("Guilty
    Pleasures", "Snake Boogie", "Rennie Union"). Otherwise: 0.6 for two or more words with
    one that a name list holds and no English lexicon does ("Miklós Hajdu", "Zoe Young"), two
    or more words outside every lexicon ("Tomomi Nishiyama"), or a listed given name first
    ("Sofia Lima"); 0.5 for one listed, non-English name alone ("Enrico"); None for the rest
    (one rare word is a place or a brand as often as a name).
    """
    firsts, lasts = name_lexicon()
    core = [w for w in words if not _INITIAL.match(w) and w.lower() not in PARTICLES]
    if not core or not english:
        return None
    strong = rare = 0
    for word in core:
        lowered = word.lower().strip(".")
        listed = lowered in firsts or lowered in lasts
        ordinary = is_english(word, english)
        if ordinary and not listed:
            return None
        strong += listed and not ordinary
        rare += not listed and not ordinary and lowered not in model_words
    if len(core) >= 2 and (strong or rare == len(core)):
        return 0.6
    if len(core) >= 2 and core[0].lower() in firsts:
        # "Fletcher Hill", "Sofia Lima": a given name, then listed or rare words only
        return 0.6
    if len(core) == 1 and strong and len(words) == 1:
        return 0.5
    if len(core) == 1 and strong:
        return 0.6  # with an initial: "J Gelencsér"
    return None


@lru_cache(maxsize=1)
def _place_names() -> tuple[frozenset[str], frozenset[str]]:
    """Country names (Faker's English list) and the kinds of place a name ends in (its USPS
    street suffixes: Park, Island, Lake, Valley ...)."""
    from faker.providers.address.en_US import Provider

    countries = frozenset(country.lower() for country in Provider.countries)
    return countries, frozenset(suffix.lower() for suffix in Provider.street_suffixes)


_PLACE_PREFIXES = frozenset(
    {
        "st", "st.", "ste", "ste.", "saint", "sainte", "fort", "ft", "ft.", "mount", "mt",
        "mt.", "port", "cape", "lake", "san", "santa", "sao", "são", "new", "north", "south",
        "east", "west", "northern", "southern", "eastern", "western", "central", "upper",
        "lower",
    }
)  # fmt: skip
"""First words of English (and Romance) place names that open no person's name ("St Louis",
"Port Said", "Fort Worth", "San Marino", "North America", "New Zealand"): the name after them
is the place's. A compass word ends a surname (Kanye West) but opens none. Kinds of place that
are also given names or surnames (Glen, Dale, Hill, Park) are left out here."""


def named_as_place(value: str) -> bool:
    """A name that only a place has: a country no name list holds as a name ("Sri Lanka",
    "Mauritius"; not "Jordan" or "Chad"), or one opening with a place's prefix ("San Diego",
    "St Louis"; not "Saint Nicholas"). Unlike `known_place`, not a name ending in a kind of
    place: "Anthony Hill", "Michael Green" and "Mark Brooks" are persons."""
    countries, _ = _place_names()
    words = value.split()
    if value.lower() in countries:
        firsts, lasts = name_lexicon()
        return len(words) > 1 or not (value.lower() in firsts or value.lower() in lasts)
    # "Saint" spelled out opens a saint's name as often as a town's ("Saint Nicholas")
    return len(words) > 1 and words[0].lower() in _PLACE_PREFIXES - {"saint", "sainte"}


def known_place(value: str) -> bool:
    """A country ("Sri Lanka", "El Salvador"), a name ending in a kind of place ("Ellis Park")
    or opening with a place's prefix ("St Louis"): NER's place reading stands, whatever the
    name lexicons say of its words."""
    countries, kinds = _place_names()
    words = value.split()
    return value.lower() in countries or (
        len(words) > 1 and (words[-1].lower() in kinds or words[0].lower() in _PLACE_PREFIXES)
    )
