"""PERSON and LOCATION from spaCy NER, with a validator for what a name cannot be.

en_core_web_sm tags hex groups of an IPv6 address ("d61a") and licence numbers ("S3354635")
as PERSON at the fixed NER score 0.85, which then outranks the validated pattern finding on the
same characters. A person's name has no digits, a place no word of letters and digits mixed
("V37631611"); an NER span without a letter names nothing.
It also splits unfamiliar names: "Penelope Markham" comes back as LOCATION "Penelope" and
PERSON "Markham". A PERSON and a LOCATION span with only one space between them are one name.
"""

import itertools
import re

from presidio_analyzer import RecognizerResult
from presidio_analyzer.predefined_recognizers import SpacyRecognizer

from pipelines.steps.privacy.recognizers.base import Spans
from pipelines.steps.privacy.recognizers.en_names import (
    in_a_dictionary,
    is_english,
    known_place,
    name_evidence,
    name_lexicon,
    named_as_place,
)
from pipelines.steps.privacy.recognizers.en_person import (
    GREETING,
    ROLE_TITLES,
    capitalized_runs,
    field_label,
)

NER_ENTITIES = ("PERSON", "LOCATION")
RELABELED = frozenset({"LOCATION", "ORGANIZATION", "NRP", "GPE", "ORG", "NORP", "LOC", "FAC"})
"""NER labels en_core_web_sm gives unfamiliar personal names ("Tomomi Nishiyama" ORG,
"Elle Sandström" GPE): such a span is a PERSON where the name lexicons say it is a name."""
RELABELED_SCORE = 0.86
"""Above NER's fixed 0.85, so the PERSON reading wins over the LOCATION one of that span."""
_WORDS = re.compile(r"[^\W\d_]+(?:['’\-][^\W\d_]+)*\.?")


class NerRecognizer(SpacyRecognizer):
    """Presidio's spaCy recognizer, dropping PERSON spans with digits or URL marks and spans
    without letters."""

    def __init__(self, *, language: str, context: list[str] | None = None) -> None:
        super().__init__(supported_language=language, supported_entities=list(NER_ENTITIES))

    def analyze(self, text, entities, nlp_artifacts=None) -> list[RecognizerResult]:
        results = sorted(
            (
                result
                for result in super().analyze(text, entities, nlp_artifacts)
                if _trim_result(text, result)
                and _plausible(result.entity_type, text[result.start : result.end])
            ),
            key=lambda result: result.start,
        )
        if "LOCATION" in entities:
            for result in results:
                # en_core_web_sm reads some places as persons ("Sri Lanka", "San Diego"): a
                # name only a place has is a place (`named_as_place`)
                value = text[result.start : result.end]
                if result.entity_type == "PERSON" and named_as_place(value):
                    result.entity_type = "LOCATION"
        # a mail header's or a letter's field label ("Subj:", "Attn:") is no name, and a
        # role's title ("Detective" before "Ruiz") no place
        results = [
            result
            for result in results
            if not (result.entity_type == "PERSON" and field_label(text, result.start, result.end))
            and not (
                result.entity_type == "LOCATION"
                and text[result.start : result.end].lower() in ROLE_TITLES
            )
        ]
        english = getattr(getattr(nlp_artifacts, "nlp_engine", None), "english_words", None)
        if english and "PERSON" in entities:
            results = self._with_lexicon(text, results, nlp_artifacts, english)
            for result in results:
                if result.entity_type == "PERSON":
                    result.end = _name_before_next_line(text, result.start, result.end, english)
                    result.start = _name_after_an_opener(text, result.start, result.end)
        results = _places_beside_persons(text, results)
        merged: list[RecognizerResult] = []
        for result in results:
            last = merged[-1] if merged else None
            if (
                last is not None
                and {last.entity_type, result.entity_type} == {"PERSON", "LOCATION"}
                and text[last.end : result.start] == " "
                and "PERSON" in entities
            ):
                last.end, last.entity_type = result.end, "PERSON"
                continue
            merged.append(result)
        return merged

    def _with_lexicon(self, text, results, nlp_artifacts, english) -> list[RecognizerResult]:
        """Drop NER PERSON spans of ordinary words alone ("Discipline", "Guilty Pleasures");
        add PERSON for name-like spans NER labelled a place, organization or group."""
        model_words = getattr(nlp_artifacts.nlp_engine, "model_words", frozenset())
        kept = []
        for result in results:
            words = _WORDS.findall(text[result.start : result.end])
            if (
                result.entity_type == "PERSON"
                and words
                and all(not _listed(w) for w in words)
                and (
                    _ordinary(words[0], english)
                    if len(words) == 1
                    else all(is_english(w, english) for w in words)
                )
            ):
                continue
            kept.append(result)
        read = [
            (*_trim(text, entity.start_char, entity.end_char), entity.label_)
            for entity in nlp_artifacts.entities
            if entity.label_ in RELABELED
        ]
        read = [(start, end, label) for start, end, label in read if end > start]
        places = [(start, end) for start, end, _ in read]
        spans = [
            (start, end)
            for start, end, label in read
            # a span with a number is a place or an organization ("Quinta de São Tiago
            # 3610-114"), never a name, whatever its words
            if _plausible("PERSON", text[start:end])
            and not known_place(text[start:end])
            and _reads_as_name(_WORDS.findall(text[start:end]), label, english, model_words)
        ]
        # A name NER cut in two ("Tünde" LOCATION, then "Hoffmann"): the whole run is read.
        where = Spans(places)
        spans += [
            (start, end)
            for start, end, words in capitalized_runs(text)
            if len(words) > 1
            and where.overlaps(start, end)
            and not known_place(text[start:end])
            and (name_evidence(words, english, model_words) or 0) >= 0.6
        ]
        for start, end in sorted(set(spans)):
            kept.append(
                RecognizerResult(
                    entity_type="PERSON",
                    start=start,
                    end=end,
                    score=RELABELED_SCORE,
                    analysis_explanation=self.build_explanation(
                        RELABELED_SCORE, "NER span the name lexicons read as a name"
                    ),
                    recognition_metadata={
                        RecognizerResult.RECOGNIZER_NAME_KEY: self.name,
                        RecognizerResult.RECOGNIZER_IDENTIFIER_KEY: self.id,
                    },
                )
            )
        return sorted(kept, key=lambda result: result.start)


