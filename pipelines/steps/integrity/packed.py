"""Records packed in a few large byte buffers: a read-only `Sequence[Record]` for screening.

A list of `Record` objects costs about 1.2 KB a record (an object, a tuple and a dict per
record and per message, a string per field), and the forked second screening process copies
every page whose objects it touches (reading an object writes its reference count), so each
record was held twice (#21). `PackedRecords` holds each record as one `marshal` string of its
fields in chunks of 16 MiB, with three 4-byte numbers a record to find it: about the size of
the record's text, and pages no reference count writes to, which a forked process shares. A
`Record` equal to the one appended is built again on each access.
"""

import marshal
from array import array
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import fields
from typing import Any, overload

import numpy as np

from pipelines.steps.records import Message, Record

_CHUNK_BYTES = 1 << 24


# Every field, in order: a field added to `Record` or `Message` is packed with the others.
_RECORD_FIELDS = tuple(f.name for f in fields(Record))
_MESSAGE_FIELDS = tuple(f.name for f in fields(Message))
_MESSAGES = _RECORD_FIELDS.index("messages")
_ID = _RECORD_FIELDS.index("id")
_new, _set = object.__new__, object.__setattr__


def _pack(record: Record) -> bytes:
    values = [getattr(record, name) for name in _RECORD_FIELDS]
    values[_MESSAGES] = tuple(
        tuple(getattr(message, name) for name in _MESSAGE_FIELDS) for message in record.messages
    )
    return marshal.dumps(tuple(values))


def _build(cls: type, names: tuple[str, ...], values: Iterable[object]) -> Any:
    """An instance of a frozen dataclass with these field values, its `__init__` skipped (a
    quarter of the time of building a record again: the values are those of an instance)."""
    instance = _new(cls)
    _set(instance, "__dict__", dict(zip(names, values, strict=True)))
    return instance


def _unpack(data: bytes | bytearray) -> Record:
    values = list(marshal.loads(data))
    values[_MESSAGES] = tuple(
        _build(Message, _MESSAGE_FIELDS, message) for message in values[_MESSAGES]
    )
    return _build(Record, _RECORD_FIELDS, values)


class PackedRecords(Sequence[Record]):
    """Records in input order, packed (module docstring); `append` to fill, `take` for a view.

    Indexing, slicing and iteration give `Record` objects equal to those appended; a view
    (`take`, a slice) shares the buffers of the records it was taken from.
    """

    _restored = False  # unpickled: the buffers are read in place (`__reduce__`)

    def __init__(self, records: Iterable[Record] = ()) -> None:
        self._chunks: list[bytearray] = []
        self._chunk, self._start, self._size = array("I"), array("I"), array("I")
        self._rows: np.ndarray | None = None  # a view's rows of the store it shares
        for record in records:
            self.append(record)

    def append(self, record: Record) -> None:
        """Pack one more record (a view, or records restored from a pickle, take none)."""
        if self._rows is not None:
            raise TypeError("a view of packed records takes no new record")
        if self._restored:
            raise TypeError("packed records restored from a pickle take no new record")
        data = _pack(record)
        if not self._chunks or len(self._chunks[-1]) + len(data) > _CHUNK_BYTES:
            self._chunks.append(bytearray())
        chunk = self._chunks[-1]
        self._chunk.append(len(self._chunks) - 1)
        self._start.append(len(chunk))
        self._size.append(len(data))
        chunk += data

    def take(self, rows: Iterable[int]) -> "PackedRecords":
        """A view of the records at `rows` (positions in this sequence), in that order."""
        view = PackedRecords.__new__(PackedRecords)
        view._chunks, view._chunk, view._start, view._size = (
            self._chunks,
            self._chunk,
            self._start,
            self._size,
        )
        picked = np.fromiter(rows, dtype=np.int64)
        if len(picked) and (picked.min() < 0 or picked.max() >= len(self)):
            raise IndexError("packed record row out of range")
        view._rows = picked if self._rows is None else self._rows[picked]
        return view

    def _record(self, row: int) -> Record:
        start = self._start[row]
        return _unpack(self._chunks[self._chunk[row]][start : start + self._size[row]])

    def __len__(self) -> int:
        return len(self._chunk) if self._rows is None else len(self._rows)

    @overload
    def __getitem__(self, index: int) -> Record: ...

    @overload
    def __getitem__(self, index: slice) -> "PackedRecords": ...

    def __getitem__(self, index: int | slice) -> "Record | PackedRecords":
        if isinstance(index, slice):
            return self.take(range(*index.indices(len(self))))
        size = len(self)
        if not -size <= index < size:
            raise IndexError("packed record index out of range")
        index %= size
        return self._record(index if self._rows is None else int(self._rows[index]))

    def __iter__(self) -> Iterator[Record]:
        for row in self._store_rows():
            yield self._record(row)

    def ids(self) -> Iterator[str]:
        """Each record's id, in order, read from its packed fields without building the record
        and its messages (a quarter of the time of building it: 20k records of the benchmark
        corpus, 0.032 s against 0.125 s)."""
        for row in self._store_rows():
            start = self._start[row]
            yield marshal.loads(self._chunks[self._chunk[row]][start : start + self._size[row]])[
                _ID
            ]

    def _store_rows(self) -> Iterator[int]:
        """The rows of the store this sequence reads, in its order."""
        if self._rows is None:
            yield from range(len(self._chunk))
            return
        for start in range(0, len(self._rows), 4096):  # never a Python int per row at once
            yield from self._rows[start : start + 4096].tolist()

    def __repr__(self) -> str:
        return f"PackedRecords({len(self)} records)"

    def __reduce__(self) -> tuple:
        """Pickled with the buffers as numpy arrays: under pickle protocol 5 Ray puts them in its
        object store once, and each worker reads them there in place (#21.2: one copy of the
        corpus for every screen task on a node, not one a task). Restored, the records are
        read-only, as a view's are."""
        chunks = [np.frombuffer(chunk, dtype=np.uint8) for chunk in self._chunks]
        index = (self._chunk.tobytes(), self._start.tobytes(), self._size.tobytes())
        return (_restore, (chunks, *index, self._rows))


def _restore(
    chunks: list[np.ndarray], chunk: bytes, start: bytes, size: bytes, rows: np.ndarray | None
) -> PackedRecords:
    """`PackedRecords` from `PackedRecords.__reduce__`: the chunks read in place, the index
    (12 bytes a record) copied."""
    packed = PackedRecords.__new__(PackedRecords)
    packed._chunks = chunks  # type: ignore[assignment]  # read-only: no record is appended
    packed._chunk, packed._start, packed._size = (array("I", b) for b in (chunk, start, size))
    packed._rows, packed._restored = rows, True
    return packed


def record_ids(records: Sequence[Record]) -> Iterator[str]:
    """The records' ids in order (of packed records, without building them)."""
    if isinstance(records, PackedRecords):
        return records.ids()
    return (record.id for record in records)


def subset(records: Sequence[Record], rows: list[int]) -> Sequence[Record]:
    """The records at `rows`: a view of packed records (their buffers shared, no record built),
    else a list."""
    if isinstance(records, PackedRecords):
        return records.take(rows)
    return [records[row] for row in rows]
