"""CN_USCC: unified social credit codes of organizations (18 characters, GB 32100-2015).

The last character is a check character over the first 17 (python-stdnum `cn.uscc`).
"""

from stdnum.cn import uscc

from pipelines.steps.privacy.recognizers.base import RegexRecognizer
from pipelines.steps.privacy.recognizers.cn_id_card import reads_as_id_card


class CnUsccRecognizer(RegexRecognizer):
    """Unified social credit codes, confirmed by their check character."""

    ENTITY = "CN_USCC"
    PATTERNS = (
        (
            r"(?<![0-9A-Za-z])[0-9A-HJ-NP-RTUW-Y][1-9]\d{6}[0-9A-HJ-NP-RTUW-Y]{10}"
            r"(?![0-9A-Za-z])",
            0.85,
        ),
    )
    CONTEXT = ("统一社会信用代码", "信用代码", "营业执照", "uscc", "credit code")
    FLAGS = 0

    def validate(self, value: str) -> bool:
        # An identity card number with a wrong check digit passes the code's check one time in
        # 31 (身份证号码：440301199003071234): digits with a birth date inside are a person's.
        return uscc.is_valid(value) and not reads_as_id_card(value)
