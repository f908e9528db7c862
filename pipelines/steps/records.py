"""The one record type that flows through the pipeline, and its Parquet form.

A `Record` is a normalized training example: a stable id, where it came from (file and line), a
list of chat messages, the data subject (author) it belongs to, and its detected language. Every
input format (plain text, alpaca, sharegpt, chat) becomes this shape at ingestion.
"""

import json
from dataclasses import dataclass, field, replace
from typing import Any

import pandas as pd

ROLES = ("system", "user", "assistant")


@dataclass(frozen=True)
class Message:
    """One turn of a conversation."""

    role: str
    content: str
    field: str = ""
    """Where the content came from in the input record, e.g. `text`, `output` or
    `messages[2].content`; scan offsets refer to this field's original value."""
    scrub_spans: tuple[tuple[int, int, str], ...] = ()
    """`(start, end, entity_type)` of every replacement the PII scrubber wrote into `content`
    (surrogate, placeholder or redaction mark), ordered by start: a re-scan ignores findings
    inside them. Offsets and types only, never the replaced value."""


@dataclass(frozen=True)
class Record:
    """A normalized training example.

    Attributes:
        id: Stable identifier: the record's own `id` when it has one, otherwise a content hash.
        source_file: Name of the landing file the record came from.
        source_line: 1-based line (JSONL), row (CSV, Parquet) in that file.
        format: Input format it was parsed from: text, alpaca, sharegpt or chat.
        messages: The conversation, roles normalized to system/user/assistant.
        subject: The data subject or author the record belongs to, if known.
        source: The free-form source label the record carried, if any.
        language: ISO 639-1 code detected for the record ("en", "zh", ...).

    Ingestion reads `id`, `subject`, `source` and `source_file` as dropped; `raw_corpus`
    replaces them by keyed pseudonyms (`rec-…`, `subj-…`, `src-…`, `file-….jsonl`,
    `pipelines.steps.privacy.identifiers`) before any record is written, so every Parquet
    file of every zone holds the pseudonyms only.
    """

    id: str
    source_file: str
    source_line: int
    format: str
    messages: tuple[Message, ...]
    subject: str | None = None
    source: str | None = None
    language: str = "und"

    @property
    def text(self) -> str:
        """All message contents joined by blank lines (used for checks and screening)."""
        return "\n\n".join(m.content for m in self.messages)

    def with_messages(self, messages: tuple[Message, ...]) -> "Record":
        return replace(self, messages=messages)

    @property
    def text_scrub_spans(self) -> list[tuple[int, int, str]]:
        """Every message's `scrub_spans` as offsets into `text`."""
        spans, offset = [], 0
        for message in self.messages:
            spans += [(offset + s, offset + e, t) for s, e, t in message.scrub_spans]
            offset += len(message.content) + 2
        return spans


@dataclass(frozen=True)
class QuarantinedRecord:
    """A line that could not be accepted, with the reason code that sent it here.

    `raw` keeps the original line (decoded with replacement characters) for steward review: the
    quarantine belongs to the raw zone and may contain personal data; `detail` must not.
    """

    id: str
    source_file: str
    source_line: int
    reason: str
    detail: str
    raw: str = field(default="", repr=False)


RECORD_COLUMNS = [
    "id",
    "source_file",
    "source_line",
    "format",
    "messages",
    "subject",
    "source",
    "language",
    "text",
]


def records_to_frame(records: list[Record]) -> pd.DataFrame:
    """Turn records into a DataFrame; `messages` is stored as a JSON string column."""
    rows = [
        {
            "id": r.id,
            "source_file": r.source_file,
            "source_line": r.source_line,
            "format": r.format,
            "messages": json.dumps([_message_json(m) for m in r.messages], ensure_ascii=False),
            "subject": r.subject,
            "source": r.source,
            "language": r.language,
            "text": r.text,
        }
        for r in records
    ]
    frame = pd.DataFrame(rows, columns=RECORD_COLUMNS)
    return frame.astype({"source_line": "int64"})


def frame_to_records(frame: pd.DataFrame) -> list[Record]:
    """Inverse of `records_to_frame`."""
    out = []
    for row in frame.to_dict(orient="records"):
        messages = tuple(
            Message(
                m["role"],
                m["content"],
                m.get("field", ""),
                tuple((int(s), int(e), str(t)) for s, e, t in m.get("scrub_spans", ())),
            )
            for m in json.loads(row["messages"])
        )
        out.append(
            Record(
                id=str(row["id"]),
                source_file=str(row["source_file"]),
                source_line=int(row["source_line"]),
                format=str(row["format"]),
                messages=messages,
                subject=_none_if_missing(row.get("subject")),
                source=_none_if_missing(row.get("source")),
                language=str(row["language"]),
            )
        )
    return out


def _message_json(message: Message) -> dict[str, Any]:
    out: dict[str, Any] = {"role": message.role, "content": message.content, "field": message.field}
    if message.scrub_spans:
        out["scrub_spans"] = [list(span) for span in message.scrub_spans]
    return out


def _none_if_missing(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return None
    return str(value)
