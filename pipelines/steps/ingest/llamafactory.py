"""LLaMA-Factory datasets in and out.

In: a landing folder holding a `dataset_info.json` (the layout of LLaMA-Factory's `data/`) is
read through it. Each entry's `file_name` (a file or folder inside that folder) is read in the
entry's `formatting` (`alpaca` or `sharegpt`) with its `columns` and `tags` mappings, as
LLaMA-Factory's own converters read it: alpaca's prompt, query, response, history, system and
tools columns; sharegpt's turns (human/gpt/function_call/observation, a system turn first) plus
its system and tools columns; an alpaca entry whose columns map only `prompt` is plain text.
Every value that would be trained on becomes a message of the record, so the scrubber scans it:
the system prompt and the tool descriptions (role `system`, fields `system` and `tools`), every
turn of the history and of the conversation. A message's `field` names the LLaMA-Factory column
role it came from (`instruction`, `input`, `output`, `history[0][1]`, `conversations[2].
function_call`, ...), whatever the file calls that column.

Nothing is skipped silently. An entry that cannot be read (hub-only, a preference, KTO or
multimodal dataset, a `file_name` outside the folder or missing) is one quarantine slot of
`dataset_info.json` with a reason; a file of the folder that no entry names is quarantined as
`unreferenced_file`; a `dataset_info.json` that is not valid refuses every file of its folder as
`bad_dataset_info`. Records that break LLaMA-Factory's own rules (turn order, an odd number of
turns) are quarantined, where LLaMA-Factory would drop them with a warning.

Data files are `.json` (a JSON array, or JSON lines), `.jsonl`, `.csv` or `.parquet`, opened
like every landing file (no link followed, within `ingest.limits`). A JSON array is streamed
element by element (ijson), each element bounded by `ingest.limits.max_record_bytes` and their
number by `max_file_rows` while parsing; its "lines" are its elements (`_array_slots`).

Out: `export_dataset` writes records back as a LLaMA-Factory dataset folder: `sovtune_alpaca.json`,
`sovtune_sharegpt.json` (tool turns and tools kept) and `sovtune_text.json` (plain text, for
`stage: pt`), with the `dataset_info.json` that names them and an `export_manifest.json` that
counts what went where and lists, by id and reason, every record that no LLaMA-Factory format
can hold.
"""

import hashlib
import json
import os
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import ijson

from pipelines.steps.config import IngestLimits
from pipelines.steps.ingest.landing import (
    BOM,
    Reader,
    RecordError,
    Slot,
    SourceFile,
    _encodable,
    _optional_string,
    _string,
    file_slots,
    open_entry,
    refusal,
)
from pipelines.steps.records import Message, Record

DATASET_INFO = "dataset_info.json"
MANIFEST = "export_manifest.json"
"""What `export_dataset` writes beside the data: counts and ids, never read as records."""
FORMATTINGS = ("alpaca", "sharegpt")
COLUMN_KEYS = {
    "prompt",
    "query",
    "response",
    "history",
    "messages",
    "system",
    "tools",
    "images",
    "videos",
    "audios",
    "chosen",
    "rejected",
    "kto_tag",
}
UNSUPPORTED_COLUMNS = ("images", "videos", "audios", "chosen", "rejected", "kto_tag")
"""Columns of dataset kinds sovtune does not train on (multimodal, preference, KTO)."""
TAG_DEFAULTS = {
    "role_tag": "from",
    "content_tag": "value",
    "user_tag": "human",
    "assistant_tag": "gpt",
    "observation_tag": "observation",
    "function_tag": "function_call",
    "system_tag": "system",
}
ALPACA_DEFAULTS = {"prompt": "instruction", "query": "input", "response": "output"}
SHAREGPT_DEFAULTS = {"messages": "conversations"}
HUB_KEYS = ("hf_hub_url", "ms_hub_url", "om_hub_url", "script_url", "cloud_file_name")
# a turn's LLaMA-Factory role: the record role it trains as, and the tag it is exported with
TURN_ROLES = {
    "user_tag": ("user", "human"),
    "observation_tag": ("user", "observation"),
    "assistant_tag": ("assistant", "gpt"),
    "function_tag": ("assistant", "function_call"),
}
EXPORT_TAGS = ("human", "gpt", "function_call", "observation")


