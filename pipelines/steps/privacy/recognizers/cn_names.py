"""PERSON in Chinese text: Baidu LAC's PER spans (`cn_lac`), with what a name is not left out.

LAC (a BiGRU-CRF over characters) finds Chinese and transliterated names in context, but also
tags as PER a form of address (王先生, 陈老师: a title), a club in a match report (费耶诺德主场,
vs 毕尔巴鄂), a company or a place before the word for its kind (盖蒂基金, 卡德奈特峡谷), and
Latin brand names (bwin, visa). `lac_persons` drops those: a single character or a surname with
a title; a span directly before an organisation or place word or inside 《...》
(`_not_a_person`), an item of a list closed by 等公司, or inside a quoted work (“...”系列); a
word LAC tags a place or organisation elsewhere in the text; a calendar word (周中); a word
among a match report's words (主场, 客胜, vs ..., read on LAC's word edges) or a piece of a
longer transliteration (巴勒 + 莫), with no title before it and no person's verb (说, 表示,
执导 ...) after it; and, with no such evidence, a word after a verb of place (留在 + X, not
来到X家), after a kind of organisation or place (球队, 网游, 牧场 + X), a transliterated name
right after a place ending in an administrative unit (俄克拉荷马州 + 库欣; a Chinese name there
is a person from the place: 沅江市 + 杨芳), joined by · or - to a place's name
(阿里·萨米扬球场), ending in a kind (盖蒂信托), whose clause sets the odds (a bookmaker:
立博提高赔付率), beside a match score (X2-0: a team) or before an organisation's position and
a person (X + 总经理 + name: the organisation). PER words LAC split are joined
(`_person_candidates`: adjacent PER words, a surname and a given name by the character model of
names, `cn_name_model`, and one more character of transliteration before a pause), and a
surname and a given name LAC read as a time word are a candidate (周 + 清: 周 as "week").
Added: Latin-letter names after a title, before a person's verb or kin word, in brackets after
a name or listed with one (`_latin_names`, `_listed_latin`), and by what they are made of
(`_latin_by_model`: the Latin name lexicon of `en_names`, LAC's person tag on a word that is no
English word, an alias before a bracketed name); a title then a surname and a given name LAC
read as a word, or as an organisation (`_titled_han`: 副行长 + 苏宁), or cut across its words
(`_titled_across_words`: 证人 + 许有 + 才); an unknown word made like a
name before what only a person does (`_acting_han`: X + 采访); a word listed with 、 between
names; a transcript's speaker labels (姜山：...). A person's role and 的 before a name
(替补的 + X) is evidence like a title.
LOCATION (addresses, places, venues) is `cn_address`. jieba's segmentation (`posseg`) and
Faker's full names (`_name_rule`) are kept for the bundled-corpus tools; no recognizer reads them.
"""

import re
from bisect import bisect_left, bisect_right
from collections import Counter
from collections.abc import Iterable, Iterator
from functools import lru_cache

from faker.providers.address.zh_CN import Provider as AddressProvider
from faker.providers.person.zh_CN import Provider as PersonProvider

from pipelines.steps.privacy.recognizers.base import RegexRecognizer, Spans
from pipelines.steps.privacy.recognizers.cn_lac import lac_model, lac_tokens
from pipelines.steps.privacy.recognizers.cn_name_model import (
    COMPOUND_SURNAMES,
    _dictionary,
    foreign_score,
    given_name_score,
    place_ending_ratio,
    reads_as_chinese_name,
    surname_prior,
    surnames,
    tibetan_name,
    time_share,
)
from pipelines.steps.privacy.recognizers.en_names import (
    all_listed,
    english_words,
    is_english,
    name_evidence,
    name_lexicon,
)

_HAN = r"[\u4e00-\u9fff]"
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
    # Faker's province, city and country names make jieba keep them whole as place names (its
    # own dictionary tags 阿根廷 and 乌克兰 as person names).
    for place in (*AddressProvider.provinces, *AddressProvider.cities, *AddressProvider.countries):
        jieba.add_word(place, tag="ns")
    if not isinstance(jieba.posseg.char_state_tab_P, _BoundedStates):
        jieba.posseg.char_state_tab_P = _BoundedStates(jieba.posseg.char_state_tab_P)
    return jieba.posseg


UNSEEN_STATES = 24
"""States jieba's part-of-speech HMM may give a character its training never saw."""


class _BoundedStates(dict):
    """jieba.posseg's character -> HMM states table, with a short list for unseen characters.

    jieba's Viterbi lets a character missing from its table take every one of its 256 states,
    and weighs every pair of them with the next character's: about 14 ms per character of a
    run of rare Han characters (issue #16.3), 20 s for a few kB. Such a character has no
    emission probability in any state (jieba scores each the same floor), so the transitions
    alone decide; here it may take the `UNSEEN_STATES` states most characters take (the word
    positions of names, places, nouns and verbs among them), about a hundred times less work.
    Characters the table knows keep their own states: ordinary text is cut as before.
    """

    def __init__(self, table: dict) -> None:
        super().__init__(table)
        counts = Counter(state for states in table.values() for state in states)
        self.unseen = tuple(state for state, _ in counts.most_common(UNSEEN_STATES))

    def get(self, key, default=None):
        return super().get(key, self.unseen)


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


_ORG_SUFFIXES = (
    "公司", "集团", "银行", "分行", "支行", "地产", "置业", "财经", "证券", "基金", "保险", "控股",
    "股份", "科技", "中心", "大学", "学院", "中学", "小学", "医院", "研究所", "研究院", "协会",
    "委员会", "俱乐部", "工作室", "旗下", "系列", "品牌", "广场", "大厦", "商场", "酒店", "实业",
    "传媒", "队", "杯赛", "网站", "电视台", "日报", "晚报", "出版社",
)  # fmt: skip
"""Words that, directly after a name-like word, make it part of an organisation's or a
product's name (国瑞地产, 文华财经, 金山旗下): such a word is not reported as a person."""
_TITLE_BEFORE = (
    "记者", "主任", "经理", "教练", "主帅", "总裁", "董事长", "总经理", "总监", "主持人", "选手",
    "球员", "导演", "作家", "演员", "歌手", "教授", "博士", "局长", "部长", "总统", "首相", "主席",
    "市长", "书记", "院长", "校长", "老师", "医生", "律师", "会长", "秘书长", "副总", "前锋",
    "后卫", "门将", "中场", "CEO", "ceo", "网友", "嫌疑人", "患者", "家属", "同事", "我是", "叫",
    "名叫", "作者", "编辑", "画家", "艺术家", "创始人", "负责人", "发言人", "代表", "明星",
    "通讯员", "诗人", "主编", "队长", "董事", "经纪人", "解说", "嘉宾", "制作人", "制片人",
    "设计师", "编剧", "高手", "新星", "主角", "指挥官", "战士", "策划", "玩家", "主播", "监制",
    "评论员", "分析师", "工程师", "科学家", "学者", "研究员", "主帅", "主教练", "裁判",
    "行长", "省长", "县长", "区长", "镇长", "村长", "厂长", "处长", "科长", "社长", "团长",
    "组长", "州长", "馆长", "所长", "站长", "司长", "署长", "总理", "大使", "外长", "议员",
    "司令", "将军", "总编", "主管", "合伙人", "法官", "检察官", "警官", "民警", "替补", "球星",
    "射手", "新援", "外援", "队友", "名将", "老将", "小将", "助理", "村民", "原告", "被告",
    "少帅", "名帅", "新帅", "老帅", "教头",
    "被告人", "证人", "当事人", "申请人", "上诉人", "代理人", "受害人", "被害人",
    "专员", "配送员", "快递员", "驾驶员", "司机", "骑手", "客服",
)  # fmt: skip
_RELATIONS = (
    "妻子", "丈夫", "老公", "老婆", "爱人", "儿子", "女儿", "孩子", "父亲", "母亲", "爸爸", "妈妈",
    "哥哥", "姐姐", "弟弟", "妹妹", "爷爷", "奶奶", "外公", "外婆", "姥姥", "姥爷", "孙子", "孙女",
    "老伴", "前妻", "前夫", "岳父", "岳母", "公公", "婆婆", "女婿", "儿媳",
    "侄子", "侄女", "外甥", "叔叔", "舅舅", "姑姑", "伯伯", "表哥", "表姐", "表弟", "表妹", "男友",
    "女友", "男朋友", "女朋友", "未婚妻", "未婚夫", "朋友", "同学", "室友", "邻居", "客户", "顾客",
    "员工", "病人", "房东", "租客", "乘客",
)  # fmt: skip
"""A relative, a friend, a customer: a person's relation to someone. Before a word LAC reads
as a place and the name model as a name, the person's (妻子 + 姜山, 客户 + 黄山)."""
PERSON_NOUNS = (*_TITLE_BEFORE, *_RELATIONS)
"""Titles, roles and relations: the word before a name that makes it a person's (经理江南,
客户黄山, 妻子姜山), never the first word of a place's name."""
_NAMING_WORDS = ("我是", "叫", "名叫")
"""Titles that name without a position (叫 "called"): a place may follow (一条支流叫龙须河)."""
_SPEECH_AFTER = (
    "说", "表示", "认为", "指出", "称", "透露", "介绍", "告诉", "强调", "坦言", "先生", "女士",
    "小姐", "教授", "博士", "老师", "同学", "主演", "导演", "执导", "等人", "夫妇", "本人",
)  # fmt: skip
_HONORIFICS = (
    "先生", "女士", "小姐", "老师", "老板", "师傅", "经理", "总", "记者", "阿姨", "大爷", "某",
)  # fmt: skip
"""Words after a surname that make it a form of address (王先生, 陈老师), not a full name."""
PLACE_VERBS = (
    "家住", "住在", "位于", "地处", "坐落于", "前往", "抵达", "来到", "飞往", "赶往", "回到",
    "去往", "途经", "落户", "入驻", "迁往", "定居", "出生于", "留在", "游览", "到访", "造访",
    "驻守", "远征",
)  # fmt: skip
"""Verbs of place: a proper name right after one is a place (家住宝城), not a person (a LAC
person there with nothing else for a person is left out: 留在 + 安菲尔德)."""
PLACE_PREPOSITIONS = ("在", "到", "去", "赴", "从", "至")
"""Prepositions of place: a proper name after one is more often a place than a person."""
_TITLE_QUOTES = (("《", "》"), ("〈", "〉"))


def _inside_title(text: str, start: int, end: int) -> bool:
    """Whether `text[start:end]` lies inside 《...》: a book, film or game title, not a person.

    The marks' positions are indexed once per text (`_marks`): searching the text for them
    around every candidate was quadratic in a long text without any (issue #16.3).
    """
    for opens, closes in _marks(text):
        index = bisect_left(opens, start)
        if index == 0:
            continue
        before = opens[index - 1]  # the last opening mark before the candidate
        if bisect_left(closes, before) != bisect_left(closes, start):
            continue  # closed again before the candidate
        index = bisect_left(closes, end)
        if index == len(closes):
            continue
        after = closes[index]  # the first closing mark after it
        if bisect_left(opens, end) == bisect_left(opens, after):
            return True
    return False


@lru_cache(maxsize=8)
def _marks(text: str) -> tuple[tuple[list[int], list[int]], ...]:
    """Per kind of title quotes, the sorted positions of its opening and closing marks."""
    return tuple(
        (
            [i for i, char in enumerate(text) if char == opening],
            [i for i, char in enumerate(text) if char == closing],
        )
        for opening, closing in _TITLE_QUOTES
    )


@lru_cache(maxsize=8)
def _vendor_spans(text: str) -> Spans:
    return Spans(match.span() for match in _VENDORS.finditer(text))


_VENDORS = re.compile(
    "阿里云|阿里巴巴|腾讯云|华为云|百度云|京东云|金山云|七牛云|又拍云|网易云|天翼云|移动云|火山引擎"
)
"""Cloud and platform vendors, named next to their keys and tokens: organisations."""


_PLACE_ENDINGS = frozenset("镇乡村县区市省路街巷环屯")
_PLACE_AFTER = (
    "路", "街", "镇", "乡", "村", "县", "区", "市", "省", "巷", "大道", "大街", "胡同", "小区",
    "广场", "大厦", "公园", "花园", "新城", "古城", "半岛", "机场", "车站",
)  # fmt: skip
"""A name-like word of three characters ending in one of the first (黄岩区; a two-character name
may: 张路), or any before one of the second (南滨 + 路), names a place."""


