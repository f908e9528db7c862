"""Realistic, keyed surrogates: a fake value of the same kind, format and language as the real one.

`surrogate(entity_type, value, key=...)` seeds a random generator (and Faker) with an HMAC-SHA256
of the entity type and a canonical form of the value under a secret key, so the same real value
gets the same surrogate in every record and every run, a different key gives different
surrogates, and without the key a surrogate cannot be linked back by guessing candidates.

What each type becomes (the choices are documented here because tests and stewards rely on them):

- PERSON: English names from Faker en_US's name lists, token by token (titles kept, initials
  stay initials, upper/lower case kept); names in Han characters from Faker zh_CN's surnames and
  given-name characters, same number of characters.
- EMAIL_ADDRESS: `firstlast42@example.com`, `.org` or `.net` (RFC 2606 reserved domains).
- PHONE_NUMBER, CN_PHONE_NUMBER: digits replaced, every separator and `+` kept. North American
  numbers use exchange 555 and line 0100-0199 (reserved for fiction); mainland mobiles keep
  `1[3-9]`; an international prefix keeps its country code.
- CREDIT_CARD, CN_BANK_CARD: same length, grouping and first two digits, Luhn-valid.
- CN_ID_CARD: 18 characters with a real region code, a plausible birth date and a valid
  ISO 7064 MOD 11-2 check character (15-digit legacy numbers stay 15 digits).
- CN_USCC: 18 characters with a valid GB 32100 check character.
- IBAN_CODE: same country and length, valid ISO 7064 mod-97 check digits (and national check
  digits where python-stdnum knows them); spacing kept.
- ABA_ROUTING_NUMBER: a valid 3-7-1 checksum.
- US_SSN: area 900-999 with group 01-49: never issued as an SSN (9xx areas are not assigned) and
  outside the ITIN groups, so it is invalid as both; separators kept.
- IP_ADDRESS: IPv4 in the documentation ranges 192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24;
  IPv6 in 2001:db8::/32.
- MAC_ADDRESS: a locally administered unicast address, separators and case kept.
- URL: the same scheme (and `www.`) on example.com/.org/.net with a Faker path.
- LOCATION, STREET_ADDRESS: Faker addresses (street, city, state, zip; line count kept) or
  place names; Chinese addresses and places from Faker zh_CN.
- DATE_OF_BIRTH: the same layout, year moved by 1 to 5, day and month redrawn within range.
- AGE: the number moved by 1 to 5 years, the words around it kept.
- Any other identifier (licences, passports, plates, QQ, WeChat): same shape, each digit,
  letter and Han character replaced by one of its kind.
- SECRET (and any `SECRET_*` type): never a surrogate; `surrogate` refuses, secrets are redacted.

Collisions: without a registry two values can draw the same surrogate (532 distinct first names
gave 264 surrogates); inside `registry_session` (the scrubber's, `resources/pii_engine.py`) a
value takes its first candidate no other value has claimed, so surrogates are distinct per key.

Faker's output for a seed is stable for the pinned Faker version; upgrading Faker can change
surrogates, which only matters for the vault (lookups of surrogates written before).
"""

import collections
import contextlib
import datetime
import hashlib
import hmac
import ipaddress
import itertools
import json
import os
import random
import re
import sqlite3
import string
import unicodedata
from collections.abc import Callable, Iterator, Mapping
from functools import cache, lru_cache
from pathlib import Path

import faker
import phonenumbers
from faker.providers.person import en_US as person_en_us
from faker.providers.person import zh_CN as person_zh_cn
from faker.providers.ssn import zh_CN as ssn_zh_cn
from stdnum import iban, luhn
from stdnum.cn import ric, uscc
from stdnum.us import rtn

from pipelines.steps.privacy.spoken import (
    MIN_WORDS,
    digit_words,
    han_digits,
    han_numerals,
    in_han_numerals,
    spoken,
    written,
)

