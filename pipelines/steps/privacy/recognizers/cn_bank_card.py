"""CN_BANK_CARD: bank card numbers (UnionPay 62, debit/credit 16-19 digits), Luhn-checked."""

from pipelines.steps.privacy.recognizers.base import RegexRecognizer, luhn_valid
from pipelines.steps.privacy.recognizers.cn_id_card import reads_as_id_card


class CnBankCardRecognizer(RegexRecognizer):
    """16-19 digit card numbers, plain or grouped by four, that pass the Luhn check."""

    ENTITY = "CN_BANK_CARD"
    PATTERNS = (
        (r"(?<![\d-])(?:\d{4}[\s-]?){3}\d{4}(?:\d{1,3})?(?![\d-])", 0.6),
        (r"(?<![\d-])\d{4}(?:[\s-]\d{4}){3}[\s-]\d{1,3}(?![\d-])", 0.6),
    )
    CONTEXT = ("银行卡", "卡号", "账号", "帐号", "银行", "开户", "储蓄卡", "信用卡", "工资卡")

    def validate(self, value: str) -> bool:
        digits = "".join(c for c in value if c.isdigit())
        # An 18-digit number with a birth date at positions 7-14 is an identity card number
        # that happens to pass Luhn (one in ten do).
        if reads_as_id_card(digits):
            return False
        return luhn_valid(value)
