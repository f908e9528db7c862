"""The curated corpus's checks a batch at a time (#21.1): the results of the whole file at once.

A check read the whole curated Parquet file into one frame (and a list of records beside it);
these read `batch_rows` rows at a time. The Great Expectations suite judges each batch, and
its counts are summed; only `ids_unique` spans batches, so the ids are kept as 8-byte digests
(one numpy array, 8 bytes a record) and the few that repeat are confirmed on the ids themselves
in a second read. The near-duplicate screen is corpus-wide: it reads the records packed
(`PackedRecords`, about the size of their text) as screening does.
"""

import hashlib
from collections import Counter
from pathlib import Path

import numpy as np

from pipelines.steps.config import CurationConfig
from pipelines.steps.integrity.curate import ExpectationOutcome, SuiteResult, validate_curated_frame
from pipelines.steps.integrity.offenders import expectation_offenders
from pipelines.steps.integrity.packed import PackedRecords
from pipelines.steps.records import frame_to_records
from pipelines.steps.storage import iter_parquet_frames, read_parquet

IDS_UNIQUE = "ids_unique"


def read_packed(path: str | Path, batch_rows: int) -> PackedRecords:
    """The records of a corpus file, packed, read `batch_rows` rows at a time."""
    records = PackedRecords()
    for frame in iter_parquet_frames(path, batch_rows):
        for record in frame_to_records(frame):
            records.append(record)
    return records


def validate_curated_file(
    path: str | Path, cfg: CurationConfig, batch_rows: int
) -> tuple[SuiteResult, dict[str, list[str]]]:
    """`validate_curated_frame` and, when it fails, `expectation_offenders` of a curated file,
    read a batch at a time: the same outcomes (success and unexpected count per expectation)
    and the same offending ids as the whole file in one frame.

    Returns:
        The suite's outcome, and per failed expectation the sorted ids of the records that
        break it (empty when the suite passed).
    """
    totals: Counter[str] = Counter()
    failed: set[str] = set()
    names: list[str] = []
    offenders: dict[str, set[str]] = {}
    digests: list[np.ndarray] = []
    for frame in iter_parquet_frames(path, batch_rows):
        batch = validate_curated_frame(frame, cfg)
        names = [e.name for e in batch.expectations]
        totals.update({e.name: e.unexpected_count for e in batch.expectations})
        broken = {e.name for e in batch.expectations if not e.success}
        failed |= broken
        # the records of this batch that break an expectation (ids_unique: across batches)
        if broken - {IDS_UNIQUE}:
            found = expectation_offenders(frame, cfg)
            for name in broken - {IDS_UNIQUE}:
                offenders.setdefault(name, set()).update(found[name])
        digests.append(_id_digests(frame["id"]))
    if not names:  # an empty file: the suite's verdict on no rows
        suite = validate_curated_frame(read_parquet(path), cfg)
        return suite, {}
    repeated = _repeated_ids(path, np.concatenate(digests), batch_rows)
    del digests
    # rows whose id is not unique in the file, as the suite counts them on one frame
    totals[IDS_UNIQUE] = sum(repeated.values())
    if repeated:
        failed.add(IDS_UNIQUE)
        offenders[IDS_UNIQUE] = set(repeated)
    outcomes = [ExpectationOutcome(n, n not in failed, int(totals[n])) for n in names]
    suite = SuiteResult(success=not failed, expectations=outcomes)
    return suite, {name: sorted(offenders.get(name, ())) for name in sorted(failed)}


def _id_digests(ids) -> np.ndarray:
    """8 bytes of blake2b per id, as unsigned integers."""
    data = b"".join(hashlib.blake2b(str(i).encode(), digest_size=8).digest() for i in ids)
    return np.frombuffer(data, dtype=np.uint64)


def _repeated_ids(path: str | Path, digests: np.ndarray, batch_rows: int) -> dict[str, int]:
    """Ids that occur more than once in the file, with their number of rows: digests that
    repeat name the candidates, a second read counts the ids themselves (two ids sharing a
    digest are not taken for one)."""
    values, counts = np.unique(digests, return_counts=True)
    candidates = values[counts > 1]
    if not len(candidates):
        return {}
    seen: Counter[str] = Counter()
    for frame in iter_parquet_frames(path, batch_rows):
        ids = frame["id"].astype(str).tolist()
        hit = np.isin(_id_digests(ids), candidates)
        seen.update(i for i, h in zip(ids, hit.tolist(), strict=True) if h)
    return {i: n for i, n in seen.items() if n > 1}
