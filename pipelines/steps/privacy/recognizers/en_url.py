"""URL: what Presidio's URL recognizer finds, found in linear time, with the whole path.

Presidio's pattern, `[a-z0-9.\\-]{1,253}[.](?:com|edu|...)`, tries its alternation of about a
thousand top-level domains after every dot of up to 253 characters from every position: about
1.5 ms per character on a run of dots or of `www.` (a 20,000-character record took 30 s,
issue #16.3). Here each run of host characters is read once: its dots are found, and the
label after a dot is looked up, by its prefixes, in the same list of top-level domains
(Presidio's, parsed from its pattern so the two cannot drift apart, and tldextract's bundled
public suffix list); the match then starts where Presidio's would (at most 253 characters
before that dot, within the run) and carries the same score (0.6 after `http(s)://`, else 0.5).

Presidio's span stops where the alternation first matches: in "https://www.cox.biz/reset?token=..."
it reports "https://www.cox.bi", and the path, the query and the personal token in it were left
in the text. The span here runs on to the end of the URL as written (up to white space, quotes,
brackets or non-ASCII text such as a following Chinese sentence), less trailing sentence
punctuation.
"""

import re
from bisect import bisect_right
from functools import lru_cache

from presidio_analyzer import AnalysisExplanation, RecognizerResult
from presidio_analyzer.predefined_recognizers import UrlRecognizer

from pipelines.steps.offline import offline_tldextract

_HOST_RUN = re.compile(r"(?<![a-z0-9.\-])[a-z0-9.\-]+", re.IGNORECASE)
"""A maximal run of host characters: it cannot start inside another, so each character is
read once."""
_DOT_LETTER = re.compile(r"\.(?=[a-z]{2})")
_PRESIDIO_PATH = re.compile(r"/[^\s()<>\"']*")
_SCHEME = re.compile(r"https?://$", re.IGNORECASE)
_URL_TAIL = re.compile(r"[^\s<>\"'`()\[\]{}\u0080-\U0010ffff]*")
_TRAILING_PUNCTUATION = ".,;:!?"
MAX_HOST = 253
"""Presidio's bound on the host characters before the top-level domain's dot."""


@lru_cache(maxsize=1)
def top_level_domains() -> tuple[frozenset[str], int]:
    """Lower-case top-level domains (Presidio's list and the public suffix list's single
    labels) and the length of the longest."""
    pattern = UrlRecognizer.PATTERNS[0].regex
    presidio = set(re.findall(r"\(\?:([a-z]+)\)", pattern))
    extractor = offline_tldextract()
    suffixes = extractor._get_tld_extractor().tlds(include_psl_private_domains=False)
    public = {s.lower() for s in suffixes if "." not in s and s.isascii() and s.isalpha()}
    domains = frozenset(presidio | public)
    return domains, max(map(len, domains))


class FullUrlRecognizer(UrlRecognizer):
    """URLs with their whole path and query, in time linear in the text."""

    def __init__(self, *, language: str, context: list[str] | None = None) -> None:
        extra = {"context": context} if context is not None else {}
        super().__init__(supported_language=language, **extra)
        top_level_domains()

    def analyze(
        self, text, entities, nlp_artifacts=None, regex_flags=None
    ) -> list[RecognizerResult]:
        if self.supported_entities[0] not in entities:
            return []
        results = []
        for start, ends, score in _urls(text):
            # Presidio's own path (it takes non-ASCII and trailing punctuation) after any
            # domain that the label starts with, then ours.
            paths = [_PRESIDIO_PATH.match(text, end) for end in ends]
            found = max(path.end() if path else end for path, end in zip(paths, ends, strict=True))
            end = _URL_TAIL.match(text, found).end()
            while end > min(ends) and text[end - 1] in _TRAILING_PUNCTUATION:
                end -= 1
            results.append(self._url(start, end, score))
        return results

    def _url(self, start: int, end: int, score: float) -> RecognizerResult:
        return RecognizerResult(
            entity_type=self.supported_entities[0],
            start=start,
            end=end,
            score=score,
            analysis_explanation=AnalysisExplanation(
                recognizer=self.name, original_score=score, pattern_name="linear url"
            ),
            recognition_metadata={
                RecognizerResult.RECOGNIZER_NAME_KEY: self.name,
                RecognizerResult.RECOGNIZER_IDENTIFIER_KEY: self.id,
            },
        )


def _urls(text: str) -> list[tuple[int, list[int], float]]:
    """Where each URL Presidio's pattern would find starts, where the top-level domains its
    label starts with end, and its score.

    Per run of host characters: the last dot followed by a top-level domain within `MAX_HOST`
    characters of the start gives a URL from that start; the search then goes on after that
    domain (as `finditer` would), from the next position that can still reach one.
    """
    domains, longest = top_level_domains()
    starts = []
    for run in _HOST_RUN.finditer(text):
        begin, stop = run.span()
        lowered = text[begin:stop].lower()
        dots = [
            dot.start()
            for dot in _DOT_LETTER.finditer(lowered, 1)
            if _domains_after(lowered, dot.start() + 1, domains, longest)
        ]
        position, index = 0, 0
        while index < len(dots):
            # Presidio's greedy host part ends at the last dot with a domain within reach.
            reach = position + MAX_HOST
            last = None
            while index < len(dots) and dots[index] <= reach:
                if dots[index] > position:
                    last = dots[index]
                index += 1
            if last is None:
                position = dots[index] - MAX_HOST if index < len(dots) else stop
                continue
            start = begin + position
            scheme = _SCHEME.search(text, max(0, start - 8), start)
            lengths = _domains_after(lowered, last + 1, domains, longest)
            position = last + 1 + lengths[0]
            score = 0.6 if scheme else 0.5
            ends = [begin + last + 1 + length for length in lengths]
            starts.append((scheme.start() if scheme else start, ends, score))
            index = bisect_right(dots, position)
    return starts


def _domains_after(lowered: str, at: int, domains: frozenset[str], longest: int) -> list[int]:
    """Lengths of the top-level domains that `lowered[at:]` starts with, shortest first."""
    return [
        length
        for length in range(2, min(longest, len(lowered) - at) + 1)
        if lowered[at : at + length] in domains
    ]
