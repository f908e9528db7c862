"""CREDIT_CARD beyond Presidio's issuer prefixes: any 12-19 digit Luhn-valid number near "card".

Presidio's recognizer knows the classic issuer ranges; Mastercard's 2-series and 12-19 digit
Maestro numbers fall outside them. This one accepts any Luhn-valid length, but only with a
context word, so order numbers and ids that pass Luhn by chance stay unreported.
"""

from pipelines.steps.privacy.recognizers.base import RegexRecognizer, luhn_valid


class LuhnCardRecognizer(RegexRecognizer):
    """12-19 digit numbers, plain or grouped, that pass Luhn and sit next to a card word."""

    ENTITY = "CREDIT_CARD"
    PATTERNS = ((r"(?<![\d-])\d(?:[ -]?\d){11,18}(?![\d-])", 0.3),)
    CONTEXT = ("card", "visa", "mastercard", "amex", "maestro", "credit", "debit", "charged")
    REQUIRES_CONTEXT = True

    def validate(self, value: str) -> bool:
        return luhn_valid(value)
