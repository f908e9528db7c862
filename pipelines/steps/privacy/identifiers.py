"""Keyed pseudonyms for the fields the scrubber never reads: ids, subjects, sources, file names.

A record's `id`, `subject`, `source` and `source_file` (and a drop's name) are labels, not text:
the PII scanner does not look at them, yet they travel with the record into every zone, Dagster
metadata, the privacy ledger and the report. A landing writer can put anything there
(`id: cust-jane.doe@example.org`, a file called `Jane Doe.jsonl`), so ingestion replaces each of
them by a keyed pseudonym before the record leaves the raw zone:

    id           rec-<hmac12>          subject   subj-<hmac12>
    source       src-<hmac12>          file name file-<hmac12>.<extension of a readable format>

`<hmac12>` is the first 12 hex digits of HMAC-SHA256 under the pseudonym key (the same key as the
scrubber's, `resources/pii_engine.py`), over the field's kind and value. The same value under the
same key gets the same pseudonym in every run and every drop, so dedup, the held-out split,
steward decisions, the ledger and lineage keep working; without the key a pseudonym cannot be
linked back by guessing candidates. A file name keeps only its extension when it is one of the
formats ingestion reads (a name's other parts can hold anything).

The map pseudonym -> original is a SQLite file in the raw zone (`raw/identifiers.sqlite`, mode
0600), so that a steward with raw access can resolve a pseudonym (`sovtune ids resolve`) and an
erasure request can find a subject's records. Each row records the key id: pseudonyms of two keys
never mix. A second value whose 12 digits are taken (checked against the map on every insert)
gets a longer prefix of its own HMAC (16, 20, ... digits); the map remembers which, so the
pseudonym stays stable across runs. The map also records which drops use each value: when a
drop is withdrawn, the values no other drop uses are removed (`forget_drop`).
"""

import hashlib
import hmac
import os
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path

from pipelines.steps.privacy.vault import SECRET_FILE_MODE, key_id
from pipelines.steps.records import QuarantinedRecord, Record

IDENTIFIER_MAP = "identifiers.sqlite"
"""Under the raw zone: the pseudonym -> original map (personal data: never leaves the raw zone)."""
PREFIXES = {"id": "rec", "subject": "subj", "source": "src", "source_file": "file"}
"""Pseudonym prefix per field kind (`source_file` also names drops and quarantined files)."""
KEPT_EXTENSIONS = (".jsonl", ".json", ".csv", ".parquet")
"""The only part of a file name a file pseudonym keeps: the formats ingestion reads."""
DIGITS = 12
MAX_DIGITS = 64

_SCHEMA = """
CREATE TABLE IF NOT EXISTS identifiers (
    key_id TEXT NOT NULL,
    pseudonym TEXT NOT NULL,
    kind TEXT NOT NULL,
    original TEXT NOT NULL,
    first_drop TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (key_id, pseudonym),
    UNIQUE (key_id, kind, original)
);
CREATE TABLE IF NOT EXISTS identifier_drops (
    key_id TEXT NOT NULL,
    pseudonym TEXT NOT NULL,
    drop_key TEXT NOT NULL,
    PRIMARY KEY (key_id, pseudonym, drop_key)
)
"""


class IdentifierMapError(RuntimeError):
    """The identifier map cannot be used (a pseudonym that does not verify, a bad kind)."""


def identifier_hmac(kind: str, value: str, key: bytes) -> str:
    """The full HMAC-SHA256 (hex) of one field value of `kind` under `key`."""
    if kind not in PREFIXES:
        raise IdentifierMapError(f"unknown identifier kind {kind!r}: one of {sorted(PREFIXES)}")
    message = b"sovtune identifier\x00" + kind.encode() + b"\x00" + value.encode("utf-8")
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def _extension(name: str) -> str:
    lowered = name.lower()
    return next((ext for ext in KEPT_EXTENSIONS if lowered.endswith(ext)), "")