@dataclass(frozen=True)
class DatasetSpec:
    """One `dataset_info.json` entry that names local data, with its mappings resolved."""

    name: str
    file_name: str
    formatting: str
    columns: dict[str, str]
    tags: dict[str, str]
    unsupported: str = ""
    """Why its records cannot be trained on (preference, KTO, multimodal); empty when they can."""

    @property
    def is_text(self) -> bool:
        """An alpaca entry that maps only `prompt`: a pre-training text dataset."""
        return self.formatting == "alpaca" and set(self.columns) == {"prompt"}

    def to_record(self, row: dict[str, Any], *, source_file: str, source_line: int) -> Record:
        """One element of the dataset as a record (language not yet set).

        Raises:
            RecordError: with a reason code when the element cannot become a record.
        """
        if self.unsupported:
            raise RecordError("unsupported_dataset", f"dataset {self.name!r}: {self.unsupported}")
        if self.is_text:
            fmt = "text"
            text = row.get(self.columns["prompt"])
            if text is None:
                raise RecordError("missing_field", f"no {self.columns['prompt']} (columns.prompt)")
            messages = [Message("user", _string(text, "text"), "text")]
        elif self.formatting == "alpaca":
            fmt, messages = "alpaca", self._alpaca(row)
        else:
            fmt, messages = "sharegpt", self._sharegpt(row)
        if any(not m.content.strip() for m in messages):
            raise RecordError("empty_text", "a message is blank")
        return Record(
            id=_record_id(row, messages),
            source_file=source_file,
            source_line=source_line,
            format=fmt,
            messages=tuple(messages),
            subject=_optional_string(row.get("subject"), "subject"),
            source=_optional_string(row.get("source"), "source"),
        )

    def _context(self, row: dict[str, Any], system: Any = None) -> list[Message]:
        """The system prompt and the tool descriptions, as system messages (both scanned)."""
        out = []
        if system is None and self.columns.get("system"):
            system = row.get(self.columns["system"])
        if system not in (None, ""):
            out.append(Message("system", _string(system, "system"), "system"))
        tools = row.get(self.columns["tools"]) if self.columns.get("tools") else None
        if isinstance(tools, list | dict):  # LLaMA-Factory reads a JSON string; keep its text
            tools = json.dumps(tools, ensure_ascii=False)
        if tools not in (None, "", "[]"):
            out.append(Message("system", _string(tools, "tools"), "tools"))
        return out

    def _alpaca(self, row: dict[str, Any]) -> list[Message]:
        cols = self.columns
        if row.get(cols["response"]) is None:
            raise RecordError("missing_field", f"no {cols['response']} (columns.response)")
        messages = self._context(row)
        history = row.get(cols["history"]) if cols.get("history") else None
        if history not in (None, []):
            if not isinstance(history, list):
                raise RecordError("bad_field_type", "history must be a list of pairs")
            for i, pair in enumerate(history):
                if not isinstance(pair, list | tuple) or len(pair) != 2:
                    raise RecordError(
                        "bad_field_type", f"history[{i}] must be a [prompt, response]"
                    )
                messages.append(
                    Message("user", _string(pair[0], f"history[{i}][0]"), f"history[{i}][0]")
                )
                messages.append(
                    Message("assistant", _string(pair[1], f"history[{i}][1]"), f"history[{i}][1]")
                )
        prompt = [
            Message("user", _string(row[cols[key]], name), name)
            for key, name in (("prompt", "instruction"), ("query", "input"))
            if cols.get(key) and row.get(cols[key]) not in (None, "")
        ]
        if not prompt:
            raise RecordError("empty_text", "instruction and input are both blank")
        return [
            *messages,
            *prompt,
            Message("assistant", _string(row[cols["response"]], "output"), "output"),
        ]

    def _sharegpt(self, row: dict[str, Any]) -> list[Message]:
        tags = self.tags
        name = self.columns["messages"]
        turns = row.get(name)
        if turns is None:
            raise RecordError("missing_field", f"no {name} (columns.messages)")
        if not isinstance(turns, list) or not turns:
            raise RecordError("bad_field_type", f"{name} must be a non-empty list")
        if not all(isinstance(t, dict) for t in turns):
            raise RecordError("bad_field_type", f"every turn of {name} must be an object")
        role_tag, content_tag = tags["role_tag"], tags["content_tag"]
        first = 0
        system = None
        if tags.get("system_tag") and turns[0].get(role_tag) == tags["system_tag"]:
            system, first = turns[0].get(content_tag), 1
            if system is None:
                raise RecordError("bad_field_type", f"conversations[0].{content_tag} is missing")
        messages = self._context(row, system)
        odd = {tags[k]: TURN_ROLES[k] for k in ("user_tag", "observation_tag") if tags.get(k)}
        even = {tags[k]: TURN_ROLES[k] for k in ("assistant_tag", "function_tag") if tags.get(k)}
        for i in range(first, len(turns)):
            allowed = odd if (i - first) % 2 == 0 else even
            tag = turns[i].get(role_tag)
            if not isinstance(tag, str) or tag not in allowed:
                raise RecordError(
                    "bad_field_type",
                    f"conversations[{i}].{role_tag}: not one of {'/'.join(allowed)}, as "
                    "LLaMA-Factory expects at this position",
                )
            role, canonical = allowed[tag]
            path = f"conversations[{i}].{canonical}"
            messages.append(Message(role, _string(turns[i].get(content_tag), path), path))
        if (len(turns) - first) % 2:
            raise RecordError("bad_field_type", "an odd number of turns: the last must answer")
        return messages


