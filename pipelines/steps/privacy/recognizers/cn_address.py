"""LOCATION in Chinese text: addresses as one span, place names, and named places and venues.

Three kinds of evidence, all on Baidu LAC's word boundaries (`cn_lac`, its labels read as
jieba-style flags: LOC -> `ns`, PER -> `nr`, ORG -> `nt`):
- an address: LAC's adjacent place names (广东省 + 深圳市 + 南山区), extended by a chain of
  administrative units (省 市 区 县 镇 ...), a street (路 街 巷 ...), a number (号) and building
  parts (栋 单元 楼 室), as one span so that the whole address is replaced, not its parts;
- a LAC place name (not one naming a document's kind: 港澳通行证), a LAC organisation whose
  name ends in a kind of venue (马可波罗酒店, 外滩美术馆: where people stay, work or meet), a
  word of its own before a venue word (深蓝 + 网吧; not 债券 + 市场), or an organisation's
  name before 项目 / 楼盘 / 小区 (a property development);
- a named place: a run of name-like words ending in a word for a kind of place (广场, 大厦,
  体育场, 公园, 商务区, 寺, 岛 ...: 林达海渔广场, 伯纳乌球场; across · or -: 阿里·萨米扬球场), or
  a name-like word right after a verb of place (家住, 位于, 前往, 抵达 ...);
- a proper name listed with a place (塞拉图、克里阳卡和麻扎达拉), an unknown word ending in a
  generic of Chinese place names (九堡, 李家坝), an organisation before its site (央视 + 新址).
A place read from its structure (`STRUCTURE_SCORE`) outranks a LAC person with nothing else
for a person in the scan's overlap rule, and a LAC person with a title or a verb outranks it.
"""

import re
from bisect import bisect_left, bisect_right

from presidio_analyzer import RecognizerResult

from pipelines.steps.privacy.recognizers.base import RegexRecognizer, Spans
from pipelines.steps.privacy.recognizers.cn_lac import lac_model, lac_tokens
from pipelines.steps.privacy.recognizers.cn_name_model import _dictionary, reads_as_chinese_name
from pipelines.steps.privacy.recognizers.cn_names import (
    JOINERS,
    PERSON_NOUNS,
    PLACE_KINDS,
    PLACE_PREPOSITIONS,
    PLACE_VERBS,
)

_LAC_TO_FLAG = {"LOC": "ns", "PER": "nr", "ORG": "nt", "TIME": "t", "nw": "nz", "w": "x"}
"""LAC's entity labels as the part-of-speech flags the rules below read (jieba's names)."""


def tagged(text: str) -> tuple[tuple[str, str, int], ...]:
    """LAC's tokens of `text` with its entity labels as flags: LOC -> ns, PER -> nr, ..."""
    return tuple((word, _LAC_TO_FLAG.get(tag, tag), start) for word, tag, start in lac_tokens(text))


