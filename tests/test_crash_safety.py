"""Crash safety of the writers: a SIGKILL mid-write leaves the previous or the new version.

A fast version of `scripts/crash_safety.py` (3 kills each of Parquet, JSON and JSONL at a tenth
of the payload); the adapter and registry kinds need ~20 s of imports per child and stay in the
script. The adapter rename-window probes stop `_save_adapter` exactly between its two renames.
"""

import json
from pathlib import Path

import pytest

from pipelines.steps.storage import atomic_write, write_text
from scripts.crash_safety import (
    CORRUPT,
    INTACT_PREVIOUS,
    KIND_SPECS,
    NEW,
    PREVIOUS,
    inspect_final,
    probe_adapter_rename_window,
    run_kind,
)

FAST_SCALE = 0.1


@pytest.mark.parametrize("kind", ["parquet", "json", "jsonl"])
def test_when_a_writer_is_killed_at_random_points_then_the_final_path_holds_a_whole_version(
    kind, tmp_path
):
    report = run_kind(kind, trials=3, seed=0, workdir=tmp_path, scale=FAST_SCALE)
    assert report.trials == 3
    assert report.ok, report.failures
    assert report.intact_previous + report.complete_new == 3


@pytest.mark.parametrize("kind", ["parquet", "jsonl"])
def test_when_a_final_file_is_truncated_then_the_drill_reports_it_corrupt(kind, tmp_path):
    spec = KIND_SPECS[kind]
    hashes = {}
    for version in (PREVIOUS, NEW):
        path = tmp_path / f"v{version}" / spec.final_name
        spec.write(spec.build(version, 1000), path)
        hashes[version] = spec.content_hash(path)
    final = tmp_path / "v1" / spec.final_name
    final.write_bytes(final.read_bytes()[:-100])  # a half-written file: what the drill must catch

    outcome, _ = inspect_final(spec, final, previous_hash=hashes[PREVIOUS], new_hash=hashes[NEW])

    assert outcome == CORRUPT


def test_when_the_writer_raises_then_atomic_write_keeps_the_previous_file_and_no_temp(tmp_path):
    final = tmp_path / "scan.jsonl"
    write_text(json.dumps({"id": "previous"}) + "\n", final)
    before = final.read_bytes()

    def write_half_then_fail(tmp: Path) -> None:
        tmp.write_text('{"id": "new", "findin', encoding="utf-8")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(final, write_half_then_fail)

    assert final.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scan.jsonl"]


@pytest.fixture(scope="module")
def adapter_window(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[str, str]]:
    results = probe_adapter_rename_window(tmp_path_factory.mktemp("adapter-window"))
    return {r.case: (r.outcome, r.detail) for r in results}


def test_when_save_adapter_is_killed_between_its_renames_then_the_previous_adapter_stays(
    adapter_window,
):
    outcome, detail = adapter_window["killed"]
    assert outcome == INTACT_PREVIOUS, detail


def test_when_save_adapter_is_interrupted_between_its_renames_then_the_previous_adapter_stays(
    adapter_window,
):
    outcome, detail = adapter_window["interrupted"]
    assert outcome == INTACT_PREVIOUS, detail
