"""DATE_OF_BIRTH and AGE: dates and ages next to words that make them personal.

A date alone is not personal data, so DATE_OF_BIRTH needs a context word (born, DOB, date of
birth, birthday, 出生). AGE is "34 years old", "aged 34", "age: 34", "34-year-old", "34岁".
"""

import re

from pipelines.steps.privacy.recognizers.base import CONTEXT_BOOST, RegexRecognizer

_MONTHS = (
    r"(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?|"
    r"Sep(?:t(?:ember)?)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)\.?"
)
_DATES = (
    rf"{_MONTHS}\s+\d{{1,2}}(?:st|nd|rd|th)?,?\s+(?:19|20)\d{{2}}",
    rf"\d{{1,2}}(?:st|nd|rd|th)?\s+(?:of\s+)?{_MONTHS},?\s+(?:19|20)\d{{2}}",
    rf"(?<![\w-])\d{{1,2}}[-/ ]{_MONTHS}[-/ ](?:19|20)?\d{{2}}(?![\w-])",  # 14-Feb-1979, 01/Jan/79
    r"(?<!\d)(?:0?[1-9]|1[0-2])[/.-](?:0?[1-9]|[12]\d|3[01])[/.-](?:19|20)?\d{2}(?!\d)",
    r"(?<!\d)(?:0?[1-9]|[12]\d|3[01])[/.-](?:0?[1-9]|1[0-2])[/.-](?:19|20)\d{2}(?!\d)",
    r"(?<!\d)(?:19|20)\d{2}[/.-](?:0?[1-9]|1[0-2])[/.-](?:0?[1-9]|[12]\d|3[01])(?!\d)",
    r"(?:19|20)\d{2}年\d{1,2}月\d{1,2}日",
)


class DateOfBirthRecognizer(RegexRecognizer):
    """Dates in common English, numeric and Chinese formats, next to a birth context word."""

    ENTITY = "DATE_OF_BIRTH"
    PATTERNS = tuple((pattern, 0.5) for pattern in _DATES)
    CONTEXT = ("born", "birth", "dob", "d.o.b", "birthday", "出生", "生日")
    REQUIRES_CONTEXT = True

    def analyze(self, text, entities, nlp_artifacts=None):
        results = super().analyze(text, entities, nlp_artifacts)
        if self.ENTITY not in entities:
            return results
        seen = {(r.start, r.end) for r in results}
        for match in _BORN_ON.finditer(text):
            if match.span("value") not in seen:
                start, end = match.span("value")
                results.append(self._result(start, end, 0.5 + CONTEXT_BOOST, "生 after a date"))
        return results


_BORN_ON = re.compile(r"(?P<value>(?:19|20)\d{2}年\d{1,2}月\d{1,2}日)生(?![产效意活成长态物日存])")
"""A date that 生 follows, as Chinese documents give a party's birth (覃小龙，男，1990年8月5日生):
not 生产 (made on), 生效 (in force from) or other words opening with 生."""


class AgeRecognizer(RegexRecognizer):
    """Ages stated in years."""

    ENTITY = "AGE"
    PATTERNS = (
        (r"\b(?P<value>\d{1,3})(?:\s|-)?(?:years?|yrs?)(?:\s|-)?old\b", 0.7),
        (r"\b(?:aged|age:?|age of)\s+(?P<value>\d{1,3})\b", 0.7),
        # "I just turned 64", "I'll turn 21", "23 y/o"
        # the number ends the clause: "turned 180 degrees" or "turn 3 pages" is no age
        (
            r"\b(?:turned|turn|turning)\s+(?P<value>\d{1,3})"
            r"(?=\s*(?:$|[!?;]|[.,](?!\d)|\s(?:today|yesterday|this|last|next|on|in)\b))",
            0.6,
        ),
        (r"\b(?P<value>\d{1,3})\s?(?:y/o|yo|y\.o\.)(?!\w)", 0.7),
        (r"(?P<value>\d{1,3})\s?(?:周岁|岁)", 0.7),
        (r"(?:年龄|年纪)[:：]?\s?(?P<value>\d{1,3})", 0.7),
    )

    def validate(self, value: str) -> bool:
        return 0 < int(value) < 130