_ORG_KINDS = "公司|机构|银行|媒体|球队|俱乐部|品牌|厂商|网站|平台|集团|企业|组织|国家"
MAX_LISTED = 8
"""Items after a candidate that the list test reads at most (bounded: linear in the text)."""
_LISTED_ORGANISATIONS = re.compile(
    rf"(?:(?:、|和|与|及|以及)[^、，。；,;：:和与及等]{{1,12}}){{0,{MAX_LISTED}}}等(?:(?!人){_HAN}){{0,4}}?(?:{_ORG_KINDS})"
)
"""The rest of a list closed by 等 and a kind of organisation (bet365、威廉希尔和韦德国际等公司):
every item of it is an organisation. A person's word after 等 ends the list as persons (彭真等领导人
在组织 ...: 组织 is not the list's kind)."""
MAX_QUOTED_WORK = 30
"""Characters from “ to ” at most around a quoted work's name (a search no longer than that)."""
_WORK_AFTER_QUOTE = ("系列", "电影", "游戏", "小说", "一书", "杂志", "节目", "专辑", "歌曲", "剧")


def _quoted_work(text: str, start: int, end: int) -> bool:
    """Whether `[start, end)` lies inside “...” that a kind of work follows (“怪物史莱克”系列)."""
    opening = text.rfind("“", max(0, start - MAX_QUOTED_WORK), start)
    if opening == -1 or text.find("”", opening, start) != -1:
        return False
    closing = text.find("”", end, opening + MAX_QUOTED_WORK)
    return closing != -1 and text.startswith(_WORK_AFTER_QUOTE, closing + 1)


def _not_a_person(text: str, start: int, end: int) -> bool:
    """An organisation's or product's name (followed by 公司, 银行 ..., or a cloud vendor's),
    an item of a list of organisations (..等公司), a place's (黄岩区, 南滨 + 路), or inside
    《...》 or a quoted work's name (“...”系列)."""
    if text.startswith(_ORG_SUFFIXES, end) or _inside_title(text, start, end):
        return True
    if _LISTED_ORGANISATIONS.match(text, end) or _quoted_work(text, start, end):
        return True
    if _ends_like_a_place(text[start:end]) or text.startswith(_PLACE_AFTER, end):
        return True
    return _vendor_spans(text).contains(start, start + 1)


PLACE_ENDING_RATIO = 0.05
"""`place_ending_ratio` below which a place's last character ends a place whatever precedes it
(县 区 市 省: twenty times likelier in a place's name than at the end of a given name)."""


def _ends_like_a_place(word: str) -> bool:
    """A word of three characters or more ending in a place's character (黄岩区, 克劳馥路). A
    three-character word that reads as a Chinese name (a surname, then characters of Chinese
    names rather than of transliterations) is a name unless its ending almost never ends one:
    宋瑞环 and 张之路 are persons (given names end in 环 and 路), 某某市 is none."""
    if len(word) < 3 or word[-1] not in _PLACE_ENDINGS:
        return False
    if len(word) > 3 or place_ending_ratio(word[-1]) < PLACE_ENDING_RATIO:
        return True
    return not reads_as_chinese_name(word)


_INTERPUNCT = ("·", "•", "‧", "・")
_HAN_ALL = re.compile(f"{_HAN}+")


_CONJUNCTIONS = ("和", "与", "及", "以及", "、", "跟", "同", "或")
_ROLE_ACRONYMS = (
    "HR", "PM", "CEO", "CFO", "CTO", "COO", "CIO", "CMO", "VP", "GM", "PR", "QA", "BD", "IT",
    "UI", "UX", "PO", "TL", "AE", "SA", "PMO", "HRBP",
)  # fmt: skip
"""Roles an office writes before a colleague's name in Latin letters (HR Amy, PM Jack): the
name starts after them."""
_LATIN_NAME = re.compile(
    rf"(?<![A-Za-z0-9])(?!(?:{'|'.join(_ROLE_ACRONYMS)}) [A-Z][a-z])"
    r"[A-Za-z][A-Za-z0-9_'.-]{1,30}(?: [A-Z][A-Za-z'.-]{1,30})*(?![A-Za-z0-9])"
)
LATIN_NAME_SCORE = 0.45
"""Below the English pack's PERSON scores: where both read a Latin name, theirs is kept."""
_ACRONYM = re.compile(r"[A-Z]{1,5}\d*")


def _latin_names(text: str, tokens, accepted: set[tuple[int, int]]) -> set[tuple[int, int]]:
    """Names written in Latin letters inside Chinese text: right after a title (解说：Sky,
    执行制作人BenBell) or before a speech word, or in brackets after an accepted name
    (威尔莱特（WillWright）); a listed name after a verb of contact or before a time word, where
    no noun follows it (跟Mike对接, Tom + 明天, not 给Ruby + 语言); what a text gives as a name
    (英文名是Grace). Upper-case acronyms (BBC, CEO) are left out."""
    tags = {start: tag for _, tag, start in tokens}
    firsts, _ = name_lexicon()
    found = set()
    for match in _LATIN_NAME.finditer(text):
        start, end = match.span()
        if _ACRONYM.fullmatch(match.group(0)):
            continue
        before = text[max(0, start - 8) : start].rstrip("：: ")
        bracketed = text[start - 1 : start] in "（(" and any(e == start - 1 for _, e in accepted)
        titled = any(before.endswith(word) for word in _TITLE_BEFORE)
        speaking = (
            text.startswith(_PERSON_WORDS_AFTER + _KIN_AFTER, end)
            or _AGE_AFTER.match(text, end)
            or _in_view_of(text, start, end)
        )
        listed = all_listed(part for part in _NAME_PARTS.split(match.group(0)) if part)
        # after a verb of contact, a listed given or family name (请联系Sarah, 告诉Tom, 跟Mike
        # 对接); before a time word, a listed name in capitals (Tom + 明天请假): words such
        # as Mark or Ruby inside Chinese text are names only so
        no_noun = tags.get(end) not in _NOUN_TAGS
        contacted = listed and (
            before.endswith(_CONTACT_BEFORE) or (before.endswith(_TO_SOMEONE) and no_noun)
        )
        timed = (
            listed
            and no_noun
            and match.group(0)[:1].isupper()
            and text.startswith(_TIME_AFTER_A_NAME, end)
        )
        # what a text gives as someone's name or nickname (英文名是Grace, 昵称：xigua), a
        # person's field (收件人写的Lily), a listed name addressed as kin (Jenny 姐)
        named = before.endswith(_NAME_GIVEN_AS) or _AFTER_A_FIELD.search(
            text, max(0, start - 12), start
        )
        kin = listed and _KIN_OF_A_LATIN_NAME.match(text, end)
        # a listed given name in capitals as a sentence's subject, a verb, an adverb or a
        # preposition right after it (Amber送的, Frank 在群里, Hope 来公司, Owen 一起去), or
        # what is on its side (Jack那边); at a message's start before a pause, the one it
        # addresses (Mike，); after an office's department (行政Coco, 前台Lily)
        given = (
            match.group(0)[:1].isupper()
            and len(match.group(0)) >= 3  # Vi, a team's short name
            and " " not in match.group(0)
            and match.group(0).lower() in firsts
            and match.group(0).lower() not in _THINGS_WITH_GIVEN_NAMES
            and tags.get(start) not in _LAC_NOT_A_PERSON
        )
        acting = given and not before.endswith(_AS_A_TOOL) and _acts_after(text, tags, end)
        opens = start == 0 or text[start - 1] == "\n"
        addressed = given and opens and text.startswith(("，", ",", "：", ":"), end)
        placed = given and text.startswith(_SIDE_AFTER, end)
        officed = given and no_noun and before.endswith(_DEPARTMENTS)
        if _HAN_CHARACTER.search(text) and (
            bracketed
            or titled
            or speaking
            or contacted
            or timed
            or named
            or kin
            or acting
            or addressed
            or placed
            or officed
        ):
            found.add((start, end))
    return found


_THINGS_WITH_GIVEN_NAMES = frozenset(
    {"ruby", "julia", "ada", "crystal", "django", "alexa", "siri", "cortana", "mercedes", "chanel"}
)
"""Programming languages, frameworks, assistants and brands named as people are (Ruby绑定,
Julia代码, Siri说): no one acting, addressed or on a side by that alone."""
_AS_A_TOOL = ("用", "使用", "通过", "基于", "采用", "利用")
"""Words before a thing used as a tool (用Ruby写了一个脚本): what acts after it is the user."""
_SIDE_AFTER = ("那边", "这边")
"""Someone's side of a matter (讨论Jack那边反馈的bug): a person's."""
_DEPARTMENTS = ("行政", "前台", "财务", "人事", "出纳", "销售", "运营", "设计", "开发", "测试")
"""An office's department before a colleague's Latin given name (行政Coco, 财务Lisa)."""
_NOT_ACTS = ("一下", "是", "为", "推出", "发布", "上市", "召回", "生产", "出品")
"""Words after a Latin word that make it no one acting: a verb's "once" (Mark一下), a copula
(Ruby是一门语言), what a brand does (Ford推出新车, Mercedes发布)."""


def _acts_after(text: str, tags: dict[int, str], end: int) -> bool:
    """Whether a verb, an adverb or a preposition LAC reads starts right after `end`, or after
    one space (Frank 在群里)."""
    at = end + 1 if text[end : end + 1] == " " else end
    return tags.get(at) in _AFTER_A_SUBJECT_TAGS and not text.startswith(_NOT_ACTS, at)


_CONTACT_BEFORE = (
    "联系",
    "联络",
    "告诉",
    "通知",
    "转告",
    "问问",
    "找",
    "请教",
    "感谢",
    "谢谢",
    "抄送",
)
"""Verbs of contact before a Latin word: the one contacted, where a name list holds the word."""
_TO_SOMEONE = ("跟", "和", "与", "给", "让", "请", "问")
"""Words before the one something is done with or for (跟Mike对接, 发给Frank, 让Tom): a listed
name after them, where no noun follows it (给Ruby + 语言 is a thing's name)."""
_KIN_OF_A_LATIN_NAME = re.compile(r"[ \t]?(?:姐|哥)(?!们)")
"""A colleague's English name addressed as an elder sister or brother (Jenny 姐, Tony哥; not
哥们, "buddies")."""
_AFTER_A_SUBJECT_TAGS = frozenset({"v", "vd", "d", "p"})
_NOUN_TAGS = frozenset({"n", "nz", "nw", "ORG", "LOC", "vn", "an"})
"""LAC tags of a noun after a Latin word: the word names a kind of thing (Ruby + 语言)."""
_NAME_GIVEN_AS = (
    "英文名是", "英文名叫", "英文名为", "英文名", "英文名字是", "英文名字叫", "名字是", "名字叫",
    "昵称是", "昵称叫", "昵称", "网名是", "网名叫", "网名", "外号是", "外号叫", "外号", "艺名是",
    "艺名", "笔名是", "笔名", "小名是", "小名叫", "小名",
)  # fmt: skip
"""Words that give what follows as someone's name or nickname (我的英文名是Grace, 网名：xigua)."""
_NAME_PARTS = re.compile(r"[ .'-]+")


_KIN_AFTER = ("兄弟", "姐妹", "一家", "父子", "母女", "夫人", "太太")
"""Kin after a Latin word (Purchase兄弟, castle一家): a person's, or a family's, name."""


def _in_view_of(text: str, start: int, end: int) -> bool:
    """在 ... 看来 around the span: "in X's view", a person's."""
    return text[start - 1 : start] == "在" and text.startswith("看来", end)


def _listed_latin(text: str, accepted: set[tuple[int, int]]) -> set[tuple[int, int]]:
    """Latin-letter names listed with an accepted name (TH000与xigua, 小苍、BBC、MagicYang)."""
    latin = [m.span() for m in _LATIN_NAME.finditer(text) if not _ACRONYM.fullmatch(m.group(0))]
    found: set[tuple[int, int]] = set()
    for _ in range(3):  # a list of names: each pass reaches one more
        known = accepted | found
        ends = {end for _, end in known}
        starts = {start for start, _ in known}
        for start, end in latin:
            if (start, end) in known:
                continue
            before = any(
                text[start - len(c) : start] in _CONJUNCTIONS and start - len(c) in ends
                for c in ("、", "和", "与", "及", "以及")
            )
            after = any(
                text[end : end + len(c)] == c and end + len(c) in starts
                for c in ("、", "和", "与", "及", "以及")
            )
            if before or after:
                found.add((start, end))
    return found


