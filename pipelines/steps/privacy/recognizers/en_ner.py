"""PERSON and LOCATION from spaCy NER, with a validator for what a name cannot be.

en_core_web_sm tags hex groups of an IPv6 address ("d61a") and licence numbers ("S3354635")
as PERSON at the fixed NER score 0.85, which then outranks the validated pattern finding on the
same characters. A person's name has no digits, a place no word of letters and digits mixed
("V37631611"); an NER span without a letter names nothing.
It also splits unfamiliar names: "Penelope Markham" comes back as LOCATION "Penelope" and
PERSON "Markham". A PERSON and a LOCATION span with only one space between them are one name.
"""

from presidio_analyzer import RecognizerResult
from presidio_analyzer.predefined_recognizers import SpacyRecognizer

NER_ENTITIES = ("PERSON", "LOCATION")


class NerRecognizer(SpacyRecognizer):
    """Presidio's spaCy recognizer, dropping PERSON spans with digits and spans without letters."""

    def __init__(self, *, language: str, context: list[str] | None = None) -> None:
        super().__init__(supported_language=language, supported_entities=list(NER_ENTITIES))

    def analyze(self, text, entities, nlp_artifacts=None) -> list[RecognizerResult]:
        results = sorted(
            (
                result
                for result in super().analyze(text, entities, nlp_artifacts)
                if _plausible(result.entity_type, text[result.start : result.end])
            ),
            key=lambda result: result.start,
        )
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


def _plausible(entity_type: str, value: str) -> bool:
    if not any(c.isalpha() for c in value):
        return False
    if entity_type == "PERSON":
        return not any(c.isdigit() for c in value)
    # A place name may hold a number ("Route 66"), not a word of letters and digits at once
    # (an id such as "V37631611" that NER read as a place).
    return not any(
        any(c.isalpha() for c in word) and any(c.isdigit() for c in word) for word in value.split()
    )
