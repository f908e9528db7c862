"""PERSON and LOCATION in Chinese text: jieba's part-of-speech tags plus a name-list rule.

jieba.posseg ships its dictionary and HMM offline; it tags person names `nr` and place names
`ns`. It splits some names ("王" + "秀英"), so a rule layer also accepts a surname from Faker's
zh_CN surname list directly followed by a given name from its given-name list, and, next to a
name context word, a listed surname followed by jieba's pieces of an unknown given name. Addresses
(province/city/district ... street + number) are matched as one LOCATION span so that the whole
address is replaced, not its parts.
"""

import re
from functools import lru_cache

from faker.providers.address.zh_CN import Provider as AddressProvider
from faker.providers.person.zh_CN import Provider as PersonProvider
from presidio_analyzer import RecognizerResult

from pipelines.steps.privacy.recognizers.base import RegexRecognizer, has_context

_HAN = r"[\u4e00-\u9fff]"
_ADMIN = r"(?:省|自治区|特别行政区|市|自治州|地区|盟|县|区|旗|镇|乡|街道)"
_STREET = r"(?:路|街|大道|大街|道|巷|弄|胡同|里|村)"
ADDRESS = re.compile(
    rf"(?:{_HAN}{{1,7}}?{_ADMIN}){{1,5}}(?:{_HAN}{{0,8}}?{_STREET})?"
    rf"(?:\s?\d{{1,5}}\s?(?:号|弄|栋|幢))?(?:{_HAN}?[A-Za-z\d]{{0,4}}(?:座|栋|幢|单元|楼|层|室))*"
)
_NAME_CONTEXT = ("我是", "叫", "患者", "家属", "先生", "女士", "同事", "经理", "工程师", "医生")


@lru_cache(maxsize=1)
def _name_rule() -> re.Pattern[str]:
    surnames = sorted(
        {s for s in PersonProvider.last_names if 1 <= len(s) <= 2}, key=len, reverse=True
    )
    given = sorted(
        {g for g in (*PersonProvider.first_names_male, *PersonProvider.first_names_female)},
        key=len,
        reverse=True,
    )
    return re.compile(f"(?:{'|'.join(surnames)})(?:{'|'.join(given)})")


_HAN_CHARACTER = re.compile(_HAN)


@lru_cache(maxsize=1)
def _jieba():
    import jieba
    import jieba.posseg

    jieba.setLogLevel(60)  # jieba logs its cache path at INFO; nothing of the text
    # Faker's province and city names make jieba keep them whole as place names.
    for place in (*AddressProvider.provinces, *AddressProvider.cities):
        jieba.add_word(place, tag="ns")
    return jieba.posseg


@lru_cache(maxsize=4096)
def posseg(text: str) -> tuple[tuple[str, str, int], ...]:
    """jieba.posseg tokens of `text` as (word, flag, start offset); none without Han text.

    Both recognizers here only report Han-character spans, so a text without one (an English
    message under the residual gate's every-pack scan) is not segmented.
    """
    if not _HAN_CHARACTER.search(text):
        return ()
    tokens, position = [], 0
    for block in _jieba().re_han_internal.split(text):
        for word, flag in _block_tags(block):
            tokens.append((word, flag, position))
            position += len(word)
    return tuple(tokens)


@lru_cache(maxsize=65_536)
def _block_tags(block: str) -> tuple[tuple[str, str], ...]:
    """jieba.posseg's (word, flag) pairs of one block of its own split.

    jieba cuts each run of Han characters and ASCII word characters (`re_han_internal`) on its
    own, so a text's tags are its blocks' tags in order. A block seen before (a sentence a
    template repeats, or the unchanged part of a message a scrub pass re-reads) is not cut
    again.
    """
    return tuple((pair.word, pair.flag) for pair in _jieba().cut(block))


@lru_cache(maxsize=1)
def _surnames() -> frozenset[str]:
    return frozenset(s for s in PersonProvider.last_names if 1 <= len(s) <= 2)


