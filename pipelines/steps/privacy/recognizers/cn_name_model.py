"""A character model of a Chinese personal name, estimated from jieba's own dictionary.

jieba ships about 60,000 three-character words tagged `nr` (person). Those that begin with a
surname from Faker's zh_CN list (a 百家姓-style list of about 400 surnames, with the compound
ones of `COMPOUND_SURNAMES`)
give the distribution of given-name characters; every dictionary word weighted by its frequency
gives the background distribution of characters in running text. A candidate "surname + one or
two characters" is scored by the log-likelihood ratio of its given-name characters (name vs
text), plus a prior for the surname's own share of names. "王" + "秀英" scores high; "白" + "领"
or "康" + "复" score low, because 领 and 复 are common in text and rare in given names.

Transliterated foreign names (莫里尼奥, 蒂亚戈) use a small alphabet of their own: the characters
of jieba's `nrt` (transliterated name) entries. `foreign_score` weighs a word's characters in
that alphabet against those of Chinese names, so that 阿森纳 and 卡马乔 read as transliterations
and 孟梓萱 does not.
"""

import math
from collections import Counter
from functools import lru_cache

from faker.providers.person.zh_CN import Provider as PersonProvider
from faker.providers.person.zh_TW import Provider as TaiwanPersonProvider

_SMOOTHING = 0.5


@lru_cache(maxsize=1)
def _dictionary() -> tuple[dict[str, str], dict[str, int]]:
    import jieba
    import jieba.posseg

    jieba.setLogLevel(60)
    # Load the dictionary once, without re-initializing posseg's tag table: that would drop
    # the words `cn_names` adds at load time (Faker's place names) from it.
    jieba.posseg.dt.tokenizer.check_initialized()
    return jieba.posseg.dt.word_tag_tab, jieba.posseg.dt.tokenizer.FREQ


COMPOUND_SURNAMES = (
    *("上官", "夏侯", "诸葛", "闻人", "赫连", "皇甫", "尉迟", "公羊", "澹台", "公冶", "宗政"),
    *("濮阳", "淳于", "申屠", "公孙", "仲孙", "轩辕", "令狐", "钟离", "宇文", "长孙", "慕容"),
    *("鲜于", "闾丘", "司徒", "亓官", "司寇", "端木", "巫马", "公西", "漆雕", "乐正", "壤驷"),
    *("公良", "拓跋", "夹谷", "宰父", "谷梁", "段干", "东郭", "呼延", "归海", "羊舌", "微生"),
    *("梁丘", "左丘", "南宫", "司马", "万俟", "欧阳", "张简", "范姜"),
)
"""The compound surnames of the 百家姓 (and Taiwan's 张简, 范姜), which Faker's zh_CN list lacks
but for 欧阳; left out, those that are also ordinary words (东方, 西门, 百里, 第五, 司空, 单于)."""


TIBETAN_NAME_PARTS = frozenset(
    "扎西 次仁 卓玛 多吉 多杰 拉巴 平措 旺堆 格桑 达瓦 达娃 尼玛 央金 央宗 "
    "德吉 德庆 白玛 白珍 索朗 索南 洛桑 旦增 丹增 旦巴 顿珠 贡嘎 贡布 强巴 "
    "普布 普琼 边巴 巴桑 巴珠 米玛 次旦 次珍 次措 仁增 仁青 益西 赤列 阿旺 "
    "朗杰 罗布 欧珠 桑珠 桑杰 群培 措姆 曲珍 曲措 拉姆 拉珍 嘎玛 加措 加央 "
    "琼达 玉珍 卓嘎 旺姆 旺杰 格列 才让 才旦 土登 江村 仓决 扎巴".split()
)
"""The parts Tibetan personal names are made of, two characters each in Chinese transliteration
(扎西 "auspicious", 次仁 "long life", 卓玛 "Tara" …): a Tibetan name is one or two of them
(拉巴卓玛, 次仁多吉) and has no surname, which the surname-first model cannot read."""


def tibetan_name(word: str) -> bool:
    """Whether `word` is one or two parts of `TIBETAN_NAME_PARTS` (次仁, 拉巴卓玛)."""
    return len(word) in (2, 4) and all(
        word[k : k + 2] in TIBETAN_NAME_PARTS for k in range(0, len(word), 2)
    )


VARIANT_SURNAMES = ("肖", "付", "闫")
"""Surnames among the hundred commonest that Faker's list writes only in another form (萧, 傅,
阎): the mainland's registers write 肖, 付 and 闫 (肖 alone is some seven million people)."""


RARE_SURNAMES = tuple("酆贲钮荀邴糜宓郗钭蓟璩郏庾殳夔厍訾乜蒯竺桓逄郦隗弘")
"""Single surnames of the 百家姓 that Faker's lists lack (竺可桢, 荀彧, 弘一); left out, those
that are also ordinary words or a word's common start (水, 家, 山, 秋, 通, 能, 红, 后, 暨 "and",
步 as in 步骤 "step", 鄂 and 濮 as places' names)."""


@lru_cache(maxsize=1)
def surnames() -> frozenset[str]:
    """Single surnames (Faker's zh_CN list, and its zh_TW list in traditional characters: 張,
    陳, 黃; `VARIANT_SURNAMES`; `RARE_SURNAMES`) and compound ones (`COMPOUND_SURNAMES`)."""
    return frozenset(
        {
            *(s for s in PersonProvider.last_names if 1 <= len(s) <= 2),
            *(s for s in TaiwanPersonProvider.last_names if 1 <= len(s) <= 2),
            *VARIANT_SURNAMES,
            *RARE_SURNAMES,
            *COMPOUND_SURNAMES,
        }
    )