def candidate(kind: str, value: str, key: bytes, digits: int = DIGITS) -> str:
    """The pseudonym of `value` with `digits` hex digits of its HMAC (before collision checks)."""
    digest = identifier_hmac(kind, value, key)[:digits]
    suffix = _extension(value) if kind == "source_file" else ""
    return f"{PREFIXES[kind]}-{digest}{suffix}"


def verifies(kind: str, original: str, pseudonym: str, key: bytes) -> bool:
    """Whether `pseudonym` is one of `original`'s candidates under `key` (proves the key)."""
    return any(
        hmac.compare_digest(candidate(kind, original, key, digits), pseudonym)
        for digits in range(DIGITS, MAX_DIGITS + 1, 4)
    )


class IdentifierMap:
    """The raw zone's pseudonym -> original map under one key.

    Args:
        path: The SQLite file (created 0600 on first use; its folder must exist or is created).
        key: The pseudonym key.
    """

    def __init__(self, path: str | Path, key: bytes) -> None:
        self.path = Path(path)
        self.key = key
        self.key_id = key_id(key)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not self.path.exists():
            # created 0600 before SQLite opens it: its journal files take the same mode
            os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT, SECRET_FILE_MODE))
        os.chmod(self.path, SECRET_FILE_MODE)
        with self._connect() as db:
            db.executescript(_SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=60, isolation_level=None)

    def pseudonyms(self, kind: str, values: Iterable[str], *, drop: str = "") -> dict[str, str]:
        """The pseudonym of each value of `kind`, assigning (and recording) new ones.

        One transaction per call: two drops assigning at once wait for each other, and a value
        seen before keeps the pseudonym the map holds for it.
        """
        wanted = sorted(set(values))
        out: dict[str, str] = {}
        if not wanted:
            return out
        db = self._connect()
        try:
            db.execute("BEGIN IMMEDIATE")
            now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            for start in range(0, len(wanted), 500):
                chunk = wanted[start : start + 500]
                rows = db.execute(
                    "SELECT original, pseudonym FROM identifiers WHERE key_id = ? AND kind = ? "
                    f"AND original IN ({','.join('?' * len(chunk))})",
                    (self.key_id, kind, *chunk),
                )
                out.update(rows)
            new = [v for v in wanted if v not in out]
            first = {v: candidate(kind, v, self.key) for v in new}
            taken = self._taken(db, list(first.values()))
            rows = []
            for value in new:
                pseudonym = first[value]
                if pseudonym in taken:  # collision: the next longer prefix of its own HMAC
                    pseudonym = self._free_candidate(db, kind, value, taken)
                taken.add(pseudonym)
                out[value] = pseudonym
                rows.append((self.key_id, pseudonym, kind, value, drop, now))
            db.executemany("INSERT INTO identifiers VALUES (?, ?, ?, ?, ?, ?)", rows)
            if drop:  # which drops use each value: a withdrawn drop's own values are forgotten
                db.executemany(
                    "INSERT OR IGNORE INTO identifier_drops VALUES (?, ?, ?)",
                    [(self.key_id, p, drop) for p in out.values()],
                )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        finally:
            db.close()
        return out

    def _taken(self, db: sqlite3.Connection, pseudonyms: list[str]) -> set[str]:
        """Which of `pseudonyms` the map already gives to some value under this key."""
        taken: set[str] = set()
        for start in range(0, len(pseudonyms), 500):
            chunk = pseudonyms[start : start + 500]
            taken.update(
                p
                for (p,) in db.execute(
                    "SELECT pseudonym FROM identifiers WHERE key_id = ? "
                    f"AND pseudonym IN ({','.join('?' * len(chunk))})",
                    (self.key_id, *chunk),
                )
            )
        return taken

    def _free_candidate(
        self, db: sqlite3.Connection, kind: str, value: str, claimed: set[str]
    ) -> str:
        """The first of `value`'s longer candidates neither in the map nor `claimed` now."""
        for digits in range(DIGITS + 4, MAX_DIGITS + 1, 4):
            pseudonym = candidate(kind, value, self.key, digits)
            if pseudonym not in claimed and not self._taken(db, [pseudonym]):
                return pseudonym
        raise IdentifierMapError(f"no free {kind} pseudonym in {self.path} (HMAC collision)")

    def forget_drop(self, drop: str) -> int:
        """Forget a withdrawn drop: the values no other drop uses leave the map (every key).

        Returns:
            How many values were removed.
        """
        return forget_drop(self.path, drop)

    def known(self, kind: str, values: Iterable[str]) -> dict[str, str]:
        """The pseudonyms the map already holds for `values` (none assigned)."""
        wanted = sorted(set(values))
        with self._connect() as db:
            return {
                original: pseudonym
                for start in range(0, len(wanted), 500)
                for original, pseudonym in db.execute(
                    "SELECT original, pseudonym FROM identifiers WHERE key_id = ? AND kind = ? "
                    f"AND original IN ({','.join('?' * len(wanted[start : start + 500]))})",
                    (self.key_id, kind, *wanted[start : start + 500]),
                )
            }

    def resolve(self, pseudonym: str) -> tuple[str, str] | None:
        """(kind, original) behind `pseudonym` under this key, or None when the map has none.

        Raises:
            IdentifierMapError: the map's row does not verify under this key (altered map).
        """
        with self._connect() as db:
            row = db.execute(
                "SELECT kind, original FROM identifiers WHERE key_id = ? AND pseudonym = ?",
                (self.key_id, pseudonym),
            ).fetchone()
        if row is None:
            return None
        if not verifies(row[0], row[1], pseudonym, self.key):
            raise IdentifierMapError(
                f"{self.path}: the row of this pseudonym does not verify under key "
                f"{self.key_id}: the map was altered"
            )
        return row[0], row[1]


