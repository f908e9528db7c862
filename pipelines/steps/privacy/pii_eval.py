"""A labelled PII set (English and Chinese, adversarial forms included) and its scoring.

Gold file shape (JSONL, one record per line): the `sovtune scan` input shape (`id`, `text` or
`messages`, optional `language`) plus `gold`, a list of `{"field", "start", "end",
"entity_type"}` with offsets into that field (`text`, or `messages[i].content`).

Scoring is per entity type, with overlap matching: a gold span is found (true positive) when a
finding of the same type overlaps it; a finding is correct when it overlaps a gold span of its
type. Precision = correct findings / findings, recall = found gold spans / gold spans,
F2 = 5PR / (4P + R) (recall weighs more: a missed value leaks, an extra one only costs text).
"""

import importlib
import json
import random
import string
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache
from pathlib import Path

import faker
from faker.providers.person.zh_CN import Provider as ChinesePersonProvider
from stdnum import luhn
from stdnum.cn import uscc
from stdnum.iso7064 import mod_11_2
from stdnum.us import rtn

from pipelines.steps.privacy.recognizers.en_person import listed_names

HELD_OUT_LOCALES = ("en_GB", "en_IE", "en_NZ")
"""Faker locales whose English names, less every name the name rule lists, fill PERSON gold."""
CN_HELD_OUT_GIVEN_NAMES = (
    "子轩", "浩宇", "梓涵", "一诺", "欣怡", "雨桐", "思远", "宇轩", "俊熙", "诗涵",
    "若汐", "梓萱", "嘉懿", "沐辰", "语桐", "皓轩", "晨曦", "可馨", "铭泽", "书瑶",
    "天佑", "芷若", "奕辰", "安琪", "文博", "雅琴", "建国", "晓东", "丽萍", "志远",
)  # fmt: skip
"""Given names popular in mainland China that Faker's zh_CN list (the name rule's) lacks.

Evaluation data only (the detector never reads it); `held_out_chinese_given_names` drops any
that the rule's list holds, so the set stays disjoint if Faker's list grows."""
FULLWIDTH = {c: chr(ord(c) + 0xFEE0) for c in string.ascii_letters + string.digits + "@.-"}
ZERO_WIDTH = "\u200b"


@dataclass(frozen=True)
class Scores:
    """Per entity type: gold spans, findings, and the derived precision, recall and F2."""

    gold: int
    predicted: int
    found: int
    correct: int

    @property
    def precision(self) -> float:
        return self.correct / self.predicted if self.predicted else 1.0

    @property
    def recall(self) -> float:
        return self.found / self.gold if self.gold else 1.0

    @property
    def f2(self) -> float:
        p, r = self.precision, self.recall
        return 5 * p * r / (4 * p + r) if p + r else 0.0


Span = tuple[str, int, int, str]
"""(field, start, end, entity_type)."""


def score(gold: Iterable[Iterable[Span]], predicted: Iterable[Iterable[Span]]) -> dict[str, Scores]:
    """Per-type scores over records, pairing gold and predicted spans record by record."""
    counts: dict[str, Counter[str]] = {}
    for gold_spans, found_spans in zip(gold, predicted, strict=True):
        gold_spans, found_spans = list(gold_spans), list(found_spans)
        for span in gold_spans:
            c = counts.setdefault(span[3], Counter())
            c["gold"] += 1
            c["found"] += any(_overlap(span, other) for other in found_spans)
        for span in found_spans:
            c = counts.setdefault(span[3], Counter())
            c["predicted"] += 1
            c["correct"] += any(_overlap(span, other) for other in gold_spans)
    return {
        entity: Scores(c["gold"], c["predicted"], c["found"], c["correct"])
        for entity, c in sorted(counts.items())
    }


def _overlap(a: Span, b: Span) -> bool:
    return a[0] == b[0] and a[3] == b[3] and a[1] < b[2] and b[1] < a[2]