_EDGE = "([{<\"'“”‘’«»,;:–—- \t\n"
"""What a span of NER may begin or end with that belongs to no name: spaCy's small model
sometimes takes the bracket after a name ("Giovanni Lombardi (" before "Italy )")."""


_FIELD_GAP = re.compile(r"[ ]*\t[ \t]*|[ ]{2,}")
"""A tab or a run of spaces inside a line: fields of a form or columns of a table, which no
name spans ("ROBERT O'BRIEN  DOB: ..." is a name, then the next field's label). A line's end
may be inside a name's span (a signature: "emidio p lombardo" + newline + "garcia-smith")."""


def _trim(text: str, start: int, end: int) -> tuple[int, int]:
    """The span without what begins or ends it that belongs to no name, and, where it runs
    across a field's gap, its longest piece."""
    pieces, at = [], start
    for gap in _FIELD_GAP.finditer(text, start, end):
        pieces.append((at, gap.start()))
        at = gap.end()
    pieces.append((at, end))
    start, end = max(pieces, key=lambda piece: piece[1] - piece[0])
    while start < end and text[start] in _EDGE:
        start += 1
    while end > start and text[end - 1] in _EDGE:
        end -= 1
    return start, end


def _name_before_next_line(text: str, start: int, end: int, english: frozenset[str]) -> int:
    """Where a name NER ran over a line's end stops: before the next line when that line
    opens with an ordinary word ("Nicholas R. Henry" + newline + "Leasing consultant", a
    signature's name and then its title or a form's next label, "Phone:"); a name that goes
    on in the next line ("emidio p lombardo" + newline + "garcia-smith"), or a word that is a
    listed name as well ("Smith"), keeps it."""
    line_end = text.find("\n", start, end)
    if line_end < 0:
        return end
    words = _WORDS.findall(text, line_end, end)
    head = text[start:line_end].rstrip()
    first = words[0].rstrip(".") if words else ""
    if not head or not first or _listed(first) or not _ordinary(first, english):
        return end
    return start + len(head)


