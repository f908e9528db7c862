"""QQ_NUMBER and WECHAT_ID: instant-messaging ids, only next to their context words.

A QQ number is 5-11 digits not starting with 0; a WeChat id is 6-20 characters starting with a
letter (ASCII letters, digits, `_` and `-`; Chinese writes it glued to its words, 微信是sarah_88).
Both look like ordinary tokens, so a context word is required (QQ, 微信, wechat, wxid).
"""

from pipelines.steps.privacy.recognizers.base import RegexRecognizer


class QqNumberRecognizer(RegexRecognizer):
    """QQ numbers next to "QQ"."""

    ENTITY = "QQ_NUMBER"
    PATTERNS = ((r"(?<![\d])[1-9]\d{4,10}(?!\d)", 0.5),)
    CONTEXT = ("qq", "企鹅号")
    REQUIRES_CONTEXT = True


class WechatIdRecognizer(RegexRecognizer):
    """WeChat ids next to "微信"/"WeChat", and `wxid_...` anywhere."""

    ENTITY = "WECHAT_ID"
    PATTERNS = (
        (r"(?<![A-Za-z0-9_-])wxid_[a-z0-9]{6,20}(?![A-Za-z0-9_-])", 0.9),
        (r"(?<![A-Za-z0-9_-])[a-zA-Z][A-Za-z0-9_-]{5,19}(?![A-Za-z0-9_-])", 0.5),
    )
    CONTEXT = ("微信", "wechat", "weixin", "vx", "wx")

    def validate(self, value: str) -> bool:
        # Real ids mix in digits, "_" or "-"; a plain word next to "WeChat" is prose.
        return any(c.isdigit() or c in "_-" for c in value)

    def analyze(self, text, entities, nlp_artifacts=None):
        results = super().analyze(text, entities, nlp_artifacts)
        # The generic id form only counts with context; wxid_ ids stand on their own.
        return [r for r in results if r.score >= 0.8]