def _listed_han(text: str, tokens, accepted: set[tuple[int, int]]) -> set[tuple[int, int]]:
    """A word of 2-3 Han characters that starts with a surname, listed between accepted names
    with 、 (方力钧、展望、张晓刚): LAC reads it as a word; the list makes it a name."""
    names = surnames()
    ends = {end for _, end in accepted}
    starts = {start for start, _ in accepted}
    found = set()
    for word, tag, start in tokens:
        end = start + len(word)
        if tag in _LAC_NOT_A_PERSON or not (2 <= len(word) <= 3) or not _HAN_ALL.fullmatch(word):
            continue
        if not ({word[:1], word[:2]} & names) or (start, end) in accepted:
            continue
        after_a_name = text[start - 1 : start] == "、" and start - 1 in ends
        before_a_name = text[end : end + 1] == "、" and end + 1 in starts
        closes = end == len(text) or text[end] in "、，。；,;和与及"
        opens = start == 0 or text[start - 1] in "、，。；：,;:和与及"
        if (after_a_name and closes) or (before_a_name and opens):
            found.add((start, end))
    return found


_ITEM_OPENS = frozenset("、，。；：,;:\n \t\u3000（(")
_ITEM_CLOSES = frozenset("、，。；,;.\n \t\u3000）)的等和与及")


def _listed_items(text: str, tokens, accepted: set[tuple[int, int]]) -> set[tuple[int, int]]:
    """A list's item next to an accepted name across 、, read from the text where LAC cut it
    across its words or tagged it otherwise (易小川、蓝天、于 + 海洋的报告; 牛犇、上官金虹 read as
    a verb): two or three Han characters, four with a compound surname, opening with a surname
    whose given name the name model accepts, standing whole between the list's marks. A list
    of names makes its items names; an item LAC reads as a place or an organisation stays
    one, and each pass reaches one item further."""
    names = surnames()
    places = {(start, start + len(word)) for word, tag, start in tokens if tag in _LAC_NOT_A_PERSON}
    found: set[tuple[int, int]] = set()

    def an_item(start: int, end: int) -> bool:
        item = text[start:end]
        if not _HAN_ALL.fullmatch(item) or (start, end) in places:
            return False
        surname = item[:2] if item[:2] in COMPOUND_SURNAMES else item[:1]
        if surname not in names or len(item) - len(surname) not in (1, 2):
            return False
        given = item[len(surname) :]
        return (
            given_name_score(given) > BARE_GIVEN_NAME
            and not _form_of_address(item)
            and not item.endswith(_NOT_A_NAME_END)
            and item not in PERSON_NOUNS
            and "某" not in item
        )

    for _ in range(3):
        known = accepted | found
        more = set()
        for start, end in known:
            if text[end : end + 1] == "、":
                at = end + 1
                for length in (4, 3, 2):
                    stop = at + length
                    closes = stop == len(text) or (stop < len(text) and text[stop] in _ITEM_CLOSES)
                    if closes and an_item(at, stop):
                        more.add((at, stop))
                        break
            if start > 0 and text[start - 1] == "、":
                stop = start - 1
                for length in (4, 3, 2):
                    at = stop - length
                    opens = at == 0 or (at > 0 and text[at - 1] in _ITEM_OPENS)
                    if at >= 0 and opens and an_item(at, stop):
                        more.add((at, stop))
                        break
        taken = Spans(known)  # O(log n) a test: a list may hold thousands of names
        more = {span for span in more if not taken.overlaps(*span)}
        if not more:
            break
        found |= more
    return found


_LAC_NOT_A_NAME = frozenset(
    {"PER", "LOC", "ORG", "TIME", "w", "m", "q", "p", "c", "u", "xc", "d", "ad", "vd"}
)
"""LAC tags of a word that a title cannot make a name: entities LAC read (PER is taken as it
is), punctuation, numbers, measure words, adverbs (经理 + 陆续) and function words."""
_PAUSE = frozenset('、，。；：！？）”",;:!?)')
"""Punctuation after which a name has ended (full-width, and as the scan's NFKC copy has it)."""
_NAME_ENDS = _PAUSE | frozenset(" 和与及（(")
MIN_TITLED_GIVEN = -1.0
"""The name model's score (`given_name_score`) a given name after a title needs at least: a
title is strong evidence, the score only keeps common words out (记者 + 会上)."""


_VERB_TAGS = frozenset({"v", "vd", "d", "ad"})
"""LAC tags of a verb or an adverb: after a name they begin what the person does (带队)."""


_MORE_ACTS = ("采访", "回忆", "笑称", "交代", "承认")
"""With `_PERSON_WORDS_AFTER`: what a person does, after a word the name model reads as a
name (皮力 + 采访)."""


def _acting_han(text: str, tokens, accepted) -> set[tuple[int, int]]:
    """A word of 2-3 Han characters that LAC read as a common word but no dictionary knows,
    made of a surname and a given name the name model accepts, before a verb only a person
    does (皮力 + 采访, 说, 表示 ...): a name LAC did not tag (a known word, 公司 + 表示, is
    none)."""
    names = surnames()
    _, frequencies = _dictionary()
    found = set()
    for token, tag, start in tokens:
        end = start + len(token)
        if tag in _LAC_NOT_A_NAME or not (2 <= len(token) <= 3) or (start, end) in accepted:
            continue
        if not _HAN_ALL.fullmatch(token) or frequencies.get(token):
            continue
        if not text.startswith(_PERSON_WORDS_AFTER + _MORE_ACTS, end):
            continue
        for surname in {token[:1], token[:2]} & names:
            given = token[len(surname) :]
            if given and given_name_score(given) > MIN_TITLED_GIVEN:
                found.add((start, end))
    return found


_PSEUDONYM = re.compile(r"[（(]\s*(?:均为|系|为)?化名\s*[）)]")
"""A name the writer marks as changed (成钢（化名）, 小林(化名)): the press's way to name a
person it will not name, and still a person's name in the text."""


def _pseudonyms(text: str, tokens, accepted) -> set[tuple[int, int]]:
    """The name right before （化名）, whatever LAC made of it: the text says it is a name. A
    surname and a given name the name model accepts (员工 + 成钢, which LAC cuts into 成 + 钢),
    the longer reading first; else LAC's word of two or three Han characters (小林)."""
    names = surnames()
    ends = {start + len(word): (word, tag, start) for word, tag, start in tokens}
    found = set()
    for match in _PSEUDONYM.finditer(text):
        end = match.start()
        for length in (3, 2):
            name = text[max(0, end - length) : end]
            surname = name[:2] if name[:2] in names else name[:1]
            given = name[len(surname) :]
            if (
                len(name) == length
                and _HAN_ALL.fullmatch(name)
                and surname in names
                and given
                and given_name_score(given) > MIN_TITLED_GIVEN
                and not _form_of_address(name)  # 李先生（化名）: a form, as anywhere
            ):
                found.add((end - length, end))
                break
        else:
            word, tag, start = ends.get(end, ("", "", 0))
            if (
                2 <= len(word) <= 3
                and _HAN_ALL.fullmatch(word)
                and tag not in ("LOC", "ORG")
                and not _form_of_address(word)
            ):
                found.add((start, end))
    return {span for span in found if span not in accepted}


def _titled_han(text: str, tokens, accepted) -> set[tuple[int, int]]:
    """A word of 2-3 Han characters that LAC did not read as a name, right after a title
    (记者马力, 大队长方剑民, 经理舒畅) or a relation (妻子 + 姜山, 老伴 + 石粉兰) and before a
    pause, a verb, an adverb or a time, made of a surname and a given name the name model
    accepts."""
    names = surnames()
    _, frequencies = _dictionary()
    found = set()
    for index, (token, tag, token_start) in enumerate(tokens):
        end = token_start + len(token)
        # An organisation's or a place's name that is also a person's (副行长 + 苏宁, 客户 +
        # 黄山, 经理 + 江南): after a position or a relation, and whole, the person's.
        whole = tag in ("ORG", "LOC") and 2 <= len(token) <= 3
        if (tag in _LAC_NOT_A_NAME and not whole) or not _HAN_ALL.fullmatch(token):
            continue
        if tag == "LOC":
            before = text[max(0, token_start - 8) : token_start].rstrip("：: ")
            if before.endswith(_NAMING_WORDS) or not before.endswith(PERSON_NOUNS):
                continue
        after = tokens[index + 1][1] if index + 1 < len(tokens) else None
        if not (end == len(text) or text[end] in _NAME_ENDS or after in _AFTER_A_TITLED_NAME):
            continue
        if after == "p" and tag in _VERB_TAGS | {"vn"}:
            continue  # a verb and its preposition (总统 + 宣布将, 主持人：谢谢于老师)
        # The name may be the whole word or its end, where LAC glued a title's last
        # character to it (大队 + 长方剑民).
        for start in range(max(token_start, end - 3), end - 1):
            if whole and start != token_start:
                continue
            word = text[start:end]
            # a place's name was read after a position or a relation above; after a relation,
            # a word no dictionary knows (老伴 + 石粉兰, not 客户 + 信用卡)
            if (start, end) in accepted:
                continue
            related = _related(text, start) and not frequencies.get(word)
            if not (tag == "LOC" or _titled(text, start) or related):
                continue
            for surname in {word[:1], word[:2]} & names:
                given = word[len(surname) :]
                if given and given_name_score(given) > MIN_TITLED_GIVEN:
                    found.add((start, end))
    return found


_AFTER_A_NAME_TAGS = _VERB_TAGS | {"p", "u"}
"""LAC tags of a word that may follow a name: a verb or an adverb (出席), a preposition (在,
对) or a particle (等, 的)."""
_AFTER_A_TITLED_NAME = _VERB_TAGS | {"p", "TIME"}
"""After a title and a name: a verb, an adverb, a time, or a preposition (患者高强 + 因发热)."""


def _titled_across_words(text: str, tokens, accepted) -> set[tuple[int, int]]:
    """A surname and a given name right after a title where LAC cut the name across its
    words (副社长 + 许中田 read as a verb, 主席 + 经 + 叔平, 特别助理 + 由 + 喜贵): the name
    model reads two or three characters, and a word LAC begins right after them may follow a
    name (a verb, a preposition, a particle) or a pause ends them. The longer reading first."""
    names = surnames()
    _, frequencies = _dictionary()
    starts = {start: tag for _, tag, start in tokens}
    words = {(start, start + len(word)): tag for word, tag, start in tokens}
    found = set()
    for word, _, token_start in tokens:
        if word.endswith(_POSITIONS_AND_ROLES):
            at = token_start + len(word)
        elif len(word) >= 3 and word[:-1].endswith(_POSITIONS_AND_ROLES) and word[-1] in names:
            at = token_start + len(word) - 1  # the surname glued on: 主管谷 + 满仓
        else:
            continue
        while at < len(text) and text[at] in "：: ":
            at += 1
        for length in (3, 2):
            end = at + length
            name = text[at:end]
            if len(name) < length or not _HAN_ALL.fullmatch(name):
                continue
            if any(s < end and at < e for s, e in accepted):
                break  # a name found already (LAC's, or the title rules')
            ends = end == len(text) or text[end] in _NAME_ENDS or text[end] in "等诉"
            # LAC's own word of three characters no dictionary knows, whatever it tagged it
            # (副总经理 + 曾世民 as an adverb, 记者 + 公培佳 as a verb + 北京报道)
            own_word = (
                length == 3
                and words.get((at, end)) in _VERB_TAGS | {"n", "nz", "vn", "a", "v"}
                and not frequencies.get(name)
            )
            if not (ends or own_word or starts.get(end) in _AFTER_A_NAME_TAGS):
                continue
            surname = name[:2] if name[:2] in names else name[:1]
            given = name[len(surname) :]
            if (
                surname in names
                and given
                and given not in FORMS_OF_ADDRESS + _TITLE_BEFORE  # 方总, 章院长
                and not given.startswith("某")  # a court's anonymous form (石某 + 参与)
                and starts.get(at) != "c"  # 玩家 + 和 + 影迷: "and"
                and (own_word or words.get((at, end)) not in _LAC_NOT_A_NAME)  # 经理 + 陆续
                # a common word where the name would be: 都 + 选择, 康复, 严肃 + 地
                and frequencies.get(given, 0) < COMMON_WORD
                and frequencies.get(name[:2], 0) < COMMON_WORD
                and reads_as_chinese_name(name)
                and given_name_score(given) > MIN_TITLED_GIVEN
            ):
                found.add((at, end))
                break
    return found