_HAN = r"[\u4e00-\u9fff]"
_HAN_CHARACTER = re.compile(_HAN)
_HAN_ALL = re.compile(f"{_HAN}+")
_ADMIN = (
    r"(?:省|自治区|特别行政区|市(?!场|民|值|面)|自治州|地区|盟|县|区(?!域|别)|旗(?!下|舰)"
    r"|镇|乡|街道)"
)
"""Administrative units; not the first character of a common word (市场, 区域, 旗下)."""
_STREET = r"(?:路|街|大道|大街|道|巷|弄|胡同|里|村)"
TO_SIMPLIFIED = str.maketrans(
    "號樓層棟單區縣鄉鎮廈廣場園戶門組莊灣嶺溝壩裡衚衕館徑臺",
    "号楼层栋单区县乡镇厦广场园户门组庄湾岭沟坝里胡同馆径台",
)
"""The traditional forms of the characters an address's pattern reads (號 樓 區 縣 大廈 ...), as one
character for one: Hong Kong's and Taiwan's addresses read like the mainland's, offsets kept."""
_NUMERAL = r"(?:\d{1,5}|[一二三四五六七八九十百零〇]{1,4})"
_UNIT = r"(?:号院|号楼|号|弄|巷|栋|幢|座|单元|楼|层|室|户|期|门|排|组|段)"
_PART = (
    rf"(?:附|第|[东西南北中東])?(?:{_NUMERAL}[A-Za-z]{{0,2}}|[A-Za-z]{{1,2}}\d{{0,4}})"
    rf"(?:[-－][A-Za-z\d]{{1,4}})?\s?{_UNIT}"
)
"""One numbered part of a house or a building: 5号, 附1号 (an annex), 1234弄, 12号院, 2栋, A座,
R2-B栋, 3单元, 8层, 601室, 四段, 东一段 (a road's eastern section), 第二座 (a tower by its
ordinal)."""
_BUILDING_WORDS = r"(?:大厦|大楼|广场|中心|花园|小区|公寓|家园|新村|公馆|苑|院|园|城|府|庭|楼)"
_BUILDING = rf"[\u4e00-\u9fffA-Za-z]{{1,10}}?{_BUILDING_WORDS}"
"""A building's or an estate's name before its numbered parts (维多利广场 + A座; SOHO现代城;
丽江花园 + 丽波楼 + 6座)."""
_DASHED = r"\d{1,3}[-－]\d{1,3}[-－]\d{1,4}(?![\d\-－])"
"""A building, its stairway and its room as three numbers joined by dashes (6-1-1702, 1-3-2)."""
_ESTATE = (
    r"[\u4e00-\u9fff]{2,6}(?=\d{1,3}[-－]\d{1,3}[-－]\d"
    r"|(?:\d{1,4}|[A-Za-z]{1,2})(?:栋|幢|座|号楼)\d{1,4}(?:单元|层|楼|樓)"
    r"|(?:\d{1,4}|[A-Za-z]{1,2})(?:栋|幢|座|号楼)\d{3,5}(?![\d号]))"
)
"""An estate's name with no building word (东方丽都, 迎海) between a house's number and its
building's parts: only before a dashed building, stairway and room, or before a block and then
a floor, a stairway or a room (迎海 + 3座18樓, 东方丽都 + 6-2-1101; 附近有 + 3栋楼 is no house)."""
_HOUSE = (
    rf"(?:(?:{_BUILDING}|{_ESTATE}){{0,2}}(?:{_PART}){{1,8}}){{0,3}}(?:{_ESTATE})?(?:{_DASHED})?"
    rf"(?:(?:{_BUILDING})?(?<=[元栋幢座楼层门])\d{{2,5}}房?(?![\d号室]))?(?:之\d{{1,2}})?"
)
HOUSE = re.compile(_HOUSE)
"""The numbered parts of a house after its street or its estate, with buildings' names between
them, the building, stairway and room written with dashes (6-1-1702), a room's number after a
unit, a block, a floor or a stairway's door (3单元502, 5号楼1801, 2门401, 3栋南楼608,
3座1104房), and Taiwan's flat on a floor (12樓之3)."""
_PARTS = re.compile(_PART)
_BARE_HOUSE = re.compile(
    rf"(?<![\dA-Za-z])(?:{_PART})+(?P<room>(?<=[元栋幢座楼层])\d{{2,5}}房?(?![\d号室]))?"
)
_GAP = r"[ \t\u3000]{1,2}"
_SPACED_PART = re.compile(
    rf"{_GAP}(?:[A-Za-z]{{1,2}}\d{{1,3}}{_GAP})?((?:{_PART})+|\d{{1,3}}[Ff](?![A-Za-z\d]))"
)
_SPACED_ROOM = re.compile(rf"{_GAP}\d{{2,5}}(?![\dA-Za-z号室])")
_INSIDE_A_BUILDING = ("栋", "幢", "座", "单元", "楼", "层", "室", "户", "F", "f")


