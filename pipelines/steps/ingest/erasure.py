"""Erasure on request (GDPR Art. 17, PIPL Art. 47): a data subject's records out of every zone.

`sovtune erase --subject KEY | --id ID` finds a subject's records through the keyed pseudonyms
ingestion gave them (`pipelines/steps/privacy/identifiers.py`): the subject key's `subj-…`
pseudonym, then every record id (`rec-…`) whose raw record carries it, plus the ids asked for
directly. It then removes them everywhere they were written:

- **landing**: every file holding the subject's records is rewritten without them (atomically,
  fsynced, mode kept): JSONL lines, every physical line of a CSV row (a quoted field may span
  several), Parquet rows, and the elements of a JSON array; a LLaMA-Factory dataset's files are
  read through their folder's `dataset_info.json`, as ingestion reads them. A landing file that
  cannot be read back as it was ingested is named (by hash) in the outcome, for the steward to
  remove the rows at the source. Either way the exclusion list keeps the records out of every
  later run.
- **raw, scrubbed, curated zones** (every drop's and the joined training corpus's Parquet
  files, both quarantines, screening outputs, cross-drop removals): rows of the records are
  removed; any other cell that names one of their pseudonyms (a duplicate's representative)
  has it replaced by `rec-erased` / `subj-erased`. JSON, HTML and text files of those zones,
  the reports, the training summaries (`adapters/*.training.json`: train and held-out ids) and
  MLflow's artifacts have the pseudonyms replaced the same way.
- **steward decisions** (`curated/steward_decisions.csv`): the records' rows are removed.
- **surrogate vault** (when `pii.vault` was on): the entries of every surrogate written into
  the subject's records; the surrogate registry (`secrets/surrogates.sqlite`) releases its
  claims on those surrogates.
- **identifier map**: the records' and the subject's rows, deleted with SQLite's
  `secure_delete` and the file vacuumed, so no freed page keeps them.

What stays: an erasure log (`raw/erasure/erasure_log.jsonl`, 0600: when, the OS user, the
reason code, counts per zone, affected model versions; hashes only, never a key, id or value)
and the exclusion list (`raw/erasure/exclusions.json`, 0600: keyed HMACs of the subject key, of
each record id and of each record's text), which ingestion checks: a record whose id or subject
is on it is `filtered` with reason `erased`, and so is a record without a subject whose text is
on it (the erased text dropped again under another id).

Only the request's records are removed: those of the named subjects and ids, found through
their pseudonyms. Another subject's record is never removed, nor filtered later, because its
text is identical to an erased one (the text hash is no evidence of whose record it is); a
record with no subject is, as it may be the erased record dropped again.

This module is the core; tagging model versions needs the registry (`resources/registry.py`)
and is done by the command (`pipelines/cli.py`) with `affected_versions` and `lineage_hashes`.
"""

import csv
import functools
import hashlib
import hmac
import io
import json
import os
import sqlite3
import stat
import time
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.steps.config import IngestLimits
from pipelines.steps.ingest.landing import BOM, csv_row_spans
from pipelines.steps.ingest.llamafactory import DATASET_INFO
from pipelines.steps.privacy.identifiers import IDENTIFIER_MAP, IdentifierMap
from pipelines.steps.privacy.surrogates import (
    LEGACY_REGISTRY_FILE,
    REGISTRY_FILE,
    canonical,
    locked_registry,
    registry_transaction,
)
from pipelines.steps.privacy.vault import (
    SECRET_FILE_MODE,
    key_id,
    os_user,
    private_dir,
    write_private,
)
from pipelines.steps.records import QuarantinedRecord, Record, frame_to_records

