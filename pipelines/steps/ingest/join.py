"""Every drop's files joined into the corpus training reads, a batch at a time (#21.1).

`training_corpus` read every drop's raw, scrubbed and curated file whole, joined them in
memory (`combine_drops` over lists of records, `pd.concat` of frames) and wrote each joined
file at once; these read `batch_rows` rows at a time and write with `ParquetStream`, holding
the join's compact state (`CrossDropJoin`) and never a whole file. A joined file has the rows
and the schema the whole-frame join wrote; its bytes are those of `write_parquet` up to one row
group (`ROW_GROUP_ROWS`) and do not depend on `batch_rows`.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.steps.ingest.drops import CrossDropJoin, CrossDropRemovals
from pipelines.steps.records import frame_to_records, records_to_frame
from pipelines.steps.storage import (
    SAMPLE_RECORD,
    ParquetStream,
    frame_schema,
    iter_parquet_frames,
)


def concat_parquet(
    paths: Sequence[str | Path], path: str | Path, batch_rows: int
) -> tuple[str, int]:
    """`write_parquet(pd.concat([read_parquet(p) for p in paths], ignore_index=True), path)`
    a batch at a time; the written file's sha256 and rows.

    The schema is the one the concatenated frame would be written with: pandas gives each
    column of a concatenation a dtype from the files' dtypes alone (an empty file's null
    columns make it `object`), and Arrow reads an `object` column's type from its values, so
    it is taken from the concatenation of one sample row per file that holds, per column, the
    file's first value that is not null.
    """
    samples = pd.concat([_sample(p) for p in paths], ignore_index=True)
    dtypes = samples.dtypes.to_dict()
    with ParquetStream(path, frame_schema(samples), empty=samples.iloc[:0]) as stream:
        for source in paths:
            for frame in iter_parquet_frames(source, batch_rows):
                # each batch in the dtypes of the concatenation (`str` beside a null column of
                # an empty file becomes `object`), as the whole frame was converted
                same = frame.dtypes.to_dict() == dtypes
                stream.write(frame if same else frame.astype(dtypes))
        return stream.commit(), stream.rows


def _sample(path: str | Path) -> pd.DataFrame:
    """One row (none for an empty file) with the file's dtypes: per column its first value that
    is not null, else null."""
    parquet = pq.ParquetFile(path)
    schema = parquet.schema_arrow
    if parquet.metadata.num_rows == 0:
        return schema.empty_table().to_pandas()
    values: dict[str, pa.Array] = {}
    for batch in parquet.iter_batches(batch_size=4096):
        for name in schema.names:
            column = batch.column(name)
            if name not in values and column.null_count < len(column):
                first = int(np.flatnonzero(column.is_valid().to_numpy(zero_copy_only=False))[0])
                values[name] = column.slice(first, 1)
        if len(values) == len(schema.names):
            break
    columns = [values.get(f.name, pa.nulls(1, f.type)) for f in schema]
    return pa.Table.from_arrays(columns, schema=schema).to_pandas()


@dataclass(kw_only=True)
class JoinedCurated(CrossDropRemovals):
    """The joined curated file: its sha256, the records kept, their distinct subjects, and
    what was removed across drops (as `CombinedDrops.removed`)."""

    sha256: str
    kept: int
    subjects: int


# The columns of a record that may hold no value (None): a joined file in which no kept record
# has one holds them as Arrow nulls, as `records_to_frame` of those records is written.
_OPTIONAL = ("subject", "source")


def join_curated(
    curated: Mapping[str, str | Path], path: str | Path, batch_rows: int
) -> JoinedCurated:
    """`write_parquet(records_to_frame(combine_drops(...).records), path)` over every drop's
    curated file (`{drop key: path}`), a batch at a time: the same file and removals.

    Two reads of each file: the first decides (`CrossDropJoin`: one bit a record is kept for
    the second) and finds which optional columns any kept record fills, which fixes the
    file's schema before a row is written; the second writes the records kept.
    """
    join = CrossDropJoin()
    keep: dict[str, list[np.ndarray]] = {}
    filled: set[str] = set()
    subjects: set[str] = set()
    kept = 0
    for key in sorted(curated):
        keep[key] = []
        for frame in iter_parquet_frames(curated[key], batch_rows):
            records = frame_to_records(frame)
            mask = join.keep(key, records)
            keep[key].append(np.packbits(mask))
            for record, is_kept in zip(records, mask, strict=True):
                if is_kept:
                    kept += 1
                    if record.subject:
                        subjects.add(record.subject)
                    filled.update(name for name in _OPTIONAL if getattr(record, name) is not None)
    sample = replace(SAMPLE_RECORD, **{name: None for name in _OPTIONAL if name not in filled})
    schema = frame_schema(records_to_frame([sample]))
    with ParquetStream(path, schema, empty=records_to_frame([])) as stream:
        for key in sorted(curated):
            masks = iter(keep.pop(key))
            for frame in iter_parquet_frames(curated[key], batch_rows):
                records = frame_to_records(frame)
                mask = np.unpackbits(next(masks), count=len(records)).astype(bool)
                chosen = [r for r, is_kept in zip(records, mask.tolist(), strict=True) if is_kept]
                if chosen:
                    stream.write(records_to_frame(chosen))
        sha256 = stream.commit()
    return JoinedCurated(sha256=sha256, kept=kept, subjects=len(subjects), removed=join.removed)