def spaced_parts_end(folded: str, end: int) -> int:
    """Where an address that ends at `end` ends with the building's parts written after a space,
    as forms and signatures write an office's (望京SOHO + T1 1203室, 银河SOHO + D座 5层 50526,
    软件园二期 + 10号楼 B座 301, 环球金融中心 + 68F): parts inside a building only (a block, a
    stairway, a floor, a room; 北京 + 3号 may be a date), a room's number after a block or a
    floor, a tower's code before a room (T1)."""
    at = end
    while True:
        part = _SPACED_PART.match(folded, at)
        if part and any(p.endswith(_INSIDE_A_BUILDING) for p in _parts_of(part.group(1))):
            at = part.end()
            continue
        room = _SPACED_ROOM.match(folded, at)
        if room and folded[at - 1 : at] in ("栋", "幢", "座", "元", "楼", "层", "门", "F"):
            at = room.end()
            continue
        return at


def _parts_of(group: str) -> list[str]:
    return _PARTS.findall(group) or [group]


_BUILDING_UNITS = ("栋", "幢", "号楼", "单元", "座")
"""A house's parts that name a building or its stairway: with a room after them (3栋2单元1101,
5号楼1801, 2幢301室) they are a household's address without a street (2栋3层, a floor, is none)."""
_HOUSE_OPENER = re.compile(rf"(?:{_STREET}|{_UNIT}|{_BUILDING_WORDS})$")
"""How a place that numbered parts may follow ends: a street, a part, an estate or a building."""
ADDRESS = re.compile(
    rf"(?:{_HAN}{{1,7}}?{_ADMIN}){{1,5}}(?:{_HAN}{{0,8}}{_STREET}(?:{_NUMERAL}段|[东西南北中]段)?)?{_HOUSE}"
)
"""An address from its first administrative unit: units (省 市 区 ...), a street, then the
house (`HOUSE`). Every quantifier is bounded: linear in the text."""
_ADMIN_ONLY = re.compile(rf"(?:{_HAN}{{1,7}}?{_ADMIN}){{1,5}}")
"""Administrative units alone (深圳市南山区), which LAC sometimes reads as an organisation."""
TOPONYM_GENERICS = tuple("堡庄屯寨坝沟岭坪洼峪埠圩湾塘浦泾岙墩甸")
"""Generic ends of Chinese village and landform names (通名: 堡 fort, 庄 and 屯 village, 坝
dam, 沟 gully, 岭 ridge ...), which ordinary words seldom end in."""
_SITES = ("址",)
"""A site (新址, 旧址, 台址, 校址, 遗址): after an organisation's name, where it stands."""
_DEVELOPMENTS = ("项目", "楼盘", "小区")
"""After an organisation's name, what makes it a property development: a place."""
PLACE_WORDS = (
    "广场", "大厦", "大楼", "中心", "花园", "小区", "公园", "商务区", "开发区", "新区", "园区",
    "体育场", "体育馆", "球场", "机场", "车站", "火车站", "码头", "港", "湾", "岛", "半岛", "山谷",
    "山", "河", "湖", "江", "海峡", "寺", "庙", "宫", "园", "馆", "城", "郡", "州", "镇", "村",
    "乡", "路", "街", "大街", "大道", "胡同", "巷", "桥", "基地", "景区", "古镇", "度假村",
    *(kind for kind in PLACE_KINDS if len(kind) > 1),
)  # fmt: skip
"""Words for a kind of place; a run of name-like words ending in one names a place. With the
person model's kinds of place (`cn_names.PLACE_KINDS`): what it leaves out as a person's name
before one (塞拉图 + 哨所) is reported here as a place."""
_NAME_LIKE = frozenset({"ns", "nr", "nrt", "nrfg", "nz", "nt", "j", "n", "eng", "m"})
"""jieba flags of words that can stand inside a place's name."""
_PROPER = frozenset({"ns", "nr", "nrt", "nrfg", "nz", "j", "eng"})
"""Flags of a proper name (or of a word no dictionary knows)."""
MAX_PLACE_CHARACTERS = 12
STRUCTURE_SCORE = 0.8
"""A place read from its structure (names ending in a kind of place, an item of a list of
places): above a LAC person with nothing else for a person (0.75), below one with a title or
a person's verb (0.9), so that the scan's overlap rule keeps the better-evidenced reading."""


