"""A drop's data stages a batch at a time (issue #21.1): the same files as the whole drop at once.

`raw_corpus`, `scrubbed_corpus` and `curated_corpus` read, process and write
`execution.stream_batch_records` records at a time (the `DataEngine` resource) and write Parquet
in row groups of a fixed size, so a drop larger than one batch gives byte for byte the files and
the summaries of one batch. (One exception, not met here: where two values' surrogate
candidates collide, the value claimed first keeps the candidate, and a batch's later scrub
passes now come before the next batch's first pass: `docs/benchmarks.md`, Drop stages at
scale.)
"""

import hashlib
import json
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from assets.curated import curated_corpus
from assets.partitions import DATA_DROP
from assets.raw import raw_corpus, raw_quarantine
from assets.scrubbed import scrubbed_corpus
from pipelines.definitions import build_resources
from pipelines.steps.ingest.drops import scan_landing
from pipelines.steps.ingest.landing import ingest_files, iter_ingested
from pipelines.steps.records import records_to_frame
from pipelines.steps.storage import (
    RECORD_SCHEMA,
    SAMPLE_RECORD,
    ParquetStream,
    batched,
    frame_schema,
    read_parquet,
    write_parquet,
)
from resources import DataEngine
from resources.data_engine import STREAM_BATCH_RECORDS
from tests.pipeline_runs import make_config

RECORDS = 24
SMALL_BATCH = 4
NAMES = ["Maria Garcia", "John Smith", "Akira Tanaka", "Fatima Haddad", "Pierre Dubois"]


def _write_drop(folder: Path) -> None:
    """A chat JSONL of `RECORDS` records with names, e-mails and phones, plus a bad line, a
    duplicate id and an exact duplicate text."""
    lines = []
    for i in range(RECORDS):
        name = NAMES[i % len(NAMES)]
        prompt = (
            f"Hi, I am {name}, mail me at {name.split()[0].lower()}{i}@corp.example or call "
            f"212-555-01{i:02d}. Ticket {i} is about the VPN client on laptop {i * 7}."
        )
        row = {
            "id": f"r{i}",
            "subject": f"user{i % 4}",
            "messages": [
                {"role": "user", "content": prompt},
                {
                    "role": "assistant",
                    "content": f"Thanks, ticket {i} is logged for the network team.",
                },
            ],
        }
        lines.append(json.dumps(row))
    lines += ["{not json", lines[3], lines[4].replace('"r4"', '"r4-copy"')]
    folder.mkdir(parents=True)
    (folder / "chat.jsonl").write_text("\n".join(lines) + "\n")


OUTPUTS = (
    "raw/drops/{key}/raw_corpus.parquet",
    "raw/drops/{key}/quarantine.parquet",
    "raw/drops/{key}/scan_quarantine.parquet",
    "raw/drops/{key}/sources.json",
    "scrubbed/drops/{key}/scrubbed_corpus.parquet",
    "curated/drops/{key}/curated_corpus.parquet",
    "curated/drops/{key}/screening.parquet",
    "curated/drops/{key}/filtered.parquet",
    "curated/drops/{key}/quarantine.parquet",
    "curated/drops/{key}/curation_summary.json",
)


def _run_drop(root: Path, pii, batch_records: int | None) -> tuple[str, dict, dict]:
    """The drop stages of the one drop under `root/landing`, each asset called in turn as a
    run would: (key, output files' sha256, summaries)."""
    cfg = make_config(root, root.parent / "no-model")
    resources = build_resources(cfg)
    storage, model_store = resources["storage"], resources["model_store"]
    pii = pii.model_copy(update={"key_file": resources["pii"].key_file})
    execution = DataEngine(stream_batch_records=batch_records or STREAM_BATCH_RECORDS)
    [drop] = scan_landing(root / "landing")
    summaries = {}
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(DATA_DROP, [drop.key])
        with dg.build_asset_context(partition_key=drop.key, instance=instance) as context:
            summaries["raw_corpus"] = raw_corpus(context, storage, pii, execution)
        with dg.build_asset_context(partition_key=drop.key, instance=instance) as context:
            summaries["raw_quarantine"] = raw_quarantine(context, summaries["raw_corpus"], storage)
        with dg.build_asset_context(partition_key=drop.key, instance=instance) as context:
            summaries["scrubbed_corpus"] = scrubbed_corpus(
                context, summaries["raw_corpus"], storage, pii, execution
            )
        with dg.build_asset_context(partition_key=drop.key, instance=instance) as context:
            summaries["curated_corpus"] = curated_corpus(
                context, summaries["scrubbed_corpus"], storage, model_store, execution
            )
    files = {
        name: hashlib.sha256((root / name.format(key=drop.key)).read_bytes()).hexdigest()
        for name in OUTPUTS
    }
    return drop.key, files, {k: _without_paths(v) for k, v in summaries.items()}