ERASURE_DIR = "erasure"
"""Under the raw zone: the exclusion list and the erasure log."""
EXCLUSIONS = "exclusions.json"
ERASURE_LOG = "erasure_log.jsonl"
ERASED_REASON = "erased"
"""The `filtered` reason code of a record that matches the exclusion list at ingestion."""
REASONS = ("data_subject_request", "legal_obligation", "consent_withdrawn", "steward_decision")
"""Why a record was erased (a code, never free text)."""
MIN_SUBJECT_MATCH = 8
"""Shortest subject key searched for as text in a quarantined line that is not JSON."""
ERASED_ID = "rec-erased"
ERASED_SUBJECT = "subj-erased"
LINEAGE_ARTIFACT = "lineage/training_records.json"
"""A model version's training lineage in its MLflow run: sha256 of every record and subject
pseudonym it was trained on (`lineage_hashes`)."""
TRAINED_ON_ERASED = "trained_on_erased_subject"
NOT_RECORDED = "training_set_not_recorded"
"""The tag value for a version registered before lineage was stored: it may have trained on
the subject (the erasure does not know), so it is tagged too."""
ZONES = ("raw", "scrubbed", "curated")
TEXT_SUFFIXES = (".json", ".jsonl", ".html", ".md", ".txt")
"""Files of the zones, reports and MLflow artifacts whose pseudonyms are replaced."""


class ErasureError(RuntimeError):
    """The erasure cannot run as asked; nothing was changed. The message names what to fix."""


def erasure_hmac(kind: str, value: str, key: bytes) -> str:
    """The keyed hash of one subject key, record id or record text on the exclusion list."""
    message = b"sovtune erasure\x00" + kind.encode() + b"\x00" + value.encode("utf-8")
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def record_text(record: Record) -> str:
    """What the text hash covers: the turns' roles and contents, as ingestion read them."""
    return json.dumps([[m.role, m.content] for m in record.messages], ensure_ascii=False)