def _named_places(
    text: str, tokens: tuple[tuple[str, str, int], ...]
) -> list[tuple[int, int, float]]:
    """Runs of name-like words ending in a place word, and proper names after a place verb."""
    _, frequencies = _dictionary()
    # A word not in jieba's dictionary (LAC read it as a word) is as good as a proper name here.
    proper = [
        flag in _PROPER or (flag in _NAME_LIKE and not frequencies.get(word))
        for word, flag, _ in tokens
    ]
    # A joiner inside a name (阿里 + ·萨米扬 + 球场, 劳拉 + - + 克劳馥路) keeps the run going.
    name_like = [flag in _NAME_LIKE or _joined(word) for word, flag, _ in tokens]
    found = []
    for index, (word, flag, start) in enumerate(tokens):
        end = start + len(word)
        if word.endswith(PLACE_WORDS) and name_like[index]:
            # a place the dictionary knows by its own name (香港, not 公园 or 克劳馥路) takes
            # no person's name before it: 李晨洋 + 香港账户 is a person and a place
            known_place = flag == "ns" and word not in PLACE_WORDS and frequencies.get(word)
            first = index
            while (
                first > 0
                and name_like[first - 1]
                and not (known_place and tokens[first - 1][1] == "nr")
                and end - tokens[first - 1][2] <= MAX_PLACE_CHARACTERS
                # a title or a relation is no part of a place's name (客户 + 黄山: a person)
                and tokens[first - 1][0] not in PERSON_NOUNS
                # not across a joiner onto a place of its own, one the dictionary knows
                # (许冠杰 + - + 香港; but 奥斯卡 + - + 贝尔蒙路, a street named after him)
                and not (
                    _joined(tokens[first - 1][0])
                    and tokens[first][1] == "ns"
                    and frequencies.get(tokens[first][0])
                )
            ):
                first -= 1
            while first < index and _joined(tokens[first][0]):
                first += 1  # a run does not start with a joiner
            head = tokens[first]
            # A place word alone (公园) or after common nouns only names no place.
            if any(proper[first : index + 1]) and head[2] < start:
                # The kind of place as a word of its own outranks a LAC person; inside a word
                # LAC reads as a person's it may be a given name's end (李 + 晓山): 0.6.
                score = STRUCTURE_SCORE if flag != "nr" else 0.6
                found.append((head[2], end, score))
            elif word not in PLACE_WORDS and flag == "ns":
                found.append((start, end, 0.6))
        after_place_word = text[:start].endswith(PLACE_VERBS + PLACE_PREPOSITIONS)
        # After a verb of place, a proper name (an unknown word may be a verb phrase,
        # a number or a product name: 在2020年, 在Python中, 到努力完成).
        if flag in _PROPER - {"eng"} and len(word) >= 2 and after_place_word:
            found.append((start, end, 0.6))
    return found


_LIST_MARKS = ("、", "和", "与", "及", "以及")
MAX_LIST_PASSES = 3


def _listed_places(
    text: str, tokens: tuple[tuple[str, str, int], ...], places: set[tuple[int, int]]
) -> set[tuple[int, int]]:
    """Proper names listed with a place (在塞拉图、克里阳卡和麻扎达拉): items of one list are of
    one kind, so a proper name of at least two Han characters right after or before a place,
    joined by 、 和 与 及 or 以及 (a word LAC read as a person's: by 、 only), is a place too;
    each pass reaches one more item."""
    found: set[tuple[int, int]] = set()
    for _ in range(MAX_LIST_PASSES):
        known = places | found
        ends = {end for _, end in known}
        starts = {start for start, _ in known}
        added = False
        for index, (word, flag, start) in enumerate(tokens):
            end = start + len(word)
            if flag not in _PROPER - {"eng"} or len(word) < 2 or not _HAN_ALL.fullmatch(word):
                continue
            if (start, end) in known:
                continue
            before = tokens[index - 1][0] if index > 0 else ""
            after = tokens[index + 1][0] if index + 1 < len(tokens) else ""
            # 和 与 及 also mean "with": only 、 lists a person's name LAC read with places,
            # and not where the list holds persons as well (李祖泽、须 + 汉兴、李春霖: LAC's
            # place is the one misread).
            if flag == "nr" and _listed_with_a_person(tokens, index):
                continue
            marks = ("、",) if flag == "nr" else _LIST_MARKS
            if (before in marks and start - len(before) in ends) or (
                after in marks and end + len(after) in starts
            ):
                found.add((start, end))
                added = True
        if not added:
            break
    return found


