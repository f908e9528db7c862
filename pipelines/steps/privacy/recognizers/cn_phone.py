"""CN_PHONE_NUMBER: mainland mobile (11 digits, 1[3-9]) and landline numbers (0 + area code).

Mobile numbers may carry +86/0086 and be grouped 3-4-4; landlines are `0AA(A)-NNNNNNN(N)`
(the local number whole or grouped 3-4 / 4-4) with an optional extension. A bare 7-8 digit
local number needs a context word. A number read out in Chinese numerals (幺三九…) arrives as
digits: normalization reads it (`normalize`, `spoken.HAN_RUN`).
"""

from pipelines.steps.privacy.recognizers.base import RegexRecognizer

_NOT_DIGIT_BEFORE = r"(?<![\d+])"
_NOT_DIGIT_AFTER = r"(?!\d)"
_NOT_A_GROUP_BEFORE = r"(?<!\d[\s-])"
_NOT_A_GROUP_AFTER = r"(?![\s-]\d)"
"""A landline's digits are no groups of a longer number (6222 0212 3456 7890 123: a card)."""


class CnPhoneRecognizer(RegexRecognizer):
    """Mainland mobile and landline numbers, with an extension after 转 (a virtual number a
    platform gives a courier: 17700005621转3847)."""

    ENTITY = "CN_PHONE_NUMBER"
    PATTERNS = (
        (
            rf"{_NOT_DIGIT_BEFORE}(?:(?:\+|00)86[\s-]?)?1[3-9]\d(?:[\s-]?\d{{4}}){{2}}"
            rf"(?:(?:转|轉)\d{{1,5}})?{_NOT_DIGIT_AFTER}",
            0.7,
        ),
        (
            rf"{_NOT_DIGIT_BEFORE}{_NOT_A_GROUP_BEFORE}(?:(?:\+|00)86[\s-]?)?"
            rf"(?:\(0\d{{2,3}}\)|0\d{{2,3}})[\s-]?[2-9]\d{{2,3}}[\s-]?\d{{4}}"
            rf"(?:\s?(?:转|ext\.?|x)\s?\d{{1,5}})?{_NOT_DIGIT_AFTER}{_NOT_A_GROUP_AFTER}",
            0.6,
        ),
        (rf"{_NOT_DIGIT_BEFORE}[2-9]\d{{6,7}}{_NOT_DIGIT_AFTER}", 0.1),
    )
    CONTEXT = ("电话", "手机", "联系", "致电", "号码", "座机", "热线", "phone", "tel", "mobile")