COMMON_WORD = 100
"""jieba's count at or above which a word is read as that word, not as a name's part: 选择 and
公民 are counted over 10,000 times, 康复 and 严肃 over 1,000; the given names read after titles in
the outside sets (建云, 喜贵, 有才, 中田) 24 times at most."""
_POSITIONS_AND_ROLES = tuple(t for t in _TITLE_BEFORE if t not in _NAMING_WORDS)
"""Titles that name a position or a role (not 叫 "called": 一个叫玉兔的台风)."""


def _related(text: str, start: int) -> bool:
    """Whether a relation (`_RELATIONS`: 妻子, 老伴, 客户) ends right before `start`."""
    return text[max(0, start - 8) : start].rstrip("：: ").endswith(_RELATIONS)


def _titled(text: str, start: int) -> bool:
    """Whether a title (`_TITLE_BEFORE`) ends right before `start` (a colon between allowed)."""
    before = text[max(0, start - 8) : start].rstrip("：: ")
    return any(before.endswith(word) for word in _TITLE_BEFORE)


_CAMEL = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+")
_ORG_WORDS = frozenset(
    {
        "inc", "ltd", "llc", "corp", "co", "group", "games", "game", "studio", "studios",
        "entertainment", "interactive", "software", "technology", "technologies", "tech",
        "media", "bank", "capital", "labs", "network", "networks", "club", "fc", "team",
        "gaming", "esports", "online", "mobile", "digital", "systems", "solutions", "holdings",
        "partners", "foundation", "university", "college", "institute", "press", "records",
        "pictures", "films", "motors", "airlines", "hotel", "hotels", "sports", "bet", "trust",
    }
)  # fmt: skip
"""English words of an organisation's or a product's name (EidosInteractive, RazerGaming):
a Latin word made with one is not a person."""
_LAC_NOT_LATIN_NAME = frozenset({"ORG", "LOC", "nw", "TIME", "m"})


def _latin_by_model(
    text: str, tokens, accepted: set[tuple[int, int]], english: frozenset[str]
) -> set[tuple[int, int]]:
    """Latin-letter names with no title or verb around them, by what they are made of:

    - the Latin name model (`en_names.name_evidence` on the word's parts, JohnMilius ->
      John + Milius): given and family names of every Faker locale against ordinary English
      words, where LAC does not read the word as an organisation, a place or a work;
    - a word LAC reads as a person that is no ordinary English word (a handle: Sonik,
      Nicker), outside a match report (where such words are clubs and bookmakers);
    - a word right before a bracketed accepted name (Sky(李晓峰)): an alias.

    Never: an upper-case acronym, a word made with an organisation's word (`_ORG_WORDS`) or
    followed by one (公司, 银行 ...), one inside 《...》.
    """
    tags = {start: tag for _, tag, start in tokens}
    bounds = _bounds(tokens)
    starts = {start for start, _ in accepted}
    found = set()
    for match in _LATIN_NAME.finditer(text):
        start, end = match.span()
        word = match.group(0)
        if (start, end) in accepted or _ACRONYM.fullmatch(word):
            continue
        parts = [part.lower() for part in _CAMEL.findall(word)]
        if not parts or _ORG_WORDS.intersection(parts) or _not_a_person(text, start, end):
            continue
        tag = tags.get(start)
        alias = text[end : end + 1] in "(（" and end + 1 in starts
        modelled = (
            tag not in _LAC_NOT_LATIN_NAME
            and (name_evidence([p.capitalize() for p in parts], english, frozenset()) or 0) >= 0.5
        )
        handle = (
            tag == "PER"
            and not _made_of_words(word, parts, english)
            and not text[:start].endswith(_ORG_BEFORE)
            and not _match_report(text, bounds, start, end)
        )
        if alias or modelled or handle:
            found.add((start, end))
    return found


_ORG_BEFORE = ("公司", "品牌", "厂商", "平台", "网站", "媒体", "杂志", "机构", "游戏")
"""Words of kind right before a Latin word that make it an organisation's or a product's name
(本土公司oddset)."""
MIN_WORD_PART = 4


def _made_of_words(word: str, parts: list[str], english: frozenset[str]) -> bool:
    """Whether a Latin word is an ordinary English word or made with one of at least
    `MIN_WORD_PART` letters (VideoGamer; lakehillier = lake + hillier, huttlagoon = hutt +
    lagoon: places and brands run together, as handles seldom are)."""
    if is_english(word, english):
        return True
    if any(len(part) >= MIN_WORD_PART and is_english(part, english) for part in parts):
        return True
    lowered = word.lower()
    return any(
        is_english(piece, english)
        for cut in range(MIN_WORD_PART, len(lowered) - MIN_WORD_PART + 1)
        for piece in (lowered[:cut], lowered[cut:])
        if len(piece) >= MIN_WORD_PART
    )


def _outermost(spans) -> list[tuple[int, int]]:
    """The spans inside no longer one, by start: one sweep (a pairwise test is quadratic in
    the candidates, and a run of surnames makes thousands, issue #16.3)."""
    kept, reach = [], -1
    for start, end in sorted(spans, key=lambda span: (span[0], -span[1])):
        if end > reach:  # every span before starts no later; none of them reaches this end
            kept.append((start, end))
        reach = max(reach, end)
    return kept


_MATCH_WORDS = (
    "主场", "客场", "主胜", "客胜", "胜赔", "赔率", "让球", "让平", "盘口", "vs", "VS", "对阵",
    "战平", "告负", "积分", "爆冷", "冷门", "赢球", "平局", "若胜", "连胜", "不胜", "赛季",
    "升班马", "做客", "输给", "保级", "争冠", "出线", "主队", "客队",
)  # fmt: skip
"""Words of a match report or a betting preview: the actors they surround are clubs."""
_POINTS = re.compile(r"积\d{1,3}分")
"""A team's points (积6分); 积 alone is in 积极 (江泽民同志的号召 ... 积极) and 面积."""
_PERSON_WORDS_AFTER = (
    *_SPEECH_AFTER, "执导", "执教", "出演", "扮演", "生前", "本人", "自己", "个人", "在接受",
    "接受采访", "出生", "打算", "告诉",
)  # fmt: skip
"""Words after a name that only a person does or is (speaks, directs, was born, is interviewed)."""
_AGE_AFTER = re.compile(r"今年\d{1,3}岁")
_TITLES_OF_ADDRESS = (
    "律师", "博士", "医生", "大夫", "护士", "书记", "院长", "校长", "局长", "部长", "市长", "县长",
    "区长", "镇长", "村长", "厂长", "处长", "科长", "所长", "站长", "行长", "省长", "队长", "社长",
    "团长", "组长", "馆长", "会长", "秘书", "主编", "总编", "主管", "警官", "法官", "董事长",
    "总经理", "总裁", "教练", "指导", "导演", "编辑", "会计", "工",
)  # fmt: skip
"""Positions a surname is addressed by (杨律师, 刘书记, 朱博士, 王局长, 李工)."""
_KIN_OF_ADDRESS = (
    "奶奶", "爷爷", "叔叔", "伯伯", "婶婶", "大妈", "大娘", "大爷", "大叔", "大姐", "大哥", "姐",
    "哥", "叔", "婶", "嫂", "伯",
)  # fmt: skip
"""Kin words a surname is addressed by, as children and neighbours do (张奶奶, 刘叔, 王姐)."""
FORMS_OF_ADDRESS = (
    *_HONORIFICS, "老板", "教授", "主任", "总监", "主席", "姓", "氏", "家", *_TITLES_OF_ADDRESS,
    *_KIN_OF_ADDRESS,
)  # fmt: skip
"""What after a bare surname makes a form of address or a family (王先生, 陈老师, 杨律师,
张奶奶, 胡姓, 简氏), not a person's name: a title, which CLUENER-style annotation calls a
position."""
_SPEAKER_LABEL = re.compile(r"(?:^|(?<=[。！？\n]))\s*([\u4e00-\u9fff]{2,3})[：:]")
"""A speaker's name before a colon at the start of a sentence (an interview transcript)."""
_LAC_NOT_A_PERSON = frozenset({"LOC", "ORG"})
PLACE_KINDS = (
    "峡谷", "海滩", "牧场", "哨所", "基地", "空军基地", "艺术村", "服装店", "店", "山谷", "球场",
    "体育场", "博物馆", "美术馆", "公园", "景区", "寺", "村", "岛", "湖", "河",
)  # fmt: skip
"""Kinds of places a name-like word before them names (塞拉图 + 哨所): no person here, and a
place for `cn_address` (its `PLACE_WORDS` take these in)."""
_PLACE_OR_ORG_AFTER = (
    *PLACE_KINDS, "风光", "项目", "信托", "基金", "房地产", "号", "”号", "中心", "两国", "战役",
)  # fmt: skip
"""Kinds of places, organisations and things a name-like word before them names."""


_ROLES = ("替补", "主力", "球星", "射手", "新援", "外援", "队友", "名将", "老将", "小将")
_ROLES_OF = tuple(f"{role}的" for role in (*_ROLES, *_TITLE_BEFORE))
"""A person's role, then 的, before a name (充当替补的 + 萨拉耶塔, 队友的): a person, in a
match report too, where a club has no such role."""


def _person_evidence(text: str, start: int, end: int) -> bool:
    """A title before the span (记者, 主帅 ...), a person's verb or address after it, or
    在 ... 看来 around it."""
    before = text[max(0, start - 8) : start].rstrip("：: ")
    return (
        any(before.endswith(word) for word in _TITLE_BEFORE)
        or before.endswith(_ROLES_OF)
        or text.startswith(_PERSON_WORDS_AFTER, end)
        or _in_view_of(text, start, end)
        or _in_a_role(text, end)
    )


_AS = ("作为", "做为", "身为", "担任", "出任")


def _in_a_role(text: str, end: int) -> bool:
    """作为 / 身为 / 担任 and a title right after the span (温格 + 做为主帅, 身为队长): what
    it is named as is a person's position."""
    for word in _AS:
        if text.startswith(word, end):
            rest = text[end + len(word) : end + len(word) + 8]
            return rest.startswith(_POSITIONS_AND_ROLES)
    return False


_CALENDAR = re.compile(r"(?:周|星期|礼拜)[一二三四五六七日天末中度内初]|季度|[年月][初中底度]")
"""Words of the calendar that begin with a surname's character (周中 midweek, 周度 weekly,
季度 quarter): LAC reads some of them as persons."""


def _form_of_address(name: str) -> bool:
    """A surname with a title or a family word (王先生, 小刘总, 陈老师, 杨律师, 简氏), or one
    alone; before a one-character kin word (王姐, 刘叔) a common surname only: a rare one there
    is a given name's character (宾哥). 小 or 老 and a surname alone (老刘, 小马) is how people
    who know someone name them: a name, kept (recall first; news labels it either way)."""
    bare = name[1:] if len(name) > 2 and name[0] in "小老" else name
    names = surnames()
    for surname in {bare[:1], bare[:2]} & names:
        if bare[: len(surname)] != surname:
            continue
        form = bare[len(surname) :]
        if form and form not in FORMS_OF_ADDRESS:
            continue
        if form in _KIN_OF_ADDRESS and len(form) == 1 and not _common_surname(surname):
            continue
        return True
    return False


COMMON_SURNAME = -5.0
"""`surname_prior` (the log share of the dictionary's names) above which a surname is common
(王 -3.3, 刘 -3.9, 罗 -4.6, 林 -4.9; 宾 -8.7 and 平 -5.9 are rare, and given names' characters)."""


def _common_surname(surname: str) -> bool:
    return len(surname) == 1 and surname_prior(surname) > COMMON_SURNAME


def _bounds(tokens) -> tuple[frozenset[int], frozenset[int]]:
    """Where LAC's words start and where they end."""
    return (
        frozenset(start for _, _, start in tokens),
        frozenset(start + len(word) for word, _, start in tokens),
    )


def _match_report(text: str, bounds, start: int, end: int) -> bool:
    """Whether a match report's word (`_MATCH_WORDS`) stands within 12 characters before or 8
    after `[start, end)` (or a team's points, 积6分), inside one LAC word (本赛季, 积分榜) or
    as whole words, but not across a word's edge: 让球 in 让 + 球队 (lets the team) is none."""
    starts, ends = bounds
    low, high = max(0, start - 12), min(len(text), end + 8)
    if _POINTS.search(text, low, high):
        return True
    for word in _MATCH_WORDS:
        at = text.find(word, low, high)
        while at != -1:
            last = at + len(word)
            inside = not any(i in starts for i in range(at + 1, last))
            if inside or (at in starts and last in ends):
                return True
            at = text.find(word, at + 1, high)
    return False


