"""A drop's checks and the cross-drop join a batch at a time (#21.1): the whole file's results.

`no_residual_pii`, `curated_expectations` and `near_duplicate_rate_bounded` read
`execution.stream_batch_records` records at a time, and `training_corpus` joins the drops'
files a batch at a time; each must give what the whole file read at once gave: the same
metadata, description and offending ids, and the same joined files, byte for byte.
"""

import hashlib
from pathlib import Path

import pandas as pd
import pytest

from checks import curation
from checks.scrubbing import no_residual_pii
from pipelines.definitions import build_resources
from pipelines.steps.config import CurationConfig
from pipelines.steps.ingest.drops import (
    CROSS_DROP_DUPLICATE_ID,
    CROSS_DROP_EXACT_DUPLICATE,
    CrossDropJoin,
    combine_drops,
)
from pipelines.steps.ingest.join import concat_parquet, join_curated
from pipelines.steps.integrity.batches import validate_curated_file
from pipelines.steps.integrity.curate import near_duplicate_rate, validate_curated_frame
from pipelines.steps.integrity.offenders import expectation_offenders, near_duplicate_extras
from pipelines.steps.records import Message, Record, frame_to_records, records_to_frame
from pipelines.steps.storage import RECORD_SCHEMA, ParquetStream, read_parquet, write_parquet
from resources import CorpusStorage, DataEngine
from tests.pipeline_runs import make_config
from tests.test_drop_batches import _without_paths

WHOLE = DataEngine()  # every file below fits in one batch of the default size
TOPICS = ["VPN client", "payroll export", "printer queue", "mail quota", "badge reader"]
VPN = (
    "My laptop stopped connecting to the VPN after the latest update and I keep getting an "
    "authentication error every single morning when I log in from home."
)


def _record(record_id: str, prompt: str, response: str, **fields) -> Record:
    messages = (Message("user", prompt), Message("assistant", response))
    return Record(record_id, "t.jsonl", 1, "chat", messages, language="en", **fields)


def _clean(count: int, prefix: str = "rec") -> list[Record]:
    return [
        _record(
            f"{prefix}-{i}",
            f"Ticket {prefix}{i}: the {TOPICS[i % len(TOPICS)]} fails on floor {i} since {i + 3}"
            " days.",
            f"Thanks, ticket {i} about the {TOPICS[i % len(TOPICS)]} is logged for team {i % 3}.",
            subject=f"subj-{i % 4}",
        )
        for i in range(count)
    ]


def _write(records: list[Record], path: Path) -> str:
    """A corpus file as the drop stages write it (`ParquetStream`, `RECORD_SCHEMA`)."""
    with ParquetStream(path, RECORD_SCHEMA, empty=records_to_frame([])) as stream:
        stream.write(records_to_frame(records))
        return stream.commit()


def _curated(tmp_path: Path, records: list[Record]) -> dict:
    path = tmp_path / "curated_corpus.parquet"
    _write(records, path)
    return {"path": str(path)}


def _result(check) -> tuple:
    """What a check's result says: pass, description and metadata values."""
    metadata = {k: getattr(v, "value", v) for k, v in check.metadata.items()}
    return check.passed, check.description, metadata


# --- curated_expectations ---------------------------------------------------------------------


def _broken_corpus() -> list[Record]:
    records = _clean(9)
    # a duplicate id, its two records in different batches of 2 to 4: breaks ids_unique
    records.append(_record("rec-1", "Where is the badge office?", "On floor two, room 12."))
    # a residual e-mail address (approved by a steward): breaks no_residual_email
    records.insert(3, _record("rec-mail", "Whom do I ask?", "Write to ann.lee@corp-mail.com."))
    # a text under curation.min_chars: breaks text_length_in_range
    records.insert(6, _record("rec-short", "Hi", "Ok"))
    # a second residual address, batches after the first: its id is named beside the first's
    records.append(_record("rec-mail-2", "And the cashier?", "Mail bo.chan@corp-mail.com now."))
    return records


@pytest.mark.parametrize("batch", [2, 3, 4])
def test_when_the_suite_reads_batches_then_it_reports_what_one_frame_gives(tmp_path, batch):
    storage = CorpusStorage(data_root=str(tmp_path))
    curated = _curated(tmp_path, _broken_corpus())

    batched = curation.curated_expectations(
        curated, storage, DataEngine(stream_batch_records=batch)
    )

    assert _result(batched) == _result(curation.curated_expectations(curated, storage, WHOLE))
    passed, description, metadata = _result(batched)
    assert not passed
    assert metadata["ids_unique"] == 2  # both rows of rec-1, as the suite counts one frame
    assert metadata["no_residual_email"] == 2 and metadata["text_length_in_range"] == 1
    assert metadata["offending_ids"] == ["rec-1", "rec-mail", "rec-mail-2", "rec-short"]
    assert "ids_unique" in description and "ann.lee" not in description