def _record_id(row: dict[str, Any], messages: list[Message]) -> str:
    """The element's `id` when it has one, else a content hash (as for any landing record)."""
    record_id = row.get("id")
    if record_id is None or record_id == "":
        canonical = json.dumps([[m.role, m.content] for m in messages], ensure_ascii=False)
        return "sha-" + hashlib.sha256(canonical.encode()).hexdigest()[:16]
    if not isinstance(record_id, str | int) or isinstance(record_id, bool):
        raise RecordError("bad_field_type", "id must be a string or an integer")
    _encodable(str(record_id), "id")
    return str(record_id)


class DatasetInfoError(ValueError):
    """A `dataset_info.json` entry that cannot be read; `reason` is an ingest reason code."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def parse_entry(name: str, entry: Any) -> DatasetSpec:
    """One `dataset_info.json` entry as a `DatasetSpec`.

    Raises:
        DatasetInfoError: `bad_dataset_info` (names the key to fix) or `unsupported_dataset`.
    """

    def bad(problem: str) -> DatasetInfoError:
        return DatasetInfoError("bad_dataset_info", f"dataset {name!r}: {problem}")

    if not isinstance(entry, dict):
        raise bad("the entry must be an object")
    file_name = entry.get("file_name")
    if file_name is None:
        hub = [k for k in HUB_KEYS if entry.get(k)]
        if hub:
            raise DatasetInfoError(
                "unsupported_dataset",
                f"dataset {name!r}: only {'/'.join(hub)}; sovtune is offline and reads local "
                "files only (download it into the folder and set file_name)",
            )
        raise bad("no file_name")
    if not isinstance(file_name, str) or not file_name.strip():
        raise bad("file_name must be a string")
    formatting = entry.get("formatting", "alpaca")
    if formatting not in FORMATTINGS:
        raise bad(f"formatting {formatting!r} is not alpaca or sharegpt")
    columns = entry.get("columns") or {}
    tags = entry.get("tags") or {}
    for key, value, known in (("columns", columns, COLUMN_KEYS), ("tags", tags, TAG_DEFAULTS)):
        if not isinstance(value, dict) or not all(
            isinstance(v, str) or v is None for v in value.values()
        ):
            raise bad(f"{key} must map names to column names")
        unknown = sorted(set(value) - set(known))
        if unknown:
            raise bad(f"unknown {key} key(s) {', '.join(unknown)}")
    columns = {k: v for k, v in columns.items() if v}
    defaults = ALPACA_DEFAULTS if formatting == "alpaca" else SHAREGPT_DEFAULTS
    spec_columns = columns if formatting == "alpaca" and set(columns) == {"prompt"} else None
    unsupported = ""
    if entry.get("ranking"):
        unsupported = "a preference (ranking) dataset"
    elif any(columns.get(k) for k in UNSUPPORTED_COLUMNS):
        kinds = [k for k in UNSUPPORTED_COLUMNS if columns.get(k)]
        unsupported = f"maps {', '.join(kinds)} (multimodal, preference or KTO data)"
    return DatasetSpec(
        name=name,
        file_name=file_name,
        formatting=formatting,
        columns=spec_columns or {**defaults, **columns},
        tags={**TAG_DEFAULTS, **tags} if formatting == "sharegpt" else {},
        unsupported=unsupported,
    )


def dataset_readers(
    files: list[Path], *, landing: Path, limits: IngestLimits
) -> tuple[list[Path], list[Reader]]:
    """Split `files` into plain landing files and readers of LLaMA-Factory dataset folders.

    A folder holding a `dataset_info.json` claims every file under it (the nearest such folder
    wins); the rest are returned, in order, to be read as ordinary landing files.
    """
    folders = {p.parent for p in files if p.name == DATASET_INFO}
    if not folders:
        return files, []
    plain: list[Path] = []
    claimed: dict[Path, list[Path]] = {folder: [] for folder in folders}
    for path in files:
        owner = next((parent for parent in path.parents if parent in folders), None)
        if owner is None:
            plain.append(path)
        elif path != owner / DATASET_INFO and not (path == owner / MANIFEST and _regular(path)):
            claimed[owner].append(path)
    readers = [
        reader
        for folder in sorted(folders)
        for reader in _folder_readers(folder, claimed[folder], landing=landing, limits=limits)
    ]
    return plain, readers


def _regular(path: Path) -> bool:
    return path.is_file() and not path.is_symlink()


def _rel(path: Path, landing: Path) -> str:
    return str(path.relative_to(landing))


def _refused(path: Path, landing: Path, err: RecordError) -> Reader:
    """A reader of one slot that refuses a whole file unread."""
    source = SourceFile(
        name=_rel(path, landing),
        sha256=hashlib.sha256(f"refused:{err.reason}".encode()).hexdigest(),
        bytes=0,
    )
    return Reader(source, [Slot(0, err, lines=0)], _never)


def _never(row: dict, line: int) -> Record:
    raise RecordError("bad_dataset_info", "not a record")


def _folder_readers(
    folder: Path, files: list[Path], *, landing: Path, limits: IngestLimits
) -> list[Reader]:
    info_path = folder / DATASET_INFO
    info_source = SourceFile(name=_rel(info_path, landing), sha256="", bytes=0)
    try:
        entries = _read_dataset_info(info_path, landing=landing, limits=limits, source=info_source)
    except RecordError as err:
        detail = f"{info_source.name}: {err.detail}"
        invalid = RecordError("bad_dataset_info", detail)
        return [
            Reader(info_source, [Slot(0, invalid, lines=0)], _never),
            *(_refused(p, landing, RecordError("bad_dataset_info", detail)) for p in files),
        ]
    entry_slots: list[Slot] = []
    readers: list[Reader] = [Reader(info_source, entry_slots, _never)]
    if _regular(folder / MANIFEST):
        # sovtune's own export manifest: counts and ids, no records (listed, nothing read)
        readers.append(Reader(SourceFile(_rel(folder / MANIFEST, landing), "", 0), [], _never))
    used: set[Path] = set()
    resolved_folder = os.path.realpath(folder)
    for name, entry in entries.items():
        try:
            spec = parse_entry(name, entry)
        except DatasetInfoError as err:
            entry_slots.append(Slot(0, RecordError(err.reason, err.detail), lines=0))
            continue
        target = folder / spec.file_name
        if os.path.isabs(spec.file_name) or not os.path.realpath(target).startswith(
            resolved_folder + os.sep
        ):
            entry_slots.append(
                Slot(
                    0,
                    RecordError(
                        "bad_dataset_info",
                        f"dataset {name!r}: file_name must "
                        "name a file or folder inside the dataset folder",
                    ),
                    lines=0,
                )
            )
            continue
        data_files = [p for p in files if p == target or target in p.parents]
        if not data_files:
            entry_slots.append(
                Slot(
                    0,
                    RecordError(
                        "unreadable_file",
                        f"dataset {name!r}: file_name {spec.file_name!r} is not in the folder",
                    ),
                    lines=0,
                )
            )
            continue
        used.update(data_files)
        for path in data_files:
            rel = _rel(path, landing)
            source = SourceFile(name=rel, sha256="", bytes=0)
            readers.append(
                Reader(
                    source,
                    data_slots(path, root=landing, limits=limits, source=source),
                    _normalizer(spec, rel),
                )
            )
    readers += [
        _refused(
            p,
            landing,
            refusal(p) or RecordError("unreferenced_file", "no dataset_info.json entry names it"),
        )
        for p in files
        if p not in used
    ]
    return readers


def _normalizer(spec: DatasetSpec, rel: str):
    def normalize(row: dict, line: int) -> Record:
        return spec.to_record(row, source_file=rel, source_line=line)

    return normalize


def _read_dataset_info(
    path: Path, *, landing: Path, limits: IngestLimits, source: SourceFile
) -> dict[str, Any]:
    """The parsed `dataset_info.json`: a mapping of dataset names to entries.

    Raises:
        RecordError: the file is refused, too large, not UTF-8 JSON, or not an object.
    """
    with open_entry(path, root=landing) as handle:
        data = handle.read(limits.max_file_bytes + 1)
    source.bytes = len(data)
    source.sha256 = hashlib.sha256(data).hexdigest()
    if len(data) > limits.max_file_bytes:
        raise RecordError("file_too_large", "over ingest.limits.max_file_bytes")
    try:
        entries = json.loads(data.removeprefix(BOM).decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise RecordError("bad_dataset_info", f"not valid JSON ({type(exc).__name__})") from None
    if not isinstance(entries, dict):
        raise RecordError("bad_dataset_info", "expected an object of dataset entries")
    return entries


SNIFF_BYTES = 1 << 16
"""Bytes read to tell a JSON array (`[` first) from JSON lines before reading a `.json` file."""


def data_slots(
    path: Path, *, root: Path, limits: IngestLimits, source: SourceFile
) -> Iterator[Slot]:
    """The slots of one dataset file: a JSON array's elements, or the landing reader's slots."""
    if path.suffix.lower() != ".json":
        yield from file_slots(path, root=root, limits=limits, source=source)
        return
    try:
        handle = open_entry(path, root=root)
    except RecordError as err:
        source.sha256 = hashlib.sha256(f"refused:{err.reason}".encode()).hexdigest()
        yield Slot(0, err, lines=0)
        return
    with handle:
        head = handle.read(SNIFF_BYTES)
        if not head.removeprefix(BOM).lstrip().startswith(b"["):
            is_array = False  # JSON lines (a blank head too: the line reader accounts for it)
        else:
            is_array = True
            handle.seek(0)
            yield from _array_slots(handle, limits, source)
    if not is_array:
        yield from file_slots(path, root=root, limits=limits, source=source)


class _ArrayStream:
    """A JSON array file as ijson reads it: hashed and counted as read, the BOM skipped."""

    def __init__(self, handle: IO[bytes], limit: int) -> None:
        self.handle, self.limit = handle, limit
        self.digest, self.bytes = hashlib.sha256(), 0

    def read(self, size: int = -1) -> bytes:
        if size == 0:  # ijson's probe for bytes or text
            return b""
        chunk = self.handle.read(size if size > 0 else 1 << 16)
        if self.bytes == 0 and chunk.startswith(BOM):
            self.digest.update(BOM)
            self.bytes = len(BOM)
            chunk = chunk[len(BOM) :]
        self.digest.update(chunk)
        self.bytes += len(chunk)
        if self.bytes > self.limit:  # the file grew after its size was checked
            raise _OverFileBytes
        return chunk


class _OverFileBytes(Exception):
    """The array file is over `ingest.limits.max_file_bytes`."""


def _event_bytes(event: str, value: Any) -> int:
    """About how many bytes of compact JSON one parser event stands for (never more)."""
    if event in ("string", "map_key"):
        return len(value.encode("utf-8", "surrogatepass")) + 2
    if event == "number":
        return len(str(value))
    return 1


def _array_slots(handle: IO[bytes], limits: IngestLimits, source: SourceFile) -> Iterator[Slot]:
    """A JSON array's elements as slots, parsed one at a time (ijson), within `limits`.

    Memory is bounded by the largest element (and, inside it, the largest string), not by the
    file: an element whose text passes `max_record_bytes` stops being built and is refused as
    `too_long`. A first pass counts the elements without building any (`_count_elements`):
    an array with more than `max_file_rows` is refused whole, as one `file_too_large` slot
    covering every element, as a JSONL file over the limit is (should the file grow between
    the passes, the elements past the limit are refused together). JSON that breaks midway
    keeps the
    elements read so far; the rest of the file is one `unreadable_file` slot (its extent is
    unknown, so it counts as one line), with the parser's message left out (it quotes the
    file). Each element counts as one physical line.
    """
    size = os.fstat(handle.fileno()).st_size
    source.bytes = size
    if size > limits.max_file_bytes:
        source.sha256 = hashlib.sha256(f"refused:{size}".encode()).hexdigest()
        yield Slot(
            0, RecordError("file_too_large", f"{size} bytes > ingest.limits.max_file_bytes"), 0
        )
        return
    lines, digest = _count_elements(handle, limits)
    if lines > limits.max_file_rows:
        source.physical_lines, source.sha256 = lines, digest
        detail = f"{lines} elements > ingest.limits.max_file_rows"
        yield Slot(0, RecordError("file_too_large", detail), lines=lines)
        return
    handle.seek(0)
    stream = _ArrayStream(handle, limits.max_file_bytes)
    events = ijson.basic_parse(stream, use_float=True)
    number = depth = cost = 0
    past_rows = 0  # elements past max_file_rows: counted, not built
    builder: ijson.ObjectBuilder | None = None
    try:
        next(events)  # the opening bracket (sniffed)
        for event, value in events:
            if depth == 0:
                if event == "end_array":
                    break
                number += 1
                cost = 0
                if number > limits.max_file_rows:
                    past_rows += 1
                    builder = None
                else:
                    builder = ijson.ObjectBuilder()
            if event in ("start_map", "start_array"):
                depth += 1
            elif event in ("end_map", "end_array"):
                depth -= 1
            if builder is not None:
                cost += _event_bytes(event, value)
                if cost > limits.max_record_bytes:
                    builder = None  # stop building; `cost` stays over the limit
                else:
                    builder.event(event, value)
            if depth == 0 and number <= limits.max_file_rows:
                yield _element_slot(number, builder, cost, limits)
                builder = None
        for _ in events:  # anything after the array is an error (ijson raises)
            pass
    except (ijson.JSONError, _OverFileBytes, UnicodeDecodeError, RecursionError) as exc:
        inside = 1 if depth else 0  # the element being read is itself cut short
        if inside and number > limits.max_file_rows:
            past_rows -= 1
        if past_rows:
            yield _past_rows_slot(number - inside, past_rows, limits)
            past_rows = 0
        number += 1 - inside
        if isinstance(exc, _OverFileBytes):
            error = RecordError("file_too_large", "over ingest.limits.max_file_bytes")
        else:
            error = RecordError(
                "unreadable_file",
                f"JSON array broken at element {number}: the rest of the file is not read "
                f"({type(exc).__name__})",
            )
        yield Slot(number, error)
    if past_rows:
        yield _past_rows_slot(number, past_rows, limits)
    source.physical_lines = number
    source.sha256 = stream.digest.hexdigest()


def _count_elements(handle: IO[bytes], limits: IngestLimits) -> tuple[int, str]:
    """(elements, sha256) of a JSON array, streamed without building any element.

    A break in the JSON counts as one more element (the slot that will refuse the rest).
    """
    stream = _ArrayStream(handle, limits.max_file_bytes)
    elements = depth = 0
    try:
        events = ijson.basic_parse(stream, use_float=True)
        next(events)
        for event, _ in events:
            if depth == 0:
                if event == "end_array":
                    break
                elements += 1
            if event in ("start_map", "start_array"):
                depth += 1
            elif event in ("end_map", "end_array"):
                depth -= 1
        for _ in events:
            pass
    except (ijson.JSONError, _OverFileBytes, UnicodeDecodeError, RecursionError):
        elements += 0 if depth else 1
    return elements, stream.digest.hexdigest()


def _element_slot(number: int, builder: Any, cost: int, limits: IngestLimits) -> Slot:
    if builder is None or cost > limits.max_record_bytes:
        detail = f"element over ingest.limits.max_record_bytes ({limits.max_record_bytes})"
        return Slot(number, RecordError("too_long", detail))
    element = builder.value
    raw = json.dumps(element, ensure_ascii=False)
    if len(raw.encode("utf-8", "surrogatepass")) > limits.max_record_bytes:
        detail = f"element over ingest.limits.max_record_bytes ({limits.max_record_bytes})"
        return Slot(number, RecordError("too_long", detail), raw=raw[: limits.max_record_bytes])
    if not isinstance(element, dict):
        return Slot(number, RecordError("not_an_object", type(element).__name__), raw=raw)
    return Slot(number, element, raw=raw)


def _past_rows_slot(number: int, past: int, limits: IngestLimits) -> Slot:
    first = number - past + 1
    detail = (
        f"elements {first}-{number} ({past}) are past ingest.limits.max_file_rows "
        f"({limits.max_file_rows}): not read"
    )
    return Slot(first, RecordError("file_too_large", detail), lines=past)


# ---- out: records as a LLaMA-Factory dataset folder ------------------------------------------

EXPORT_DATASETS = {
    "alpaca": {
        "file_name": "sovtune_alpaca.json",
        "columns": {
            "prompt": "instruction",
            "query": "input",
            "response": "output",
            "history": "history",
            "system": "system",
            "tools": "tools",
        },
    },
    "sharegpt": {
        "file_name": "sovtune_sharegpt.json",
        "formatting": "sharegpt",
        "columns": {"messages": "conversations", "system": "system", "tools": "tools"},
    },
    "text": {"file_name": "sovtune_text.json", "columns": {"prompt": "text"}},
}


class NotExportable(ValueError):
    """A record no LLaMA-Factory format holds as it stands; `reason` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class ExportResult:
    """What `export_dataset` wrote: records per dataset, and every record it could not."""

    datasets: dict[str, int] = field(default_factory=dict)
    not_exported: list[dict[str, str]] = field(default_factory=list)

    @property
    def exported(self) -> int:
        return sum(self.datasets.values())