RESERVED_DOMAINS = ("example.com", "example.org", "example.net")
DOCUMENTATION_NETWORKS = (
    ipaddress.ip_network("192.0.2.0/24"),
    ipaddress.ip_network("198.51.100.0/24"),
    ipaddress.ip_network("203.0.113.0/24"),
)
DOCUMENTATION_NETWORK_V6 = ipaddress.ip_network("2001:db8::/32")
TITLES = frozenset({"mr", "mrs", "ms", "miss", "dr", "prof", "sir", "madam", "mx", "rev"})
MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
# Province abbreviations that start a mainland licence plate.
CN_PLATE_PROVINCES = "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼"
MAX_ATTEMPTS = 64
WIDER_FROM_ATTEMPT = 16
"""From this attempt on (the first candidates were taken by other values in a registry), names
draw from a wider space: double-barrelled English names, three-character Chinese names."""
# Birth dates of Chinese ID surrogates: fixed bounds, so a surrogate never depends on the run date.
CN_BIRTH_FROM = datetime.date(1945, 1, 1)
CN_BIRTH_DAYS = (datetime.date(2005, 12, 31) - CN_BIRTH_FROM).days


class SurrogateError(ValueError):
    """No surrogate may be made for this entity type (secrets) or none is known."""


class RegistryError(RuntimeError):
    """The surrogate registry's file cannot be read (corrupt, not SQLite, not the JSON of an
    older version)."""


def is_secret(entity_type: str) -> bool:
    """Whether the type is a secret: secrets are always redacted, never given a surrogate."""
    return entity_type == "SECRET" or entity_type.startswith("SECRET_")


def has_surrogate(entity_type: str) -> bool:
    """Whether `surrogate` makes a realistic value for this type (unknown types get none)."""
    return not is_secret(entity_type) and entity_type in _GENERATORS


REGISTRY_FILE = "surrogates.sqlite"
"""The surrogate registry's file in `secrets/` (SQLite, 0600)."""
LEGACY_REGISTRY_FILE = "surrogates.json"
"""Where the registry was kept before: read once into `REGISTRY_FILE`, then removed."""
GIVEN_CACHE = 65_536
"""Surrogates a registry remembers in memory (the most recently used); any other is found
again in the file, the same one."""
_REGISTRY_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS claims (
    entity_type TEXT NOT NULL,
    surrogate TEXT NOT NULL,
    owner TEXT NOT NULL,
    PRIMARY KEY (entity_type, surrogate)
) WITHOUT ROWID;
"""


class SurrogateRegistry:
    """The surrogates already given under one key, per type, and whose value each stands for.

    Makes surrogates collision-free per key: a value takes the first of its own deterministic
    candidates (attempt 0, 1, ...) that no other value has claimed, so two people never share a
    surrogate and a vault lookup never returns two of them. Values are held only as keyed
    digests (HMAC-SHA256 under the pseudonym key, like the pseudonyms themselves), surrogates as
    their canonical form. Claims are never released (but by an erasure), so a value finds its
    own claim again at the same attempt in every later run: surrogates stay stable as long as
    the registry is kept (`registry_session` keeps it in `secrets/`).

    The claims live in SQLite (`registry_session`'s file), not in Python objects:
    a scrub's memory does not grow with the values of every drop so far. Only the last
    `GIVEN_CACHE` surrogates given are remembered in memory.
    """

    def __init__(self, key: bytes, db: sqlite3.Connection) -> None:
        self._mac_key = b"surrogate registry\x00" + key
        self._db = db
        self._given: collections.OrderedDict[tuple[str, str], str] = collections.OrderedDict()

    def digest(self, entity_type: str, folded: str) -> str:
        message = f"{entity_type}\x1f{folded}".encode("utf-8", "surrogatepass")
        return hmac.new(self._mac_key, message, hashlib.sha256).hexdigest()[:32]

    def claims(self, entity_type: str) -> dict[str, str]:
        """The canonical surrogates of a type claimed so far, each with its value's digest."""
        return dict(
            self._db.execute(
                "SELECT surrogate, owner FROM claims WHERE entity_type = ?", (entity_type,)
            )
        )

    def surrogate(self, entity_type: str, value: str, key: bytes) -> str:
        """The value's first candidate not claimed by another value (claimed for it now)."""
        given = self._given.get((entity_type, value))
        if given is not None:
            self._given.move_to_end((entity_type, value))
            return given
        mine = self.digest(entity_type, canonical(entity_type, value))
        made = placeholder(entity_type)
        for fake in _candidates(entity_type, value, key):
            folded = canonical(entity_type, fake)
            row = self._db.execute(
                "SELECT owner FROM claims WHERE entity_type = ? AND surrogate = ?",
                (entity_type, folded),
            ).fetchone()
            if row is None:
                self._db.execute("INSERT INTO claims VALUES (?, ?, ?)", (entity_type, folded, mine))
            if row is None or row[0] == mine:
                made = fake
                break
        self._given[(entity_type, value)] = made
        if len(self._given) > GIVEN_CACHE:
            self._given.popitem(last=False)
        return made


_ACTIVE_REGISTRY: list[SurrogateRegistry] = []


def open_registry(path: Path) -> sqlite3.Connection:
    """The registry file at `path` (created 0600 with its tables), in autocommit mode; the
    claims of a registry kept the old way (`LEGACY_REGISTRY_FILE` beside it, JSON) are moved
    into it and that file removed. Call it under the registry's lock
    (`path` + ".lock", `vault.exclusive_lock`)."""
    from pipelines.steps.privacy.vault import SECRET_FILE_MODE

    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        # created 0600 before SQLite opens it: its journal files take the same mode
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, SECRET_FILE_MODE))
    os.chmod(path, SECRET_FILE_MODE)
    db = sqlite3.connect(path, timeout=60, isolation_level=None)
    try:
        # a released claim (an erasure) is overwritten in the file, not left in a free page
        db.execute("PRAGMA secure_delete = ON")
        db.executescript(_REGISTRY_SCHEMA)
        legacy = path.with_name(LEGACY_REGISTRY_FILE)
        if legacy.is_file():
            stored = json.loads(legacy.read_text(encoding="utf-8"))
            with registry_transaction(db):
                # into an empty registry, or one under the same key (an older version ran
                # again after an upgrade: both files' claims are kept)
                current = db.execute("SELECT value FROM meta WHERE name = 'key_id'").fetchone()
                empty = db.execute("SELECT count(*) FROM claims").fetchone()[0] == 0
                if empty or (current is not None and current[0] == stored.get("key_id")):
                    db.execute(
                        "INSERT OR REPLACE INTO meta VALUES ('key_id', ?)",
                        (stored.get("key_id", ""),),
                    )
                    db.executemany(
                        "INSERT OR IGNORE INTO claims VALUES (?, ?, ?)",
                        (
                            (entity_type, fake, owner)
                            for entity_type, taken in stored.get("claims", {}).items()
                            for fake, owner in taken.items()
                        ),
                    )
            legacy.unlink()
    except (sqlite3.DatabaseError, ValueError, AttributeError) as exc:
        db.close()
        raise RegistryError(
            f"the surrogate registry {path} (or {LEGACY_REGISTRY_FILE} beside it) cannot be read "
            f"({type(exc).__name__}); restore it from the data root's backup: without it, new "
            "surrogates may repeat ones given before"
        ) from None
    except BaseException:
        db.close()
        raise
    return db


