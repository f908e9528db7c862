"""PERSON: the cells of a table's name column (CSV, TSV, a Markdown or a pipe table).

Records hold exports pasted into a prompt ("Here is the customer list: name,email,...") or a
tool's output. A row's cells are read by position, not as sentences: `Henrik Lund,henrik@...`
gives NER no context, and a lower-case or a rare name there is missed. The header says what a
column holds: a cell under a person's field (`name`, `full name`, `customer`, `patient`,
`account holder`, `姓名`, `联系人`, `收款人` ... the same fields the form rules read, in
`en_person.PERSON_FIELDS` and `cn_names.NAME_FIELDS`) is a name where it has a name's shape:
one to four words of letters, no digit, no address sign, not a placeholder (`n/a`, `unknown`,
`本人`); in Chinese two to eight Han characters (a transliteration joined by ·).

A generic header (`name`, `名字`, `名称`: a country's or a product's name as often) takes a cell
only where the name models read a person's name in it (a Chinese surname and a given name;
a Latin run the name lexicon calls a name), so `| 名字 | 人口 |` over 中国, 印度 stays places.

A header is a line of two cells or more, each a short label (three words at most, no sentence
punctuation), one of them a person's field, that opens its table: a Markdown header has its
rule (`|---|---|`) right under it, any other is the first line of its shape (a key-value
table's `| Name | Peter |` under its own header is a row, not a header). Its rows are the lines
after it with as many cells, up to the first that has not (a table ends where its shape does).
A two-cell row whose first cell is a person's field gives its second (`| Name | Peter |`,
`Name<TAB>Peter`). Cells are split on a comma, a tab, a semicolon or a pipe, quoted cells kept
whole (`"Lund, Henrik"`). Each line is read once per delimiter: linear in the text.
"""

import re

from pipelines.steps.privacy.recognizers.base import RegexRecognizer, check_deadline
from pipelines.steps.privacy.recognizers.cn_name_model import (
    given_name_score,
    reads_as_chinese_name,
    surnames,
)
from pipelines.steps.privacy.recognizers.cn_names import NAME_FIELDS, PLACEHOLDERS
from pipelines.steps.privacy.recognizers.en_names import (
    all_listed,
    english_words,
    known_place,
    name_evidence,
)
from pipelines.steps.privacy.recognizers.en_person import FIELD_PLACEHOLDERS, PERSON_FIELDS

DELIMITERS = (",", "\t", ";", "|")
_LINE = re.compile(r"[^\n]*")
_SEPARATOR_ROW = re.compile(r"[\s|:\-+=]*")
"""A Markdown table's rule under its header (`|---|:---:|`)."""
_ENGLISH_LABELS = frozenset(
    {
        *(field.replace(" ", "") for field in PERSON_FIELDS),
        *(field.replace(" ", "") + "name" for field in PERSON_FIELDS),
        *("fullname", "firstname", "lastname", "surname", "givenname", "familyname"),
        *("forename", "middlename", "holder", "contactperson", "nameofperson"),
    }
)
"""Headers that name a person's column (`customer_name`, `Full Name`), normalised."""
GENERIC_LABELS = frozenset({"name", "名字", "名称"})
"""Headers of any thing's name (a country's, a product's): a cell under them must read as a
person's name by the name models, not only have a name's shape."""
_CHINESE_LABELS = frozenset(NAME_FIELDS) - GENERIC_LABELS
_LABEL_NOISE = re.compile(r"[\s_\-.\"'“”‘’*#()（）]+")
_MAX_LABEL_WORDS = 3
_LABEL_SENTENCE = re.compile(r"[.!?。！？]\S")
_ENGLISH_NAME = re.compile(r"[^\W\d_][\w'’.\-]*(?:[ \t]+[^\W\d_][\w'’.\-]*){0,3}")
_HAN_NAME = re.compile(r"[\u4e00-\u9fff]{2,8}(?:·[\u4e00-\u9fff]{1,8})*")
SCORE = 0.85
GENERIC_SCORE = 0.6
"""Under a generic header: below NER's and LAC's places (0.85), so a listed name that is also a
country's (`| name | population |` over `Chad`) stays the place they read."""
NAME_EVIDENCE = 0.5
"""`name_evidence` a cell under a generic header needs (a listed, non-English name: 0.5)."""


def _cells(line: str, start: int, delimiter: str) -> list[tuple[int, int]]:
    """The spans (into the text) of `line`'s cells, whitespace and one pair of quotes around
    each cell left out; a delimiter inside double quotes does not split."""
    spans = []
    cell_start = 0
    quoted = False
    for index, character in enumerate(line):
        if character == '"':
            quoted = not quoted
        elif character == delimiter and not quoted:
            spans.append((cell_start, index))
            cell_start = index + 1
    spans.append((cell_start, len(line)))
    if delimiter == "|" and line.strip().startswith("|"):
        spans = spans[1:]  # a Markdown row opens and closes with a pipe
    if delimiter == "|" and line.strip().endswith("|") and spans:
        spans = spans[:-1]
    out = []
    for a, b in spans:
        while a < b and line[a] in " \t":
            a += 1
        while b > a and line[b - 1] in " \t\r":
            b -= 1
        if b - a >= 2 and line[a] == line[b - 1] and line[a] in "\"'":
            a, b = a + 1, b - 1
        out.append((start + a, start + b))
    return out