@pytest.mark.parametrize("batch", [1, 2, 5])
def test_when_a_file_is_validated_in_batches_then_it_equals_the_whole_frame_suite(tmp_path, batch):
    cfg = CurationConfig()
    records = _broken_corpus()
    records.append(records[0])  # rec-0 three times over the file: ids_unique counts 2 more rows
    path = Path(_curated(tmp_path, records)["path"])
    frame = read_parquet(path)
    whole = validate_curated_frame(frame, cfg)
    offenders = expectation_offenders(frame, cfg)

    suite, found = validate_curated_file(path, cfg, batch)

    assert suite == whole
    failed = [e.name for e in whole.expectations if not e.success]
    assert found == {name: offenders[name] for name in failed}


def test_when_the_curated_corpus_is_clean_then_the_batched_suite_passes(tmp_path):
    storage = CorpusStorage(data_root=str(tmp_path))
    curated = _curated(tmp_path, _clean(7))

    result = curation.curated_expectations(curated, storage, DataEngine(stream_batch_records=2))

    assert _result(result) == _result(curation.curated_expectations(curated, storage, WHOLE))
    assert result.passed and result.metadata["ids_unique"].value == 0


def test_when_the_curated_corpus_is_empty_then_the_batched_suite_is_the_empty_frames(tmp_path):
    cfg = CurationConfig()
    path = Path(_curated(tmp_path, [])["path"])

    suite, found = validate_curated_file(path, cfg, 2)

    assert suite == validate_curated_frame(read_parquet(path), cfg) and found == {}


# --- near_duplicate_rate_bounded --------------------------------------------------------------


def test_when_an_approved_near_copy_is_read_in_batches_then_the_check_fails_the_same(tmp_path):
    storage = CorpusStorage(data_root=str(tmp_path))
    records = _clean(6)
    records.insert(1, _record("rec-8", VPN, "Restart the client and sign in again."))
    # one word apart from rec-8, a steward approved it: breaks the near-duplicate bound
    records.append(_record("rec-9", VPN.replace("single", "other"), "Restart the client."))
    curated = _curated(tmp_path, records)
    whole_records = frame_to_records(read_parquet(curated["path"]))

    batched = curation.near_duplicate_rate_bounded(
        curated, storage, DataEngine(stream_batch_records=3)
    )

    assert _result(batched) == _result(
        curation.near_duplicate_rate_bounded(curated, storage, WHOLE)
    )
    passed, _, metadata = _result(batched)
    assert not passed and metadata["offending_ids"] == ["rec-9"]
    assert metadata["near_duplicate_rate"] == near_duplicate_rate(whole_records, storage.curation)
    assert near_duplicate_extras(whole_records, storage.curation) == ["rec-9"]


def test_when_the_joined_corpus_is_read_in_batches_then_its_near_copy_check_is_the_same(
    tmp_path,
):
    from checks.training_corpus import near_duplicate_rate_across_drops_bounded as check

    storage = CorpusStorage(data_root=str(tmp_path))
    records = [_record("a-8", VPN, "Restart the client and sign in again."), *_clean(5)]
    # the near copy sits in another drop: breaks the bound only in the joined corpus
    records.append(_record("b-9", VPN.replace("single", "other"), "Restart the client."))
    joined = {**_curated(tmp_path, records), "drops": [{"drop": "a"}, {"drop": "b"}]}

    batched = check(joined, storage, DataEngine(stream_batch_records=2))

    assert _result(batched) == _result(check(joined, storage, WHOLE))
    assert not batched.passed and batched.metadata["near_duplicate_rate"].value == 1 / 7


# --- no_residual_pii --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pii(tmp_path_factory):
    root = tmp_path_factory.mktemp("residual")
    engine = build_resources(make_config(root, root / "no-model"))["pii"]
    engine.analyzer  # built once for the module  # noqa: B018
    return engine


