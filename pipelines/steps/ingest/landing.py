"""Ingestion: landing files (JSONL, CSV, Parquet) into records plus a quarantine.

Supported shapes per record: plain `{"text"}`, alpaca `{"instruction", "input", "output"}`,
sharegpt `{"conversations": [{"from", "value"}]}` and chat `{"messages": [{"role", "content"}]}`,
each optionally with `id`, `source` and `subject`. A line that cannot be accepted never stops
ingestion and is never dropped: it becomes a `QuarantinedRecord` with a reason code, so that
`records_in == accepted + quarantined` always holds.
"""

import csv
import hashlib
import io
import json
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from pipelines.steps.ingest.language import language_verdict
from pipelines.steps.records import Message, QuarantinedRecord, Record
from pipelines.steps.storage import sha256_file

SUPPORTED_SUFFIXES = (".jsonl", ".json", ".csv", ".parquet")
SHAREGPT_ROLES = {
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "system": "system",
}
CHAT_ROLES = {"user", "assistant", "system"}

# Reason codes of the quarantine, with what a steward should read them as.
REASONS = {
    "invalid_utf8": "the line is not valid UTF-8",
    "bad_json": "the line is not valid JSON",
    "not_an_object": "the JSON value is not an object",
    "empty_line": "the line is blank",
    "nul_bytes": "the line contains NUL bytes",
    "missing_field": "no text, instruction/output, conversations or messages field",
    "bad_field_type": "a field has the wrong type or an unknown role",
    "empty_text": "a message or the whole record has no text",
    "too_long": "the record is longer than ingest.max_record_chars",
    "unsupported_language": "no PII detector is configured for the record's language",
    "duplicate_id": "another record already has this id",
    "unreadable_file": "the file could not be read as its format",
    "unsupported_file_type": "the landing file's type is not JSONL, CSV or Parquet",
}


class RecordError(ValueError):
    """A record that must be quarantined; `reason` is a code from REASONS."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass
class SourceFile:
    """A landing file and its fingerprint (lineage starts here)."""

    name: str
    sha256: str
    bytes: int
    records_in: int = 0


@dataclass
class IngestResult:
    """Everything ingestion produced; `records_in == len(accepted) + len(quarantined)`."""

    accepted: list[Record] = field(default_factory=list)
    quarantined: list[QuarantinedRecord] = field(default_factory=list)
    sources: list[SourceFile] = field(default_factory=list)

    @property
    def records_in(self) -> int:
        return sum(s.records_in for s in self.sources)

    def quarantine_counts(self) -> dict[str, int]:
        return dict(sorted(Counter(q.reason for q in self.quarantined).items()))


def ingest_landing(landing: Path, *, languages: list[str], max_record_chars: int) -> IngestResult:
    """Read every file under `landing` (sorted, recursive) into records and a quarantine."""
    files = [
        p for p in sorted(Path(landing).rglob("*")) if p.is_file() and not p.name.startswith(".")
    ]
    return ingest_files(
        files, landing=landing, languages=languages, max_record_chars=max_record_chars
    )


def ingest_files(
    files: list[Path], *, landing: Path, languages: list[str], max_record_chars: int
) -> IngestResult:
    """Read `files` (paths under `landing`, in the given order) into records and a quarantine.

    Source names are relative to `landing`, so a drop's lineage names the file as it was
    dropped (`chat.jsonl`, `default/chat.jsonl`).
    """
    result = IngestResult()
    seen_ids: set[str] = set()
    for path in files:
        rel = str(path.relative_to(landing))
        source = SourceFile(name=rel, sha256=sha256_file(path), bytes=path.stat().st_size)
        result.sources.append(source)
        for line_no, parsed in iter_rows(path):
            source.records_in += 1
            try:
                if isinstance(parsed, RecordError):
                    raise parsed
                record = normalize_row(parsed, source_file=rel, source_line=line_no)
                record = _validate(record, languages=languages, max_record_chars=max_record_chars)
                if record.id in seen_ids:
                    raise RecordError("duplicate_id", "id already used by an earlier record")
                seen_ids.add(record.id)
                result.accepted.append(record)
            except RecordError as err:
                raw = parsed if isinstance(parsed, dict) else getattr(err, "raw", "")
                result.quarantined.append(
                    QuarantinedRecord(
                        id=_quarantine_id(parsed, rel, line_no),
                        source_file=rel,
                        source_line=line_no,
                        reason=err.reason,
                        detail=err.detail,
                        raw=json.dumps(raw, ensure_ascii=False, default=str)
                        if isinstance(raw, dict)
                        else str(raw),
                    )
                )
    return result


def _quarantine_id(parsed: Any, file: str, line: int) -> str:
    if isinstance(parsed, dict) and isinstance(parsed.get("id"), str | int):
        return str(parsed["id"])
    return f"{file}:{line}"


def iter_rows(path: Path):
    """Yield (line or row number, dict | RecordError) for every record slot in a file."""
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json"):
        yield from _iter_jsonl(path)
    elif suffix == ".csv":
        yield from _iter_csv(path)
    elif suffix == ".parquet":
        yield from _iter_parquet(path)
    else:
        yield 0, RecordError("unsupported_file_type", f"suffix {suffix or '(none)'}")


def _iter_jsonl(path: Path):
    data = path.read_bytes()
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    for number, raw in enumerate(lines, start=1):
        raw = raw.rstrip(b"\r")
        if not raw.strip():
            yield number, RecordError("empty_line", "blank line")
            continue
        if b"\x00" in raw:
            yield number, _with_raw(RecordError("nul_bytes", "NUL byte in line"), raw)
            continue
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            yield number, _with_raw(RecordError("invalid_utf8", f"byte {exc.start}"), raw)
            continue
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            yield number, _with_raw(RecordError("bad_json", f"column {exc.colno}: {exc.msg}"), raw)
            continue
        except RecursionError:
            yield number, _with_raw(RecordError("bad_json", "nested too deeply"), raw)
            continue
        if not isinstance(value, dict):
            yield number, _with_raw(RecordError("not_an_object", type(value).__name__), raw)
            continue
        yield number, value


def _with_raw(err: RecordError, raw: bytes) -> RecordError:
    err.raw = raw.decode("utf-8", errors="replace")  # type: ignore[attr-defined]
    return err


def _iter_csv(path: Path):
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        yield 0, RecordError("invalid_utf8", f"byte {exc.start} of the CSV file")
        return
    try:
        reader = csv.DictReader(io.StringIO(text, newline=""))
        for number, row in enumerate(reader, start=2):  # line 1 is the header
            if None in row:
                yield number, RecordError("bad_field_type", "more cells than header columns")
                continue
            yield number, {k: v for k, v in row.items() if v not in (None, "")}
    except csv.Error as exc:
        yield 0, RecordError("unreadable_file", f"CSV: {exc}")


def _iter_parquet(path: Path):
    try:
        rows = pq.read_table(path).to_pylist()
    except Exception as exc:  # noqa: BLE001 — any reader failure quarantines the file
        yield 0, RecordError("unreadable_file", f"Parquet: {type(exc).__name__}")
        return
    for number, row in enumerate(rows, start=1):
        yield number, {k: v for k, v in row.items() if v is not None}


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
    """A JSON `\\ud800` escape decodes to a lone surrogate, which is not valid Unicode text."""
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
