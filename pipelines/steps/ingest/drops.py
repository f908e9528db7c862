"""Data drops: each top-level file or folder in the landing zone is one unit of ingestion.

A drop is named by a partition key derived from its name (`drop_key`) and fingerprinted by the
sha256 of its bytes (`drop_fingerprint`), so a changed drop is noticed and never silently
re-used. `combine_drops` joins every accepted drop into the one corpus training reads, removing
exact copies and colliding ids across drops, each counted with its reason.
"""

import hashlib
import hmac
import json
import os
import re
import secrets
import shutil
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path

from pipelines.steps.ingest.landing import entry_sha256, landing_entries
from pipelines.steps.integrity.curate import normalize_for_dedup
from pipelines.steps.privacy.identifiers import IDENTIFIER_MAP, forget_drop
from pipelines.steps.records import Record

MAX_KEY_CHARS = 64
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")
_HASHED_KEY = re.compile(r"drop-[0-9a-f]{12}")
"""The shape of a hashed key: a name of this shape is hashed in turn, so it never takes the key
another entry's name hashes to (it could otherwise fail the whole scan with a collision)."""
# Names being written (hidden, or a copy's temporary suffix) are not drops yet: write a drop
# under such a name and rename it into place when complete.
IN_PROGRESS_SUFFIXES = (".tmp", ".part", ".partial", ".crdownload")

CROSS_DROP_EXACT_DUPLICATE = "cross_drop_exact_duplicate"
CROSS_DROP_DUPLICATE_ID = "cross_drop_duplicate_id"


class DropError(ValueError):
    """A drop that cannot be used as it stands; the message names the drop and what to fix."""


@dataclass(frozen=True)
class Drop:
    """One landing entry: its partition key, its name under `landing/`, and its fingerprint."""

    key: str
    name: str
    path: Path
    sha256: str


DROP_KEY_SALT = ".sovtune-drop-key.salt"
"""In the landing zone (hidden, 0600, created on first scan): the secret that keys hashed drop
keys, so a key such as `drop-3f9a…` cannot be reversed by hashing guessed names (an SSN has
only 10^9 values). It stays beside the names it hides; nothing outside the landing zone holds it."""

_DATA_SUFFIXES = (".jsonl", ".json", ".csv", ".parquet")
_LETTERS = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])")


@cache
def _known_names() -> frozenset[str]:
    """Given names and surnames (Faker's en_US lists, lower case, 3 letters or more)."""
    from faker.providers.person.en_US import Provider

    names = {*Provider.first_names, *Provider.last_names}
    return frozenset(n.lower() for n in names if len(n) >= 3)


def looks_personal(name: str) -> bool:
    """Whether a landing entry's name may carry personal data, by pattern (fail closed).

    True for more than four digits (an SSN, a phone, card or account number, a birth date), a
    letter run that is a known given name or surname (`John_Smith`, `jane`) or holds one of
    four letters or more (`exportjane`), or two words
    joined by a dot in the stem (`jane.doe`, the shape of an e-mail's local part).
    """
    stem = name
    for suffix in _DATA_SUFFIXES:
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    if sum(c.isdigit() for c in stem) > 4:
        return True
    if re.search(r"[A-Za-z]{2,}\.[A-Za-z]{2,}", stem):
        return True
    words = [w.lower() for w in _LETTERS.findall(stem)]
    if any(w in _known_names() for w in words):
        return True
    # run together (`exportjane`, `janedoe`): a name of four letters or more inside a word
    lowered = stem.lower()
    return any(n in lowered for n in _known_names() if len(n) >= 4)


