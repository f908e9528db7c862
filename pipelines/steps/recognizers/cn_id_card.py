"""CN_ID_CARD: mainland resident identity card numbers.

18 characters: 6-digit region, birth date YYYYMMDD, 3-digit sequence and an ISO 7064 MOD 11-2
check character (0-9 or X), validated with python-stdnum's `cn.ric`. The legacy 15-digit form
(YYMMDD birth date, no check character) is accepted on its date and scores higher with context.
"""

from datetime import date

from stdnum.cn import ric

from pipelines.steps.recognizers.base import RegexRecognizer

_DATE18 = r"(?:18|19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])"
_DATE15 = r"\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])"


class CnIdCardRecognizer(RegexRecognizer):
    """18-digit (checked) and 15-digit (legacy) resident identity card numbers."""

    ENTITY = "CN_ID_CARD"
    PATTERNS = (
        (rf"(?<![0-9A-Za-z])[1-9]\d{{5}}{_DATE18}\d{{3}}[0-9Xx](?![0-9A-Za-z])", 0.9),
        (rf"(?<![0-9A-Za-z])[1-9]\d{{5}}{_DATE15}\d{{3}}(?![0-9A-Za-z])", 0.3),
    )
    CONTEXT = ("身份证", "证件号", "身份号码", "公民身份", "id card", "resident id", "id number")

    def analyze(self, text, entities, nlp_artifacts=None):
        results = super().analyze(text, entities, nlp_artifacts)
        for result in results:
            # A failed check character still looks like an id (typos, synthetic data): it
            # scores low and needs a context word to be reported.
            if result.end - result.start == 18 and not ric.is_valid(
                text[result.start : result.end]
            ):
                result.score = max(0.0, result.score - 0.6)
        return results

    def validate(self, value: str) -> bool:
        if len(value) == 18:
            value = value[:6] + value[8:]  # the legacy form's date check on YYMMDD
        try:
            date(1900 + int(value[6:8]), int(value[8:10]), int(value[10:12]))
        except ValueError:
            return False
        return True