def sha256_text(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def lineage_hashes(ids: Iterable[str], subjects: Iterable[str | None]) -> dict:
    """A model version's training lineage: sha256 of each record and subject pseudonym."""
    records = sorted({sha256_text(i) for i in ids})
    subject_hashes = sorted({sha256_text(s) for s in subjects if s})
    return {"schema": "sovtune.training_lineage/1", "records": records, "subjects": subject_hashes}


class Exclusions:
    """The keyed hashes of erased subject keys, record ids and record texts (raw zone, 0600).

    Args:
        raw: The raw zone (`raw/erasure/exclusions.json` under it).
        key: The pseudonym key (the hashes are keyed with it).
    """

    def __init__(self, raw: Path, key: bytes) -> None:
        self.path = Path(raw) / ERASURE_DIR / EXCLUSIONS
        self.key = key
        self.entries: dict[str, set[str]] = {"subject": set(), "id": set(), "text": set()}
        if self.path.is_file():
            stored = json.loads(self.path.read_text(encoding="utf-8"))
            if stored.get("key_id") != key_id(key):
                raise ErasureError(
                    f"{self.path} was written under key {stored.get('key_id')} but the "
                    f"pseudonym key is {key_id(key)}: erased records would not be recognized; "
                    "restore the key (docs/security.md, Rotating keys)"
                )
            for kind, hashes in stored.get("hashes", {}).items():
                self.entries.setdefault(kind, set()).update(hashes)

    def __len__(self) -> int:
        return sum(len(v) for v in self.entries.values())

    def add(self, kind: str, values: Iterable[str]) -> None:
        self.entries[kind].update(erasure_hmac(kind, v, self.key) for v in values)

    def save(self) -> None:
        payload = {
            "key_id": key_id(self.key),
            "hashes": {k: sorted(v) for k, v in sorted(self.entries.items())},
        }
        write_private(self.path, json.dumps(payload, indent=1).encode())

    def _has(self, kind: str, value: str | None) -> bool:
        return bool(value) and erasure_hmac(kind, str(value), self.key) in self.entries[kind]

    def matches(self, record: Record) -> bool:
        """Whether a record, with its fields as dropped (before pseudonyms), was erased: its id
        or subject is on the list, or it has no subject and its text is (a record of another
        subject is theirs, whatever its text)."""
        if self._has("subject", record.subject):
            return True
        if self._has("id", record.id):
            # a record dropped without an id is named by a hash of its text (ingestion): for
            # one of another subject, that id is its text, not the erased record's
            generated = record.id == "sha-" + sha256_text(record_text(record))[:16]
            return not (record.subject and generated)
        return not record.subject and self._has("text", record_text(record))

    def matches_quarantined(self, entry: QuarantinedRecord) -> bool:
        return self._has("id", entry.id)


def filter_erased(
    accepted: list[Record], quarantined: list[QuarantinedRecord], exclusions: Exclusions
) -> tuple[list[Record], list[QuarantinedRecord], int]:
    """Ingestion's check: (accepted, quarantined, filtered as `erased`), fields as dropped."""
    if not len(exclusions):
        return accepted, quarantined, 0
    kept = [r for r in accepted if not exclusions.matches(r)]
    kept_q = [q for q in quarantined if not exclusions.matches_quarantined(q)]
    return kept, kept_q, len(accepted) - len(kept) + len(quarantined) - len(kept_q)


@dataclass
class ErasureOutcome:
    """What one erasure request removed: counts per zone, never a value or pseudonym."""

    request_id: str
    records: int = 0
    removed: Counter = field(default_factory=Counter)
    """`zone:file kind` -> rows or entries removed."""
    redacted_references: int = 0
    landing_not_rewritten: list[str] = field(default_factory=list)
    """sha256 of each landing file that holds the subject's rows but cannot be rewritten."""
    erased_record_hashes: set[str] = field(default_factory=set, repr=False)
    erased_subject_hashes: set[str] = field(default_factory=set, repr=False)
    versions: list[dict] = field(default_factory=list)


def new_request_id() -> str:
    """An erasure request's id: `er-<UTC date>-<8 random hex digits>` (no personal data)."""
    return f"er-{time.strftime('%Y%m%d', time.gmtime())}-{uuid.uuid4().hex[:8]}"


class Erasure:
    """One erasure request over a data root.

    Args:
        root: The data root (zones `landing/`, `raw/`, `scrubbed/`, `curated/`, ...).
        key: The pseudonym key.
        subjects: Subject keys as dropped (the `subject` field's value).
        ids: Record ids as dropped.
        vault: The opened surrogate vault when the data root has one (`Vault.from_env`).
        ingest: Reads landing files into (accepted, quarantined) with fields as dropped: the
            file, after its folder's `dataset_info.json` when it belongs to a LLaMA-Factory
            dataset.
        limits: The ingestion limits the landing zone is read with (CSV rows' line spans).
    """

    def __init__(
        self,
        root: Path,
        key: bytes,
        *,
        subjects: list[str],
        ids: list[str],
        vault=None,
        ingest=None,
        limits: IngestLimits | None = None,
    ) -> None:
        if not subjects and not ids:
            raise ErasureError("name at least one --subject KEY or --id ID to erase")
        for flag, what, values in (
            ("--subject", "subject key", subjects),
            ("--id", "record id", ids),
        ):
            if any(not isinstance(v, str) or not v.strip() for v in values):
                raise ErasureError(
                    f"{flag} is empty or blank: name a {what} as dropped (an empty one would "
                    "match every record without one); nothing was changed"
                )
        self.root = Path(root).resolve()
        self.key = key
        self.subjects = sorted(set(subjects))
        self.ids = sorted(set(ids))
        self.vault = vault
        self.ingest = ingest
        self.limits = limits or IngestLimits()
        self.raw = self.root / "raw"
        self.rewritten: set[Path] = set()
        map_path = self.raw / IDENTIFIER_MAP
        if not map_path.is_file():
            raise ErasureError(f"no identifier map at {map_path}: nothing was ingested here")
        self.idmap = IdentifierMap(map_path, key)

    # -- finding ---------------------------------------------------------------------------

    def find(self) -> tuple[set[str], set[str], set[str], list[Record]]:
        """(record pseudonyms, subject pseudonyms, original ids, raw records) of the request."""
        subject_ps = set(self.idmap.known("subject", self.subjects).values())
        record_ps = set(self.idmap.known("id", self.ids).values())
        raw_records: list[Record] = []
        for path in sorted(self.raw.glob("drops/*/raw_corpus.parquet")):
            frame = pq.read_table(path).to_pandas()
            hit = frame["id"].isin(record_ps) | frame["subject"].isin(subject_ps)
            for record in frame_to_records(frame[hit]):
                record_ps.add(record.id)
                raw_records.append(record)
        originals = set(self.ids)
        for record in raw_records:
            found = self.idmap.resolve(record.id)
            if found:
                originals.add(found[1])
        for path in sorted(self.raw.glob("drops/*/quarantine.parquet")):
            frame = pq.read_table(path).to_pandas()
            if len(frame) and self.subjects:
                hit = frame["raw"].map(self._names_subject)
                record_ps.update(frame.loc[hit, "id"])
                # a line's own id joins the exclusions; a `file:line` stand-in does not (the
                # next line at that place may be anyone's)
                originals.update(
                    str(json.loads(raw)["id"]) for raw in frame.loc[hit, "raw"] if _has_id(raw)
                )
        return record_ps, subject_ps, originals, raw_records

    def _names_subject(self, raw) -> bool:
        """Whether a quarantined line (kept as text) belongs to one of the subjects: its JSON
        object's `subject` is one of them, or, for a line that is not a JSON object, it holds
        a subject key of at least `MIN_SUBJECT_MATCH` characters (a short key would match
        unrelated lines)."""
        text = str(raw or "")
        try:
            parsed = json.loads(text)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict):
            subject = parsed.get("subject")  # read as ingestion reads it: a string or an integer
            if not isinstance(subject, str | int) or isinstance(subject, bool):
                return False
            return str(subject) in self.subjects
        return any(len(s) >= MIN_SUBJECT_MATCH and s in text for s in self.subjects)

    # -- erasing ---------------------------------------------------------------------------

    def run(self, *, reason: str, request_id: str | None = None) -> ErasureOutcome:
        """Erase, record the exclusions, and return what was removed (log written by `log`)."""
        if reason not in REASONS:
            raise ErasureError(f"--reason {reason!r} is not one of {', '.join(REASONS)}")
        outcome = ErasureOutcome(request_id=request_id or new_request_id())
        record_ps, subject_ps, originals, raw_records = self.find()
        self._asked_ps = set(self.idmap.known("id", self.ids).values())
        exclusions = Exclusions(self.raw, self.key)
        exclusions.add("subject", self.subjects)
        exclusions.add("id", originals)
        exclusions.add("text", [record_text(r) for r in raw_records])
        # landing first: what it holds beyond the raw zone's view joins the exclusions
        landing_records = self._erase_landing(outcome)
        self._not_rewritten(raw_records, outcome)
        exclusions.add("id", [r.id for r in landing_records])
        exclusions.add("text", [record_text(r) for r in landing_records])
        record_ps |= set(self.idmap.known("id", [r.id for r in landing_records]).values())
        exclusions.save()  # before anything else is removed: a crash keeps them out
        outcome.records = len(record_ps)
        outcome.erased_record_hashes = {sha256_text(p) for p in record_ps}
        outcome.erased_subject_hashes = {sha256_text(p) for p in subject_ps}
        pairs = self._surrogates(record_ps)
        for zone in ZONES:
            for path in sorted((self.root / zone).rglob("*.parquet")):
                removed = self._erase_parquet(path, record_ps, subject_ps, outcome)
                if removed:
                    outcome.removed[f"{zone}:{_kind(path)}"] += removed
        self._erase_decisions(record_ps, outcome)
        for folder in (
            *(self.root / z for z in ZONES),
            self.root / "reports",
            self.root / "adapters",
        ):
            self._redact_text(folder, record_ps, subject_ps, outcome)
        self._redact_text(self.root / "mlflow" / "artifacts", record_ps, subject_ps, outcome)
        if pairs and self.vault is not None:
            outcome.removed["vault:entries"] += self.vault.remove(pairs)
        if pairs:
            released = release_surrogates(self.root / "secrets" / REGISTRY_FILE, pairs)
            outcome.removed["surrogate_claims:entries"] += released
        outcome.removed["identifier_map:rows"] += forget_identifiers(
            self.idmap.path, self.idmap.key_id, record_ps | subject_ps
        )
        return outcome

    def _surrogates(self, record_ps: set[str]) -> set[tuple[str, str]]:
        """(type, surrogate) of every replacement the scrubber wrote into the records."""
        pairs: set[tuple[str, str]] = set()
        for path in sorted((self.root / "scrubbed").rglob("*.parquet")):
            frame = pq.read_table(path).to_pandas()
            if "id" not in frame or "messages" not in frame:
                continue
            for record in frame_to_records(frame[frame["id"].isin(record_ps)]):
                for message in record.messages:
                    pairs |= {(t, message.content[s:e]) for s, e, t in message.scrub_spans}
        return pairs

    def _erase_landing(self, outcome: ErasureOutcome) -> list[Record]:
        """Rewrite each landing file holding the request's lines without them: those of the
        named subjects and ids (never by text: another subject's identical text stays)."""
        landing = self.root / "landing"
        found: list[Record] = []
        if self.ingest is None or not landing.is_dir():
            return found
        for path in sorted(p for p in landing.rglob("*") if p.is_file() and not p.is_symlink()):
            rel = path.relative_to(landing)
            if any(part.startswith(".") for part in rel.parts) or path.name == DATASET_INFO:
                continue
            owner = next((d for d in path.parents if (d / DATASET_INFO).is_file()), None)
            if owner is not None and owner != landing and landing not in owner.parents:
                owner = None  # a dataset_info.json above the landing zone claims nothing
            files = [owner / DATASET_INFO, path] if owner is not None else [path]
            accepted, quarantined = self.ingest(files)
            hits = [r for r in accepted if r.source_file == str(rel) and self._requested(r)]
            lines = {r.source_line for r in hits}
            lines |= {
                q.source_line
                for q in quarantined
                if q.source_line
                and q.source_file == str(rel)
                and (q.id in self.ids or self._names_subject(q.raw))
            }
            if not lines:
                continue
            found += hits
            removed = self._rewrite_landing(path, lines, landing)
            outcome.removed["landing:lines"] += removed
            self.rewritten.add(path)
        return found

    def _requested(self, record: Record) -> bool:
        """Whether a landing record, fields as dropped, is one the request names."""
        return record.subject in self.subjects or record.id in self.ids

    def _rewrite_landing(self, path: Path, numbers: set[int], landing: Path) -> int:
        """Write `path` anew without the records at `numbers` (lines, rows or elements, from 1,
        as ingestion numbered them); returns the physical lines, rows or elements removed."""
        suffix = path.suffix.lower()
        if suffix == ".parquet":
            table = pq.read_table(path)
            keep = [i for i in range(table.num_rows) if i + 1 not in numbers]
            kept = table.take(pa.array(keep, type=pa.int64()))  # typed: [] would be nulls
            _replace(path, functools.partial(pq.write_table, kept))
            return table.num_rows - len(keep)
        data = path.read_bytes()
        if suffix == ".json" and data.removeprefix(BOM).lstrip().startswith(b"["):
            elements = json.loads(data.removeprefix(BOM).decode("utf-8"))
            kept = [e for number, e in enumerate(elements, 1) if number not in numbers]
            text = json.dumps(kept, ensure_ascii=False, indent=2) + "\n"
            _replace(path, functools.partial(_write_bytes, text.encode("utf-8")))
            return len(elements) - len(kept)
        drop = set(numbers)
        if suffix == ".csv":  # every physical line of a row whose quoted field spans several
            spans = csv_row_spans(path, root=landing, limits=self.limits)
            drop = {n for first in numbers for n in range(first, first + spans.get(first, 1))}
        lines = io.BytesIO(data).readlines()  # split at b"\n" only, as ingestion numbers lines
        kept_lines = [line for number, line in enumerate(lines, 1) if number not in drop]
        _replace(path, functools.partial(_write_bytes, b"".join(kept_lines)))
        return len(lines) - len(kept_lines)

    def _not_rewritten(self, raw_records: list[Record], outcome: ErasureOutcome) -> None:
        """Name (by hash) each landing file still holding a record the raw zone read from it."""
        landing = self.root / "landing"
        for pseudonym in sorted({r.source_file for r in raw_records}):
            found = self.idmap.resolve(pseudonym)
            path = landing / found[1] if found else None
            if path is not None and path.is_file() and path not in self.rewritten:
                outcome.landing_not_rewritten.append(sha256_text(found[1]))

    def _erase_parquet(
        self, path: Path, record_ps: set[str], subject_ps: set[str], outcome: ErasureOutcome
    ) -> int:
        table = pq.read_table(path)
        frame = table.to_pandas()
        if not len(frame):
            return 0
        hit = frame["id"].isin(record_ps) if "id" in frame else False
        if "subject" in frame:
            # a row of another subject stays: records dropped without an id are named by a hash
            # of their text, so two subjects' identical texts share one record pseudonym
            own = frame["subject"].isna() | frame["subject"].isin(subject_ps)
            if not isinstance(hit, bool):
                hit = hit & (own | frame["id"].isin(self._asked_ps))
            hit = hit | frame["subject"].isin(subject_ps)
        if "raw" in frame and self.subjects:
            hit = hit | frame["raw"].map(self._names_subject)
        removed = int(hit.sum()) if hasattr(hit, "sum") else 0
        kept = frame[~hit] if removed else frame
        redacted = 0
        for column in kept.columns:
            if not (kept[column].dtype == object or pd.api.types.is_string_dtype(kept[column])):
                continue
            original = kept[column]
            values = original.map(lambda v: _redact(v, record_ps, subject_ps))
            changed = sum(
                isinstance(a, str) and a != b for a, b in zip(original, values, strict=True)
            )
            if changed:
                kept = kept.assign(**{column: values})
                redacted += changed
        if not removed and not redacted:
            return 0
        outcome.redacted_references += redacted
        new = pa.Table.from_pandas(kept, preserve_index=False).replace_schema_metadata(
            table.schema.metadata
        )
        _replace(path, lambda tmp: pq.write_table(new, tmp, compression="zstd"))
        return removed

    def _erase_decisions(self, record_ps: set[str], outcome: ErasureOutcome) -> None:
        path = self.root / "curated" / "steward_decisions.csv"
        if not path.is_file():
            return
        rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"))))
        if not rows:
            return
        column = rows[0].index("id") if "id" in rows[0] else 0
        kept = [rows[0]] + [r for r in rows[1:] if not (r and r[column] in record_ps)]
        if len(kept) == len(rows):
            return
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerows(kept)
        _replace(path, lambda tmp: tmp.write_text(buffer.getvalue(), encoding="utf-8"))
        outcome.removed["curated:steward_decisions"] += len(rows) - len(kept)

    def _redact_text(
        self, folder: Path, record_ps: set[str], subject_ps: set[str], outcome: ErasureOutcome
    ) -> None:
        if not folder.is_dir():
            return
        for path in sorted(folder.rglob("*")):
            if path.suffix.lower() not in TEXT_SUFFIXES or not path.is_file():
                continue
            if ERASURE_DIR in path.relative_to(self.root).parts[:2]:
                continue
            text = path.read_text(encoding="utf-8", errors="surrogateescape")
            new = _redact(text, record_ps, subject_ps)
            if new != text:
                outcome.redacted_references += 1
                _replace(path, lambda tmp, t=new: tmp.write_text(t, "utf-8", "surrogateescape"))


