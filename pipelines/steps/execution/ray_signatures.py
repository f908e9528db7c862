"""MinHash signatures of the screens (`screens.minhash`) computed per block of records on Ray.

A record's signature depends on its own shingle ids alone, so blocks of consecutive records are
signed in Ray tasks (`map_batches`, at most `execution.workers` at a time) and the rows are put
back in place: the array equals `minhash.signatures`. The shingle hashes (`minhash.shingle_sets`),
the banding and the exact Jaccard of the candidate pairs stay on the driver: banding is a sort
of compact integer keys (64 MiB of signatures at 1M records and 64 permutations), which a Ray
group-by on band keys would only ship through the object store.
"""

import math
from collections.abc import Callable

import numpy as np

from pipelines.steps.config import CurationConfig, ExecutionConfig
from pipelines.steps.execution.ray_cluster import run_on_cluster
from pipelines.steps.integrity.curate import CurationResult, curate_records
from pipelines.steps.integrity.screens import minhash
from pipelines.steps.records import Record

MIN_BLOCK_RECORDS = 2_000
"""Fewest records per Ray task (a task costs milliseconds; 2k signatures about as much)."""


def ray_signer(execution: ExecutionConfig) -> "minhash.Signer":
    """A `minhash.Signer` (for `minhash.signatures_by`) that signs on the connected cluster."""

    def sign(shingles: minhash.ShingleSets, *, num_perm: int, seed: int) -> np.ndarray:
        records = len(shingles)
        out = np.full((records, num_perm), np.iinfo(np.uint32).max, dtype=np.uint32)
        if not records:
            return out
        size = max(MIN_BLOCK_RECORDS, math.ceil(records / (4 * execution.workers)))
        offsets = shingles.offsets
        items = [
            {
                "start": start,
                "ids": shingles.ids[offsets[start] : offsets[min(start + size, records)]].tobytes(),
                "offsets": (
                    offsets[start : min(start + size, records) + 1] - offsets[start]
                ).tobytes(),
            }
            for start in range(0, records, size)
        ]
        done = 0
        signed = run_on_cluster(sign_pipeline, items, num_perm, seed, execution.workers)
        for start, signature in zip(signed["start"], signed["signature"], strict=True):
            rows = np.frombuffer(signature, dtype=np.uint32).reshape(-1, num_perm)
            out[start : start + len(rows)] = rows
            done += len(rows)
        if done != records:
            raise RuntimeError(f"Ray signed {done} of {records} records")
        return out

    return sign


def sign_pipeline(items: list[dict], num_perm: int, seed: int, workers: int):
    """The Ray Data pipeline (run on the cluster): `sign_block` per block, at most `workers`
    tasks at a time; a frame of `start` and `signature` (bytes) per block, in any order."""
    import ray.data

    return (
        ray.data.from_items(items)
        .map_batches(
            sign_block,
            fn_kwargs={"num_perm": num_perm, "seed": seed},
            batch_size=1,
            batch_format="pandas",
            compute=ray.data.TaskPoolStrategy(size=workers),
            num_cpus=1,
        )
        .to_pandas()
    )


def sign_block(batch, num_perm: int, seed: int):
    """Signatures of one block of consecutive records (a Ray task of `ray_signer`)."""
    signatures = []
    for ids, offsets in zip(batch["ids"], batch["offsets"], strict=True):
        block = minhash.ShingleSets(
            np.frombuffer(ids, dtype=np.uint64), np.frombuffer(offsets, dtype=np.int64)
        )
        signatures.append(minhash.signatures(block, num_perm=num_perm, seed=seed).tobytes())
    return {"start": batch["start"].to_numpy(), "signature": signatures}


def curate_on_ray(
    records: list[Record],
    cfg: CurationConfig,
    decisions: dict[str, str] | None,
    execution: ExecutionConfig,
    *,
    perplexity: Callable[[list[str]], list[float]] | None = None,
) -> CurationResult:
    """`curate_records` with every MinHash signature computed on the connected Ray cluster.

    The screens run in this process (no second process is forked: `parallel_min_records` 0;
    Ray does the parallel part), so the result equals the local engine's.
    """
    sequential = cfg.model_copy(update={"parallel_min_records": 0})
    with minhash.signatures_by(ray_signer(execution)):
        return curate_records(records, sequential, decisions, perplexity=perplexity)
