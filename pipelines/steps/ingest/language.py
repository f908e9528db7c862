"""Language identification, offline (lingua ships its n-gram models inside the wheel).

Fail closed: the pipeline only accepts records in a language that has a configured PII detector.
Anything else, including a mixed record that carries Chinese script when Chinese has no
detector, is quarantined with the language it was detected as.
"""

import re
from functools import lru_cache

from lingua import Language, LanguageDetectorBuilder

# The detector distinguishes more languages than the pipeline accepts, so that a French or
# Japanese record is recognized as such and quarantined instead of being taken for English.
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
_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_LETTER = re.compile(r"[^\W\d_]")
UNDETERMINED = "und"


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
    """Detect the language and decide whether the pipeline can scan it.

    Returns:
        (language code, accepted?) — a record carrying Han characters is only accepted when
        "zh" is configured, whatever its majority language, and is then scanned as "zh".
    """
    language = detect_language(text)
    if _HAN.search(text) and language in ("zh", "en", UNDETERMINED):
        # Mixed English/Chinese goes to the Chinese pack: the English one cannot read Han names
        # and addresses. Japanese (also Han) keeps its own code and is quarantined.
        return "zh", "zh" in accepted
    if _HAN.search(text) and "zh" not in accepted:
        return language, False
    return language, language in accepted