_OPENER = re.compile(rf"(?:{GREETING}|sorry|ok|okay|please|poor|yes|no|oh|wow|yay)", re.IGNORECASE)
"""Greetings, thanks and interjections: what opens a message before the one it speaks to."""


def _name_after_an_opener(text: str, start: int, end: int) -> int:
    """Where a name NER read with the greeting or interjection before it begins ("Sorry
    kishan", "Dear Anjali Deshpande", "Congrats Wei Zhang"): after it. The last word is never
    dropped."""
    words = list(_WORDS.finditer(text, start, end))
    for word, following in itertools.pairwise(words):
        if not _OPENER.fullmatch(word.group().rstrip(".")):
            break
        start = following.start()
    return start


def _trim_result(text: str, result: RecognizerResult) -> bool:
    """Trim `result` in place (`_trim`); whether anything is left of it."""
    result.start, result.end = _trim(text, result.start, result.end)
    return result.end > result.start


def _places_beside_persons(text: str, results: list[RecognizerResult]) -> list[RecognizerResult]:
    """A place span that runs into a person's name ("Faroe Islands - Jan" before "Jan Allan
    Mueller") keeps its part outside the name: the overlap rule would otherwise drop the whole
    place for the person's higher score."""
    persons = [r for r in results if r.entity_type == "PERSON"]
    for result in results:
        if result.entity_type != "LOCATION":
            continue
        for person in persons:
            if person.start <= result.start and result.end <= person.end:
                break  # inside the name: the overlap rule settles it
            if result.start < person.start < result.end <= person.end:
                result.start, result.end = _trim(text, result.start, person.start)
            elif person.start <= result.start < person.end < result.end:
                result.start, result.end = _trim(text, person.end, result.end)
    return sorted(
        (
            r
            for r in results
            if r.end > r.start and _plausible(r.entity_type, text[r.start : r.end])
        ),
        key=lambda r: r.start,
    )


ORGANIZATION_LABELS = frozenset({"ORG", "ORGANIZATION", "NORP", "NRP"})
"""NER labels that no scrub type covers: what NER reads so is left in the text."""


def _reads_as_name(words: list[str], label: str, english, model_words) -> bool:
    """Whether an NER place or organization span is a personal name by the name lexicons.

    Two or more name-like words (`name_evidence` 0.6) are a name whatever NER said. One listed
    name that is no English word alone ("Wang", "Brunswijk", "conor": evidence 0.5) is read as
    a name where NER called it an organization or a group, which nothing scrubs, so the name
    would stay in the text: one rare word is a brand as often as a name, and recall comes
    first; a word in capitals is an acronym ("BRIC"). Where NER called it a place it stays a
    place (removed all the same): a village ("Mahala") is listed as a given name too.
    """
    evidence = name_evidence(words, english, model_words) or 0
    if evidence >= 0.6:
        return True
    # an acronym in capitals ("BRIC", "PUK") is an organization's
    return evidence >= 0.5 and label in ORGANIZATION_LABELS and not words[0].isupper()


def _ordinary(word: str, english: frozenset[str]) -> bool:
    """A word alone that is no name: in spaCy's lemma index and, written with a capital, also
    in a general dictionary (`common_words`), not only as a famous person WordNet lists
    ("Arafat"); or in lower case ("oregano"); or a country. A hyphenated word: each part."""
    parts = [part for part in word.split("-") if part]
    if len(parts) > 1:
        return all(_ordinary(part, english) for part in parts)
    if not is_english(word, english):
        return False
    return word.islower() or in_a_dictionary(word, english) or known_place(word)


def _listed(word: str) -> bool:
    firsts, lasts = name_lexicon()
    lowered = word.lower().strip(".")
    return lowered in firsts or lowered in lasts


def _plausible(entity_type: str, value: str) -> bool:
    if not any(c.isalpha() for c in value):
        return False
    if entity_type == "PERSON":
        # no digits, and none of a URL's or handle's marks ("https://FightListings.se/")
        return not any(c.isdigit() or c in "/@" for c in value)
    # A place name may hold a number ("Route 66"), not a word of letters and digits at once
    # (an id such as "V37631611" that NER read as a place).
    return not any(
        any(c.isalpha() for c in word) and any(c.isdigit() for c in word) for word in value.split()
    )