def release_surrogates(path: Path, pairs: set[tuple[str, str]]) -> int:
    """Release the surrogate registry's claims on these (type, surrogate) pairs (the registry
    keeps each surrogate in its canonical form beside its value's keyed digest); returns how
    many were released. A value dropped again would be filtered as erased before scrubbing.
    The rows are deleted with SQLite's `secure_delete` and the file vacuumed."""
    if not path.is_file() and not path.with_name(LEGACY_REGISTRY_FILE).is_file():
        return 0
    with locked_registry(path) as db:
        with registry_transaction(db):
            released = sum(
                db.execute(
                    "DELETE FROM claims WHERE entity_type = ? AND surrogate = ?",
                    (entity_type, canonical(entity_type, value)),
                ).rowcount
                for entity_type, value in sorted(pairs)
            )
        if released:
            db.execute("VACUUM")
    return released


def forget_identifiers(path: Path, key: str, pseudonyms: set[str]) -> int:
    """Delete every row of the identifier map naming one of `pseudonyms` under key id `key`,
    in every table with a `pseudonym` column; `secure_delete` zeroes the freed content and
    VACUUM rebuilds the file, so no free page keeps a deleted original. Returns the rows of
    the `identifiers` table removed."""
    wanted = sorted(pseudonyms)
    db = sqlite3.connect(path, timeout=60, isolation_level=None)
    try:
        db.execute("PRAGMA secure_delete = ON")
        tables = [
            t
            for (t,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            if "pseudonym" in {c[1] for c in db.execute(f'PRAGMA table_info("{t}")')}
        ]
        removed = 0
        db.execute("BEGIN IMMEDIATE")
        for table in tables:
            for start in range(0, len(wanted), 500):
                chunk = wanted[start : start + 500]
                cursor = db.execute(
                    f'DELETE FROM "{table}" WHERE key_id = ? '
                    f"AND pseudonym IN ({','.join('?' * len(chunk))})",
                    (key, *chunk),
                )
                removed += cursor.rowcount if table == "identifiers" else 0
        db.execute("COMMIT")
        db.execute("VACUUM")
    finally:
        db.close()
    os.chmod(path, SECRET_FILE_MODE)
    return removed


def _has_id(raw) -> bool:
    """Whether a quarantined line is a JSON object with an id of its own."""
    try:
        parsed = json.loads(str(raw))
    except ValueError:
        return False
    return isinstance(parsed, dict) and isinstance(parsed.get("id"), str | int)


def _write_bytes(data: bytes, path: Path) -> None:
    path.write_bytes(data)


def _kind(path: Path) -> str:
    """A Parquet file's kind for the counts (`raw_corpus`, `quarantine`, `screening`, ...)."""
    return path.stem


def _redact(value, record_ps: set[str], subject_ps: set[str]):
    if not isinstance(value, str) or ("rec-" not in value and "subj-" not in value):
        return value
    for pseudonym in record_ps:
        value = value.replace(pseudonym, ERASED_ID)
    for pseudonym in subject_ps:
        value = value.replace(pseudonym, ERASED_SUBJECT)
    return value


def _replace(path: Path, write) -> None:
    """Write `path` anew through a temporary file in its folder: fsynced, mode kept, renamed."""
    mode = stat.S_IMODE(path.stat().st_mode)
    tmp = path.with_name(f".{path.name}.erasure.tmp")
    try:
        write(tmp)
        os.chmod(tmp, mode)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# -- model versions and the log ---------------------------------------------------------------


def affected_versions(
    lineages: dict[str, dict | None], outcome: ErasureOutcome
) -> dict[str, tuple[str, int]]:
    """Version -> (tag value, erased records it trained on) for every affected version.

    A version without a stored lineage (registered before lineage was kept) is affected as
    `training_set_not_recorded`: the erasure cannot rule it out.
    """
    out: dict[str, tuple[str, int]] = {}
    for version, lineage in lineages.items():
        if lineage is None:
            out[version] = (NOT_RECORDED, 0)
            continue
        records = len(outcome.erased_record_hashes & set(lineage.get("records", [])))
        subjects = outcome.erased_subject_hashes & set(lineage.get("subjects", []))
        if records or subjects:
            out[version] = (TRAINED_ON_ERASED, records)
    return out


def originals_of(root: Path, key: bytes, record: str) -> tuple[str, str | None]:
    """(id, subject key) as dropped of the record with pseudonym `record` (the review desk's
    erasure action names records by pseudonym); the subject is None when it had none.

    Raises:
        ErasureError: no record with that pseudonym in the raw zone, or the map lacks it.
    """
    raw = Path(root).resolve() / "raw"
    idmap = IdentifierMap(raw / IDENTIFIER_MAP, key)
    found = idmap.resolve(record)
    for path in sorted(raw.glob("drops/*/raw_corpus.parquet")):
        table = pq.read_table(path, columns=["id", "subject"]).to_pylist()
        for row in table:
            if row["id"] == record and found:
                subject = idmap.resolve(row["subject"]) if row["subject"] else None
                return found[1], subject[1] if subject else None
    if found:  # a record of the ingestion quarantine: no subject field kept
        return found[1], None
    raise ErasureError(f"no record {record} in {raw}: it was erased already, or never ingested")


def write_log(
    raw: Path, outcome: ErasureOutcome, *, reason: str, key: bytes, requested_by: str = ""
) -> dict:
    """Append the request to the erasure log (0600, raw zone); returns the entry.

    `user` is the OS account running the erasure; `requested_by` the steward who asked for it
    through the review desk (its proxy's user header), when it came from there."""
    entry = {
        "request_id": outcome.request_id,
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "user": os_user(),
        **({"requested_by": requested_by} if requested_by else {}),
        "reason": reason,
        "key_id": key_id(key),
        "records": outcome.records,
        "removed": dict(sorted(outcome.removed.items())),
        "redacted_references": outcome.redacted_references,
        "landing_not_rewritten": sorted(outcome.landing_not_rewritten),
        "versions": outcome.versions,
    }
    path = Path(raw) / ERASURE_DIR / ERASURE_LOG
    private_dir(path.parent)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, SECRET_FILE_MODE)
    with os.fdopen(fd, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(entry, sort_keys=True) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    return entry


def read_log(raw: Path) -> list[dict]:
    """Every entry of the erasure log (none when nothing was erased)."""
    path = Path(raw) / ERASURE_DIR / ERASURE_LOG
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def guarantee(version: dict) -> str:
    """What DP guaranteed an erased subject in one version while it was in use."""
    eps, delta, unit = version.get("epsilon", "?"), version.get("delta", "?"), version.get("unit")
    k = int(version.get("max_records_per_subject") or 0)
    if unit == "user":
        return f"user-level DP: (ε={eps}, δ={delta}) per data subject, whatever their records"
    if version.get("tag") == NOT_RECORDED:
        return (
            f"example-level DP: (ε={eps}, δ={delta}) per record; a subject with k records is "
            "protected at group privacy k·ε (k unknown: the version stored no lineage)"
        )
    try:
        e = float(eps)
        d = float(delta)
        group = f"(ε={k * e:.4g}, δ={k * pow(2.718281828459045, (k - 1) * e) * d:.3g})"
    except ValueError:
        group = f"{k}·ε"
    return (
        f"example-level DP: (ε={eps}, δ={delta}) per record; the subject's {k} record(s) "
        f"together are protected at group privacy k·ε: {group}"
    )


def erasure_facts(entries: list[dict]) -> dict:
    """The report's "Erasure requests" section from the log: counts, versions, guarantees."""
    versions: dict[str, dict] = {}
    for entry in entries:
        for v in entry.get("versions", []):
            key = f"{v['model']} v{v['version']}"
            versions.setdefault(key, {**v, "requests": 0, "guarantee": guarantee(v)})
            versions[key]["requests"] += 1
    removed: Counter = Counter()
    for entry in entries:
        removed.update(entry.get("removed", {}))
    return {
        "requests": len(entries),
        "records": sum(e.get("records", 0) for e in entries),
        "removed": dict(sorted(removed.items())),
        "by_reason": dict(sorted(Counter(e.get("reason", "") for e in entries).items())),
        "affected_versions": [versions[k] for k in sorted(versions)],
    }