def test_when_residual_pii_is_rescanned_in_batches_then_the_counts_are_the_whole_file(
    tmp_path, pii
):
    records = _clean(7)
    # the scrubber missed a phone number and an e-mail address: the re-scan must count them
    records.insert(
        4, _record("rec-left", "Call me on 212-867-5309 please.", "Or mail maria.lopez@corp.com")
    )
    scrubbed = _curated(tmp_path, records)
    whole = pii.residual(frame_to_records(read_parquet(scrubbed["path"])))

    batched = no_residual_pii(scrubbed, pii, DataEngine(stream_batch_records=2))

    assert _result(batched) == _result(no_residual_pii(scrubbed, pii, WHOLE))
    passed, description, metadata = _result(batched)
    assert not passed and whole.get("EMAIL_ADDRESS") == 1
    assert "maria" not in description + repr(metadata)
    clean = _curated(tmp_path / "clean", _clean(5))
    assert no_residual_pii(clean, pii, DataEngine(stream_batch_records=2)).passed


# --- the cross-drop join ----------------------------------------------------------------------


def _drops() -> dict[str, list[Record]]:
    """Three drops' curated records: exact copies and colliding ids across and within drops."""
    a = _clean(5, "a")
    b = _clean(6, "b")
    b[1] = a[2]  # an exact copy of a's record: removed from b as a cross-drop exact duplicate
    b[3] = _record("a-4", "A different question on the cafeteria menu.", "It changes on Monday.")
    # b[3] reuses a-4's id with other content: removed as a cross-drop duplicate id
    c = [
        _record("c-0", "Who signs the travel form?", "Your manager signs it.", source="src-1"),
        b[5],  # a copy of a later record of an earlier drop
        # the same content as b's removed record (its id taken): kept, b's was never kept
        _record("c-2", "A different question on the cafeteria menu.", "It changes on Monday."),
        _record("c-3", "Is the garage open at night?", "Until ten."),
        _record("c-3", "Is the garage open at noon?", "Always."),  # a repeat within c
    ]
    return {"drop-b": b, "drop-a": a, "drop-c": c}


def test_when_drops_are_joined_a_batch_at_a_time_then_the_decisions_are_combine_drops(tmp_path):
    drops = _drops()
    combined = combine_drops(drops)
    join = CrossDropJoin()
    kept: list[Record] = []
    for key in sorted(drops):
        for start in range(0, len(drops[key]), 2):
            batch = drops[key][start : start + 2]
            kept += [r for r, k in zip(batch, join.keep(key, batch), strict=True) if k]

    assert kept == combined.records and join.removed == combined.removed
    assert combined.removed == [
        ("drop-b", "a-2", CROSS_DROP_EXACT_DUPLICATE),
        ("drop-b", "a-4", CROSS_DROP_DUPLICATE_ID),
        ("drop-c", "b-5", CROSS_DROP_EXACT_DUPLICATE),
        ("drop-c", "c-3", CROSS_DROP_DUPLICATE_ID),
    ]
    with pytest.raises(ValueError, match="key order"):
        join.keep("drop-a", [])


@pytest.mark.parametrize("batch", [1, 2, 4096])
def test_when_curated_drops_are_joined_from_files_then_the_file_is_the_whole_join(tmp_path, batch):
    drops = _drops()
    paths = {key: tmp_path / f"{key}.parquet" for key in drops}
    for key, records in drops.items():
        _write(records, paths[key])
    # the old join: every drop's records read whole, joined in memory, written at once
    combined = combine_drops({k: frame_to_records(read_parquet(p)) for k, p in paths.items()})
    expected = write_parquet(records_to_frame(combined.records), tmp_path / "old.parquet")

    joined = join_curated(paths, tmp_path / "new.parquet", batch)

    assert joined.sha256 == expected == _sha256(tmp_path / "new.parquet")
    assert joined.removed == combined.removed
    assert joined.kept == len(combined.records) == 12
    assert joined.subjects == len({r.subject for r in combined.records if r.subject})
    assert joined.removed_by_reason() == combined.removed_by_reason()
    assert joined.removed_by_drop() == combined.removed_by_drop()


