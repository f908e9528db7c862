"""Packed records (#21.1): the same records back, on every kind of access."""

import pytest

from pipelines.steps.integrity import packed
from pipelines.steps.integrity.packed import PackedRecords
from pipelines.steps.records import Message, Record


def _records() -> list[Record]:
    return [
        Record(
            f"r{i}",
            "landing.jsonl",
            i + 1,
            ("chat", "alpaca", "text")[i % 3],
            (
                Message("system", "be brief", "messages[0].content"),
                Message("user", f"问题 {i} café \ud800 lone surrogate", "instruction"),
                Message("assistant", "ok " * i, "output", ((0, 2, "PERSON"), (3, 9, "EMAIL"))),
            )[: 1 + i % 3],
            subject=None if i % 2 else f"subj-{i}",
            source=None if i % 4 else "src-1",
            language=("en", "zh", "und")[i % 3],
        )
        for i in range(40)
    ]


def test_when_records_are_packed_then_each_access_gives_them_back_equal(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(packed, "_CHUNK_BYTES", 300)  # several chunks, records at their edges
    records = _records()

    store = PackedRecords(records)

    assert len(store._chunks) > 3 and len(store) == 40
    assert list(store) == records
    assert [store[i] for i in range(-40, 40)] == records + records
    assert list(store[5:30:3]) == records[5:30:3]
    view = store.take([9, 2, 33, 2])
    assert list(view) == [records[9], records[2], records[33], records[2]]
    assert list(view.take([3, 0])) == [records[2], records[9]] and view[-1] == records[2]
    assert store[7].messages[-1].scrub_spans == records[7].messages[-1].scrub_spans
    with pytest.raises(IndexError):
        store[40]
    with pytest.raises(IndexError):
        store.take([40])
    with pytest.raises(TypeError):
        view.append(records[0])


def test_record_ids_of_packed_records_and_their_views_are_the_records_ids(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(packed, "_CHUNK_BYTES", 300)
    records = _records()
    store = PackedRecords(records)
    view = store.take([9, 2, 33, 2]).take([3, 0, 2])

    assert list(packed.record_ids(store)) == [r.id for r in records]
    assert list(packed.record_ids(view)) == ["r2", "r9", "r33"]
    assert list(packed.record_ids(records[:3])) == ["r0", "r1", "r2"]


def test_when_packed_records_are_pickled_then_the_buffers_are_read_in_place_and_stay_read_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import pickle

    import numpy as np

    monkeypatch.setattr(packed, "_CHUNK_BYTES", 300)
    records = _records()
    store = PackedRecords(records)
    buffers: list[pickle.PickleBuffer] = []

    # Protocol 5 as Ray pickles: the chunks travel out of band, not copied into the pickle.
    data = pickle.dumps(store, protocol=5, buffer_callback=buffers.append)
    assert len(buffers) == len(store._chunks)
    assert len(data) < sum(len(chunk) for chunk in store._chunks) / 4
    restored = pickle.loads(data, buffers=buffers)
    view = pickle.loads(pickle.dumps(store.take([5, 0, 39]), protocol=5))

    assert list(restored) == records and list(restored.ids()) == [r.id for r in records]
    assert all(isinstance(chunk, np.ndarray) for chunk in restored._chunks)
    assert list(view) == [records[5], records[0], records[39]]
    with pytest.raises(TypeError, match="restored from a pickle"):
        restored.append(records[0])