def format_table(columns: dict[str, dict[str, Scores]]) -> str:
    """A markdown table: one row per entity type, P/R/F2 per column (detector)."""
    entities = sorted({e for scores in columns.values() for e in scores})
    header = "| entity type | gold | " + " | ".join(
        f"{name} P | {name} R | {name} F2" for name in columns
    )
    lines = [header + " |", "|" + "---|" * (2 + 3 * len(columns))]
    for entity in entities:
        gold = max((s[entity].gold for s in columns.values() if entity in s), default=0)
        cells = []
        for scores in columns.values():
            s = scores.get(entity, Scores(gold, 0, 0, 0))
            precision = f"{s.precision:.2f}" if s.predicted else "–"
            if gold:
                cells += [precision, f"{s.recall:.2f}", f"{s.f2:.2f}"]
            else:  # a type absent from the gold set: only its false positives count
                cells += [f"{precision} ({s.predicted} found)" if s.predicted else "–", "–", "–"]
        lines.append(f"| {entity} | {gold} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def read_gold(path: Path) -> list[dict]:
    """Read a gold JSONL file (see the module docstring for its shape)."""
    rows = []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        row = json.loads(line)
        if not isinstance(row, dict) or not isinstance(row.get("gold"), list):
            raise ValueError(f"{path}:{number}: expected an object with a `gold` list")
        rows.append(row)
    return rows


def gold_spans(row: dict) -> list[Span]:
    """The gold spans of one gold row."""
    return [(g.get("field", "text"), g["start"], g["end"], g["entity_type"]) for g in row["gold"]]


# --- the generator -----------------------------------------------------------------------------


def generate_gold(*, per_template: int = 6, seed: int = 11) -> list[dict]:
    """A labelled set: every template filled `per_template` times, plain and adversarial.

    Each row is `{"id", "language", "text", "gold"}`; values come from Faker (seeded) and from
    checksum-valid generators; person names are held out from the name rules' lists
    (`held_out_english_names`, `held_out_chinese_given_names`); adversarial rows add fullwidth
    digits, zero-width characters, "at"/"dot" e-mails, spaced digits, grouped id numbers and
    lower-case names.
    """
    rng = random.Random(seed)
    fakes = {"en": faker.Faker("en_US"), "zh": faker.Faker("zh_CN")}
    for index, fake in enumerate(fakes.values()):
        fake.seed_instance(seed + index)
    rows = []
    for language, template, entity, make, obfuscate in _TEMPLATES:
        for n in range(per_template):
            value = make(fakes[language], rng)
            if obfuscate and n % 2 == 1:
                value = obfuscate(value, rng)
            prefix, _, suffix = template.partition("{}")
            text = prefix + value + suffix
            start = len(prefix)
            rows.append(
                {
                    "id": f"{language}-{entity.lower()}-{len(rows):05d}",
                    "language": language,
                    "text": text,
                    "gold": [
                        {
                            "field": "text",
                            "start": start,
                            "end": start + len(value),
                            "entity_type": entity,
                        }
                    ],
                }
            )
    return rows


@lru_cache(maxsize=1)
def held_out_english_names() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """First and last names for PERSON gold that the name rule does not list.

    The rule (`en_person`) knows Faker's en_US lists; gold names drawn from them would measure
    the list, not the detector. These come from Faker's British, Irish and New Zealand lists,
    less every name (first or last, any case) the rule lists: recall on them is what spaCy NER,
    titles, initials and introductions find in names the lists never saw.
    """
    firsts, lasts = listed_names()
    known = firsts | lasts
    first: set[str] = set()
    last: set[str] = set()
    for locale in HELD_OUT_LOCALES:
        provider = importlib.import_module(f"faker.providers.person.{locale}").Provider
        for kind in ("first_names", "first_names_male", "first_names_female"):
            first.update(getattr(provider, kind, ()))
        last.update(getattr(provider, "last_names", ()))
    return (
        tuple(sorted(n for n in first if n.isalpha() and n.lower() not in known)),
        tuple(sorted(n for n in last if n.isalpha() and n.lower() not in known)),
    )


@lru_cache(maxsize=1)
def held_out_chinese_given_names() -> tuple[str, ...]:
    """`CN_HELD_OUT_GIVEN_NAMES` less any given name in the rule's (Faker zh_CN) list."""
    listed = {
        *ChinesePersonProvider.first_names_male,
        *ChinesePersonProvider.first_names_female,
        *ChinesePersonProvider.first_names,
    }
    return tuple(n for n in CN_HELD_OUT_GIVEN_NAMES if n not in listed)


def _held_out_name(fake: faker.Faker, rng: random.Random) -> str:
    first, last = held_out_english_names()
    return f"{rng.choice(first)} {rng.choice(last)}"


def _held_out_last_name(fake: faker.Faker, rng: random.Random) -> str:
    return rng.choice(held_out_english_names()[1])


def _held_out_chinese_name(fake: faker.Faker, rng: random.Random) -> str:
    return fake.last_name() + rng.choice(held_out_chinese_given_names())


def _fullwidth(value: str, rng: random.Random) -> str:
    return "".join(FULLWIDTH.get(c, c) if c.isdigit() else c for c in value)


def _zero_width(value: str, rng: random.Random) -> str:
    middle = max(1, len(value) // 2)
    return value[:middle] + ZERO_WIDTH + value[middle:]


def _spaced(value: str, rng: random.Random) -> str:
    return " ".join(c for c in value if c.isdigit())


def _fullwidth_or_grouped(value: str, rng: random.Random) -> str:
    """Fullwidth digits, or the 6-8-4 grouping of an 18-character id ("110105 19491231 002X")."""
    if rng.random() < 0.5:
        return _fullwidth(value, rng)
    return f"{value[:6]} {value[6:14]} {value[14:]}"


def _cn_id(fake: faker.Faker, rng: random.Random) -> str:
    """A valid id: Faker's region and birth date, its own sequence, the MOD 11-2 check."""
    body = fake.ssn()[:17]
    return body + mod_11_2.calc_check_digit(body)


def _passport(fake: faker.Faker, rng: random.Random) -> str:
    """9 digits (older books) or a letter and 8 digits (next-generation books)."""
    if rng.random() < 0.5:
        return f"{rng.randrange(10**8, 10**9)}"
    return rng.choice("ACEFGHJKLMNPRSTUVWXYZ") + f"{rng.randrange(10**7, 10**8)}"


def _spelled_email(value: str, rng: random.Random) -> str:
    local, _, domain = value.partition("@")
    return f"{local} at {domain.replace('.', ' dot ')}"


def _lower(value: str, rng: random.Random) -> str:
    return value.lower()


def _dob(fake: faker.Faker, rng: random.Random) -> str:
    born = date(1950, 1, 1) + timedelta(days=rng.randrange(365 * 50))
    return rng.choice((born.strftime("%B %d, %Y"), born.strftime("%m/%d/%Y"), born.isoformat()))


def _aba(fake: faker.Faker, rng: random.Random) -> str:
    body = (
        f"{rng.choice(['01', '02', '06', '11', '12', '21', '26', '32'])}{rng.randrange(10**6):06d}"
    )
    return body + rtn.calc_check_digit(body)


def _cn_bank(fake: faker.Faker, rng: random.Random) -> str:
    body = "62" + "".join(rng.choice(string.digits) for _ in range(15))
    return body + luhn.calc_check_digit(body)


def _uscc(fake: faker.Faker, rng: random.Random) -> str:
    alphabet = "0123456789ABCDEFGHJKLMNPQRTUWXY"
    body = (
        "91" + f"{rng.randrange(110000, 659999)}" + "".join(rng.choice(alphabet) for _ in range(9))
    )
    return body + uscc.calc_check_digit(body)


def _alnum(rng: random.Random, n: int, alphabet: str = string.ascii_letters + string.digits) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def _secret(fake: faker.Faker, rng: random.Random) -> str:
    upper = string.ascii_uppercase + string.digits
    return rng.choice(
        (
            "AKIA" + _alnum(rng, 16, upper),
            "ghp_" + _alnum(rng, 36),
            "glpat-" + _alnum(rng, 20),
            "xoxb-"
            + "-".join(_alnum(rng, 12, string.digits) for _ in range(2))
            + "-"
            + _alnum(rng, 24),
            "AIza" + _alnum(rng, 35),
            "LTAI" + _alnum(rng, 20),
            "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0." + _alnum(rng, 43),
        )
    )


def _password(fake: faker.Faker, rng: random.Random) -> str:
    return fake.password(length=14)


def _plate(fake: faker.Faker, rng: random.Random) -> str:
    letters = "ABCDEFGHJKLMNPQRSTUVWXYZ"
    return (
        rng.choice("京沪粤苏浙川鲁")
        + rng.choice(letters)
        + _alnum(rng, 5, letters[:8] + "0123456789")
    )


_E, _Z = "en", "zh"
_TEMPLATES: tuple[tuple[str, str, str, Callable, Callable | None], ...] = (
    (_E, "Hi team, this is {} from the logistics group.", "PERSON", _held_out_name, _lower),
    (_E, "Please forward the contract to {} before Friday.", "PERSON", _held_out_name, None),
    (_E, "Dr. {} will review the scan.", "PERSON", _held_out_last_name, None),
    (_E, "Reach me at {} anytime.", "EMAIL_ADDRESS", lambda f, r: f.email(), _spelled_email),
    (_E, "My phone is {}, call after six.", "PHONE_NUMBER", lambda f, r: f.phone_number(), None),
    (
        _E,
        "Call me on {} please.",
        "PHONE_NUMBER",
        lambda f, r: (
            r.choice(["+44 20 7946 0", "+49 30 901820", "+33 1 42 68 53"])
            + f"{r.randrange(10, 99)}"
        ),
        None,
    ),
    (
        _E,
        "Ship it to\n{}\nthanks.",
        "LOCATION",
        lambda f, r: f"{f.street_address()}\n{f.city()}, {f.state_abbr()} {f.zipcode()}",
        None,
    ),
    (_E, "I was born on {} in a small town.", "DATE_OF_BIRTH", _dob, None),
    (_E, "The patient is {} years old.", "AGE", lambda f, r: str(r.randrange(18, 95)), None),
    (_E, "My SSN is {}.", "US_SSN", lambda f, r: f.ssn(), _spaced),
    (
        _E,
        "Card {} was charged twice.",
        "CREDIT_CARD",
        lambda f, r: f.credit_card_number(),
        _fullwidth,
    ),
    (_E, "Wire it to IBAN {} today.", "IBAN_CODE", lambda f, r: f.iban(), None),
    (_E, "The host {} is down.", "IP_ADDRESS", lambda f, r: f.ipv4_public(), None),
    (_E, "Block {} on the firewall.", "IP_ADDRESS", lambda f, r: f.ipv6(), None),
    (_E, "Device MAC {} joined.", "MAC_ADDRESS", lambda f, r: f.mac_address(), None),
    (
        _E,
        "Reset link: {} expires soon.",
        "URL",
        lambda f, r: f.url() + "reset?token=" + _alnum(r, 16),
        None,
    ),
    (_E, "The routing number is {} for payroll.", "ABA_ROUTING_NUMBER", _aba, None),
    (_E, "My passport number is {}.", "US_PASSPORT", _passport, None),
    (
        _E,
        "Driver license {} expired.",
        "US_DRIVER_LICENSE",
        lambda f, r: r.choice("ABCDFGHKMS") + f"{r.randrange(10**6, 10**7)}",
        None,
    ),
    (
        _E,
        "Bank account number {} is closed.",
        "US_BANK_NUMBER",
        lambda f, r: f"{r.randrange(10**9, 10**12)}",
        None,
    ),
    (
        _E,
        "Patient ID {} was moved to another ward.",
        "ID_NUMBER",
        lambda f, r: _alnum(r, 3, string.ascii_uppercase) + f"-{r.randrange(10**6, 10**7)}",
        None,
    ),
    (_E, "export API_KEY={}", "SECRET", _secret, None),
    (_E, "db password: {}", "SECRET", _password, None),
    (_Z, "你好，我是市场部的{}。", "PERSON", _held_out_chinese_name, None),
    (_Z, "家属{}陪同就诊。", "PERSON", _held_out_chinese_name, _zero_width),
    (
        _Z,
        "我的新地址是{}，请更新档案。",
        "LOCATION",
        lambda f, r: (
            f"{f.province()}{f.city()}{f.district()}区{f.street_name()}{r.randrange(1, 999)}号"
        ),
        None,
    ),
    (_Z, "我的身份证号是{}。", "CN_ID_CARD", _cn_id, _fullwidth_or_grouped),
    (_Z, "有问题请打我手机{}。", "CN_PHONE_NUMBER", lambda f, r: f.phone_number(), _spaced),
    (
        _Z,
        "办公室电话010-{}。",
        "CN_PHONE_NUMBER",
        lambda f, r: f"{r.randrange(2 * 10**7, 9 * 10**7)}",
        None,
    ),
    (_Z, "工资卡卡号{}，请核对。", "CN_BANK_CARD", _cn_bank, None),
    (_Z, "公司统一社会信用代码为{}。", "CN_USCC", _uscc, None),
    (
        _Z,
        "护照号码{}已登记。",
        "CN_PASSPORT",
        lambda f, r: "E" + f"{r.randrange(10**7, 10**8)}",
        None,
    ),
    (
        _Z,
        "港澳通行证号{}。",
        "CN_TRAVEL_PERMIT",
        lambda f, r: "C" + f"{r.randrange(10**7, 10**8)}",
        None,
    ),
    (_Z, "车牌号{}的车辆已登记。", "CN_LICENSE_PLATE", _plate, None),
    (_Z, "加我QQ {} 联系。", "QQ_NUMBER", lambda f, r: str(r.randrange(10**5, 10**10)), None),
    (
        _Z,
        "我的微信号是 {}，方便联系。",
        "WECHAT_ID",
        lambda f, r: "wx_" + _alnum(r, 8).lower(),
        None,
    ),
    (_Z, "请发邮件到{}。", "EMAIL_ADDRESS", lambda f, r: f.email(), _fullwidth),
    (_Z, "数据库密码：{}", "SECRET", _password, None),
    (_Z, "阿里云AccessKey {} 已泄露。", "SECRET", _secret, None),
)