@pytest.mark.parametrize(
    "drops",
    [
        # no kept record has a subject or a source: those columns are written as nulls
        {"x": [_record("x-0", "What is the guest wifi?", "Ask the front desk.")]},
        # the same records twice: y's all removed across drops
        {"x": _clean(2), "y": _clean(2)},
        {"x": []},
    ],
    ids=["no-subjects", "all-removed", "empty"],
)
def test_when_a_joined_column_holds_no_value_then_the_file_is_the_whole_join(tmp_path, drops):
    paths = {key: tmp_path / f"{key}.parquet" for key in drops}
    for key, records in drops.items():
        _write(records, paths[key])
    combined = combine_drops({k: frame_to_records(read_parquet(p)) for k, p in paths.items()})
    expected = write_parquet(records_to_frame(combined.records), tmp_path / "old.parquet")

    assert join_curated(paths, tmp_path / "new.parquet", 1).sha256 == expected


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("batch", [1, 3, 4096])
def test_when_drop_files_are_concatenated_in_batches_then_they_are_write_parquet_of_pd_concat(
    tmp_path, batch
):
    files = []
    for name, records in [
        ("a", _clean(5, "a")),
        ("empty", []),  # a drop all quarantined: its null-typed columns change the dtypes
        ("b", [_record("b-0", "Who signs the travel form?", "Your manager.")]),  # no subject
        ("c", _clean(3, "c")),
    ]:
        files.append(tmp_path / f"{name}.parquet")
        _write(records, files[-1])
    for chosen in (files, [files[0], files[3]], [files[1]], [files[2], files[0]]):
        frame = pd.concat([read_parquet(p) for p in chosen], ignore_index=True)
        expected = write_parquet(frame, tmp_path / "old.parquet")

        sha256, rows = concat_parquet(chosen, tmp_path / "new.parquet", batch)

        assert (sha256, rows) == (expected, len(frame))


def test_when_training_corpus_joins_in_batches_then_its_files_and_summary_are_the_old_ones(
    tmp_path,
):
    from assets.training_corpus import _summary

    drops = _drops()
    raw, scrubbed, curated = {}, {}, {}
    for key, records in drops.items():
        folder = tmp_path / "drops" / key
        folder.mkdir(parents=True)
        for name in ("raw", "scrubbed", "curated"):
            _write(records, folder / f"{name}.parquet")
        raw[key] = {
            "path": str(folder / "raw.parquet"),
            "drop_name": key,
            "drop_sha256": "0" * 64,
            "records_in": len(records),
            "accepted": len(records),
            "quarantined": 0,
            "quarantine_by_reason": {},
            "languages": {"en": len(records)},
            "sources": [],
        }
        scrubbed[key] = {
            "path": str(folder / "scrubbed.parquet"),
            "records_with_pii": 1,
            "entity_counts": {"PERSON": 1},
        }
        curated[key] = {
            "path": str(folder / "curated.parquet"),
            "records_in": len(records),
            "kept": len(records),
            "filtered": 0,
            "filtered_by_reason": {},
            "dropped": 0,
            "quarantined": 0,
            "steward": {"approved": 0, "rejected": 0, "pending": 0, "decisions_sha256": None},
            "trigger_clusters": [],
            "by_screen": {},
        }
    registered = sorted(drops)
    summaries = {}
    for batch in (2, 4096):
        storage = CorpusStorage(data_root=str(tmp_path / f"root-{batch}"))
        combined = join_curated(
            {k: curated[k]["path"] for k in registered},
            storage.curated / "curated_corpus.parquet",
            batch,
        )
        summaries[batch] = _summary(
            registered,
            raw,
            scrubbed,
            curated,
            combined,
            storage,
            DataEngine(stream_batch_records=batch),
        )
    # the old join: each zone's frames concatenated whole and written at once
    old = {
        zone: write_parquet(
            pd.concat([read_parquet(v[k]["path"]) for k in registered], ignore_index=True),
            tmp_path / f"old-{zone}.parquet",
        )
        for zone, v in (("raw", raw), ("scrubbed", scrubbed))
    }
    combined = combine_drops({k: drops[k] for k in registered})
    old["curated"] = write_parquet(
        records_to_frame(combined.records), tmp_path / "old-curated.parquet"
    )

    small, whole = (_without_paths(summaries[b]) for b in (2, 4096))
    assert small == whole
    assert {zone: small[zone]["sha256"] for zone in old} == old
    assert small["sha256"] == old["curated"]
    assert small["curated"]["kept"] == len(combined.records)
    assert small["curated"]["cross_drop_removed_by_reason"] == combined.removed_by_reason()
    assert small["scrubbed"]["records"] == sum(len(r) for r in drops.values())
    removed = read_parquet(tmp_path / "root-2" / "curated" / "cross_drop_removed.parquet")
    assert list(removed.itertuples(index=False, name=None)) == combined.removed
