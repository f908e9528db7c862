"""The two MinHash searches of `sovtune screen` on the first N records of a corpus, counted, and
compared with a saved run (#21.1).

The near-duplicate screen (`dedup.score_near_duplicates`) and the response clusters
(`backdoor.response_clusters`) are the part of the screen that grows faster than N on the
generator's corpus. This runs them alone, in this process, on the first N lines of a chat JSONL
(default: the 1M-record corpus of `screen_memory.py`, generated there once), as the screen holds
them (first of each id, then the first pass: length bounds and exact duplicates). Printed per N:

- near copies: CPU time (user + system) of the whole screen and of its search
  (`similar_pair_arrays`), candidate pairs enumerated (pair and band), pairs compared by exact
  Jaccard, pairs confirmed, records quarantined as non-representative members;
- responses: CPU time of `response_clusters`, candidates, pairs compared, components of two or
  more records and those of at least `min_trigger_cluster` (the ones the trigger screen scores).

With `--save DIR` the near-copy pairs, each record's near-duplicate decision (quarantined or not,
its representative, its score) and its response component are written per N; with `--compare DIR`
the current code's are compared with them: saved pairs found, records whose decision,
representative, score or component differs, and response clusters of at least
`min_trigger_cluster` records that are not the same. A change to `minhash.py` meant to cut the
searches' cost is so measured on the same records against the code before it: `--save` at the
old commit, `--compare` at the new one (the eighth pass of "Memory and time at scale" in
docs/benchmarks.md).

    nice -n 10 .venv/bin/python benchmarks/screen_search.py [--records 100000 300000]
        [--corpus PATH] [--save DIR | --compare DIR]
"""

import argparse
import os
import time
from pathlib import Path

import numpy as np

from pipelines.steps.config import load_config
from pipelines.steps.integrity import curate
from pipelines.steps.integrity.packed import PackedRecords
from pipelines.steps.integrity.screens import backdoor, bucket_search, dedup

CORPUS = Path(__file__).resolve().parent / "out" / "screen_memory" / "corpus-1000000-7"


def first_records(path: Path, lines: int, cfg) -> PackedRecords:
    """The records of the first `lines` lines of a chat JSONL, first of each id (packed, as the
    screen holds them; malformed lines skipped): `screen_memory.read_packed`."""
    from screen_memory import read_packed  # the benchmarks folder is the script's own

    return read_packed(path, cfg, lines)


class Counted:
    """Counts, while installed, the candidate pairs the searches enumerate and the pairs they
    compare by exact Jaccard (`bucket_search.SEARCH_COUNTS`, before and after)."""

    def __init__(self) -> None:
        self.candidates = self.compared = 0

    def __enter__(self) -> "Counted":
        self._before = bucket_search.SEARCH_COUNTS.copy()
        return self

    def __exit__(self, *exc) -> None:
        self.candidates, self.compared = (bucket_search.SEARCH_COUNTS - self._before).tolist()


def near_copies(records, c) -> tuple[dict, dict]:
    """The near-duplicate screen on `records`: its counts, and its pairs and decisions."""
    search = dedup.similar_pair_arrays
    found: dict = {}

    def timed(*args, **kwargs):
        started = time.process_time()
        found["pairs"] = search(*args, **kwargs)
        found["cpu"] = time.process_time() - started
        return found["pairs"]

    dedup.similar_pair_arrays = timed
    started = time.process_time()
    try:
        with Counted() as counted:
            near = dedup.score_near_duplicates(
                records,
                threshold=c.near_duplicate_threshold,
                num_perm=c.minhash_permutations,
                shingle_size=c.shingle_words,
            )
    finally:
        dedup.similar_pair_arrays = search
    cpu = time.process_time() - started
    ids = [r.id for r in records]
    index = {rid: i for i, rid in enumerate(ids)}
    representative = np.array([index.get(near.representative.get(rid, rid), -1) for rid in ids])
    quarantined = representative != np.arange(len(ids))
    first, second, similarity = found["pairs"]
    counts = {
        "cpu_s": cpu,
        "search_cpu_s": found["cpu"],
        "candidates": counted.candidates,
        "compared": counted.compared,
        "pairs": len(first),
        "quarantined": int(quarantined.sum()),
    }
    saved = {
        "first": first,
        "second": second,
        "similarity": similarity,
        "quarantined": quarantined,
        "representative": representative,
        "score": np.array([near.similarity[rid] for rid in ids]),
    }
    return counts, saved