_NOT_IN_ADDRESS = frozenset({"v", "vd", "a", "ad", "p", "c", "u", "d", "r", "x", "xc", "t"})
"""Flags of words no address holds: verbs, adjectives, prepositions, conjunctions, particles,
adverbs, pronouns, punctuation, time words."""
_ADDRESS_PART = re.compile(rf"{_ADMIN}|{_STREET}|\d|号")
_CODE = re.compile(r"[A-Za-z\d]{1,4}|[-－]")
_STREET_NAME = re.compile(rf"{_HAN}{{1,6}}{_STREET}")
_UNIT_END = re.compile(rf"{_ADMIN}$")
_ADMIN_WORD = re.compile(rf"{_HAN}{{2,4}}(?:县|市|区|镇|乡|旗)")


def _county(word: str, following: str) -> bool:
    """Whether `word`, or `word` and the next word (疏附 + 县), is an administrative unit's
    name that jieba's dictionary holds as a place (疏附县, 莎车县): LAC misreads some as verbs."""
    tags, _ = _dictionary()
    return any(
        _ADMIN_WORD.fullmatch(candidate) is not None and tags.get(candidate) == "ns"
        for candidate in (word, word + following)
    )


_NUMBERED_STREET = re.compile(rf"{_STREET}(?={_NUMERAL}[A-Za-z]{{0,2}}(?:号|弄))")
"""A street's word right before a house's number (道 + 302号): the house's street, whatever the
street's name reads as (軒尼 + 詩道 + 302號: LAC reads Hennessy Road's first half as a person).
A number of households or groups is no house's (全村 + 175户)."""
_STREET_NAME_WORDS = frozenset({"ns", "nr", "nz", "n", "j", "nt", "eng"})
"""Flags of the words a street's name is made of (names, nouns, a word LAC does not know)."""
_STREET_NAME_MODIFIERS = frozenset({"vn", "a"})
"""Flags of words that open a street's name before its last word (建设 + 大道, 高新 + 南路)."""
MAX_STREET_NAME = 8
"""Characters of a street's name before its street word, at most."""


def _street_start(tokens, starts: list[int], at: int) -> int | None:
    """Where the name of the street whose word `_NUMBERED_STREET` found at `at` begins: its
    words back from there, each a name or a noun, at most `MAX_STREET_NAME` characters, places
    before them included (香港 + 灣仔 + 軒尼詩道); None where the street's word is inside a word
    that is no name (难道, 知道: an adverb, a verb) or no name stands before it."""
    index = bisect_right(starts, at) - 1
    if index < 0:
        return None
    word, flag, start = tokens[index]
    if flag not in _STREET_NAME_WORDS or not _HAN_ALL.fullmatch(word[: at - start] or "路"):
        return None
    first = start
    while index > 0:
        word, flag, start = tokens[index - 1]
        if flag not in _STREET_NAME_WORDS | _STREET_NAME_MODIFIERS or not _HAN_ALL.fullmatch(word):
            break
        if flag != "ns" and at - start > MAX_STREET_NAME:
            break
        first, index = start, index - 1
    return first if first < at else None


def _inside(streets: list[tuple[int, int]], start: int, end: int) -> bool:
    """Whether a street found before holds `[start, end)`. Their starts grow with their street
    words (a street's name never reaches back over the house number before it), so only the
    last few are read: a text of thousands of streets is not read quadratically (#16.3)."""
    for first, last in reversed(streets):
        if first <= start and end <= last:
            return True
        if last <= start:
            return False
    return False


_PUNCTUATION_ONLY = re.compile(r"[\s\W_]+")
"""What LAC may glue onto an address's last word (301 + 。): no word, so the address ends there."""


