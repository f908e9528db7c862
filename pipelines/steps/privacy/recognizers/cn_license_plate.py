"""CN_LICENSE_PLATE: mainland vehicle plates (province abbreviation, letter, 5-6 characters)."""

from pipelines.steps.privacy.recognizers.base import RegexRecognizer

PROVINCES = "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼"


class CnLicensePlateRecognizer(RegexRecognizer):
    """Ordinary (5 characters) and new-energy (6) plates, with an optional separator; the shape
    is a plate's alone (a province's abbreviation, a city's letter, five or six characters), so
    it outranks LAC's person on its first two (鲁B·F8866: not 鲁B, a surname and a letter)."""

    ENTITY = "CN_LICENSE_PLATE"
    PATTERNS = (
        (
            rf"[{PROVINCES}][A-HJ-NP-Z][·\s-]?(?:[A-HJ-NP-Z0-9]{{5,6}}|[A-HJ-NP-Z0-9]{{4}}"
            r"[挂学警港澳])(?![0-9A-Za-z])",
            0.8,
        ),
    )
    CONTEXT = ("车牌", "牌照", "车辆", "驾驶", "轿车", "汽车", "货车", "车主", "plate")
    FLAGS = 0