FOREIGN_CHARACTER = 1.0
"""`foreign_score` above which one character continues a transliterated name (约, 塔, 斯)."""


def _person_candidates(text: str, tokens) -> list[tuple[str, int, int]]:
    """LAC's PER words as `(word, start, end)`, joined where LAC cut one name in two: PER words
    side by side (里 + 贝里), a surname and a given name the name model reads as one (傅 +
    军民), and a transliteration and one more character of transliteration before a pause
    (阿德巴 + 约、): the name model of `cn_name_model`, not a list."""
    names = surnames()
    out = []
    index = 0
    while index < len(tokens):
        word, tag, start = tokens[index]
        index += 1
        if tag == "TIME" and _name_read_as_time(word):
            following = tokens[index] if index < len(tokens) else ("", "", 0)
            if _ends_the_name(word, following):
                word += following[0]
                index += 1
            out.append((word, start, start + len(word)))
            continue
        if tag != "PER":
            continue
        first = index - 1
        while (
            index < len(tokens)
            and tokens[index][1] == "PER"
            and not _LATIN_LETTER.search(word + tokens[index][0])
            and len(word) + len(tokens[index][0]) <= 8
            and _addressed_before_and(word) is None
        ):
            word += tokens[index][0]
            index += 1
        addressed = _addressed_before_and(word)
        if addressed is not None:  # 王总 + 和 + 老周: two people, the first by their title
            out.append((addressed, start, start + len(addressed)))
            continue
        word = _without_a_time_after(word)
        # the other part of a transliterated full name across its interpunct, whatever LAC
        # tagged it (阿里木江 as an organisation + · + 吐尔逊)
        if first >= 2 and _other_part(tokens, first - 2, first - 1):
            start = tokens[first - 2][2]
            word = text[start : start + len(word) + len(tokens[first - 2][0]) + 1]
        if index + 1 < len(tokens) and _other_part(tokens, index + 1, index):
            word += tokens[index][0] + tokens[index + 1][0]
            index += 2
        end = start + len(word)
        # the given name's last character LAC cut off before a pause (管德 + 全，)
        if _last_character_cut_off(text, word, tokens, index):
            word, end, index = word + tokens[index][0], end + 1, index + 1
        following = tokens[index][0] if index < len(tokens) else ""
        # a numeral LAC tags m is no given name (伍 + 万元: an amount in capital numerals)
        if word in names and following and tokens[index][1] != "m":
            if (
                1 <= len(following) <= 2
                and _HAN_ALL.fullmatch(following)
                and given_name_score(following) > 0
            ):
                word, end = word + following, end + len(following)
        elif (
            len(following) == 1
            and _HAN_ALL.fullmatch(word)
            and _HAN_ALL.fullmatch(following)
            and foreign_score(word) > FOREIGN_CHARACTER
            and foreign_score(following) > FOREIGN_CHARACTER
            and (end + 1 == len(text) or text[end + 1] in _PAUSE)
        ):
            word, end = word + following, end + 1
        out.append((word, start, end))
    return out


_LATIN_LETTER = re.compile(r"[A-Za-z]")
_AND = tuple(c for c in _CONJUNCTIONS if len(c) == 1 and c not in "、或")


def _addressed_before_and(word: str) -> str | None:
    """The form of address in a PER word LAC ended with "and" (王总和 + 老周, 刘姐与): a person
    named by their title, then the conjunction before the next person, never one name."""
    if len(word) >= 3 and word.endswith(_AND) and _form_of_address(word[:-1]):
        return word[:-1]
    return None


_TIME_AFTER_A_NAME = (
    "今天", "明天", "昨天", "后天", "前天", "今晚", "明晚", "昨晚", "今早", "明早", "昨早",
    "上午", "下午", "中午", "晚上", "早上", "今年", "明年", "去年", "刚才", "现在",
)  # fmt: skip
"""Time words LAC glues to a name before them (小李 + 明天, 老 + 周明天)."""


def _without_a_time_after(word: str) -> str:
    """`word` less a time word at its end where what is left is still someone's name or how
    people call them (小李明天 -> 小李, 张伟明天 -> 张伟): no given name ends in 明天 after a
    full name. A surname alone before it is left whole (周明天 may be a name)."""
    if not word.endswith(_TIME_AFTER_A_NAME):
        return word
    rest = word[:-2]
    names = surnames()
    if rest in names or len(rest) < 2 or not _HAN_ALL.fullmatch(rest):
        return word
    if rest[0] in "小老阿" and rest[1:] in names:
        return rest
    if _form_of_address(rest):
        return rest
    if any(rest.startswith(s) and len(rest) > len(s) for s in {rest[:1], rest[:2]} & names):
        return rest
    return word


def _other_part(tokens, part: int, joiner: int) -> bool:
    """Whether `tokens[part]`, beside `tokens[joiner]` = ·, is another part of a transliterated
    name: two to five Han characters of transliteration (foreign_score above 0), not a place's
    word nor one ending in a kind of place (阿里 + ·萨米扬 + 球场 is a stadium)."""
    word, tag, _ = tokens[part]
    return (
        tokens[joiner][0] in _INTERPUNCT
        and tag not in ("LOC", "ns")
        and 2 <= len(word) <= 5
        and _HAN_ALL.fullmatch(word) is not None
        and not word.endswith(_KINDS_OF_PLACE)
        and foreign_score(word) > 0
    )


MIN_LAST_GIVEN = -0.5
"""The name model's score a given name needs with a verb's character LAC cut off it (清 + 来)."""


TIME_CHARACTER = 0.05
"""`time_share` from which a character reads as a time word's (初, 末, 春: 元末, 孟春)."""


def _name_read_as_time(word: str) -> bool:
    """Whether a word LAC tags TIME is a surname and a given name (周 + 清, 周一 + 鸣): two or
    three Han characters starting with a surname, no calendar word (周末, 季度) and no word of
    the dictionary (周年, 明年, 夏季), a given name the name model accepts and none of whose
    characters is mostly a time word's (元 + 末, 晋 + 初: the start or end of a dynasty)."""
    if not (2 <= len(word) <= 3) or not _HAN_ALL.fullmatch(word) or word[0] not in surnames():
        return False
    if _CALENDAR.fullmatch(word) or _dictionary()[1].get(word):
        return False
    given = word[1:]
    if any(time_share(character) >= TIME_CHARACTER for character in given):
        return False
    return given_name_score(given) > 0


def _last_character_cut_off(text: str, word: str, tokens, index: int) -> bool:
    """Whether the one character LAC tagged a verb or an adjective after a surname and one
    character of a given name (管德 + 全 + ，) is the given name's end: a pause follows it,
    and the name model reads the two characters as a given name (芳 + 好！, a greeting, does
    not)."""
    if index >= len(tokens) or len(word) != 2 or word[0] not in surnames():
        return False
    character, tag, at = tokens[index]
    after = at + len(character)
    return (
        len(character) == 1
        and tag in ("v", "a")
        and _HAN_ALL.fullmatch(character) is not None
        and (after == len(text) or text[after] in _PAUSE)
        and not character.startswith(_PERSON_WORDS_AFTER)
        and given_name_score(word[1:] + character) > CUT_OFF_GIVEN
    )


CUT_OFF_GIVEN = 0.9
"""The name model's score two characters need to be read as a given name LAC cut in two."""


def _ends_the_name(word: str, following: tuple[str, str, int]) -> bool:
    """Whether the one-character verb LAC cut after a two-character name is the name's last
    character (周清 + 来): the name model still reads the longer given name, and the verb is no
    person's word (周清 + 说 is a sentence)."""
    character, tag, _ = following
    return (
        len(word) == 2
        and len(character) == 1
        and tag == "v"
        and _HAN_ALL.fullmatch(character) is not None
        and not character.startswith(_PERSON_WORDS_AFTER)
        and given_name_score(word[1:] + character) > MIN_LAST_GIVEN
    )


def _cut_from_a_longer_word(text: str, name: str, start: int, end: int) -> bool:
    """A transliteration with more transliteration right before or after it (巴勒 + 莫,
    卡利亚 + 里, 舍夫 + 沙万): LAC read a piece of a longer foreign word as a person, which
    with nothing else for a person says little."""
    if foreign_score(name) <= FOREIGN_CHARACTER:
        return False
    _, frequencies = _dictionary()
    before, after = text[start - 1 : start], text[end : end + 1]
    return any(
        _HAN_ALL.fullmatch(character)
        and foreign_score(character) > FOREIGN_CHARACTER
        and (character == after or frequencies.get(character, 0) < WORD_ON_ITS_OWN)
        for character in (before, after)
        if character
    )


WORD_ON_ITS_OWN = 100_000
"""jieba's count from which a character before a name is a word of its own far more often
than a piece of a transliteration (人 in 葡萄牙人 + 奎罗斯: a nationality, then the name; after
a word, 扎伊尔 + 人民, it still makes the word a country's)."""


def inside_a_longer_word(text: str, start: int, end: int) -> bool:
    """Whether the Han characters at `start:end` are part of a common word of the dictionary
    that runs past them: 高强 of 高强度 (`COMMON_WORD` or more in jieba's counts)."""
    _, frequencies = _dictionary()
    around = (
        text[start : end + 1],
        text[start : end + 2],
        text[max(0, start - 1) : end],
        text[end - 1 : end + 1],
        text[max(0, start - 1) : start + 1],
    )
    return any(
        len(word) >= 2 and word != text[start:end] and frequencies.get(word, 0) >= COMMON_WORD
        for word in around
    )


JOINERS = (*_INTERPUNCT, "-", "－")
"""Marks that join the parts of one name (阿里·萨米扬, 劳拉-克劳馥)."""
_KINDS_OF_PLACE = (*_PLACE_AFTER, *_PLACE_OR_ORG_AFTER, "哨所", "球场", "大桥", "广场")
MAX_JOINED_WORDS = 3


_KIND_BEFORE = (
    "球队", "俱乐部", "球会", "战队", "乐队", "公司", "集团", "银行", "品牌", "厂商", "机构",
    "媒体", "网站", "平台", "杂志", "电视台", "网游", "游戏", "手游", "城市", "小镇", "古镇",
    "村庄", "牧场", "景区", "酒店", "餐厅", "学校", "大学", "庄家", "开发商", "发行商", "代理商",
    "运营商", "供应商", "制造商", "经销商", "厂家", "工作室", "出版社", "国家", "海岛", "小岛",
    "博物馆", "美术馆",
)  # fmt: skip
"""Words for a kind of organisation, work or place right before a name, in apposition (波兰球队
+ 波兹南莱施, 网游 + 阿凡龙, 牧场 + 甘海子): the name is of that kind, as a title before a
name (记者, 主帅) makes it a person's."""
_ODDS_SETTING = re.compile(
    r"(?:开出|开为|提高|压低|降低|调低|调高|升至|降至|上调|下调|降|升)[^，。；：！？,;:!?]{0,12}"
    r"(?:[赔盘]|水位|[高低中]水|\d水)"
    r"|[赔盘][^，。；：！？,;:!?]{0,8}(?:开出|开为|提高|压低|降低|调低|调高|升至|降至|上调|下调)"
)
"""Setting the odds (开出 ... 赔, 提高赔付率, 亚盘开为, 降至低水 ...): what a bookmaker does; 水
only as the odds' level (水位, 低水, 2.00水), not 水平 (使X提高了专业水平)."""
_CLAUSE_END = re.compile(r"[，。；：！？,;:!?]")
MAX_ODDS_CLAUSE = 30
"""Characters after a name that the odds test reads at most."""


def _sets_odds(text: str, end: int) -> bool:
    """Whether the clause after the span sets the odds: the span is a bookmaker (立博提高赔付率,
    希尔直接开出1.20的最低主胜赔), not a person; pundits comment on odds, they do not set them."""
    limit = min(len(text), end + MAX_ODDS_CLAUSE)  # bounded: linear in a long text
    stop = _CLAUSE_END.search(text, end, limit)
    return bool(_ODDS_SETTING.search(text, end, stop.start() if stop else limit))


_SCORE = (
    r"(?<![\d.])(?:\d{1,2} ?[-比] ?\d{1,2}|\d{1,2} ?[:：] ?\d)"
    r"(?![\d.月日号年天时点分秒岁周个])"
)
"""A match's score: two small numbers joined by - or 比, or by a colon before one digit (2:0,
not the time 10:30), and no unit after it (3-5月 and 2-3天 are spans of time)."""
_SCORE_AFTER = re.compile(f" ?{_SCORE}")
_SCORE_BEFORE = re.compile(f"{_SCORE} ?$")