def responses(records, c) -> tuple[dict, dict]:
    """The response clusters of `records`: counts, and per record its component's first record
    (-1 when alone or without a response)."""
    started = time.process_time()
    with Counted() as counted:
        groups = backdoor.response_clusters(
            records, threshold=c.response_similarity, num_perm=c.minhash_permutations, min_cluster=2
        )
    cpu = time.process_time() - started
    component = np.full(len(records), -1, dtype=np.int64)
    for group in groups:
        component[group] = group[0]
    counts = {
        "cpu_s": cpu,
        "candidates": counted.candidates,
        "compared": counted.compared,
        "components": len(groups),
        "trigger_clusters": sum(len(g) >= c.min_trigger_cluster for g in groups),
    }
    return counts, {"component": component}


def _large(component: np.ndarray, size: int) -> set[tuple[int, ...]]:
    """The components of at least `size` records, as tuples of record indices."""
    order = np.argsort(component, kind="stable")
    labels = component[order]
    starts = np.flatnonzero(np.concatenate(([True], labels[1:] != labels[:-1])))
    return {
        tuple(group.tolist())
        for group in np.split(order, starts[1:])
        if len(group) >= size and component[group[0]] >= 0
    }


def compare(saved: dict, now: dict, min_cluster: int) -> str:
    """What differs between a saved run's pairs, decisions and components and this one's."""
    n = len(saved["quarantined"])
    old = saved["first"].astype(np.int64) * n + saved["second"]
    new = now["first"].astype(np.int64) * n + now["second"]
    found, extra = np.isin(old, new), ~np.isin(new, old)
    flipped = saved["quarantined"] != now["quarantined"]
    both = saved["quarantined"] & now["quarantined"]
    moved = both & (saved["representative"] != now["representative"])
    rescored = saved["score"] != now["score"]
    component = saved["component"] != now["component"]
    clusters = _large(saved["component"], min_cluster) ^ _large(now["component"], min_cluster)
    return (
        f"saved near-copy pairs found {int(found.sum()):,} / {len(old):,}"
        f" ({found.mean() if len(old) else 1.0:.4f}), new pairs {int(extra.sum()):,};"
        f" decisions changed {int(flipped.sum()):,} ({flipped.mean():.4%}: now kept"
        f" {int((flipped & saved['quarantined']).sum()):,}, now quarantined"
        f" {int((flipped & now['quarantined']).sum()):,}), representative changed"
        f" {int(moved.sum()):,}, score changed {int(rescored.sum()):,}; response component"
        f" changed for {int(component.sum()):,} records, clusters of >= {min_cluster} records"
        f" not the same: {len(clusters):,} (both runs' together)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, nargs="+", default=[100_000, 300_000])
    parser.add_argument("--corpus", type=Path, help="chat JSONL (default: the 1M corpus)")
    parser.add_argument("--profile", default="default")
    runs = parser.add_mutually_exclusive_group()
    runs.add_argument("--save", type=Path, help="write pairs, decisions and components here")
    runs.add_argument("--compare", type=Path, help="compare with those saved here")
    args = parser.parse_args()
    path = args.corpus
    if path is None:
        from screen_memory import corpus  # the benchmarks folder is the script's own

        path = corpus(1_000_000, 7)
    c = load_config(args.profile).curation
    for lines in args.records:
        records = first_records(path, lines, load_config(args.profile))
        candidates = records.take(curate._first_pass(records, c)[0])
        del records
        print(
            f"{lines} lines: {len(candidates)} records after the first pass"
            f" (load {os.getloadavg()[0]:.1f})",
            flush=True,
        )
        near, near_saved = near_copies(candidates, c)
        print(f"  near copies (load {os.getloadavg()[0]:.1f}): {_line(near)}", flush=True)
        answers, answers_saved = responses(candidates, c)
        print(f"  responses (load {os.getloadavg()[0]:.1f}): {_line(answers)}", flush=True)
        now = {**near_saved, **answers_saved}
        if args.save:
            args.save.mkdir(parents=True, exist_ok=True)
            np.savez(args.save / f"search-{lines}.npz", **now)
        if args.compare:
            with np.load(args.compare / f"search-{lines}.npz") as saved:
                print(
                    f"  against {args.compare}: {compare(dict(saved), now, c.min_trigger_cluster)}"
                )


def _line(counts: dict) -> str:
    return ", ".join(
        f"{key} {value:.1f}" if isinstance(value, float) else f"{key} {value:,}"
        for key, value in counts.items()
    )


if __name__ == "__main__":
    main()
