"""URL: Presidio's URL recognizer, with the span grown to the end of the written URL.

Presidio's pattern stops where its top-level-domain alternation first matches: in
"https://www.cox.biz/reset?token=..." it reports "https://www.cox.bi", and the path, the query
and the personal token in it were left in the text. The span here runs on to the end of the
URL as written (up to white space, quotes, brackets or non-ASCII text such as a following
Chinese sentence), less trailing sentence punctuation.
"""

import re

from presidio_analyzer import RecognizerResult
from presidio_analyzer.predefined_recognizers import UrlRecognizer

_URL_HINT = re.compile(r"[a-z0-9.\-]\.[a-z]", re.IGNORECASE)
"""What every match of Presidio's URL pattern holds: a host character, a dot, then a letter
(every top-level domain of its list starts with one). A text without it is not searched with
the pattern's long alternation of domains (about half a millisecond per message)."""
_URL_TAIL = re.compile(r"[^\s<>\"'`()\[\]{}\u0080-\U0010ffff]*")
_TRAILING_PUNCTUATION = ".,;:!?"


class FullUrlRecognizer(UrlRecognizer):
    """URLs with their whole path and query."""

    def __init__(self, *, language: str, context: list[str] | None = None) -> None:
        extra = {"context": context} if context is not None else {}
        super().__init__(supported_language=language, **extra)

    def analyze(
        self, text, entities, nlp_artifacts=None, regex_flags=None
    ) -> list[RecognizerResult]:
        if not _URL_HINT.search(text):
            return []
        results = super().analyze(text, entities, nlp_artifacts, regex_flags)
        for result in results:
            tail = _URL_TAIL.match(text, result.end)
            end = tail.end() if tail else result.end
            while end > result.end and text[end - 1] in _TRAILING_PUNCTUATION:
                end -= 1
            result.end = end
        return results