def export_element(record: Record) -> tuple[str, dict[str, Any]]:
    """(dataset kind, element) of one record: `alpaca`, `sharegpt` or `text`.

    Raises:
        NotExportable: the turns do not alternate as LLaMA-Factory requires.
    """
    system = [m for m in record.messages if m.role == "system"]
    turns = [m for m in record.messages if m.role != "system"]
    element: dict[str, Any] = {"id": record.id}
    prompts = [m.content for m in system if m.field != "tools"]
    if prompts:
        element["system"] = "\n\n".join(prompts)
    tools = [m.content for m in system if m.field == "tools"]
    if tools:
        element["tools"] = tools[0]
    if record.format == "text" or not any(m.role == "assistant" for m in turns):
        if len(turns) != 1 or system:
            raise NotExportable("no_response")
        return "text", {"id": record.id, "text": turns[0].content}
    if record.format == "alpaca":
        return "alpaca", {**element, **_alpaca_columns(turns)}
    tags = [_export_tag(m) for m in turns]
    for i, tag in enumerate(tags):
        allowed = ("human", "observation") if i % 2 == 0 else ("gpt", "function_call")
        if tag not in allowed:
            raise NotExportable("turns_not_alternating")
    if len(tags) % 2:
        raise NotExportable("turns_not_alternating")
    element["conversations"] = [
        {"from": tag, "value": m.content} for tag, m in zip(tags, turns, strict=True)
    ]
    return "sharegpt", element