def _beside_a_score(text: str, start: int, end: int) -> bool:
    """Whether a match's score stands right after or before the span (X2-0, 1比0X): a team's
    result, not a person's (a year, a date, a time or a span of days is none)."""
    if _SCORE_AFTER.match(text, end):
        return True
    return bool(_SCORE_BEFORE.search(text[max(0, start - 8) : start]))


_HEAD_TITLES = (
    "董事长", "总经理", "总裁", "经理", "总监", "主席", "会长", "社长", "行长", "院长", "校长",
    "局长", "馆长", "所长", "站长", "厂长", "创始人", "负责人", "发言人", "主帅", "主教练",
    "教练", "队长", "前锋", "后卫", "门将", "中场", "CEO",
)  # fmt: skip
"""Positions in an organisation: "X + position + name" names the position's organisation
first (公司 + 总经理 + 张三, 球队 + 主帅 + name). Relational words (队友, 同事, 经纪人) and
bylines (记者, 通讯员) take a person before them and are not here."""


def _heads_title(tokens, starts: dict[int, int], end: int) -> bool:
    """Whether a position in an organisation (`_HEAD_TITLES`) follows the span, and a word LAC
    tags as a person follows the position: the span names the organisation (鸿泰典居 + 总经理 +
    林昭远), not a second person."""
    index = starts.get(end)
    if index is None or index + 1 >= len(tokens):
        return False
    word, _, _ = tokens[index]
    return word in _HEAD_TITLES and tokens[index + 1][1] == "PER"


ADMINISTRATIVE_ENDS = frozenset("州省市县区镇乡村")


def _inside_a_place(tokens, starts: dict[int, int], start: int, name: str) -> bool:
    """Whether a LAC place ending in an administrative unit stands right before the span
    (俄克拉荷马州 + 库欣): a transliterated name there is a place inside it. A Chinese name
    there is a person from the place (沅江市 + 杨芳, 蛇口渔民村 + 李育英: news gives a
    person's town before the name)."""
    index = starts.get(start, 0)
    if index == 0:
        return False
    word, tag, _ = tokens[index - 1]
    if not (tag == "LOC" and word[-1] in ADMINISTRATIVE_ENDS):
        return False
    return not reads_as_chinese_name(name)


_A_PERSONS_PLACE = (
    "的",
    "家",
    "身边",
    "身旁",
    "处",
    "那里",
    "那儿",
    "这里",
    "这儿",
    "面前",
    "门前",
    "住所",
    "住处",
)
"""After a name, what makes the name a person with a place of theirs (来到张三家, 回到母亲身边)."""


def _object_of_a_place_verb(text: str, start: int, end: int) -> bool:
    """Whether the span follows a verb of place (留在, 前往, 抵达 ...) as its object, and no
    word of a person's place (家, 身边, 的 ...) after it makes it someone visited."""
    before = text[max(0, start - 8) : start]  # bounded: no copy of a long text per name
    return before.endswith(PLACE_VERBS) and not text.startswith(_A_PERSONS_PLACE, end)


_KINDS = tuple(kind for kind in (*_PLACE_OR_ORG_AFTER, *_ORG_SUFFIXES) if len(kind) > 1)


def _ends_in_a_kind(name: str) -> bool:
    """Whether LAC's PER word ends in a word for a kind of organisation or place after a
    name of at least two characters (盖蒂 + 信托, 卡德奈特 + 峡谷): the kind is the word's
    head, so the whole names an organisation or a place, named after a person perhaps."""
    return any(name.endswith(kind) and len(name) - len(kind) >= 2 for kind in _KINDS)


def _joined_to_a_place(tokens, starts: dict[int, int], end: int) -> bool:
    """Whether the name goes on after a joiner (· or -) into the name of a place: the words
    after it, up to a pause, end in a kind of place (阿里 + ·萨米扬 + 球场, 劳拉 + - + 克劳馥路):
    a place named after a person is a place, and the person's part of it no person here."""
    index = starts.get(end)
    if index is None or not tokens[index][0].startswith(JOINERS):
        return False
    for word, _, _ in tokens[index : index + MAX_JOINED_WORDS]:
        rest = word.lstrip("".join(JOINERS))
        if rest and not _HAN_ALL.fullmatch(rest):
            return False
        if rest.endswith(_KINDS_OF_PLACE):
            return True
    return False


_AMOUNT = re.compile(
    r"[零〇一二三四五六七八九十百千万亿两壹贰叁肆伍陆柒捌玖拾佰仟萬億]+[元圆圓角分整]+"
)
"""An amount in numerals, capital ones as contracts write them (陆仟元整, 伍万元): LAC reads some
as a person, since 伍 and 陆 are surnames."""


def lac_persons(
    text: str, tokens: tuple[tuple[str, str, int], ...]
) -> dict[tuple[int, int], float]:
    """LAC's PER spans that are a person's name, with a score.

    Left out: a single character or a form of address (王先生); a span before an organisation
    or place word or inside 《》 (`_not_a_person`); a word LAC tags a place or an organisation
    elsewhere in the same text; Latin letters (LAC reads brands and handles as PER: those go
    through `_latin_names`); a transliterated word among a match report's words (a club: 费耶诺德
    主场, vs 毕尔巴鄂) with no title or person's verb around it.
    """
    elsewhere = {word for word, tag, _ in tokens if tag in _LAC_NOT_A_PERSON}
    found: dict[tuple[int, int], float] = {}
    bounds = _bounds(tokens)
    starts = {start: index for index, (_, _, start) in enumerate(tokens)}  # one index per text
    read_as_other: set[str] = set()
    addressed: list[tuple[str, int, int]] = []
    for word, start, end in _person_candidates(text, tokens):
        name = word.strip("".join(_INTERPUNCT))
        if len(name) < 2 or not _HAN_CHARACTER.search(name) or name in elsewhere:
            continue
        verdict = _a_person_here(text, tokens, bounds, starts, name, start, end)
        if verdict is False:
            read_as_other.add(name)
        if verdict is None and _form_of_address(name):
            addressed.append((name, start, end))
        if not verdict:
            continue
        evidence = _person_evidence(text, start, end)
        found[(start, end)] = LAC_PERSON_SCORE + (CONTEXT_SCORE if evidence else 0.0)
    # A form of address the text gives as someone's name (名叫小李 ... 小李选择) is that name
    # wherever it comes again.
    named = {text[s:e].strip("".join(_INTERPUNCT)) for s, e in found}
    for name, start, end in addressed:
        if name in named:
            found[(start, end)] = LAC_PERSON_SCORE
    # One word names one thing in a text: a word read as a place's, a club's or an
    # organisation's name in one place (维拉公园, 盖蒂中心) names no person elsewhere in it
    # unless a title or a person's verb says so there.
    return {
        (start, end): score
        for (start, end), score in found.items()
        if score > LAC_PERSON_SCORE
        or text[start:end].strip("".join(_INTERPUNCT)) not in read_as_other
    }


def _full_chinese_name(word: str) -> bool:
    """A surname and a given name of two characters that the name model reads clearly as a
    Chinese person's (甄子丹, 熊黛林), no club's: clubs are transliterated (巴勒莫, 霍芬海 is
    as much the one as the other), a city's name of two characters (申花, 罗马) or a surname
    before a common word (莫 + 陆军)."""
    _, frequencies = _dictionary()
    return any(
        len(word) == len(surname) + 2
        and word.startswith(surname)
        and foreign_score(word) < CLEARLY_CHINESE
        and given_name_score(word[len(surname) :]) > CLEARLY_GIVEN
        and frequencies.get(word[len(surname) :], 0) < COMMON_WORD
        for surname in {word[:1], word[:2]} & surnames()
    )


CLEARLY_CHINESE = -0.5
"""`foreign_score` below which a word's characters are clearly a Chinese name's."""
CLEARLY_GIVEN = 1.0
"""`given_name_score` above which two characters are clearly a given name."""


def _a_person_here(
    text: str, tokens, bounds, starts, name: str, start: int, end: int
) -> bool | None:
    """Whether LAC's PER candidate `name` at `[start, end)` is a person's name where it stands
    (`lac_persons`'s tests, in order): True; False where what surrounds it makes it the name of
    a place, an organisation or a club (黄岩区, 盖蒂 + 中心, 费耶诺德 + 主场); None where it is
    no person's name for another reason (a form of address, a title's words, a date)."""
    named = text[max(0, start - 4) : start].endswith(_NAMING_WORDS)  # 名叫小李: his name
    if _form_of_address(name) and not named:
        return None
    if _inside_title(text, start, end) or _quoted_work(text, start, end):
        return None
    if _CALENDAR.fullmatch(name) or _AMOUNT.fullmatch(name):
        return None
    if _not_a_person(text, start, end) or text.startswith(_PLACE_OR_ORG_AFTER, end):
        return False
    if _joined_to_a_place(tokens, starts, end) or _ends_in_a_kind(name):
        return False
    if _person_evidence(text, start, end):
        return True
    if _object_of_a_place_verb(text, start, end):
        return False
    # (a full Chinese name after a company's name is its employee's: 有限公司 + 孙祥树)
    if text[max(0, start - 8) : start].endswith(_KIND_BEFORE) and not _full_chinese_name(name):
        return False
    if _inside_a_place(tokens, starts, start, name):
        return False
    if _sets_odds(text, end) or _beside_a_score(text, start, end) or _employer(text, start, end):
        return False
    if _heads_title(tokens, starts, end):
        return None
    han = "".join(c for c in name if c not in _INTERPUNCT)
    if han != name:  # a dotted transliteration: a person's full name
        return True
    if not _full_chinese_name(han) and _match_report(text, bounds, start, end):
        return False
    if _cut_from_a_longer_word(text, han, start, end):
        return None
    return True


_LATIN_RUN = re.compile(r"[A-Za-z][A-Za-z'\-]*(?: [A-Za-z][A-Za-z'\-]*)?")
_AFTER_A_SURNAME = re.compile(r"(?![\u4e00-\u9fff])|(?=总|先生|女士|小姐|老师|经理|姐|哥)")


def _surname_after(text: str, start: int, end: int) -> int | None:
    """The end of a Latin given name's Chinese surname written after it (`Cindy 刘`, `Jason
    黄，`, as colleagues in Hong Kong, Taiwan and the mainland's offices sign): one Han surname
    after a space, then no Han character but a form of address (`Peter 黄总`); None where
    `text[start:end]` is no Latin name or no surname follows."""
    if not _LATIN_RUN.fullmatch(text, start, end) or not text.startswith(" ", end):
        return None
    surname = text[end + 1 : end + 2]
    if surname not in surnames() or not _AFTER_A_SURNAME.match(text, end + 2):
        return None
    if surname in _AND and text.startswith(" ", end + 2):
        return None  # "and" between two names (Mandy 和 阿豪), not Mandy's surname 和
    return end + 2


_GIVEN_THEN_HAN = re.compile(r"(?<![A-Za-z])([A-Z][a-z]{1,14}) (?=[\u4e00-\u9fff])")


def _given_then_surname(text: str) -> set[tuple[int, int]]:
    """A listed given name in Latin letters and the Chinese surname after it (`Peter 黄（黄柏翰）`,
    `Tom 王总`), as `_surname_after` reads one: the name's span, surname included."""
    firsts, _ = name_lexicon()
    found = set()
    for match in _GIVEN_THEN_HAN.finditer(text):
        start, end = match.span(1)
        surname_end = _surname_after(text, start, end)
        if match.group(1).lower() in firsts and surname_end is not None:
            found.add((start, surname_end))
    return found


_NOT_COMPOUND_SURNAMED_TAGS = frozenset({"PER", "LOC", "ORG", "nw", "ns", "nt"})
_NAME_TAGS = frozenset({"nr", "nrfg", "nrt"})
_NOT_A_PERSONS_PART_TAGS = _NOT_COMPOUND_SURNAMED_TAGS - {"PER"}
"""LAC's tags of a word no part of a compound-surnamed name lies in (a place, a work ...)."""


_COMPOUND_SURNAMED = re.compile("(?:" + "|".join(COMPOUND_SURNAMES) + ")(?=[\u4e00-\u9fff])")