def forget_drop(path: str | Path, drop: str) -> int:
    """Remove from the map at `path` every value only the drop `drop` used; returns how many.

    Needs no key (a withdrawal must work after a key rotation too): rows of every key go.
    """
    if not Path(path).is_file():
        return 0
    db = sqlite3.connect(path, timeout=60, isolation_level=None)
    try:
        db.executescript(_SCHEMA)
        db.execute("BEGIN IMMEDIATE")
        used = db.execute(
            "SELECT key_id, pseudonym FROM identifier_drops WHERE drop_key = ?", (drop,)
        ).fetchall()
        db.execute("DELETE FROM identifier_drops WHERE drop_key = ?", (drop,))
        removed = 0
        for key, pseudonym in used:
            still_used = db.execute(
                "SELECT 1 FROM identifier_drops WHERE key_id = ? AND pseudonym = ?",
                (key, pseudonym),
            ).fetchone()
            if not still_used:
                removed += db.execute(
                    "DELETE FROM identifiers WHERE key_id = ? AND pseudonym = ?", (key, pseudonym)
                ).rowcount
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    finally:
        db.close()
    return removed


def pseudonymize_records(
    records: list[Record], idmap: IdentifierMap, *, drop: str = ""
) -> list[Record]:
    """`records` with id, subject, source and source_file replaced by their pseudonyms."""
    ids = idmap.pseudonyms("id", (r.id for r in records), drop=drop)
    subjects = idmap.pseudonyms("subject", (r.subject for r in records if r.subject), drop=drop)
    sources = idmap.pseudonyms("source", (r.source for r in records if r.source), drop=drop)
    files = idmap.pseudonyms("source_file", (r.source_file for r in records), drop=drop)
    return [
        replace(
            r,
            id=ids[r.id],
            subject=subjects[r.subject] if r.subject else r.subject,
            source=sources[r.source] if r.source else r.source,
            source_file=files[r.source_file],
        )
        for r in records
    ]


def pseudonymize_quarantine(
    quarantined: list[QuarantinedRecord], idmap: IdentifierMap, *, drop: str = ""
) -> list[QuarantinedRecord]:
    """Quarantine entries with id and source_file pseudonymized (`raw` stays: raw zone)."""
    ids = idmap.pseudonyms("id", (q.id for q in quarantined), drop=drop)
    files = idmap.pseudonyms("source_file", (q.source_file for q in quarantined), drop=drop)
    return [replace(q, id=ids[q.id], source_file=files[q.source_file]) for q in quarantined]