def _address_end(tokens, first: int, end: int) -> int:
    """Where the address that `ADDRESS` read up to `end` ends, its words from `tokens[first]`
    on: before a word no address holds, or a person's name that no street or unit follows
    (沅江市 + 杨芳 + 诉 + 南县 is a town, then a person suing; 祖冲之 + 路 is a street)."""
    for index in range(first, len(tokens)):
        word, flag, at = tokens[index]
        if at >= end:
            break
        word = word.translate(TO_SIMPLIFIED)
        following = tokens[index + 1][0].translate(TO_SIMPLIFIED) if index + 1 < len(tokens) else ""
        if _CODE.fullmatch(word):
            continue  # a building's code (R2-B栋): letters, digits and a hyphen
        if flag == "a" and _STREET_NAME.fullmatch(following):
            continue  # an adjective opening a street's name (高新 + 南七道)
        if flag in _NOT_IN_ADDRESS and at + len(word) <= end and _county(word, following):
            continue  # a county LAC misread (喀什地区 + 疏附县, or 疏附 + 县, as a verb)
        if word in ("附", "之") and at + len(word) < end and following[:1].isdigit():
            continue  # an annex's number (8号 + 附 + 1号), LAC's verb; a flat's (12樓 + 之 + 3)
        if flag in _NOT_IN_ADDRESS and _PARTS.search(word):
            continue  # a house's part inside a word LAC tags a verb (育新花园13号楼)
        if flag in _NOT_IN_ADDRESS and at + len(word) < end and _an_estate(word, tokens, index):
            continue  # an estate's name LAC tags a verb before its building (迎海 + 3座18樓)
        if flag in _NOT_IN_ADDRESS or (flag == "nr" and not _ADDRESS_PART.match(following)):
            return at
        if (
            at + len(word) > end
            and flag != "ns"
            and not _UNIT_END.search(word[: end - at])
            and not _PUNCTUATION_ONLY.fullmatch(word[end - at :])
        ):
            # the pattern stopped inside a word (杨村 + 村民: a villager, no street), not after
            # a unit that opens it (北京 + 市长, 安大略省皇后大学)
            return at
    return end


_ESTATE_NAME = re.compile(_ESTATE)


def _an_estate(word: str, tokens, index: int) -> bool:
    """Whether `tokens[index]` is the whole of an estate's name before its building's parts
    (`_ESTATE`), read on the words that follow it."""
    after = "".join(t[0] for t in tokens[index + 1 : index + 8]).translate(TO_SIMPLIFIED)
    found = _ESTATE_NAME.match(word.translate(TO_SIMPLIFIED) + after)
    return found is not None and found.end() == len(word)


def _listed_with_a_person(tokens, index: int) -> bool:
    """Whether the list around `tokens[index]` (its clause's items joined by 、) holds another
    word LAC read as a person's that reads as a Chinese name (a surname, then characters of
    Chinese names): then the list is of persons, as in 李祖泽、叶裕彬、须 + 汉兴、李春霖, not of
    places named in transliteration (塞拉图、克里阳卡和麻扎达拉)."""
    first = index
    while first > max(0, index - MAX_LIST_WINDOW) and tokens[first - 1][0] not in _CLAUSE_ENDS:
        first -= 1
    last = index
    limit = min(len(tokens) - 1, index + MAX_LIST_WINDOW)
    while last < limit and tokens[last + 1][0] not in _CLAUSE_ENDS:
        last += 1
    for other in range(first, last + 1):
        word, flag, _ = tokens[other]
        beside = {tokens[i][0] for i in (other - 1, other + 1) if first <= i <= last}
        if other != index and flag == "nr" and "、" in beside and reads_as_chinese_name(word):
            return True
    return False


_CLAUSE_ENDS = frozenset("，。；：！？,;:!?")
MAX_LIST_WINDOW = 12
"""Words read on each side of a list item at most (six items): linear in a long clause."""


def _joined(word: str) -> bool:
    """A joiner between the parts of one name (·, -), alone or glued to the next part."""
    rest = word.lstrip("".join(JOINERS))
    return word.startswith(JOINERS) and (not rest or bool(_HAN_ALL.fullmatch(rest)))