def _compound_surnamed(text: str, tokens, accepted) -> set[tuple[int, int]]:
    """A compound surname (上官, 诸葛, 令狐 ...: `COMPOUND_SURNAMES`, none of them an ordinary
    word) and a given name of one or two characters that the name model accepts, whatever LAC
    made of them: 上官婉儿 as a locative, 令 + 狐慧敏 (a verb, then a person with half the
    surname), 闻 + 人语嫣, 其 + 子司徒 + 浩然 — no other word opens so. The surname must open
    LAC's word or sit in a noun no dictionary holds (子司徒), never inside a word of its own or
    a verb (公司 + 马上, 不闻 + 人语: no 司马, no 闻人), and the name must end where a word ends;
    not where LAC reads a place, an organisation or a work there, nor a word the dictionary
    holds as something other than a name."""
    tags, frequencies = _dictionary()
    starts = [start for _, _, start in tokens]
    found = set()
    for match in _COMPOUND_SURNAMED.finditer(text):
        start = match.start()
        index = bisect_right(starts, start) - 1
        if index < 0:
            continue
        word, tag, at = tokens[index]
        if at < start and (
            frequencies.get(word) or tag in _NOT_COMPOUND_SURNAMED_TAGS or tag in _NOT_A_NAME_TAGS
        ):
            continue  # inside a word of its own (公司 + 马上) or a verb's (不闻 + 人语)
        ends = {at + len(w) for w, _, at in tokens[index : index + 4]}
        for length in (2, 1):
            end = match.end() + length
            name = text[start:end]
            if (
                end in ends
                and _HAN_ALL.fullmatch(name)
                and tags.get(name, "nr") in _NAME_TAGS
                and given_name_score(name[2:]) > 0
                and (start, end) not in accepted
                and not _overlaps_a_tag(tokens, index, end, _NOT_A_PERSONS_PART_TAGS)
                and not _not_a_person(text, start, end)
            ):
                found.add((start, end))
                break
    return found


def _overlaps_a_tag(tokens, index: int, end: int, kinds) -> bool:
    """Whether a word from `tokens[index]` up to `end` is tagged one of `kinds`."""
    for _, tag, at in tokens[index:]:
        if at >= end:
            return False
        if tag in kinds:
            return True
    return False


def _speakers(text: str, tokens) -> dict[tuple[int, int], float]:
    """Speaker labels of a transcript (姜山：...) that the name model reads as surname + name."""
    found = {}
    lac_tags = {start: tag for _, tag, start in tokens}
    names = surnames()
    for match in _SPEAKER_LABEL.finditer(text):
        start, end = match.span(1)
        name = match.group(1)
        if lac_tags.get(start) in ("ORG", "TIME") or _form_of_address(name):
            continue
        if name.endswith("人"):
            continue  # a role's label (申請人：, 聯絡人：, in traditional characters too)
        for surname in {name[:1], name[:2]} & names:
            given = name[len(surname) :]
            if given and given_name_score(given) > 0.0:
                found[(start, end)] = LAC_PERSON_SCORE
    return found


_CLAUSE_START = r"(?:^|(?<=[。！？；;\n：:]))[^\S\n]*"
_PROFILE = re.compile(
    _CLAUSE_START + r"([\u4e00-\u9fff]{2,4})"
    r"(?:[，,（(][^\S\n]*[男女](?=[，,）)、。；;\s]|$)|先生|女士|(?P<alone>[，,。：:]?[^\S\n]*$))",
    re.MULTILINE,
)
"""How a person's profile opens (a résumé, a director's biography, a patient's or a case's
record): at the start of a clause, a name then its sex (司增勤，男，; 张三（女，1970年生）), a
full name then 先生 / 女士 (何次琴女士，大学学历), or a name alone on its line (a heading)."""


def _profiled(text: str, tokens) -> dict[tuple[int, int], float]:
    """Names that open a profile (`_PROFILE`) and that the name model reads as a surname and a
    given name; a name alone on its line must also be no dictionary word (a heading such as
    简历 or 张家口 is none)."""
    found = {}
    lac_tags = {start: tag for _, tag, start in tokens}
    names = surnames()
    _, frequencies = _dictionary()
    for match in _PROFILE.finditer(text):
        start, end = match.span(1)
        name = match.group(1)
        if lac_tags.get(start) in ("ORG", "TIME", "LOC") or _form_of_address(name):
            continue
        alone = match.group("alone") is not None
        threshold = 0.0 if alone else MIN_TITLED_GIVEN
        if alone and frequencies.get(name):
            continue
        for surname in {name[:1], name[:2]} & names:
            given = name[len(surname) :]
            if 1 <= len(given) <= 2 and given_name_score(given) > threshold:
                found[(start, end)] = LAC_PERSON_SCORE + (0.0 if alone else CONTEXT_SCORE)
    return found


NAME_FIELDS = (
    "姓名", "名字", "户名", "开户名", "账户名", "持卡人", "联系人", "经办人", "负责人",
    "法定代表人", "法人代表", "借款人", "担保人", "保证人", "收款人", "付款人", "汇款人", "申请人",
    "投保人", "被保险人", "受益人", "就诊人", "收件人", "寄件人", "收货人", "签名", "签字",
    "审批人", "审核人", "复核人", "录入人", "填表人", "填报人", "制表人", "报告人", "委托人",
    "代理人", "监护人", "配偶", "患者", "病人", "原告", "被告", "被告人", "证人", "医师", "护士",
    "承租人", "出租人", "业主", "第三人", "上诉人", "被上诉人", "被申请人", "被执行人",
    "申请执行人", "犯罪嫌疑人", "嫌疑人", "被害人", "受害人", "当事人", "辩护人", "报案人",
    "报警人", "举报人", "投诉人", "罪犯", "联络人", "病患",
    # who did a record's act (an adjuster, a sender of a sample, a collector, a witness ...)
    "查勘人", "送检人", "取药人", "经手人", "签收人", "领取人", "代办人", "陪同人", "承办人",
    "办理人", "见证人", "出险人", "驾驶人", "乘车人", "旅客", "乘客", "住客", "租客", "房客",
    # the same fields in traditional characters (Taiwan's and Hong Kong's forms)
    "聯絡人", "聯繫人", "申請人", "經辦人", "負責人", "簽名", "簽字", "戶名", "開戶名", "帳戶名",
    "證人", "監護人", "委託人", "擔保人", "保證人", "匯款人", "審核人", "報案人", "被執行人",
    "業主", "醫師", "護士",
)  # fmt: skip
"""A form's or a record's field whose value is a person's name (客户姓名：, 经办人：, 持卡人：,
患者：): banks', hospitals' and courts' records name people so, and the value needs no other
evidence than the label (钱多多, 高山 and 江河 are names there, ordinary words elsewhere)."""
_OTHER_FIELDS = (
    "性别", "年龄", "民族", "籍贯", "电话", "手机", "联系电话", "身份证", "身份证号", "证件号",
    "地址", "住址", "出生", "职业", "单位", "学历", "邮箱", "账号", "卡号", "日期", "金额", "备注",
)  # fmt: skip
"""Fields that follow a name in a form; glued to it without a space (姓名：钱多多性别：男) they
end the name."""
SIGNED_FIELDS = (
    "甲方", "乙方", "丙方", "复核", "审核", "审批", "批准", "核准", "制单", "记账", "出纳",
    "会计", "会计主管", "财务主管", "验收", "保管", "主办", "协办", "主持", "记录", "记录人",
    "主讲", "主讲人", "讲师", "发件人", "值班", "值班人", "操作员", "柜员", "业务员",
    "客户经理", "跟进人", "对接人", "主治医生", "主治医师", "接诊医生", "责任护士", "班主任",
    "指导老师", "导师", "作者", "译者", "出席", "缺席", "列席", "受托人", "访客", "来访人",
)  # fmt: skip
"""Who signed, approved, kept or did something, as a voucher, a contract, an approval sheet or
the minutes of a meeting write it (复核：江山, 乙方：常青, 记录：王芳): a name after the colon,
never read without one (审核通过, 会计师 are words), and not an organisation's (甲方：华为)."""
_FIELD_LABEL = "(" + "|".join(sorted(NAME_FIELDS, key=len, reverse=True)) + ")"
_COLON_LABEL = "(" + "|".join(sorted(NAME_FIELDS + SIGNED_FIELDS, key=len, reverse=True)) + ")"
_FIELD_VALUE = re.compile(
    _COLON_LABEL + r"[甲乙丙丁]?[\"'”’]?[ \t]*[：:][ \t]*[\"'“‘]?"
    r"([\u4e00-\u9fff]+(?:·[\u4e00-\u9fff]+)*)(?![\u4e00-\u9fff·])"
)
"""A person's field (the label's last word: 客户姓名 ends in 姓名), its colon and its value (a
record's key and value in quotes too: `"姓名": "钱多多"`). The
label is matched as one of its words, never as a run of Han characters before a colon: a long
run would be read again from each of its characters."""
_LINKS = r"(?:是|为|改成|改为|换成|变更为|更改为|写的|写成)"
"""A verb between a field and its value in a sentence (收货人改成连晓萌, 收件人写的Lily)."""
_AFTER_A_FIELD = re.compile(_FIELD_LABEL + rf"[ \t]?(?:[：:][ \t]*|{_LINKS})?$")
"""A person's field right before a Latin word: its value (收件人写的Lily, 联系人：Amy)."""
_NICKNAME = re.compile(
    r"(?:外号|绰号|小名|昵称|网名|艺名|笔名)(?:是|叫|为)?[：:]?[ \t]?[「“\"']?"
    r"([\u4e00-\u9fff]{2,4})(?=[」”\"'，。；、）)\s]|$)"
)
"""A nickname a text gives (李铁柱（外号大柱）, 小名叫豆豆): the person's, as their name is."""


def _nicknames(text: str) -> set[tuple[int, int]]:
    return {match.span(1) for match in _NICKNAME.finditer(text)}


_SELF = "本人"
"""How a statement names its writer before their name (本人蓝海洋，身份证号码…): a label with no
colon only, and never a value (申请人：本人 is a placeholder)."""
_NAMED_AS = ("叫", "名叫", "叫做")
"""How a sentence gives someone's name (安全员叫火龙，, 姓段的，叫段天成，): read as a field with
no colon, whose value the name model must accept."""
_FIELD_VALUE_BARE = re.compile(
    f"({'|'.join(sorted((*NAME_FIELDS, _SELF, *_NAMED_AS), key=len, reverse=True))})"
    rf"[ \t]?{_LINKS}?([\u4e00-\u9fff]{{2,4}})(?=[，。；、,;.\s）)（(]|$)"
)
"""A person's field with no colon (收款人杜鹃，): a value of two or three characters alone up to
a pause, which must read as a surname and a given name by the name model, or of one or two
Tibetan name parts (监护人次仁（父）, `tibetan_name`)."""
BARE_GIVEN_NAME = 0.0
"""`given_name_score` a value's given name needs after a label with no colon (杜 + 鹃 1.7, but
信 + 息 -2.5: 收款人信息 is the payee's details)."""
_NAMED_THINGS = ("公司", "单位", "企业", "机构", "商户", "店铺", "产品", "品牌", "项目", "网站")
"""Words before 名字 / 户名 that make the value a thing's name (公司名字：华为)."""
PLACEHOLDERS = ("本人", "同上", "不详", "暂无", "未知", "见附件", "另附", "空白")
_NOT_A_NAME_TAGS = frozenset({"c", "d", "r", "p", "u", "t", "TIME", "v", "vd", "q", "f", "xc", "w"})
"""LAC tags of a word of two characters or more that opens a field's value and is no name's
start: a conjunction, an adverb, a pronoun, a time, a verb (于是, 马上, 任何, 明天, 盖章)."""
RARE_WORD = 20
"""jieba's count under which a word LAC tags a verb or an adverb is no word a form's value is
(付强, count 3, tagged a verb; 包晓 unknown): then the name model decides."""


def _a_word_of_its_kind(word: str, tag: str) -> bool:
    """Whether LAC's `word` opening a field's value is a word of a kind no name's start is
    (`_NOT_A_NAME_TAGS`: 盖章, 马上, 明天) and a common one (`RARE_WORD`)."""
    _, frequencies = _dictionary()
    return tag in _NOT_A_NAME_TAGS and frequencies.get(word, 0) >= RARE_WORD


_NOT_A_NAME_END = ("部", "科", "处", "室", "组", "局", "所", "院", "司", "行", "队", "中心", "公司")