@lru_cache(maxsize=1)
def _background() -> tuple[Counter[str], int]:
    """Character counts of running text: every dictionary word, weighted by its frequency."""
    _, freq = _dictionary()
    counts: Counter[str] = Counter()
    for word, count in freq.items():
        if count:
            for character in word:
                counts[character] += count
    return counts, sum(counts.values())


@lru_cache(maxsize=1)
def _name_counts() -> tuple[Counter[str], int, Counter[str], int]:
    """Given-name character counts and surname counts over jieba's three-character `nr` words."""
    tags, _ = _dictionary()
    given: Counter[str] = Counter()
    surname_counts: Counter[str] = Counter()
    names = surnames()
    for word, tag in tags.items():
        if tag == "nr" and len(word) == 3 and word[0] in names:
            surname_counts[word[0]] += 1
            given.update(word[1:])
    return given, sum(given.values()), surname_counts, sum(surname_counts.values())


@lru_cache(maxsize=1)
def _transliteration_counts() -> tuple[Counter[str], int]:
    tags, _ = _dictionary()
    counts = Counter(c for word, tag in tags.items() if tag == "nrt" for c in word)
    return counts, sum(counts.values())


@lru_cache(maxsize=65_536)
def given_name_score(given: str) -> float:
    """Mean log-likelihood ratio (name vs running text) of the characters of a given name."""
    counts, total, _, _ = _name_counts()
    background, background_total = _background()
    ratios = []
    for character in given:
        in_names = (counts[character] + _SMOOTHING) / total
        in_text = (background[character] + _SMOOTHING) / background_total
        ratios.append(math.log(in_names / in_text))
    return sum(ratios) / len(ratios)


@lru_cache(maxsize=4096)
def surname_prior(surname: str) -> float:
    """Log share of the surname among dictionary names (compound surnames: a fixed share)."""
    if len(surname) == 2:
        return math.log(1e-3)
    _, _, counts, total = _name_counts()
    return math.log((counts[surname] + _SMOOTHING) / total)


@lru_cache(maxsize=65_536)
def foreign_score(word: str) -> float:
    """Mean log-likelihood ratio of `word`'s characters: transliterated names vs Chinese names.

    Positive for 阿森纳 or 莫里尼奥 (characters of transliteration), negative for 孟梓萱.
    """
    foreign, foreign_total = _transliteration_counts()
    given, given_total, surname_counts, surname_total = _name_counts()
    chinese = given + surname_counts
    chinese_total = given_total + surname_total
    # Pseudo-counts in proportion to each list's size: a character rare in both lists scores 0.
    ratios = [
        math.log((foreign[c] / foreign_total + _RARE) / (chinese[c] / chinese_total + _RARE))
        for c in word
    ]
    return sum(ratios) / len(ratios)


_RARE = 2e-4
"""The pseudo-frequency added to each character's share of a name list."""


def reads_as_chinese_name(word: str) -> bool:
    """A surname, then characters of Chinese names rather than of transliterations (杨芳, not
    库欣)."""
    return word[:1] in surnames() and foreign_score(word) < 0


@lru_cache(maxsize=1)
def _ending_counts() -> tuple[Counter[str], int, Counter[str], int]:
    """Last characters of the dictionary's surname-led three-character names (`nr`) and of its
    place names (`ns`, two characters or more)."""
    tags, _ = _dictionary()
    names = surnames()
    in_names: Counter[str] = Counter()
    in_places: Counter[str] = Counter()
    for word, tag in tags.items():
        if tag == "nr" and len(word) == 3 and word[0] in names:
            in_names[word[-1]] += 1
        elif tag == "ns" and len(word) >= 2:
            in_places[word[-1]] += 1
    return in_names, sum(in_names.values()), in_places, sum(in_places.values())


@lru_cache(maxsize=4096)
def place_ending_ratio(character: str) -> float:
    """How often `character` ends a name against how often it ends a place name (each as a
    share of its list): about 0.3 for 环 and 村 (杨玉环: given names end in them), 0.1 for 路,
    0.03 or less for 县, 区, 市 and 省."""
    in_names, names_total, in_places, places_total = _ending_counts()
    return (in_names[character] / names_total) / (
        (in_places[character] + _SMOOTHING) / places_total
    )


@lru_cache(maxsize=1)
def _time_counts() -> tuple[Counter[str], Counter[str]]:
    """Per character: dictionary words tagged `t` (a time word) holding it, and all words."""
    tags, _ = _dictionary()
    timed: Counter[str] = Counter()
    every: Counter[str] = Counter()
    for word, tag in tags.items():
        characters = set(word)
        every.update(characters)
        if tag == "t":
            timed.update(characters)
    return timed, every


@lru_cache(maxsize=4096)
def time_share(character: str) -> float:
    """The share of the dictionary's words holding `character` that are time words (`t`):
    about 0.2 for 初, 末 and 晚 (元末, 清初), 0.02 or less for 清, 明 and 来 (names' characters)."""
    timed, every = _time_counts()
    return timed[character] / every[character] if every[character] else 0.0