_VENUES = (
    "酒店", "宾馆", "饭店", "医院", "餐厅", "商场", "百货", "市场", "会馆", "美术馆", "博物馆",
    "中心", "大厦", "广场", "校区", "教学楼", "网吧", "影院", "剧院", "体育馆", "公寓", "馆",
    "护理院", "疗养院", "养老院", "敬老院", "卫生院", "门诊", "诊所", "超市", "商城", "书店",
    "咖啡厅", "茶楼", "酒吧", "会所", "宴会厅", "报告厅",
)  # fmt: skip
"""Kinds of venue: a LAC organisation whose name ends in one is a place too (外滩美术馆), and
so is a word of its own before one (深蓝 + 网吧, 妇幼保健 + 医院)."""
_ADDRESS_WORDS = ("地址", "网址", "住址", "址")
"""Words for an address itself, not a site (MAC + 地址, IP + 地址: a label)."""
_ABSTRACT_VENUES = ("市场", "中心", "公寓", "馆", "门诊")
"""Venue words that as often name an activity or a market (债券 + 市场, 销售 + 中心): after a
word of their own they name no place."""
_NOT_A_VENUE_NAME = frozenset({"r", "u", "p", "c", "d", "m", "q", "w", "f", "v", "xc", "TIME"})
"""LAC tags of a word before a venue word that names no venue (这家, 的, 附近, 三 ...)."""
_DOCUMENTS = ("通行证", "护照", "签证", "身份证", "居住证", "户口", "驾照", "驾驶证", "牌照")
"""Documents named after a place (港澳通行证): the place names the document's kind, not where
anyone lives or is."""


def _unknown_name(word: str, frequencies) -> bool:
    """Whether a common noun LAC read ending in a venue word starts with a name no dictionary
    knows (中友 + 百货), not with an ordinary word (农贸 + 市场)."""
    for venue in _VENUES:
        if word.endswith(venue) and len(word) > len(venue):
            head = word[: -len(venue)]
            return len(head) >= 2 and not frequencies.get(head)
    return False


