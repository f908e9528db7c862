"""Ingestion: landing files (JSONL, CSV, Parquet) into records plus a quarantine.

Supported shapes per record: plain `{"text"}`, alpaca `{"instruction", "input", "output"}`,
sharegpt `{"conversations": [{"from", "value"}]}` and chat `{"messages": [{"role", "content"}]}`,
each optionally with `id`, `source` and `subject`. A line that cannot be accepted never stops
ingestion and is never dropped: it becomes a `QuarantinedRecord` with a reason code, so that
`records_in == accepted + quarantined` always holds, and every physical line (JSONL, CSV) or row
(Parquet) of a file is covered by exactly one accepted or quarantined slot
(`SourceFile.physical_lines == SourceFile.lines_accounted`).

The landing zone is hostile ground (issue #16): a symbolic link or a special file (FIFO,
socket, device) is never opened, followed or fingerprinted, nor is a regular file with more
than one hard link (another name for it may lie outside the zone: a link count above 1 is all
`lstat` can tell); each is quarantined unread (`symlink_refused`, `special_file_refused`,
`hardlink_refused`) under a hash of its name. Regular files are opened
with O_NOFOLLOW, checked to be the entry that was listed and to lie inside the zone once
resolved, and read as streams within `ingest.limits` (`IngestLimits`).
"""

import csv
import errno
import hashlib
import io
import json
import os
import stat
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Any

import pyarrow.parquet as pq

from pipelines.steps.config import IngestLimits
from pipelines.steps.ingest.language import language_verdict
from pipelines.steps.records import Message, QuarantinedRecord, Record

SUPPORTED_SUFFIXES = (".jsonl", ".json", ".csv", ".parquet")
TEXT_SUFFIXES = (".jsonl", ".json", ".csv")
SHAREGPT_ROLES = {
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "system": "system",
}
CHAT_ROLES = {"user", "assistant", "system"}
PARQUET_BATCH_ROWS = 1024
BOM = b"\xef\xbb\xbf"
CSV_MAX_ROW_LINES = 10_000
"""Physical lines one quoted CSV row may span before its first line is quarantined as bad_csv."""

# Reason codes of the quarantine, with what a steward should read them as.
REASONS = {
    "invalid_utf8": "the line is not valid UTF-8",
    "bad_json": "the line is not valid JSON",
    "bad_csv": "the CSV row is malformed (a quote never closed, text after a closing quote)",
    "not_an_object": "the JSON value is not an object",
    "empty_line": "the line is blank",
    "nul_bytes": "the line or a text field contains NUL bytes",
    "missing_field": "no text, instruction/output, conversations or messages field",
    "bad_field_type": "a field has the wrong type or an unknown role",
    "empty_text": "a message or the whole record has no text",
    "too_long": "the record is longer than ingest.max_record_chars or "
    "ingest.limits.max_record_bytes",
    "unsupported_language": "no PII detector is configured for the record's language",
    "duplicate_id": "another record already has this id",
    "unreadable_file": "the file could not be read as its format",
    "unsupported_file_type": "the landing file's type is not JSONL, CSV or Parquet",
    "file_too_large": "the file is over an ingest.limits setting (bytes, rows, decompressed size)",
    "symlink_refused": "the entry is a symbolic link: never followed, not read",
    "special_file_refused": "the entry is a FIFO, socket or device: never opened",
    "hardlink_refused": "the file has more than one hard link (another name, possibly outside "
    "the landing zone): not read",
    # LLaMA-Factory dataset folders (pipelines/steps/ingest/llamafactory.py)
    "bad_dataset_info": "the folder's dataset_info.json, or its entry for this dataset, is "
    "not valid: nothing it describes is read",
    "unsupported_dataset": "a dataset kind sovtune does not train on (hub-only, preference, "
    "KTO or multimodal): its records are not read",
    "unreferenced_file": "a file of a LLaMA-Factory dataset folder that no dataset_info.json "
    "entry names",
}


