"""Which PII pack scans a record: decided by the scripts it is written in, offline.

A record goes to the pack that reads its script: Latin script to the English pack (spaCy NER
reads capitalized names in any Latin-script language: "Maybe it's under Caitlyn Schulz", an
address in Finland or Brazil), Han to the Chinese pack (which also runs the English pack over
the Latin words and every pattern recognizer; see `pipelines.steps.privacy.pii`). A statistical
language guess on a short sentence ("My name is Rubija") is too unreliable to gate on: it took
one English dev sentence in eight for German, Dutch or Italian.

Fail closed: a text written in a script no configured pack reads (Cyrillic, Arabic, Greek ...:
most of its letters) is refused as `unsupported_language` under that script's
language code, and so is any text with a word of Japanese kana or Korean Hangul. A few words
of such a script inside a text of a readable one ("grew up in ΑΛΑΣΣΑ") do not refuse it: the
English pack's `other_script` recognizer replaces every such word (a name in a script we
cannot read is never let through).
`detect_language` (lingua's n-gram models, inside the wheel) stays for reporting.
"""

import re
from functools import lru_cache

from lingua import Language, LanguageDetectorBuilder

# The detector distinguishes more languages than the pipeline accepts, so that a French or
# Japanese record is recognized as such in reports.
_CANDIDATES = (
    Language.ENGLISH,
    Language.CHINESE,
    Language.JAPANESE,
    Language.KOREAN,
    Language.FRENCH,
    Language.GERMAN,
    Language.SPANISH,
    Language.PORTUGUESE,
    Language.ITALIAN,
    Language.DUTCH,
    Language.RUSSIAN,
    Language.ARABIC,
)
HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
"""A Han character (CJK unified ideographs, extension A, compatibility ideographs)."""
_LETTER = re.compile(r"[^\W\d_]")
_LATIN_LETTERS = (
    r"A-Za-z\u00c0-\u02ff\u1e00-\u1eff\u2c60-\u2c7f\ua720-\ua7ff\uff21-\uff3a\uff41-\uff5a"
)
_LATIN = re.compile(rf"[{_LATIN_LETTERS}]")
UNDETERMINED = "und"
LATIN_PACK = "en"
HAN_PACK = "zh"
SCRIPTS_WITHOUT_PACK = (
    # (language code it is refused under, letters of the script); kana before Han: a Japanese
    # text also holds Han.
    ("ja", r"\u3040-\u30ff\u31f0-\u31ff\uff66-\uff9f"),
    ("ko", r"\uac00-\ud7af\u1100-\u11ff\u3130-\u318f"),
    ("ru", r"\u0400-\u052f"),
    ("el", r"\u0370-\u03ff\u1f00-\u1fff"),
    ("he", r"\u0590-\u05ff"),
    ("ar", r"\u0600-\u06ff\u0750-\u077f\u08a0-\u08ff"),
    ("hi", r"\u0900-\u097f"),
    ("th", r"\u0e00-\u0e7f"),
)
"""Scripts no pack reads, with the code a record holding them is refused under."""
_WORD_IN = {code: re.compile(rf"[{letters}]{{2,}}") for code, letters in SCRIPTS_WITHOUT_PACK}
"""A word (two letters in a row) of the script: a lone α or π in a formula names no one."""
WHOLE_TEXT_SCRIPTS = ("ja", "ko")
"""Scripts that make a text theirs by one word: kana or Hangul mean Japanese or Korean, which
the Chinese pack cannot read even where most of the characters are Han."""
_PACK_LETTERS = re.compile(rf"[{_LATIN_LETTERS}\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
OTHER_SCRIPT_WORD = re.compile(
    rf"(?:(?![{_LATIN_LETTERS}\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff])[^\W\d_]){{2,}}"
)
"""A word of a script no pack reads; the English pack's `other_script` recognizer replaces
such words where they sit in a text of a readable script."""


@lru_cache(maxsize=1)
def _detector():
    return LanguageDetectorBuilder.from_languages(*_CANDIDATES).build()


def detect_language(text: str) -> str:
    """ISO 639-1 code of the text's language, or "und" when it has no letters to judge by."""
    if not _LETTER.search(text):
        return UNDETERMINED
    found = _detector().detect_language_of(text)
    return found.iso_code_639_1.name.lower() if found else UNDETERMINED


def language_verdict(text: str, accepted: list[str]) -> tuple[str, bool]:
    """The pack that scans the text, by script, and whether the pipeline has it.

    Returns:
        `(pack, accepted?)`. A word of kana or Hangul, or words of scripts without a pack
        holding at least as many letters as the readable words -> that script's code (`ja`,
        `ru`, `ar` ...), or `und` for one not listed in `SCRIPTS_WITHOUT_PACK`: never
        accepted. Otherwise Han (with or without Latin) -> `zh`; Latin -> `en`; no word at all
        (digits, symbols) -> the English pack, whose patterns read them (the Chinese one where
        only it is configured).
    """
    for code in WHOLE_TEXT_SCRIPTS:
        if _WORD_IN[code].search(text):
            return code, False
    foreign = sum(len(word) for word in OTHER_SCRIPT_WORD.findall(text))
    if foreign and foreign >= len(_PACK_LETTERS.findall(text)):
        for code, word in _WORD_IN.items():
            if word.search(text):
                return code, False
        return UNDETERMINED, False
    if HAN.search(text):
        return HAN_PACK, HAN_PACK in accepted
    if _LATIN.search(text):
        return LATIN_PACK, LATIN_PACK in accepted
    # No word to read (digits, symbols, a lone letter such as "π"): the patterns decide.
    for pack in (LATIN_PACK, HAN_PACK):
        if pack in accepted:
            return pack, True
    return UNDETERMINED, False