class CnLocationRecognizer(RegexRecognizer):
    """Addresses as one span (LAC's adjacent places and the address parts after them), LAC's
    place names, and named places and venues."""

    ENTITY = "LOCATION"
    CONTEXT = ("地址", "住址", "位于", "邮寄至", "寄到", "住在")
    FLAGS = 0

    def load(self) -> None:
        lac_model()  # fails closed (CnModelMissing) when the model is not installed

    def analyze(self, text, entities, nlp_artifacts=None) -> list[RecognizerResult]:
        if self.ENTITY not in entities or not _HAN_CHARACTER.search(text):
            return []
        tokens = tagged(text)
        starts = [start for _, _, start in tokens]
        folded = text.translate(TO_SIMPLIFIED)  # one character for one: offsets stay
        found: dict[tuple[int, int], tuple[float, str]] = {}
        covered = 0
        # An address starts where LAC sees a place name; matching from there keeps the words
        # before it ("新地址是") out of the span.
        for index, (word, flag, start) in enumerate(tokens):
            # LAC reads some chains of units as an organisation (深圳市南山区): one is an
            # address's start where a place follows it (+ 科技园南区), as no organisation's
            # name (欧盟, 花旗, 济南军区, 上海市 + 分行) is
            if start < covered or not (
                flag == "ns"
                or (
                    flag == "nt"
                    and _ADMIN_ONLY.fullmatch(word)
                    and index + 1 < len(tokens)
                    and tokens[index + 1][1] == "ns"
                )
            ):
                continue
            end, last = start + len(word), index
            while last + 1 < len(tokens) and tokens[last + 1][1] == "ns":
                last += 1  # adjacent places: 广东省 + 深圳市 + 南山区 + 科技园南路12号
                end = tokens[last][2] + len(tokens[last][0])
            if text.startswith(_DOCUMENTS, end):
                continue
            match = ADDRESS.match(folded, start)
            if match and match.end() > end:
                end = _address_end(tokens, last + 1, match.end())
            # the house after a place LAC read (阳光花园小区3号楼 + 2单元401, 建设路56号院 + 3号楼)
            # after a street or an estate, or two parts at least after any place (上海 + 3号
            # is a date as often)
            house = HOUSE.match(folded, end)
            if house.end() > end and (
                _HOUSE_OPENER.search(folded, start, end) or len(_PARTS.findall(house.group())) > 1
            ):
                end = _address_end(tokens, bisect_left(starts, end), house.end())
            if end > start + len(word):
                # Outranks person-name matches inside it (a district named 高明).
                found[(start, end)] = (0.9, "address")
                covered = end
            elif len(word) >= 2:
                found[(start, end)] = (0.5, "lac place")
        raw = lac_tokens(text)
        _, frequencies = _dictionary()
        for index, (word, flag, start) in enumerate(tokens):
            # A venue LAC reads as an organisation (a hotel, a hospital): also where people are.
            if flag in ("nt", "n") and word.endswith(_VENUES) and len(word) > 3:
                if flag == "nt" or _unknown_name(word, frequencies):
                    found.setdefault((start, start + len(word)), (0.6, "venue"))
            # An organisation's name before 项目, 楼盘: a property development, a place.
            following = raw[index + 1][0] if index + 1 < len(raw) else ""
            if flag == "nt" and following in _DEVELOPMENTS:
                found.setdefault((start, start + len(word)), (0.6, "development"))
            # An organisation's site (央视 + 新址, 学校 + 旧址): a place.
            if (
                flag in ("nt", "nz")
                and following.endswith(_SITES)
                and len(following) <= 3
                and following not in _ADDRESS_WORDS
            ):
                found.setdefault((start, start + len(word) + len(following)), (0.6, "site"))
            # A name of its own before a venue word (深蓝 + 网吧).
            if word in _VENUES and word not in _ABSTRACT_VENUES and index > 0:
                before, tag, first = raw[index - 1]
                if tag not in _NOT_A_VENUE_NAME and len(before) >= 2 and _HAN_ALL.fullmatch(before):
                    found.setdefault((first, start + len(word)), (0.6, "venue"))
        for word, flag, start in tokens:
            # A word no dictionary knows that ends in a generic of village and landform names
            # (九堡, 李家庄, 王家坝): how Chinese places are named, not a list of them.
            if (
                flag not in ("ns", "nr", "nt")
                and 2 <= len(word) <= 3
                and word.endswith(TOPONYM_GENERICS)
                and _HAN_ALL.fullmatch(word)
                and not frequencies.get(word)
            ):
                found.setdefault((start, start + len(word)), (0.6, "toponym"))
        read = Spans(found)
        streets: list[tuple[int, int]] = []  # added below, in the order of their street words
        for match in _NUMBERED_STREET.finditer(folded):
            # a street and its house's number, the street's name whatever LAC read it as
            start = _street_start(tokens, starts, match.start())
            if start is None or read.contains(start, match.end()):
                continue
            if _inside(streets, start, match.end()):
                continue
            end = HOUSE.match(folded, match.end()).end()
            end = _address_end(tokens, bisect_left(starts, match.end()), end)
            if end > match.end():
                found[(start, end)] = (0.9, "numbered street")
                streets.append((start, end))
        taken = Spans(found)  # the houses found below do not overlap one another
        for match in _BARE_HOUSE.finditer(folded):
            # a house alone (业主孙红雷（3栋2单元1101）): its building and unit or room
            start, end = match.span()
            parts = _PARTS.findall(match.group())
            building = any(p.endswith(_BUILDING_UNITS) for p in parts[:-1] or parts)
            room = match.group("room") is not None or (
                len(parts) >= 2 and parts[-1].endswith(("室", "户", "号"))
            )
            if building and room and not taken.overlaps(start, end):
                found[(start, end)] = (STRUCTURE_SCORE, "house")
        for start, end, score in _named_places(text, tokens):
            if (end > covered or start >= covered) and score > found.get((start, end), (0,))[0]:
                found[(start, end)] = (score, "named place")
        for span in _listed_places(text, tokens, set(found)):
            found.setdefault(span, (STRUCTURE_SCORE, "listed place"))
        for (start, end), (score, why) in list(found.items()):
            further = spaced_parts_end(folded, end)
            if further > end:  # 望京SOHO + T1 1203室: the building's parts after a space
                del found[(start, end)]
                found[(start, further)] = (max(score, STRUCTURE_SCORE), why)
        return [
            self._result(start, end, score, why) for (start, end), (score, why) in found.items()
        ]