class RecordError(ValueError):
    """A record that must be quarantined; `reason` is a code from REASONS."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass
class SourceFile:
    """A landing file and its fingerprint (lineage starts here).

    `physical_lines` is counted independently of parsing (newlines of a text file, the row count
    of a Parquet file's metadata; 0 for a file refused unread); `lines_accounted` sums the lines
    that accepted and quarantined slots cover. The two must be equal.
    """

    name: str
    sha256: str
    bytes: int
    records_in: int = 0
    physical_lines: int = 0
    lines_accounted: int = 0


@dataclass
class Slot:
    """One place of a file that becomes a record or a quarantine entry.

    `value` is the parsed object (a CSV row's cells inside the CSV reader), a `RecordError`, or
    None for a CSV header (no record);
    `lines` is how many physical lines or rows it covers; `raw` is the text kept for review.
    """

    line: int
    value: dict | list[str] | RecordError | None
    lines: int = 1
    raw: str = ""


@dataclass
class IngestResult:
    """Everything ingestion produced; `records_in == len(accepted) + len(quarantined)`."""

    accepted: list[Record] = field(default_factory=list)
    quarantined: list[QuarantinedRecord] = field(default_factory=list)
    sources: list[SourceFile] = field(default_factory=list)

    @property
    def records_in(self) -> int:
        return sum(s.records_in for s in self.sources)

    @property
    def physical_lines(self) -> int:
        return sum(s.physical_lines for s in self.sources)

    @property
    def lines_accounted(self) -> int:
        return sum(s.lines_accounted for s in self.sources)

    def quarantine_counts(self) -> dict[str, int]:
        return dict(sorted(Counter(q.reason for q in self.quarantined).items()))


def _is_hidden(path: Path, folder: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(folder).parts)


def landing_entries(folder: Path) -> list[Path]:
    """Every visible entry under `folder` that is not a directory, sorted, never following links.

    Symbolic links (to files or folders), special files and folders that cannot be listed are
    listed as entries, so that ingestion refuses them with a reason instead of skipping them; a
    linked folder is never descended into.
    """
    folder = Path(folder)
    entries: list[Path] = []

    # A folder that cannot be listed is an entry too (refused as unreadable), never skipped.
    def unlisted(exc: OSError) -> None:
        if Path(exc.filename) != folder or folder.exists():
            entries.append(Path(exc.filename))

    for top, dirs, files in os.walk(folder, followlinks=False, onerror=unlisted):
        for name in dirs + files:
            path = Path(top) / name
            if name in dirs and not os.path.islink(path):
                continue
            entries.append(path)
        dirs[:] = [d for d in dirs if not d.startswith(".")]
    return sorted(p for p in entries if not _is_hidden(p, folder))


def name_digest(path: Path) -> str:
    """A short sha256 of an entry's path: how a refused entry is named in details."""
    return hashlib.sha256(str(path).encode("utf-8", "surrogateescape")).hexdigest()[:16]


def refusal(path: Path) -> RecordError | None:
    """Why `path` must not be opened (a symlink, special file or hard-linked file), from `lstat`;
    None for a regular file with one link."""
    mode = os.lstat(path).st_mode
    if stat.S_ISLNK(mode):
        return RecordError("symlink_refused", f"entry {name_digest(path)} is a symbolic link")
    if stat.S_ISDIR(mode):  # listed only when it could not be listed
        return RecordError("unreadable_file", f"folder {name_digest(path)} cannot be listed")
    if not stat.S_ISREG(mode):
        return RecordError("special_file_refused", f"entry {name_digest(path)} is not a file")
    if os.lstat(path).st_nlink > 1:
        return _hardlink_refused(path)
    return None


def _hardlink_refused(path: Path) -> RecordError:
    # a second name of a file that may live outside the zone: the link count is all lstat says
    return RecordError("hardlink_refused", f"entry {name_digest(path)} has more than one link")


def open_entry(path: Path, *, root: Path | None) -> IO[bytes]:
    """Open a regular landing file for reading without following any link.

    The final component is opened with O_NOFOLLOW (and O_NONBLOCK, so a FIFO swapped in after
    the listing cannot block), the opened descriptor must be the regular file `lstat` saw, and
    its resolved path must lie under `root` (a linked parent folder cannot lead outside).

    Raises:
        RecordError: `symlink_refused`, `special_file_refused` or `hardlink_refused`, without
            reading anything.
    """
    refused = refusal(path)
    if refused:
        raise refused
    before = os.lstat(path)
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # O_NOFOLLOW met a link swapped in after the listing
            raise RecordError(
                "symlink_refused", f"entry {name_digest(path)} changed to a link"
            ) from None
        reason = errno.errorcode.get(exc.errno or 0, "error")
        raise RecordError("unreadable_file", f"cannot open: {reason}") from None
    after = os.fstat(fd)
    problem = None
    if not stat.S_ISREG(after.st_mode) or (after.st_dev, after.st_ino) != (
        before.st_dev,
        before.st_ino,
    ):
        problem = RecordError("special_file_refused", f"entry {name_digest(path)} changed")
    elif after.st_nlink > 1:  # linked after the listing
        problem = _hardlink_refused(path)
    elif root is not None and not Path(os.path.realpath(path)).is_relative_to(
        os.path.realpath(root)
    ):
        problem = RecordError(
            "symlink_refused", f"entry {name_digest(path)} resolves outside the landing zone"
        )
    if problem:
        os.close(fd)
        raise problem
    return os.fdopen(fd, "rb")


def _digest_handle(handle: IO[bytes], *, count_lines: bool) -> tuple[str, int, int]:
    """(sha256, bytes, physical lines) of an open file, read in chunks."""
    digest, size, newlines, last = hashlib.sha256(), 0, 0, b""
    while chunk := handle.read(1 << 20):
        digest.update(chunk)
        size += len(chunk)
        if count_lines:
            newlines += chunk.count(b"\n")
        last = chunk[-1:]
    lines = newlines + (1 if count_lines and size and last != b"\n" else 0)
    handle.seek(0)
    if size == len(BOM) and handle.read(len(BOM)) == BOM:
        lines = 0  # a byte-order mark alone is an empty file
    handle.seek(0)
    return digest.hexdigest(), size, lines


def entry_sha256(path: Path, *, root: Path | None) -> str:
    """sha256 of a regular file's bytes; of a marker for a refused entry (its target unread)."""
    try:
        with open_entry(path, root=root) as handle:
            return _digest_handle(handle, count_lines=False)[0]
    except RecordError as err:
        return hashlib.sha256(f"refused:{err.reason}".encode()).hexdigest()


def ingest_landing(
    landing: Path,
    *,
    languages: list[str],
    max_record_chars: int,
    limits: IngestLimits | None = None,
) -> IngestResult:
    """Read every entry under `landing` (sorted, recursive) into records and a quarantine."""
    return ingest_files(
        landing_entries(Path(landing)),
        landing=landing,
        languages=languages,
        max_record_chars=max_record_chars,
        limits=limits,
    )


def ingest_files(
    files: list[Path],
    *,
    landing: Path,
    languages: list[str],
    max_record_chars: int,
    limits: IngestLimits | None = None,
) -> IngestResult:
    """Read `files` (paths under `landing`, in the given order) into records and a quarantine.

    Source names are relative to `landing`, so a drop's lineage names the file as it was
    dropped (`chat.jsonl`, `default/chat.jsonl`). Holds every record: `iter_ingested` gives
    them one at a time.
    """
    result = IngestResult()
    for item in iter_ingested(
        files,
        landing=landing,
        languages=languages,
        max_record_chars=max_record_chars,
        limits=limits,
        sources=result.sources,
    ):
        (result.accepted if isinstance(item, Record) else result.quarantined).append(item)
    return result


def iter_ingested(
    files: list[Path],
    *,
    landing: Path,
    languages: list[str],
    max_record_chars: int,
    limits: IngestLimits | None = None,
    sources: list[SourceFile] | None = None,
) -> Iterator[Record | QuarantinedRecord]:
    """`ingest_files` as a stream: each accepted `Record` or `QuarantinedRecord` as it is read,
    in the order `ingest_files` lists them, holding no record (only the ids seen so far, to
    quarantine a `duplicate_id`).

    Each file's `SourceFile` is appended to `sources` when its reading starts; its counts are
    complete once the stream is exhausted.
    """
    # a folder holding a dataset_info.json is read through it (LLaMA-Factory datasets); the
    # module builds on this one, hence the import here
    from pipelines.steps.ingest.llamafactory import dataset_readers

    limits = limits or IngestLimits()
    sources = [] if sources is None else sources
    plain, datasets = dataset_readers(files, landing=landing, limits=limits)
    readers = [*(_file_reader(path, landing, limits) for path in plain), *datasets]
    seen_ids: set[str] = set()
    for reader in readers:
        source, rel = reader.source, reader.source.name
        sources.append(source)
        for slot in reader.slots:
            source.lines_accounted += slot.lines
            if slot.value is None:
                continue
            source.records_in += 1
            parsed = slot.value
            try:
                if isinstance(parsed, RecordError):
                    raise parsed
                record = reader.normalize(parsed, slot.line)
                record = _validate(record, languages=languages, max_record_chars=max_record_chars)
                if record.id in seen_ids:
                    raise RecordError("duplicate_id", "id already used by an earlier record")
                seen_ids.add(record.id)
            except RecordError as err:
                yield _quarantined(slot, err, rel)
                continue
            yield record


@dataclass
class Reader:
    """One source of records: its fingerprint, its slots and how a parsed slot becomes a record.

    `normalize(value, line)` raises `RecordError` for a value that cannot be accepted.
    """

    source: SourceFile
    slots: Iterable[Slot]
    normalize: Callable[[dict, int], Record]


def _file_reader(path: Path, landing: Path, limits: IngestLimits) -> Reader:
    rel = str(path.relative_to(landing))
    source = SourceFile(name=rel, sha256="", bytes=0)
    return Reader(
        source,
        file_slots(path, root=landing, limits=limits, source=source),
        lambda row, line: normalize_row(row, source_file=rel, source_line=line),
    )


def _quarantined(slot: Slot, err: RecordError, rel: str) -> QuarantinedRecord:
    parsed = slot.value
    if isinstance(parsed, dict):
        raw = json.dumps(parsed, ensure_ascii=False, default=str)
    else:
        raw = slot.raw
    return QuarantinedRecord(
        id=_text(_quarantine_id(parsed, rel, slot.line)),
        source_file=_text(rel),
        source_line=slot.line,
        reason=err.reason,
        detail=_text(err.detail),
        raw=_text(raw),
    )


def _text(value: str) -> str:
    """Any string as valid UTF-8 text: a lone surrogate (a JSON `\\ud800`) becomes `\\ud800`."""
    return value.encode("utf-8", "backslashreplace").decode("utf-8")


def _quarantine_id(parsed: Any, file: str, line: int) -> str:
    if isinstance(parsed, dict) and isinstance(parsed.get("id"), str | int):
        return str(parsed["id"])
    return f"{file}:{line}"


def file_slots(
    path: Path, *, root: Path | None, limits: IngestLimits, source: SourceFile | None = None
) -> Iterator[Slot]:
    """Every slot of one file, read safely and within `limits`; fills `source`'s fingerprint.

    Never raises for the file's content: a file that cannot be opened, is over a limit or
    breaks its reader becomes a slot with a reason.
    """
    source = source or SourceFile(name=path.name, sha256="", bytes=0)
    suffix = path.suffix.lower()
    try:
        handle = open_entry(path, root=root)
    except RecordError as err:
        source.sha256 = hashlib.sha256(f"refused:{err.reason}".encode()).hexdigest()
        yield Slot(0, err, lines=0)
        return
    with handle:
        size = os.fstat(handle.fileno()).st_size
        if size > limits.max_file_bytes:
            source.bytes = size
            yield Slot(0, _too_large(f"{size} bytes > ingest.limits.max_file_bytes"), lines=0)
            return
        source.sha256, source.bytes, lines = _digest_handle(
            handle, count_lines=suffix in TEXT_SUFFIXES
        )
        source.physical_lines = lines
        if suffix in TEXT_SUFFIXES and lines > limits.max_file_rows:
            yield Slot(0, _too_large(f"{lines} lines > ingest.limits.max_file_rows"), lines=lines)
            return
        if suffix in (".jsonl", ".json"):
            yield from _iter_jsonl(handle, limits)
        elif suffix == ".csv":
            yield from _iter_csv(handle, limits)
        elif suffix == ".parquet":
            yield from _iter_parquet(handle, limits, source)
        else:
            yield Slot(0, RecordError("unsupported_file_type", f"suffix {suffix or '(none)'}"), 0)


def _too_large(detail: str) -> RecordError:
    return RecordError("file_too_large", detail)


def iter_rows(path: Path, limits: IngestLimits | None = None):
    """Yield (line or row number, dict | RecordError) for every record slot in a file.

    What `sovtune scan` and `screen` read: the same safe, bounded readers as ingestion.
    """
    for slot in file_slots(path, root=None, limits=limits or IngestLimits()):
        if slot.value is not None:
            yield slot.line, slot.value


def _physical_lines(handle: IO[bytes], limits: IngestLimits) -> Iterator[tuple[int, bytes, bool]]:
    """(line number, bytes with their newline, whole) per physical line, each read bounded.

    A line longer than `max_record_bytes` is yielded cut to that size with `whole` False; the
    rest of it is read and discarded, never held in memory.
    """
    number = 0
    while True:
        raw = handle.readline(limits.max_record_bytes + 1)
        if not raw:
            return
        number += 1
        whole = True
        if len(raw) > limits.max_record_bytes and not raw.endswith(b"\n"):
            whole = False
            raw = raw[: limits.max_record_bytes]
            while rest := handle.readline(1 << 20):
                if rest.endswith(b"\n"):
                    break
        if number == 1 and raw.startswith(BOM):
            raw = raw[len(BOM) :]
            if not raw:
                return
        yield number, raw, whole


def _too_long_line(number: int, raw: bytes, limits: IngestLimits) -> Slot:
    detail = f"line over ingest.limits.max_record_bytes ({limits.max_record_bytes})"
    return Slot(number, RecordError("too_long", detail), raw=raw.decode("utf-8", "replace"))


def _iter_jsonl(handle: IO[bytes], limits: IngestLimits) -> Iterator[Slot]:
    for number, raw, whole in _physical_lines(handle, limits):
        if not whole:
            yield _too_long_line(number, raw, limits)
            continue
        raw = raw.rstrip(b"\n").rstrip(b"\r")
        text = raw.decode("utf-8", errors="replace")
        if not raw.strip():
            yield Slot(number, RecordError("empty_line", "blank line"), raw=text)
            continue
        if b"\x00" in raw:
            yield Slot(number, RecordError("nul_bytes", "NUL byte in line"), raw=text)
            continue
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            yield Slot(number, RecordError("invalid_utf8", f"byte {exc.start}"), raw=text)
            continue
        yield Slot(number, _json_object(text), raw=text)


def _json_object(text: str) -> dict | RecordError:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        return RecordError("bad_json", f"column {exc.colno}: {exc.msg}")
    except RecursionError:
        return RecordError("bad_json", "nested too deeply")
    except ValueError:  # an integer over Python's int-conversion digit limit
        return RecordError("bad_json", "a number has too many digits")
    if not isinstance(value, dict):
        return RecordError("not_an_object", type(value).__name__)
    return value


def _csv_row(text: str) -> list[str] | RecordError | None:
    """The one CSV row in `text`; None while a quoted field is still open."""
    try:
        rows = list(csv.reader(io.StringIO(text, newline=""), strict=True))
    except csv.Error as exc:
        message = str(exc)
        if "unexpected end of data" in message:
            return None
        if "field limit" in message:
            return RecordError("too_long", "a field is over CSV's 131,072-character field limit")
        return RecordError("bad_csv", message)
    if len(rows) != 1:
        return RecordError("bad_csv", "one row's lines parse as several rows")
    return rows[0]


def _decoded_csv_lines(handle: IO[bytes], limits: IngestLimits) -> Iterator[tuple[int, Any]]:
    """(number, text with its newline) per physical line, or (number, a quarantine Slot)."""
    for number, raw, whole in _physical_lines(handle, limits):
        text = raw.decode("utf-8", "replace")
        if not whole:
            yield number, _too_long_line(number, raw, limits)
        elif b"\x00" in raw:
            yield number, Slot(number, RecordError("nul_bytes", "NUL byte in line"), raw=text)
        else:
            try:
                yield number, raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                err = RecordError("invalid_utf8", f"byte {exc.start}")
                yield number, Slot(number, err, raw=text)


def _unclosed(first: tuple[int, str], err: RecordError | None = None) -> Slot:
    reason = err or RecordError("bad_csv", "a quote opened on this line is never closed")
    return Slot(first[0], reason, raw=first[1])


def _iter_csv(handle: IO[bytes], limits: IngestLimits) -> Iterator[Slot]:
    """CSV rows as objects keyed by the header; a file whose header cannot be read is refused
    whole (`unreadable_file`, covering every line) rather than read under a wrong header."""
    rows = _csv_rows(_decoded_csv_lines(handle, limits))
    first = next(rows, None)
    if first is None:
        return
    if not isinstance(first.value, list) or not first.value:
        detail = first.value.detail if isinstance(first.value, RecordError) else "blank"
        err = RecordError("unreadable_file", f"CSV header line: {detail}")
        yield Slot(first.line, err, lines=first.lines + sum(slot.lines for slot in rows))
        return
    header = first.value
    yield replace(first, value=None)
    for slot in rows:
        if isinstance(slot.value, list):
            slot = replace(slot, value=_csv_object(header, slot.value))
        yield slot


def _csv_rows(lines: Iterator[tuple[int, Any]]) -> Iterator[Slot]:
    """CSV rows (cell lists or errors), each covering the physical lines it spans.

    Lines join while the count of quote characters is odd (a quoted field spans lines). When
    they cannot form one row (text after a closing quote, a quote still open at the end of the
    file, at an unreadable line or after `CSV_MAX_ROW_LINES` lines), only the first of them is
    quarantined as `bad_csv` and reading starts again at the next line: one unclosed quote can
    neither merge nor drop the rows after it.
    """
    pending: list[tuple[int, str]] = []
    quotes = 0
    backlog: deque[tuple[int, Any]] = deque()
    while True:
        item = backlog.popleft() if backlog else next(lines, None)
        if item is None or isinstance(item[1], Slot):
            if pending:  # an open quote reached the end of the file or an unreadable line
                yield _unclosed(pending[0])
                backlog.extendleft(reversed([*pending[1:], *([item] if item else [])]))
                pending, quotes = [], 0
                continue
            if item is None:
                return
            yield item[1]
            continue
        pending.append(item)
        quotes += item[1].count('"')
        if quotes % 2 and len(pending) == 1 and isinstance(_csv_row(item[1]), list):
            quotes = 0  # a quote inside an unquoted field: a complete row
        elif quotes % 2 and len(pending) < CSV_MAX_ROW_LINES:
            continue
        parsed = _csv_row("".join(text for _, text in pending)) if not quotes % 2 else None
        if parsed is None or (isinstance(parsed, RecordError) and parsed.reason == "bad_csv"):
            yield _unclosed(pending[0], parsed)
            backlog.extendleft(reversed(pending[1:]))
            pending, quotes = [], 0
            continue
        yield Slot(pending[0][0], parsed, lines=len(pending), raw="".join(t for _, t in pending))
        pending, quotes = [], 0


def csv_row_spans(path: Path, *, root: Path, limits: IngestLimits | None = None) -> dict[int, int]:
    """{first physical line: physical lines it spans} of every CSV row as ingestion reads it.

    A row's `source_line` is its first line; a quoted field may carry it over several lines.
    Erasure drops all of them (`pipelines/steps/ingest/erasure.py`).
    """
    with open_entry(path, root=root) as handle:
        return {
            slot.line: slot.lines
            for slot in _csv_rows(_decoded_csv_lines(handle, limits or IngestLimits()))
        }


def _csv_object(header: list[str], row: list[str] | RecordError) -> dict | RecordError:
    if isinstance(row, RecordError):
        return row
    if not row:
        return RecordError("empty_line", "blank line")
    if len(row) > len(header):
        return RecordError("bad_field_type", "more cells than header columns")
    return {k: v for k, v in zip(header, row, strict=False) if v != ""}


def _iter_parquet(handle: IO[bytes], limits: IngestLimits, source: SourceFile) -> Iterator[Slot]:
    """Parquet rows in small batches, after a first decoding pass that measures them.

    Neither the row count nor the metadata's sizes bound what a file decodes to (dictionary
    and run-length encoding let 2 kB expand to megabytes), so a first pass decodes batch by
    batch, keeping nothing but a running size, and refuses the file once it passes
    `max_decompressed_bytes` or `max_expansion_ratio`; only then are rows yielded.
    """
    try:
        parquet = pq.ParquetFile(handle)
        meta = parquet.metadata
        rows = meta.num_rows
        largest_chunk = max(
            (
                meta.row_group(g).column(c).total_uncompressed_size
                for g in range(meta.num_row_groups)
                for c in range(meta.num_columns)
            ),
            default=0,
        )
    except Exception as exc:  # noqa: BLE001 — any reader failure quarantines the file
        yield Slot(0, RecordError("unreadable_file", f"Parquet: {type(exc).__name__}"), lines=0)
        return
    source.physical_lines = rows
    if rows > limits.max_file_rows:
        yield Slot(0, _too_large(f"{rows} rows > ingest.limits.max_file_rows"), lines=rows)
        return
    # one value is at most its column chunk's uncompressed size: keep a batch near 64 MiB
    batch_rows = max(1, min(PARQUET_BATCH_ROWS, (64 << 20) // max(largest_chunk, 1)))
    try:
        over = _parquet_decoded_over_limits(parquet, batch_rows, source.bytes, limits)
    except Exception as exc:  # noqa: BLE001 — a file that does not decode is refused whole
        yield Slot(0, RecordError("unreadable_file", f"Parquet: {type(exc).__name__}"), rows)
        return
    if over:
        yield Slot(0, _too_large(over), lines=rows)
        return
    number = 0
    try:
        for batch in parquet.iter_batches(batch_size=batch_rows):
            for row in batch.to_pylist():
                number += 1
                yield Slot(number, {k: v for k, v in row.items() if v is not None})
    except Exception as exc:  # noqa: BLE001 — the rows not yet read are quarantined together
        err = RecordError("unreadable_file", f"Parquet after row {number}: {type(exc).__name__}")
        yield Slot(number + 1, err, lines=rows - number)


def _parquet_decoded_over_limits(
    parquet: pq.ParquetFile, batch_rows: int, size: int, limits: IngestLimits
) -> str:
    """Which decompression limit the file's decoded batches pass ("" when none), measured."""
    decoded = 0
    for batch in parquet.iter_batches(batch_size=batch_rows):
        decoded += batch.nbytes
        if decoded > limits.max_decompressed_bytes:
            return f"decodes to over {decoded} bytes > ingest.limits.max_decompressed_bytes"
        if size and decoded / size > limits.max_expansion_ratio:
            return (
                f"expands over {decoded / size:.0f}x on decoding > "
                "ingest.limits.max_expansion_ratio"
            )
    return ""


def normalize_row(row: dict[str, Any], *, source_file: str, source_line: int) -> Record:
    """Turn one input object (any supported shape) into a `Record` (language not yet set).

    Raises:
        RecordError: with a reason code when the object cannot become a record.
    """
    if "messages" in row:
        fmt, messages = "chat", _chat_messages(row["messages"], "messages", "role", "content")
    elif "conversations" in row:
        fmt, messages = (
            "sharegpt",
            _chat_messages(row["conversations"], "conversations", "from", "value"),
        )
    elif "instruction" in row and "output" in row:
        fmt, messages = "alpaca", _alpaca_messages(row)
    elif "text" in row:
        fmt = "text"
        messages = (Message("user", _string(row["text"], "text"), "text"),)
    else:
        raise RecordError(
            "missing_field", "needs text, instruction+output, conversations or messages"
        )
    if not any(m.content.strip() for m in messages):
        raise RecordError("empty_text", "all messages are blank")
    if any(not m.content.strip() for m in messages):
        raise RecordError("empty_text", "a message is blank")
    record_id = row.get("id")
    if record_id is None or record_id == "":
        canonical = json.dumps([[m.role, m.content] for m in messages], ensure_ascii=False)
        record_id = "sha-" + hashlib.sha256(canonical.encode()).hexdigest()[:16]
    elif not isinstance(record_id, str | int) or isinstance(record_id, bool):
        raise RecordError("bad_field_type", "id must be a string or an integer")
    else:
        _encodable(str(record_id), "id")
    return Record(
        id=str(record_id),
        source_file=source_file,
        source_line=source_line,
        format=fmt,
        messages=messages,
        subject=_optional_string(row.get("subject"), "subject"),
        source=_optional_string(row.get("source"), "source"),
    )


def _string(value: Any, field_name: str) -> str:
    if not isinstance(value, str):
        raise RecordError("bad_field_type", f"{field_name} must be a string")
    _encodable(value, field_name)
    return value


def _encodable(value: str, field_name: str) -> None:
    """A JSON `\\ud800` escape decodes to a lone surrogate, which is not valid Unicode text;
    a `\\u0000` escape (or a NUL in a CSV or Parquet string) is refused like a raw NUL byte."""
    if "\x00" in value:
        raise RecordError("nul_bytes", f"{field_name} holds a NUL character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise RecordError("invalid_utf8", f"{field_name} holds a lone surrogate") from None


def _optional_string(value: Any, field_name: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, int | str) and not isinstance(value, bool):
        _encodable(str(value), field_name)
        return str(value)
    raise RecordError("bad_field_type", f"{field_name} must be a string")


def _chat_messages(turns: Any, name: str, role_key: str, content_key: str) -> tuple[Message, ...]:
    if not isinstance(turns, list) or not turns:
        raise RecordError("bad_field_type", f"{name} must be a non-empty list")
    roles = SHAREGPT_ROLES if name == "conversations" else {r: r for r in CHAT_ROLES}
    out = []
    for i, turn in enumerate(turns):
        if not isinstance(turn, dict):
            raise RecordError("bad_field_type", f"{name}[{i}] must be an object")
        role = turn.get(role_key)
        if not isinstance(role, str) or role not in roles:
            raise RecordError("bad_field_type", f"{name}[{i}].{role_key} is not a known role")
        field_name = f"{name}[{i}].{content_key}"
        out.append(Message(roles[role], _string(turn.get(content_key), field_name), field_name))
    return tuple(out)


def _alpaca_messages(row: dict[str, Any]) -> tuple[Message, ...]:
    messages = [Message("user", _string(row["instruction"], "instruction"), "instruction")]
    extra = row.get("input")
    if extra not in (None, ""):
        messages.append(Message("user", _string(extra, "input"), "input"))
    messages.append(Message("assistant", _string(row["output"], "output"), "output"))
    return tuple(messages)


def _validate(record: Record, *, languages: list[str], max_record_chars: int) -> Record:
    text = record.text
    if len(text) > max_record_chars:
        raise RecordError("too_long", f"{len(text)} chars > ingest.max_record_chars")
    language, ok = language_verdict(text, languages)
    if not ok:
        raise RecordError("unsupported_language", f"detected={language}")
    return replace(record, language=language)
