"""LOCATION: words of a script no pack reads, inside a text of a readable one.

Routing (`pipelines.steps.ingest.language`) accepts an English or Chinese text that holds a
few words of another script ("grew up in ΑΛΑΣΣΑ", "5850 Jana Nerudy 894, ΑΓΛΑΝΤΖΙΑ"); no NER
reads them, so each run of such words is replaced, fail closed. In running text they are
proper nouns, places as often as people: the type is LOCATION, whose surrogate is a place.
"""

import re

from pipelines.steps.ingest.language import OTHER_SCRIPT_WORD
from pipelines.steps.privacy.recognizers.base import RegexRecognizer

OTHER_SCRIPT_RUN = re.compile(
    rf"{OTHER_SCRIPT_WORD.pattern}(?:[ \t().,'’∆\-]+{OTHER_SCRIPT_WORD.pattern})*"
)


class OtherScriptRecognizer(RegexRecognizer):
    """Each run of words in a script without a pack, as one finding."""

    ENTITY = "LOCATION"
    PATTERNS = ((OTHER_SCRIPT_RUN.pattern, 0.6),)
    FLAGS = 0