def landing_salt(landing: Path) -> bytes:
    """The landing zone's drop-key secret (`DROP_KEY_SALT`), created 0600 when missing.

    Created under a temporary name and linked into place, so two scans at once agree on one.

    Raises:
        DropError: the salt cannot be created or read (the message names the file).
    """
    path = Path(landing) / DROP_KEY_SALT
    try:
        if not os.path.lexists(path):
            tmp = path.with_name(f"{DROP_KEY_SALT}.{secrets.token_hex(8)}.tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(secrets.token_bytes(32))
                os.link(tmp, path)
            except FileExistsError:
                pass  # another scan made it first: use theirs
            finally:
                tmp.unlink(missing_ok=True)
        with open(path, "rb", opener=lambda p, f: os.open(p, f | os.O_NOFOLLOW)) as handle:
            salt = handle.read(64)
    except OSError as exc:
        raise DropError(
            f"cannot create or read the drop-key salt {path} ({exc.strerror}): make the landing "
            "zone writable once, or create the file with 32 random bytes, mode 0600"
        ) from None
    if len(salt) < 16:
        raise DropError(f"{path} holds under 16 bytes: delete it to create a new one")
    return salt


def drop_key(name: str, salt: bytes | None = None) -> str:
    """A partition key for a landing entry's name: safe characters only, at most 64 of them.

    A name that is safe and does not look personal (`looks_personal`) is its own key
    (`default`, `chat.jsonl`, `exports`); any other becomes `drop-` and 12 hex digits of the
    name's HMAC-SHA256 under the landing zone's `salt` (plain sha256 without one), and nothing
    of the name itself. The key is seen everywhere (the Dagster UI, run tags, metadata, folder
    names, the report): the characters that make a name unsafe are those of e-mail addresses
    (`@`), names (spaces, accents, Han characters) and phone numbers (`+`, spaces), and a safe
    name can still be an SSN (`536-90-4399`), a phone number or a person (`John_Smith`,
    `jane.doe`): such a name never reaches the key, even in part (issue #16).
    """
    if (
        _SAFE.search(name) is None
        and name.strip("._-") == name
        and len(name) <= MAX_KEY_CHARS
        and not looks_personal(name)
        and not _HASHED_KEY.fullmatch(name)
    ):
        return name
    data = name.encode("utf-8", "surrogateescape")
    if salt is None:
        digest = hashlib.sha256(data).hexdigest()
    else:
        digest = hmac.new(salt, data, hashlib.sha256).hexdigest()
    return f"drop-{digest[:12]}"


def drop_files(path: Path) -> list[Path]:
    """The entries of a drop in sorted order: the entry itself, or every visible entry of a folder.

    Nothing is followed: a drop that is a symbolic link (to a file or a folder) or a special
    file is its own single entry, and a link inside a folder is listed, not descended into, so
    that ingestion refuses it with a reason (`symlink_refused`, `special_file_refused`).
    """
    if os.path.islink(path) or not path.is_dir():
        return [path]
    return landing_entries(path)


def drop_fingerprint(path: Path) -> str:
    """sha256 of a drop: of the file's bytes, or over each entry's relative path and sha256.

    A link or special file contributes a marker of its kind, never its target's bytes.
    """
    root = path.parent if os.path.islink(path) or not path.is_dir() else path
    if os.path.islink(path) or not path.is_dir():
        return entry_sha256(path, root=root)
    digest = hashlib.sha256()
    for file in drop_files(path):
        digest.update(str(file.relative_to(path)).encode("utf-8", "surrogateescape"))
        digest.update(entry_sha256(file, root=root).encode())
    return digest.hexdigest()


def scan_landing(landing: Path) -> list[Drop]:
    """Every complete drop in the landing zone, sorted by key.

    A top-level symbolic link or special file is a drop too (never followed): its run
    quarantines it as `symlink_refused` or `special_file_refused`, so the steward sees it.

    Raises:
        DropError: two entries whose names map to the same key (rename one of them).
    """
    drops: dict[str, Drop] = {}
    if not landing.is_dir():
        return []
    salt = landing_salt(landing)
    for entry in sorted(landing.iterdir()):
        name = entry.name
        if name.startswith(".") or name.endswith(IN_PROGRESS_SUFFIXES):
            continue
        key = drop_key(name, salt)
        if key in drops:
            raise DropError(
                f"landing entries {drops[key].name!r} and {name!r} both map to drop key "
                f"{key!r}: rename one of them"
            )
        drops[key] = Drop(key=key, name=name, path=entry, sha256=drop_fingerprint(entry))
    return [drops[k] for k in sorted(drops)]


def find_drop(landing: Path, key: str) -> Drop:
    """The landing entry whose key is `key`.

    Raises:
        DropError: no such entry (the drop was removed or renamed).
    """
    for drop in scan_landing(landing):
        if drop.key == key:
            return drop
    raise DropError(
        f"drop {key!r} is registered but no entry of {landing} maps to it: it was removed or "
        "renamed (the data_drops sensor then deletes the partition)"
    )


WITHDRAWALS_LOG = "withdrawals.jsonl"
"""Under the data root: one JSON line per withdrawn drop (key, time, files removed per zone)."""


JOINED = {
    "raw": "raw_corpus.parquet",
    "scrubbed": "scrubbed_corpus.parquet",
    "curated": "curated_corpus.parquet",
}
"""The joined corpora `training_corpus` writes from every drop, per zone."""
CROSS_DROP_REMOVED = "cross_drop_removed.parquet"
TRAINING_SUMMARY = "training_corpus.json"


def withdraw_drop(
    root: Path, key: str, *, now: datetime | None = None, pickles: Path | None = None
) -> dict[str, int]:
    """Delete a withdrawn drop's files and records from every zone and log it; returns files
    removed per zone.

    A drop that left the landing zone must not live on in the raw, scrubbed or curated zones
    (its personal data would outlast its withdrawal):

    - its records leave the joined corpora (`raw/raw_corpus.parquet`,
      `scrubbed/scrubbed_corpus.parquet`, `curated/curated_corpus.parquet`: the rows whose
      (id, source_file) its own zone files hold) and `curated/cross_drop_removed.parquet`;
      `curated/training_corpus.json` loses its entry and is marked `stale` (a re-join is due:
      records of other drops that were removed as copies of the withdrawn ones come back only
      then, and an adapter already trained on the drop must be retrained);
    - every `<zone>/drops/<key>/` folder under `root` is deleted without following links;
    - with `pickles` (the Dagster instance's storage folder), the pickled step summaries of
      the drop's partition (`<pickles>/<asset>/<key>`) are deleted;
    - the ids, subjects, sources and file names that only this drop used leave the identifier
      map (`raw/identifiers.sqlite`);
    - a line with the key, the time, the files removed per zone, the records removed from the
      joined files and the identifiers forgotten (ids and counts only) is appended to
      `WITHDRAWALS_LOG`, with `rejoin_needed`.

    Raises:
        DropError: a key that could name a folder outside a zone's `drops/`.
    """
    if not key or key.startswith(".") or "/" in key or "\\" in key:
        raise DropError(f"data drop key {key!r} is not a safe folder name: nothing withdrawn")
    root = Path(root)
    removed: dict[str, int] = {}
    joined_removed = _remove_from_joined(root, key)
    zones = sorted(p for p in root.iterdir() if p.is_dir() and not p.is_symlink())
    for zone in zones:
        if zone.name == "landing":
            continue
        folder = zone / "drops" / key
        if folder.is_symlink():
            folder.unlink()
            removed[zone.name] = 1
        elif folder.is_dir():
            removed[zone.name] = sum(len(files) for _, _, files in os.walk(folder))
            shutil.rmtree(folder)
    pickled = 0
    if pickles is not None and Path(pickles).is_dir():
        for asset in sorted(Path(pickles).iterdir()):
            target = asset / key
            if (
                asset.is_dir()
                and not asset.is_symlink()
                and (target.is_file() or target.is_symlink())
            ):
                target.unlink()
                pickled += 1
    entry = {
        "drop": key,
        "withdrawn_at": (now or datetime.now(UTC)).isoformat(timespec="seconds"),
        "files_removed": removed,
        "joined_records_removed": joined_removed,
        "pickled_summaries_removed": pickled,
        "rejoin_needed": any(joined_removed.values()),
        "identifiers_forgotten": forget_drop(root / "raw" / IDENTIFIER_MAP, key),
    }
    with open(root / WITHDRAWALS_LOG, "a", encoding="utf-8") as log:
        log.write(json.dumps(entry, sort_keys=True) + "\n")
    return removed


def _remove_from_joined(root: Path, key: str) -> dict[str, int]:
    """Rows of drop `key` removed from each joined file (by the (id, source_file) pairs of the
    drop's own files in the same zone); the training summary loses its entry, marked stale."""
    from pipelines.steps.storage import read_parquet, write_json, write_parquet

    counts: dict[str, int] = {}
    for zone, name in JOINED.items():
        joined, folder = root / zone / name, root / zone / "drops" / key
        if not joined.is_file() or joined.is_symlink() or not folder.is_dir():
            continue
        pairs: set[tuple[str, str]] = set()
        for part in sorted(folder.glob("*.parquet")):
            try:
                frame = read_parquet(part)
            except Exception:  # noqa: BLE001 - a file that is not a table holds no rows
                continue
            if {"id", "source_file"} <= set(frame.columns):
                pairs.update(
                    zip(frame["id"].astype(str), frame["source_file"].astype(str), strict=True)
                )
        if not pairs:
            continue
        frame = read_parquet(joined)
        mine = [
            (i, f) in pairs
            for i, f in zip(frame["id"].astype(str), frame["source_file"].astype(str), strict=True)
        ]
        if any(mine):
            write_parquet(frame[[not m for m in mine]].reset_index(drop=True), joined)
        counts[zone] = sum(mine)
    cross = root / "curated" / CROSS_DROP_REMOVED
    if cross.is_file() and not cross.is_symlink():
        frame = read_parquet(cross)
        if "drop" in frame.columns and (frame["drop"] == key).any():
            counts["cross_drop_removed"] = int((frame["drop"] == key).sum())
            write_parquet(frame[frame["drop"] != key].reset_index(drop=True), cross)
    summary_path = root / "curated" / TRAINING_SUMMARY
    if summary_path.is_file() and not summary_path.is_symlink():
        summary = json.loads(summary_path.read_text(encoding="utf-8"))
        drops = summary.get("drops", [])
        if any(d.get("drop") == key for d in drops):
            summary["drops"] = [d for d in drops if d.get("drop") != key]
            summary["stale"] = True
            summary["withdrawn_since_join"] = sorted(
                {*summary.get("withdrawn_since_join", []), key}
            )
            write_json(summary, summary_path)
            counts["training_summary"] = 1
    return counts


def snapshot_fingerprint(drops: dict[str, str]) -> str:
    """sha256 over every drop's key and fingerprint, in key order: the data snapshot's id."""
    digest = hashlib.sha256()
    for key in sorted(drops):
        digest.update(f"{key}\x1f{drops[key]}\x1e".encode())
    return digest.hexdigest()


def content_digest(record: Record) -> str:
    """sha256 of a record's roles and normalized contents (the dedup screen's exact copy)."""
    digest = hashlib.sha256()
    for message in record.messages:
        digest.update(f"{message.role}\x1f{normalize_for_dedup(message.content)}\x1e".encode())
    return digest.hexdigest()


@dataclass(kw_only=True)
class CrossDropRemovals:
    """What a join of the drops removed across drops, counted by reason and by drop."""

    removed: list[tuple[str, str, str]]
    """(drop key, record id, reason) of each record removed across drops."""

    def removed_by_reason(self) -> dict[str, int]:
        return dict(sorted(Counter(reason for _, _, reason in self.removed).items()))

    def removed_by_drop(self) -> dict[str, int]:
        return dict(sorted(Counter(key for key, _, _ in self.removed).items()))


@dataclass(kw_only=True)
class CombinedDrops(CrossDropRemovals):
    """Every drop's kept records joined; what was removed across drops, by reason and drop."""

    records: list[Record]


def combine_drops(kept_by_drop: dict[str, list[Record]]) -> CombinedDrops:
    """Join drops in key order; the first occurrence of a content or an id wins.

    A later record with the same normalized content as an earlier one is removed as
    `cross_drop_exact_duplicate`; a later record whose id is already used by different content
    is removed as `cross_drop_duplicate_id` (ids are the stewards' handle and the audit's key,
    so they must be unique in the training set). Nothing is removed silently: every removal is
    returned with its drop and reason. (`CrossDropJoin` decides the same a batch at a time.)
    """
    join = CrossDropJoin()
    records: list[Record] = []
    for key in sorted(kept_by_drop):
        batch = kept_by_drop[key]
        records += (r for r, kept in zip(batch, join.keep(key, batch), strict=True) if kept)
    return CombinedDrops(records=records, removed=join.removed)


class CrossDropJoin:
    """`combine_drops`'s decisions one batch of records at a time, drops in key order.

    What it holds is compact and grows with the records kept, not with their text: per kept
    record 16 bytes of its content digest and 16 bytes of a digest of its id (in two sets, about
    80 bytes a record each with Python's overhead), where the join held every record (#21.1).
    Two different contents or ids share 16 bytes with a chance of about 2**-128 a pair.
    """

    def __init__(self) -> None:
        self.removed: list[tuple[str, str, str]] = []
        """(drop key, record id, reason) of each record removed so far."""
        self._contents: set[bytes] = set()
        self._ids: set[bytes] = set()
        self._key: str | None = None

    def keep(self, key: str, records: Iterable[Record]) -> list[bool]:
        """Per record of drop `key` (in order), whether the joined corpus keeps it.

        Raises:
            ValueError: `key` sorts before the drop of an earlier batch (the first drop in key
                order keeps a record: the batches must come in that order).
        """
        if self._key is not None and key < self._key:
            raise ValueError(f"drop {key} comes after {self._key}: join drops in key order")
        self._key = key
        kept: list[bool] = []
        for record in records:
            digest = bytes.fromhex(content_digest(record))[:16]
            ident = hashlib.blake2b(record.id.encode(), digest_size=16).digest()
            if digest in self._contents:
                self.removed.append((key, record.id, CROSS_DROP_EXACT_DUPLICATE))
                kept.append(False)
            elif ident in self._ids:
                self.removed.append((key, record.id, CROSS_DROP_DUPLICATE_ID))
                kept.append(False)
            else:
                self._contents.add(digest)
                self._ids.add(ident)
                kept.append(True)
        return kept