def _without_paths(value):
    if isinstance(value, dict):
        return {k: _without_paths(v) for k, v in value.items() if "path" not in k}
    if isinstance(value, list):
        return [_without_paths(v) for v in value]
    return value


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """The same drop (27 lines, 2 quarantined) in one batch and in batches of 4."""
    base = tmp_path_factory.mktemp("batches")
    roots = {name: base / name for name in ("whole", "batched")}
    for root in roots.values():
        _write_drop(root / "landing" / "drop")
    pii = build_resources(make_config(roots["whole"], base / "no-model"))["pii"]
    pii.analyzer  # built once, shared by both runs  # noqa: B018
    return {
        "whole": _run_drop(roots["whole"], pii, None),
        "batched": _run_drop(roots["batched"], pii, SMALL_BATCH),
        "roots": roots,
    }


def test_when_a_drop_spans_several_batches_then_every_file_is_byte_identical(two_runs):
    key, whole, _ = two_runs["whole"]
    _, batched_files, _ = two_runs["batched"]
    raw = read_parquet(two_runs["roots"]["whole"] / f"raw/drops/{key}/raw_corpus.parquet")
    assert len(raw) > 3 * SMALL_BATCH  # several batches, not one
    assert batched_files == whole


def test_when_a_drop_spans_several_batches_then_counts_and_summaries_are_the_same(two_runs):
    _, _, whole = two_runs["whole"]
    _, _, batched_summaries = two_runs["batched"]
    assert batched_summaries == whole
    raw = whole["raw_corpus"]
    assert raw["records_in"] == raw["accepted"] + raw["quarantined"] + raw["filtered"]
    assert raw["quarantined"] > 0  # the generator's malformed lines


def test_when_a_file_is_streamed_in_any_batches_then_it_equals_write_parquet(tmp_path):
    frame = pd.DataFrame(
        {"id": [f"r{i}" for i in range(50)], "n": range(50), "note": [None, "x"] * 25}
    )
    expected = write_parquet(frame, tmp_path / "whole.parquet")
    schema = frame_schema(frame)
    for size in (1, 7, 50):
        with ParquetStream(tmp_path / f"s{size}.parquet", schema) as stream:
            for start in range(0, len(frame), size):
                stream.write(frame.iloc[start : start + size])
            assert stream.commit() == expected
    # row groups of a fixed size: the same bytes whatever the batches
    shas = set()
    for size in (3, 16, 50):
        with ParquetStream(tmp_path / "g.parquet", schema, row_group_rows=16) as stream:
            for start in range(0, len(frame), size):
                stream.write(frame.iloc[start : start + size])
            shas.add(stream.commit())
    assert len(shas) == 1
    assert read_parquet(tmp_path / "g.parquet").equals(frame)


def test_when_a_stream_is_left_without_commit_then_no_file_is_left(tmp_path):
    path = tmp_path / "out.parquet"
    with pytest.raises(RuntimeError), ParquetStream(path, RECORD_SCHEMA) as stream:
        stream.write(records_to_frame([SAMPLE_RECORD]))
        raise RuntimeError("the drop changed while it was read")
    assert list(tmp_path.iterdir()) == []


def test_when_ingestion_streams_then_it_yields_what_ingest_files_returns(landing):
    _write_drop(landing / "drop")
    files = sorted((landing / "drop").iterdir())
    args = {"landing": landing, "languages": ["en", "zh"], "max_record_chars": 8000}
    whole = ingest_files(files, **args)
    sources: list = []
    items = list(iter_ingested(files, **args, sources=sources))
    assert [x for x in items if x in whole.accepted] == whole.accepted
    assert len(items) == len(whole.accepted) + len(whole.quarantined) == whole.records_in
    assert [vars(s) for s in sources] == [vars(s) for s in whole.sources]


def test_batched_keeps_order_and_refuses_an_empty_batch():
    assert list(batched(range(7), 3)) == [[0, 1, 2], [3, 4, 5], [6]]
    with pytest.raises(ValueError, match="at least one"):
        list(batched([1], 0))