_NOT_IN_A_NAME = frozenset({"x", "uj", "ul", "p", "c", "u", "y", "e", "r", "m", "zg"})
"""jieba flags that end a name: punctuation, particles, prepositions, conjunctions, pronouns,
numerals."""


def _surname_names(tokens: tuple[tuple[str, str, int], ...]) -> list[tuple[int, int]]:
    """Listed surname + one or two Han characters, from jieba's pieces of an unknown name.

    A given name outside every list is split by jieba into pieces ("马" + "志远", "黄皓" + "轩",
    "孟梓" + "萱"). A candidate starts at a token that is a listed surname, or begins with one
    and is not a dictionary word (jieba's HMM made it up: "蒋梓", unlike "高兴"), or is tagged
    as a name; it takes the following Han tokens while the given name stays at most two
    characters and stops at punctuation, particles and other function words.
    """
    surnames = _surnames()
    dictionary = _jieba().dt.FREQ
    found = []
    for index, (word, flag, start) in enumerate(tokens):
        surname = next((word[:n] for n in (2, 1) if word[:n] in surnames), None)
        if surname is None or not _HAN_CHARACTER.fullmatch(word[0]):
            continue
        if word != surname and word in dictionary and not flag.startswith("nr"):
            continue
        end = start + len(word)
        for next_word, next_flag, next_start in tokens[index + 1 :]:
            if next_flag in _NOT_IN_A_NAME or not re.fullmatch(f"{_HAN}+", next_word):
                break
            if next_start + len(next_word) - start > len(surname) + 2:
                break
            end = next_start + len(next_word)
        if 1 <= end - start - len(surname) <= 2:
            found.append((start, end))
    return found


class CnPersonRecognizer(RegexRecognizer):
    """Person names: jieba `nr` tokens, surname + given name from the name lists, and, next to
    a name context word, a listed surname followed by an unknown given name."""

    ENTITY = "PERSON"
    CONTEXT = _NAME_CONTEXT
    FLAGS = 0

    def analyze(self, text, entities, nlp_artifacts=None):
        if self.ENTITY not in entities:
            return []
        spans: dict[tuple[int, int], float] = {}
        for match in _name_rule().finditer(text):
            spans[match.span()] = 0.85
        tokens = posseg(text)
        for word, flag, start in tokens:
            if flag == "nr" and len(word) >= 2 and re.fullmatch(f"{_HAN}+", word):
                span = (start, start + len(word))
                spans.setdefault(span, 0.6)
        for start, end in _surname_names(tokens):
            # Without a context word ("我是", "家属", "经理" ...) a surname character followed by
            # two characters is too often an ordinary word.
            if has_context(text, start, end, self.words):
                spans[(start, end)] = max(spans.get((start, end), 0.0), 0.6)
        # A piece of a longer name ("欧阳" in "欧阳子轩") would outrank it on score alone.
        whole = {
            (start, end): score
            for (start, end), score in spans.items()
            if not any(s <= start and end <= e and e - s > end - start for s, e in spans)
        }
        return [
            self._result(start, end, score, "jieba nr / name list")
            for (start, end), score in sorted(whole.items())
        ]


class CnLocationRecognizer(RegexRecognizer):
    """Addresses as one span, and jieba `ns` place names."""

    ENTITY = "LOCATION"
    CONTEXT = ("地址", "住址", "位于", "邮寄至", "寄到", "住在")
    FLAGS = 0

    def analyze(self, text, entities, nlp_artifacts=None) -> list[RecognizerResult]:
        if self.ENTITY not in entities:
            return []
        tokens = posseg(text)
        results = []
        covered = 0
        # An address starts where jieba sees a place name; matching from there keeps the
        # words before it ("新地址是") out of the span.
        for word, flag, start in tokens:
            if flag != "ns" or start < covered:
                continue
            match = ADDRESS.match(text, start)
            if match and len(match.group(0)) > len(word):
                # Outranks person-name matches inside it (a district named 高明).
                results.append(self._result(*match.span(), 0.9, "address"))
                covered = match.end()
            elif len(word) >= 2:
                results.append(self._result(start, start + len(word), 0.5, "jieba ns"))
        return results