def _label(text: str) -> str:
    return _LABEL_NOISE.sub("", text).lower()


def _kind(value: str) -> str | None:
    """ "person" for a person's field, "generic" for any thing's name, else None."""
    label = _label(value)
    if label in GENERIC_LABELS or value.strip() in GENERIC_LABELS:
        return "generic"
    if label in _ENGLISH_LABELS or value.strip() in _CHINESE_LABELS:
        return "person"
    return None


def _name_columns(text: str, cells: list[tuple[int, int]]) -> dict[int, str]:
    """The indices of a header's name columns and their kind, or none if the line is no
    header (fewer than two cells, or a cell that is no short label)."""
    if len(cells) < 2:
        return {}
    columns = {}
    for index, (a, b) in enumerate(cells):
        value = text[a:b]
        if not value or len(value.split()) > _MAX_LABEL_WORDS or _LABEL_SENTENCE.search(value):
            return {}
        kind = _kind(value)
        if kind is not None:
            columns[index] = kind
    return columns


def _a_name(value: str, kind: str, english: frozenset[str]) -> bool:
    """Whether a cell has a name's shape (module docstring); under a generic header, whether
    the name models read it as a person's: a Chinese surname and a given name, or a Latin run
    the name lexicon calls a name."""
    if not value or any(c.isdigit() for c in value) or "@" in value:
        return False
    if value.strip().lower() in FIELD_PLACEHOLDERS or value.strip() in PLACEHOLDERS:
        return False
    if _HAN_NAME.fullmatch(value):
        if kind == "person":
            return True
        return reads_as_chinese_name(value) and any(
            value[: len(s)] == s
            and 1 <= len(value) - len(s) <= 2
            and given_name_score(value[len(s) :]) > 0
            for s in {value[:1], value[:2]} & surnames()
        )
    if not _ENGLISH_NAME.fullmatch(value):
        return False
    if kind == "person":
        return True
    if known_place(value) or known_place(value.title()):
        return False  # a country's or a city's name (Chad, Jordan, France are given names too)
    words = [w.capitalize() if w.islower() else w for w in value.split()]
    if all_listed(words):
        return True  # every word a listed name (Anna, Peter, Henrik Lund)
    return (name_evidence(words, english, frozenset()) or 0) >= NAME_EVIDENCE


class NameColumnRecognizer(RegexRecognizer):
    """The cells of a table's person column, and the value beside a person's label in a
    two-cell row (`| Name | Peter |`) (module docstring)."""

    ENTITY = "PERSON"
    FLAGS = 0

    def analyze(self, text, entities, nlp_artifacts=None):
        if self.ENTITY not in entities or "\n" not in text:
            return []
        english = english_words(nlp_artifacts)
        lines = [(m.start(), m.group()) for m in _LINE.finditer(text) if m.group()]
        found: dict[tuple[int, int], float] = {}
        for delimiter in DELIMITERS:
            if delimiter not in text:
                continue
            columns: dict[int, str] = {}
            width = previous_width = 0
            for number, (start, line) in enumerate(lines):
                check_deadline()
                if delimiter not in line:
                    columns, previous_width = {}, 0
                    continue
                if delimiter == "|" and _SEPARATOR_ROW.fullmatch(line):
                    continue
                cells = _cells(line, start, delimiter)
                if columns and len(cells) == width:
                    for index, kind in columns.items():
                        a, b = cells[index]
                        if _a_name(text[a:b], kind, english):
                            found[(a, b)] = SCORE if kind == "person" else GENERIC_SCORE
                    continue
                # a header opens its table: a Markdown one has its rule right under it, any
                # other is the first line of its shape
                following = lines[number + 1][1] if number + 1 < len(lines) else ""
                opens = (
                    bool(_SEPARATOR_ROW.fullmatch(following)) and "-" in following
                    if delimiter == "|"
                    else previous_width != len(cells)
                )
                if len(cells) == 2 and not opens:  # a label and its value: `| Name | Peter |`
                    (a, b), (c, d) = cells
                    kind = _kind(text[a:b])
                    if kind is not None and _a_name(text[c:d], kind, english):
                        found[(c, d)] = SCORE if kind == "person" else GENERIC_SCORE
                columns = _name_columns(text, cells) if opens else {}
                width = previous_width = len(cells)
        return [self._result(a, b, score, "table's name column") for (a, b), score in found.items()]