def _export_tag(message: Message) -> str:
    suffix = message.field.rsplit(".", 1)[-1]
    if suffix in EXPORT_TAGS:
        return suffix
    return "human" if message.role == "user" else "gpt"


def _alpaca_columns(turns: list[Message]) -> dict[str, Any]:
    if turns[-1].role != "assistant":
        raise NotExportable("turns_not_alternating")
    prompt = []
    i = len(turns) - 2
    while i >= 0 and turns[i].role == "user":
        prompt.insert(0, turns[i])
        i -= 1
    earlier = turns[: i + 1]
    if (
        not prompt
        or len(earlier) % 2
        or any(m.role != ("user" if j % 2 == 0 else "assistant") for j, m in enumerate(earlier))
    ):
        raise NotExportable("turns_not_alternating")
    inputs = [m for m in prompt if m.field == "input"]
    instructions = [m for m in prompt if m.field != "input"] or inputs[:1]
    inputs = [m for m in inputs if m not in instructions]
    out: dict[str, Any] = {
        "instruction": "\n".join(m.content for m in instructions),
        "input": "\n".join(m.content for m in inputs),
        "output": turns[-1].content,
    }
    if earlier:
        out["history"] = [
            [earlier[j].content, earlier[j + 1].content] for j in range(0, len(earlier), 2)
        ]
    return out