_PARTY = "[甲乙丙丁]?"
"""A party's letter after its label (当事人甲：黎明, 原告乙：)."""
_NOT_AGENTS = (
    "个人", "本人", "他人", "别人", "旁人", "成人", "工人", "商人", "老人", "家人", "客人",
    "名人", "法人", "私人", "某人", "众人", "友人", "夫人", "每人", "行人", "后人", "亲人",
)  # fmt: skip
"""Words ending in 人 that name no one's role in a record: a person in general (个人, 成人),
one's own (本人), a legal person (法人)."""
_COLON_VALUE = re.compile(
    rf"{_PARTY}[\"'”’]?[ \t]*[：:][ \t]*[\"'“‘]?([\u4e00-\u9fff]+(?:·[\u4e00-\u9fff]+)*)"
    r"(?![\u4e00-\u9fff·])"
)


def _colon_fields(text: str, tokens) -> Iterator[tuple[str, int, int, int]]:
    """A field's label, where it starts, and its value's span, for each person's field with a
    colon: the listed ones (`_FIELD_VALUE`), and any LAC word for who did a record's act, a
    word of two to four characters ending in 人 (离职人：左丘明远, 交接人：, 推荐人：), read as
    a signed field (never an organisation's name)."""
    listed = set()
    for match in _FIELD_VALUE.finditer(text):
        listed.add(match.end(1))
        yield match.group(1), match.start(), *match.span(2)
    for word, _, at in tokens:
        end = at + len(word)
        if (
            not (2 <= len(word) <= 4 and word.endswith("人"))
            or end in listed
            or word in _NOT_AGENTS
            or not _HAN_ALL.fullmatch(word)
        ):
            continue
        match = _COLON_VALUE.match(text, end)
        if match:
            yield word, at, *match.span(1)


LONGEST_LABELLED_NAME = 6
"""Characters a field's value may hold as one name with no interpunct: Mongolian and other
names written whole (哈斯其其格, 巴特尔朝鲁) run to five or six."""


def _one_long_name(tokens, starts: list[int], start: int, end: int) -> bool:
    """Whether a field's value of five or six characters (`LONGEST_LABELLED_NAME`) reads as one
    name: LAC's words fill it exactly, the first is a name's (PER: 哈斯, 巴特尔), and none
    after it of two characters or more is a common word (患者：张三今日复诊 holds 今日)."""
    if end - start > LONGEST_LABELLED_NAME:
        return False
    _, frequencies = _dictionary()
    inside = tokens[bisect_left(starts, start) : bisect_left(starts, end)]
    if not inside or inside[0][2] != start or inside[0][1] != "PER":
        return False
    if inside[-1][2] + len(inside[-1][0]) != end:
        return False
    return all(
        len(word) < 2 or tag == "PER" or frequencies.get(word, 0) < COMMON_WORD
        for word, tag, _ in inside[1:]
    )


def _labelled(text: str, tokens) -> dict[tuple[int, int], float]:
    """Names that are the value of a person's field in a form or a record (`NAME_FIELDS`,
    also at the end of a longer label: 客户姓名, 紧急联系人): two to four Han characters (or a
    transliteration joined by ·) after the label and its colon, up to the next pause, field or
    non-Han character, opening with a surname. Not a form of address (王先生: no name), an
    anonymised one (王某), a placeholder (本人, 同上) or a department (财务部). With no colon
    (收款人杜鹃，), only a value of two or three characters up to a pause that LAC reads from its
    first character and whose given name the name model accepts."""
    names = surnames()
    lac_words = {start: (word, tag) for word, tag, start in tokens}
    starts = [start for _, _, start in tokens]  # in order: LAC's tokens cover the text once
    found = {}
    for match in _FIELD_VALUE_BARE.finditer(text):
        start, end = match.span(2)
        value = match.group(2)
        given = next((value[len(s) :] for s in (value[:2], value[:1]) if s in names), "")
        word, tag = lac_words.get(start, ("", ""))
        if tibetan_name(value):
            found[(start, end)] = LAC_PERSON_SCORE + CONTEXT_SCORE  # 监护人次仁（父）
            continue
        if len(value) > 3:
            continue  # four characters with no colon: a Tibetan name's two parts only
        if (
            given
            and start in lac_words
            and value not in NAME_FIELDS  # 本人姓名：
            and not (len(word) >= 2 and _a_word_of_its_kind(word, tag))
            # 叫 as a word of its own (not 吠叫 + 和跳跃), before no place (叫黄山)
            and not (
                match.group(1) in _NAMED_AS
                and (tag in _LAC_NOT_A_PERSON or match.start(1) not in lac_words)
            )
            and given_name_score(given) > BARE_GIVEN_NAME
            and value not in PERSON_NOUNS
            and "某" not in value
            and not value.endswith(_NOT_A_NAME_END)
            and not _form_of_address(value)
        ):
            found[(start, end)] = LAC_PERSON_SCORE + CONTEXT_SCORE
    if "：" not in text and ":" not in text:
        return found
    for label, at, start, end in _colon_fields(text, tokens):
        if label in ("名字", "户名") and text[:at].endswith(_NAMED_THINGS):
            continue
        value = text[start:end]
        # the next field glued on (钱多多性别：男): the name ends where it begins
        cut = next(
            (k for k in range(2, min(len(value), 5)) if value[k:].startswith(_OTHER_FIELDS)),
            None,
        )
        if cut is not None:
            value, end = value[:cut], start + cut
        elif len(value) > 4 and "·" not in value:
            if label not in SIGNED_FIELDS and _one_long_name(tokens, starts, start, end):
                found[(start, end)] = LAC_PERSON_SCORE + CONTEXT_SCORE  # 哈斯其其格
            continue
        if "·" in value:
            if lac_words.get(start, ("", ""))[1] != "ORG":
                found[(start, end)] = LAC_PERSON_SCORE + CONTEXT_SCORE
            continue
        word, tag = lac_words.get(start, ("", ""))
        if label not in NAME_FIELDS and tag == "ORG":
            continue
        if (
            value in PLACEHOLDERS
            or value in PERSON_NOUNS  # 母亲, 客户: a relation or a role, not its name
            or (len(word) >= 2 and _a_word_of_its_kind(word, tag))
            or value in _OTHER_FIELDS
            or "某" in value
            or value.endswith(_NOT_A_NAME_END)
            or _form_of_address(value)
        ):
            continue
        if tibetan_name(value) or any(len(value) > len(s) for s in {value[:1], value[:2]} & names):
            found[(start, end)] = LAC_PERSON_SCORE + CONTEXT_SCORE
    return found


_ADDRESS_AFTER = ("先生", "女士", "小姐", "老师", "教授", "博士", "医生", "律师", "经理", "总")


def addressed_surnames(
    text: str, names: Iterable[str], forms: tuple[str, ...] = _ADDRESS_AFTER
) -> Iterator[tuple[int, int, int]]:
    """Where the surname of one of `names` (full Chinese names of two to four characters)
    stands in `text` before a form of address of `forms`: the surname's start and end, and the
    end of the form of address (the first of `forms` that follows)."""
    known = surnames()
    family: set[str] = set()
    for name in names:
        if 2 <= len(name) <= 4 and _HAN_ALL.fullmatch(name):
            family.update(s for s in {name[:1], name[:2]} & known if len(name) > len(s))
    for surname in family:
        at = text.find(surname)
        while at != -1:
            after = at + len(surname)
            form = next((form for form in forms if text.startswith(form, after)), None)
            if form is not None:
                yield at, after, after + len(form)
            at = text.find(surname, after)


def _addressed_again(text: str, spans) -> set[tuple[int, int]]:
    """The surname of a full name found in the text, where it comes again as a form of
    address (马化腾 ... 马先生, 顾卫东 ... 顾总): the same person, whose surname would stay in
    the text beside its surrogate. Only the surname is reported (a form of address alone,
    王先生 in a news item, is how the press leaves a person unnamed, and is no finding)."""
    named = Spans(spans)  # O(log n) a test: a text may repeat a name thousands of times
    return {
        (at, after)
        for at, after, _ in addressed_surnames(text, (text[start:end] for start, end in spans))
        if not named.overlaps(at, after)
    }


_APPOINTED = (
    "历任", "现任", "曾任", "先后任", "兼任", "出任", "担任", "任职于", "就职于", "供职于",
)  # fmt: skip
_HELD = "董事|经理|总监|主任|秘书|主管|会计|总裁"
_POSITIONS = re.compile(
    rf"[^，,。；;：:]{{0,6}}?(?:{_HELD}|厂长|科长|处长|部长|[部处科室](?:经理|主任|长))"
)
"""A position held in an organisation, within a few characters: what the employer's name in
a résumé's line is followed by (任 + 欣旺达 + 总经理秘书; 历任 + 惠博普 + 有限董事)."""
_POSITION_RIGHT_AFTER = re.compile(rf"总经理|{_HELD}|[^，,。]{{0,3}}[部处科室]")


def _employer(text: str, start: int, end: int) -> bool:
    """Whether a LAC person is the employer in a line of a career: after a verb of
    appointment (历任, 现任, 担任 ...) or beginning with 任 ("served at") where a clause
    begins, and followed by a position held there (directly, where the span took 任 in)."""
    before = text[max(0, start - 4) : start]
    if before.endswith(_APPOINTED):
        return bool(_POSITIONS.match(text, end))
    if text[start] != "任" or (start and text[start - 1] not in "，,。；;：: \n"):
        return False
    return bool(_POSITION_RIGHT_AFTER.match(text, end))


LAC_PERSON_SCORE = 0.75
CONTEXT_SCORE = 0.15
"""A LAC person's score, and what a title or a person's verb around it adds."""


class CnPersonRecognizer(RegexRecognizer):
    """Person names: Baidu LAC's PER spans (`cn_lac`), less forms of address, organisations,
    places, titles of works and clubs in match reports; Latin-letter names after a title, before
    a person's verb or in brackets after a name; speaker labels of a transcript; names listed
    with an accepted one (和, 、)."""

    ENTITY = "PERSON"
    CONTEXT = _NAME_CONTEXT
    FLAGS = 0

    def load(self) -> None:
        lac_model()  # fails closed (CnModelMissing) when the model is not installed

    def analyze(self, text, entities, nlp_artifacts=None):
        if self.ENTITY not in entities or not _HAN_CHARACTER.search(text):
            return []
        tokens = lac_tokens(text)
        spans = lac_persons(text, tokens)
        for span, score in _speakers(text, tokens).items():
            spans.setdefault(span, score)
        for span, score in _profiled(text, tokens).items():
            spans.setdefault(span, score)
        for span, score in _labelled(text, tokens).items():
            spans.setdefault(span, score)
        for span in _latin_names(text, tokens, set(spans)):
            spans.setdefault(span, LATIN_NAME_SCORE)
        for span in _latin_by_model(text, tokens, set(spans), english_words(nlp_artifacts)):
            spans.setdefault(span, LATIN_NAME_SCORE)
        for span in _listed_latin(text, set(spans)):
            spans.setdefault(span, LATIN_NAME_SCORE)
        for span in _listed_han(text, tokens, set(spans)):
            spans.setdefault(span, LAC_PERSON_SCORE)
        for span in _titled_han(text, tokens, set(spans)):
            spans.setdefault(span, LAC_PERSON_SCORE)
        for span in _pseudonyms(text, tokens, set(spans)):
            spans.setdefault(span, LAC_PERSON_SCORE + CONTEXT_SCORE)
        for span in _titled_across_words(text, tokens, set(spans)):
            spans.setdefault(span, LAC_PERSON_SCORE)
        for span in _acting_han(text, tokens, set(spans)):
            spans.setdefault(span, LAC_PERSON_SCORE)
        for span in _compound_surnamed(text, tokens, set(spans)):
            spans.setdefault(span, LAC_PERSON_SCORE)
        for span in _listed_items(text, tokens, set(spans)):
            spans.setdefault(span, LAC_PERSON_SCORE)
        for span in _addressed_again(text, set(spans)):
            spans.setdefault(span, LAC_PERSON_SCORE)
        for span in _given_then_surname(text):
            spans.setdefault(span, LATIN_NAME_SCORE)
        for span in _nicknames(text):
            spans.setdefault(span, LAC_PERSON_SCORE + CONTEXT_SCORE)
        for (start, end), score in list(spans.items()):
            surname_end = _surname_after(text, start, end)
            if surname_end is not None:
                spans[(start, surname_end)] = max(score, spans.pop((start, end)))
        results = []
        for start, end in _outermost(spans):
            score = spans[(start, end)]
            # LAC's words may carry the line's end (董永沁 + newline): the name stops before it.
            while start < end and text[end - 1].isspace():
                end -= 1
            while start < end and text[start].isspace():
                start += 1
            if start < end:
                results.append(self._result(start, end, score, "lac person"))
        return results
