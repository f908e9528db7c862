"""CN_PASSPORT and CN_TRAVEL_PERMIT: passports and Hong Kong/Macau/Taiwan travel permits.

These numbers have no public check character, so a bare match scores low and a context word
(护照, 通行证, 港澳, 台湾, passport, permit) lifts it over the threshold.
"""

from pipelines.steps.privacy.recognizers.base import RegexRecognizer


class CnPassportRecognizer(RegexRecognizer):
    """E/G + 8 digits (ordinary passports), E + letter + 7 digits (newer series), D/S/P."""

    ENTITY = "CN_PASSPORT"
    PATTERNS = (
        (r"(?<![0-9A-Za-z])(?:[EG]\d{8}|E[A-HJ-NP-Z]\d{7}|[DSP]E\d{7})(?![0-9A-Za-z])", 0.3),
    )
    CONTEXT = ("护照", "passport")
    FLAGS = 0


class CnTravelPermitRecognizer(RegexRecognizer):
    """HK/Macau permits (C/H/M + 8 digits, C + letter + 7), Taiwan permits (8 or 10 digits)."""

    ENTITY = "CN_TRAVEL_PERMIT"
    PATTERNS = (
        (r"(?<![0-9A-Za-z])(?:[CHM]\d{8}|C[A-HJ-NP-Z]\d{7}|[HM]\d{10})(?![0-9A-Za-z])", 0.3),
        (r"(?<![0-9A-Za-z])(?:T\d{8}|\d{8}(?:\d{2})?)(?![0-9A-Za-z])", 0.1),
    )
    CONTEXT = ("通行证", "港澳", "台湾", "回乡证", "台胞证", "permit")
    FLAGS = 0