def export_dataset(
    records: Iterable[Record], out: Path, *, corpus_sha256: str = ""
) -> ExportResult:
    """Write `records` as a LLaMA-Factory dataset folder at `out` (files, `dataset_info.json`
    and `export_manifest.json`); every record is exported or listed as not exported.

    `corpus_sha256` (the source corpus's fingerprint) is recorded in the manifest.
    """
    from pipelines.steps.storage import write_json, write_text

    elements: dict[str, list[dict[str, Any]]] = {kind: [] for kind in EXPORT_DATASETS}
    result = ExportResult()
    for record in records:
        try:
            kind, element = export_element(record)
        except NotExportable as exc:
            result.not_exported.append({"id": record.id, "reason": exc.reason})
            continue
        elements[kind].append(element)
    info = {}
    for kind, rows in elements.items():
        if not rows:
            continue
        spec = EXPORT_DATASETS[kind]
        write_text(json.dumps(rows, ensure_ascii=False, indent=2) + "\n", out / spec["file_name"])
        info[f"sovtune_{kind}"] = spec
        result.datasets[f"sovtune_{kind}"] = len(rows)
    write_json(info, out / DATASET_INFO)
    write_json(
        {
            "corpus_sha256": corpus_sha256,
            "records_in": result.exported + len(result.not_exported),
            "exported": result.datasets,
            "not_exported_by_reason": dict(
                sorted(Counter(x["reason"] for x in result.not_exported).items())
            ),
            "not_exported": result.not_exported,
        },
        out / MANIFEST,
    )
    return result