@contextlib.contextmanager
def locked_registry(path: Path) -> Iterator[sqlite3.Connection]:
    """The registry file at `path` (`open_registry`) under its exclusive lock, closed after."""
    from pipelines.steps.privacy.vault import exclusive_lock

    with exclusive_lock(path.with_name(path.name + ".lock")):
        db = open_registry(path)
        try:
            yield db
        finally:
            db.close()


@contextlib.contextmanager
def registry_transaction(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One write transaction on the registry: committed if the block ends without an error,
    rolled back otherwise."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


@contextlib.contextmanager
def registry_session(path: Path, key: bytes) -> Iterator[SurrogateRegistry]:
    """Make `surrogate` collision-free for the block, with the registry kept at `path`
    (`REGISTRY_FILE` in `secrets/`).

    The registry is read and written under an exclusive lock held for the whole block, so
    drops scrubbed at the same time never claim one surrogate for two values, and in one
    transaction: the block's claims are kept only if it ends without an error. A registry
    written under another key (after a rotation) is started afresh.
    """
    from pipelines.steps.privacy.vault import key_id

    with locked_registry(path) as db, registry_transaction(db):
        stored = db.execute("SELECT value FROM meta WHERE name = 'key_id'").fetchone()
        if stored is None or stored[0] != key_id(key):
            db.execute("DELETE FROM claims")
            db.execute("INSERT OR REPLACE INTO meta VALUES ('key_id', ?)", (key_id(key),))
        registry = SurrogateRegistry(key, db)
        _ACTIVE_REGISTRY.append(registry)
        try:
            yield registry
        finally:
            _ACTIVE_REGISTRY.remove(registry)


def surrogate(entity_type: str, value: str, *, key: bytes) -> str:
    """A realistic fake value of the same type, format and language as `value`.

    Deterministic under `key`: equal values (after canonicalization: case and spacing of names,
    separators of numbers) get equal surrogates; a surrogate never equals its value.

    Args:
        entity_type: Entity type, e.g. `PERSON` or `CN_ID_CARD`.
        value: The real value as found in the text.
        key: Secret HMAC key.

    Returns:
        The surrogate.

    Raises:
        SurrogateError: The type is a secret, or has no surrogate generator (see `has_surrogate`).
    """
    if is_secret(entity_type):
        raise SurrogateError(f"{entity_type} values are always redacted, never given a surrogate")
    if entity_type not in _GENERATORS:
        raise SurrogateError(f"no surrogate generator for entity type {entity_type}")
    if _ACTIVE_REGISTRY:
        return _ACTIVE_REGISTRY[-1].surrogate(entity_type, value, key)
    return _cached_surrogate(entity_type, value, key)


@lru_cache(maxsize=65_536)
def _cached_surrogate(entity_type: str, value: str, key: bytes) -> str:
    """`surrogate` for a known type; the same value recurs across a corpus (names above all)."""
    # A value without letters or digits has no realistic surrogate: never return the value.
    return next(_candidates(entity_type, value, key), f"<{entity_type}>")


def _candidates(entity_type: str, value: str, key: bytes) -> Iterator[str]:
    """The value's surrogate candidates in a fixed order (one per attempt that gives one)."""
    generator = _GENERATORS[entity_type]
    if entity_type in _SPOKEN_TYPES and digit_words(value) >= MIN_WORDS:
        generator = _read_out(generator)
    elif entity_type in _NUMERAL_TYPES and in_han_numerals(value):
        generator = _in_numerals(generator)
    folded = canonical(entity_type, value)
    # HMAC pads short keys with zero bytes: the length prefix keeps b"k" and b"k\0" apart.
    mac_key = len(key).to_bytes(4, "big") + key
    for attempt in range(MAX_ATTEMPTS):
        digest = hmac.new(
            mac_key,
            f"{entity_type}\x1f{folded}\x1f{attempt}".encode("utf-8", "surrogatepass"),
            hashlib.sha256,
        ).digest()
        try:
            fake = generator(value, _Draw(digest, attempt))
        except (ValueError, KeyError, IndexError):  # a value too malformed for its type's layout
            fake = None
        if fake and _unrelated(canonical(entity_type, fake), folded):
            if fake != value and (len(value) < 3 or value not in fake):
                yield fake


_SPOKEN_TYPES = frozenset({"PHONE_NUMBER", "US_SSN", "ID_NUMBER"})
"""Types a number read out in digit words is found as (`recognizers.en_spelled`)."""


def _read_out(
    generator: Callable[[str, "_Draw"], str | None],
) -> Callable[[str, "_Draw"], str | None]:
    """`generator` for a number read out in words: the digits' surrogate, read out in words."""

    def made(value: str, draw: _Draw) -> str | None:
        fake = generator(written(value), draw)
        return spoken(fake) if fake else fake

    return made


def _in_numerals(
    generator: Callable[[str, "_Draw"], str | None],
) -> Callable[[str, "_Draw"], str | None]:
    """`generator` for a number written in Chinese numerals (一三九…, 壹贰叁…): the digits'
    surrogate, in the same form of numerals."""

    def made(value: str, draw: _Draw) -> str | None:
        fake = generator(han_digits(value), draw)
        return han_numerals(fake, like=value) if fake else fake

    return made


def _unrelated(made: str, canonical: str) -> bool:
    """The surrogate neither equals nor contains the value (3 or more characters) by chance."""
    return made != canonical and (len(canonical) < 3 or canonical not in made)


class _Draw:
    """Randomness for one surrogate: a `random.Random` and Faker instances seeded from a digest."""

    def __init__(self, digest: bytes, attempt: int = 0) -> None:
        self.seed = int.from_bytes(digest, "big")
        self.rng = random.Random(self.seed)
        self.attempt = attempt

    def faker(self, locale: str) -> faker.Faker:
        fake = _faker(locale)
        fake.seed_instance(self.seed)
        return fake

    def digits(self, count: int) -> str:
        return "".join(self.rng.choice(string.digits) for _ in range(count))


@cache
def _faker(locale: str) -> faker.Faker:
    return faker.Faker(locale)


@cache
def _names(locale: str, kind: str) -> tuple[tuple[str, ...], tuple[float, ...] | None]:
    """Faker's name list of a locale (`first_names` or `last_names`) and cumulative weights."""
    provider = {"en_US": person_en_us.Provider, "zh_CN": person_zh_cn.Provider}[locale]
    names = getattr(provider, kind)
    if isinstance(names, dict):
        return tuple(names), tuple(itertools.accumulate(names.values()))
    return tuple(names), None


def _name(draw: "_Draw", locale: str, kind: str) -> str:
    names, weights = _names(locale, kind)
    return draw.rng.choices(names, cum_weights=weights)[0]


def canonical(entity_type: str, value: str) -> str:
    """The form that decides a surrogate: case, width and spacing folded; numbers alphanumeric."""
    folded = " ".join(unicodedata.normalize("NFKC", value).casefold().split())
    # the same number in digits or in Chinese numerals is one value
    if entity_type in _NUMBER_TYPES:
        return "".join(c for c in han_digits(folded) if c.isalnum())
    if entity_type in _NUMERAL_TYPES and in_han_numerals(folded):
        return han_digits(folded)
    return folded


def _has_han(text: str) -> bool:
    return any("\u4e00" <= c <= "\u9fff" or "\u3400" <= c <= "\u4dbf" for c in text)


def _case_like(template: str, text: str) -> str:
    letters = [c for c in template if c.isalpha()]
    if letters and all(c.isupper() for c in letters) and len(letters) > 1:
        return text.upper()
    if letters and all(c.islower() for c in letters):
        return text.lower()
    return text


def _fill(layout: str, chars: str) -> str:
    """Put `chars` into the alphanumeric positions of `layout`, keeping every other character."""
    supply = iter(chars)
    return "".join(next(supply, "0") if c.isalnum() else c for c in layout)


def _shape(value: str, draw: _Draw) -> str:
    """Same shape: each digit, ASCII letter (case kept) and Han character replaced by its kind."""
    out = []
    for i, c in enumerate(value):
        if c.isdigit():
            leading = i == 0 or not value[i - 1].isdigit()
            out.append(draw.rng.choice("123456789" if leading and c != "0" else string.digits))
        elif c in string.ascii_uppercase:
            out.append(draw.rng.choice(string.ascii_uppercase))
        elif c in string.ascii_lowercase:
            out.append(draw.rng.choice(string.ascii_lowercase))
        elif _has_han(c):
            out.append(draw.rng.choice(_name(draw, "zh_CN", "first_names")))
        else:
            out.append(c)
    return "".join(out)


# --- names, places, contacts -----------------------------------------------------------------


def _person(value: str, draw: _Draw) -> str:
    if _has_han(value):
        return _han_name(value, draw)
    tokens = value.split()
    titled = any(t.strip(".,").casefold() in TITLES for t in tokens)
    names = [i for i, t in enumerate(tokens) if t.strip(".,").casefold() not in TITLES]
    out = []
    for i, token in enumerate(tokens):
        bare = token.strip(".,")
        if bare.casefold() in TITLES:
            out.append(token)
        elif len(bare) == 1:
            out.append(_case_like(bare, draw.rng.choice(string.ascii_uppercase)) + token[1:])
        else:
            surname = i == names[-1] and (len(names) > 1 or titled)
            kind = "last_names" if surname else "first_names"
            name = _name(draw, "en_US", kind)
            if draw.attempt >= WIDER_FROM_ATTEMPT:  # a taken name: double-barrelled ones
                name += "-" + _name(draw, "en_US", kind)
            out.append(_case_like(bare, name) + token[len(token.rstrip(".,")) :])
    return " ".join(out)


def _han_name(value: str, draw: _Draw) -> str:
    if len(value.strip()) == 1:  # a surname alone (马 of 马先生): a surname
        surname = _name(draw, "zh_CN", "last_names")
        while len(surname) != 1:
            surname = _name(draw, "zh_CN", "last_names")
        return surname
    length = max(2, len(value.strip()))
    if draw.attempt >= WIDER_FROM_ATTEMPT and length == 2:
        length = 3  # every two-character name may be taken: a three-character one
    surname = _name(draw, "zh_CN", "last_names")
    while len(surname) >= length:
        surname = _name(draw, "zh_CN", "last_names")
    given = ""
    while len(given) < length - len(surname):  # given names have one or two characters
        given += _name(draw, "zh_CN", "first_names")
    return surname + given[: length - len(surname)]


def _email(value: str, draw: _Draw) -> str:
    first, last = _name(draw, "en_US", "first_names"), _name(draw, "en_US", "last_names")
    # No dot in the local part: "me at a.b@..." reads as a host to the obfuscation pass.
    local = f"{first}{last}{draw.rng.randrange(10, 100)}".lower()
    domain = draw.rng.choice(RESERVED_DOMAINS)
    return _case_like(value, f"{local}@{domain}")


def _location(value: str, draw: _Draw) -> str:
    if _has_han(value):
        fake = draw.faker("zh_CN")
        if len(value) <= 4:
            return fake.city_name() if len(value) <= 3 else fake.province()
        return fake.address().split(" ")[0]
    fake = draw.faker("en_US")
    lines = value.splitlines()
    if len(lines) > 1:
        made = [fake.street_address(), fake.secondary_address(), fake.city()]
        out = made[: len(lines) - 1] + [f"{fake.city()}, {fake.state_abbr()} {fake.zipcode()}"]
        return "\n".join(_case_like(old, new) for old, new in zip(lines, out, strict=False))
    if any(c.isdigit() for c in value):
        street = fake.street_address()
        if "," in value:
            return f"{street}, {fake.city()}, {fake.state_abbr()} {fake.zipcode()}"
        return _case_like(value, street)
    if re.fullmatch(r"[^,]+,\s*[A-Z]{2}", value.strip()):
        return f"{fake.city()}, {fake.state_abbr()}"
    return _case_like(value, fake.city())


def _url(value: str, draw: _Draw) -> str:
    scheme = re.match(r"[A-Za-z][A-Za-z0-9+.-]*://", value)
    host = draw.rng.choice(RESERVED_DOMAINS)
    rest = value[scheme.end() :] if scheme else value
    if rest.lower().startswith("www."):
        host = "www." + host
    path = "/" + draw.faker("en_US").uri_path() if "/" in rest.rstrip("/") else ""
    return f"{scheme.group(0) if scheme else ''}{host}{path}"


def _ip(value: str, draw: _Draw) -> str | None:
    address, slash, suffix = value.partition("/")
    try:
        parsed = ipaddress.ip_address(address.strip("[]"))
    except ValueError:
        return _shape(value, draw)
    if parsed.version == 4:
        network = draw.rng.choice(DOCUMENTATION_NETWORKS)
        made = network[draw.rng.randrange(1, 255)]
    else:
        made = DOCUMENTATION_NETWORK_V6[draw.rng.getrandbits(96)]
    return f"{made}{slash}{suffix}"


def _mac(value: str, draw: _Draw) -> str:
    octets = [draw.rng.randrange(256) for _ in range(6)]
    octets[0] = (octets[0] | 0x02) & 0xFE  # locally administered, unicast
    hexed = "".join(f"{o:02x}" for o in octets)
    if not any(c.isupper() for c in value):
        return _fill(value, hexed) if _alnum_count(value) == 12 else hexed
    return _fill(value, hexed.upper()) if _alnum_count(value) == 12 else hexed.upper()


def _alnum_count(text: str) -> int:
    return sum(c.isalnum() for c in text)


# --- numbers with layouts and checksums --------------------------------------------------------


def _phone(value: str, draw: _Draw) -> str:
    return _phone_like(value, draw, home="1")


def _cn_phone(value: str, draw: _Draw) -> str:
    """A mainland number (one read out in Chinese numerals gets one in numerals: `_in_numerals`)."""
    return _phone_like(value, draw, home="86")


def _phone_like(value: str, draw: _Draw, *, home: str) -> str:
    """Digits replaced, layout kept; `home` is the country code assumed without a `+` prefix."""
    digits = "".join(c for c in value if c.isdigit())
    country = ""
    if value.lstrip().startswith("+"):
        try:
            country = str(phonenumbers.parse(value, None).country_code)
        except phonenumbers.NumberParseException:
            country = digits[:2]
    national = digits[len(country) :]
    if (country or home) == "1" and len(national) >= 10:
        lead = "1" if national[0] == "1" and len(national) >= 11 else ""
        area = f"{draw.rng.randrange(2, 10)}{draw.rng.randrange(10)}{draw.rng.randrange(10)}"
        made = lead + area + "555" + "01" + draw.digits(2)
    elif (country or home) == "86" and national[:1] == "1" and len(national) >= 11:
        made = "1" + draw.rng.choice("35789") + draw.digits(9)
    elif national[:1] == "0":  # trunk prefix and area code of a landline stay
        made = national[:3] + draw.rng.choice("2345678") + draw.digits(max(0, len(national) - 4))
    else:
        made = draw.rng.choice("23456789") + draw.digits(max(0, len(national) - 1))
    made += draw.digits(len(national) - len(made))  # extension digits
    return _fill_digits(value, country + made[: len(national)])


def _fill_digits(layout: str, digits: str) -> str:
    supply = iter(digits)
    return "".join(next(supply, "0") if c.isdigit() else c for c in layout)


def _card(value: str, draw: _Draw) -> str:
    digits = "".join(c for c in value if c.isdigit())
    body = digits[:2] + draw.digits(max(0, len(digits) - 3))
    return _fill_digits(value, body + luhn.calc_check_digit(body))


def _cn_id_card(value: str, draw: _Draw) -> str | None:
    compact = "".join(c for c in value if c.isalnum())
    for _ in range(MAX_ATTEMPTS):
        born = CN_BIRTH_FROM + datetime.timedelta(days=draw.rng.randrange(CN_BIRTH_DAYS))
        body = draw.rng.choice(_cn_counties()) + born.strftime("%Y%m%d") + draw.digits(3)
        number = body + ric.calc_check_digit(body)
        if ric.is_valid(number):  # the county existed in the birth year
            break
    else:
        return None
    if len(compact) == 15:  # legacy: no century digits, no check character
        number = number[:6] + number[8:17]
    made = number[: len(compact)]
    if value[-1:].islower():
        made = made.lower()
    return _fill(value, made) if len(compact) in (15, 18) else _shape(value, draw)


@cache
def _cn_counties() -> tuple[str, ...]:
    """County-level administrative division codes (Faker zh_CN's list, prefecture rows dropped)."""
    return tuple(code for code in ssn_zh_cn.Provider.area_codes if not code.endswith("00"))


def _cn_uscc(value: str, draw: _Draw) -> str:
    region = draw.rng.choice(_cn_counties())
    alphabet = "0123456789ABCDEFGHJKLMNPQRTUWXY"
    body = "91" + region + "".join(draw.rng.choice(alphabet) for _ in range(9))
    return _fill(value, body + uscc.calc_check_digit(body))


def _iban(value: str, draw: _Draw) -> str | None:
    compact = "".join(c for c in value if c.isalnum()).upper()
    country, bban = compact[:2], compact[4:]
    for _ in range(MAX_ATTEMPTS * 8):
        made = _shape(bban, draw)
        number = country + iban.calc_check_digits(country + "00" + made) + made
        if iban.is_valid(number) or not iban.is_valid(compact):
            return _fill(value, number if value[:1].isupper() else number.lower())
    return None


def _routing(value: str, draw: _Draw) -> str:
    prefix = f"{draw.rng.choice([*range(1, 13), *range(21, 33), *range(61, 73)]):02d}"
    body = prefix + draw.digits(6)
    return _fill_digits(value, body + rtn.calc_check_digit(body))


def _ssn(value: str, draw: _Draw) -> str:
    digits = f"{draw.rng.randrange(900, 1000)}{draw.rng.randrange(1, 50):02d}"
    digits += f"{draw.rng.randrange(1, 10000):04d}"
    return _fill_digits(value, digits) if _digit_count(value) == 9 else digits


def _digit_count(text: str) -> int:
    return sum(c.isdigit() for c in text)


def _plate(value: str, draw: _Draw) -> str:
    made = _shape(value, draw)
    if made and _has_han(made[0]):
        made = draw.rng.choice(CN_PLATE_PROVINCES) + made[1:]
    return made


# --- dates and ages -----------------------------------------------------------------------------


_FULL_MONTHS = frozenset(month.lower() for month in MONTHS)


def _date(value: str, draw: _Draw) -> str:
    def number(match: re.Match[str]) -> str:
        text = match.group(0)
        n = int(text)
        if len(text) == 4:
            return str(n + draw.rng.choice((-1, 1)) * draw.rng.randrange(1, 6))
        if n > 12:
            made = draw.rng.randrange(13, 29)
        else:
            made = draw.rng.randrange(1, 13)
        return f"{made:0{len(text)}d}" if text.startswith("0") else str(made)

    def month(match: re.Match[str]) -> str:
        # A month written in full stays in full ("June" is four letters, not "Nove"); an
        # abbreviation ("Jun", "Sept") is one of three letters.
        text = match.group(0)
        name = draw.rng.choice(MONTHS)
        written_in_full = text.lower() in _FULL_MONTHS
        return _case_like(text, name if written_in_full else name[:3])

    months = "|".join(["Sept", *(m[:3] + f"(?:{m[3:]})?" for m in MONTHS)])
    made = re.sub(rf"\b(?:{months})\b", month, value, flags=re.IGNORECASE)
    return re.sub(r"\d+", number, made)


def _age(value: str, draw: _Draw) -> str:
    def shift(match: re.Match[str]) -> str:
        n = int(match.group(0))
        step = draw.rng.randrange(1, 6)
        return str(n + step if n - step < 1 else n + draw.rng.choice((-1, 1)) * step)

    if not any(c.isdigit() for c in value):
        return _shape(value, draw)
    return re.sub(r"\d+", shift, value, count=1)


_GENERATORS: dict[str, Callable[[str, _Draw], str | None]] = {
    "PERSON": _person,
    "EMAIL_ADDRESS": _email,
    "PHONE_NUMBER": _phone,
    "CN_PHONE_NUMBER": _cn_phone,
    "LOCATION": _location,
    "STREET_ADDRESS": _location,
    "DATE_OF_BIRTH": _date,
    "AGE": _age,
    "CREDIT_CARD": _card,
    "CN_BANK_CARD": _card,
    "US_SSN": _ssn,
    "IBAN_CODE": _iban,
    "ABA_ROUTING_NUMBER": _routing,
    "IP_ADDRESS": _ip,
    "MAC_ADDRESS": _mac,
    "URL": _url,
    "CN_ID_CARD": _cn_id_card,
    "CN_USCC": _cn_uscc,
    "CN_LICENSE_PLATE": _plate,
    "US_DRIVER_LICENSE": _shape,
    "US_PASSPORT": _shape,
    "US_BANK_NUMBER": _shape,
    "CN_PASSPORT": _shape,
    "CN_TRAVEL_PERMIT": _shape,
    "QQ_NUMBER": _shape,
    "WECHAT_ID": _shape,
    "ID_NUMBER": _shape,
    "USER_HANDLE": _shape,
}
_NUMBER_TYPES = frozenset(
    {
        "PHONE_NUMBER",
        "CN_PHONE_NUMBER",
        "CREDIT_CARD",
        "CN_BANK_CARD",
        "US_SSN",
        "IBAN_CODE",
        "ABA_ROUTING_NUMBER",
        "CN_ID_CARD",
        "CN_USCC",
        "US_BANK_NUMBER",
        "QQ_NUMBER",
        "MAC_ADDRESS",
    }
)
_NUMERAL_TYPES = _NUMBER_TYPES | _SPOKEN_TYPES
"""Types whose value may be written in Chinese numerals (`spoken.HAN_RUN`): a surrogate in the
same numerals (`_in_numerals`), the same one as for the digits."""


# --- operators ----------------------------------------------------------------------------------

PLACEHOLDER = "placeholder"
REDACT = "redact"
PSEUDONYM = "pseudonym"
REDACTED = "[REDACTED]"
"""The fixed mark that replaces a redacted value (every secret, and types configured `redact`)."""


def placeholder(entity_type: str) -> str:
    """The placeholder of a type, e.g. `<PERSON>`."""
    return f"<{entity_type}>"


def operator_for(entity_type: str, operators: Mapping[str, str]) -> str:
    """The operator that replaces values of `entity_type`.

    Secrets are always redacted. A configured operator wins otherwise, except that `pseudonym`
    falls back to `placeholder` for a type without a surrogate generator; an unconfigured type
    gets `pseudonym` where a surrogate exists, else `placeholder`: every type is replaced.

    Args:
        entity_type: Entity type of the finding.
        operators: `pii.operators` from the configuration.

    Returns:
        `placeholder`, `redact` or `pseudonym`.
    """
    if is_secret(entity_type):
        return REDACT
    chosen = operators.get(entity_type, PSEUDONYM)
    if chosen == PSEUDONYM and not has_surrogate(entity_type):
        return PLACEHOLDER
    return chosen
