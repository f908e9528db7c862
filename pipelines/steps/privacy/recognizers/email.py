"""EMAIL_ADDRESS: Presidio's e-mail recognizer, not run on text without an at sign.

Every address Presidio's pattern matches holds a literal `@` (a spelled-out "john at example
dot com" or a fullwidth `＠` is rewritten to one by `pipelines.steps.privacy.normalize` before any
recognizer reads the text). Its long regex costs about half a millisecond per message: most
messages have no `@` and are settled without it.
"""

from presidio_analyzer import RecognizerResult
from presidio_analyzer.predefined_recognizers import EmailRecognizer

from pipelines.steps.ingest.language import HAN


class AtSignEmailRecognizer(EmailRecognizer):
    """Presidio's EmailRecognizer, skipping texts without `@`."""

    def analyze(
        self, text, entities, nlp_artifacts=None, regex_flags=None
    ) -> list[RecognizerResult]:
        if "@" not in text:
            return []
        results = super().analyze(text, entities, nlp_artifacts, regex_flags)
        for result in results:
            # Chinese writes an address glued to its label (邮箱john@smith.io): the pattern's
            # Unicode letters would take the label into the address's local part.
            while result.start < result.end and HAN.match(text, result.start):
                result.start += 1
        return [r for r in results if r.start < r.end]
