"""Similar pairs of a whole corpus: MinHash LSH for candidates, exact Jaccard to confirm.

datasketch's `MinHash` is one Python object per record, hashed and inserted into `MinHashLSH` one
record at a time; on short instruction records that per-record overhead was most of the screens'
cost. Here every shingle of the corpus is hashed in one numpy pass with datasketch's own
permutations (scheme `affine32`: the MurmurHash3 32-bit finalizer, then `a * h + b` modulo 2**32),
so a record's signature equals `MinHash.bulk([its shingle ids], hashfunc=int)`; banding the
signatures gives the candidate pairs, and each candidate is confirmed with the exact Jaccard
similarity of the two shingle sets. A pair is therefore decided without estimation noise; the
sketches only choose which pairs are compared.
"""

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from itertools import chain, combinations, count

import numpy as np
from datasketch import MinHash

# MurmurHash3's 32-bit finalizer (fmix32), which datasketch applies before its affine32 permutation.
_FMIX32_MULTIPLIERS = (np.uint32(0x85EBCA6B), np.uint32(0xC2B2AE35))
# Candidate recall demanded of the banding for a pair exactly at the threshold.
_CANDIDATE_RECALL = 0.99


@dataclass(frozen=True)
class ShingleSets:
    """Per record, the ids of its distinct word shingles (ids are dense, corpus-wide)."""

    sets: list[frozenset[int]]


def shingle_sets(token_lists: Sequence[Sequence[str]], size: int) -> ShingleSets:
    """Word `size`-grams of each record, as dense integer ids.

    A record with `size` tokens or fewer has one shingle, all of its tokens; a record without
    tokens has none (it is never similar to anything).

    Args:
        token_lists: Per record, its tokens (`pipelines.steps.integrity.screens.words`).
        size: Tokens per shingle.

    Returns:
        The shingle-id sets, in input order.
    """
    # A missing shingle gets the next id: a subscript is the cheapest lookup per shingle.
    vocabulary: defaultdict[tuple[str, ...], int] = defaultdict(count().__next__)
    sets = []
    for tokens in token_lists:
        if not tokens:
            sets.append(frozenset())
            continue
        grams = (
            zip(*(tokens[k:] for k in range(size)), strict=False)
            if len(tokens) > size
            else (tuple(tokens),)
        )
        sets.append(frozenset([vocabulary[g] for g in grams]))
    return ShingleSets(sets)


@cache
def _permutations(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    a, b = MinHash(num_perm=num_perm, seed=seed, scheme="affine32").permutations
    return a.astype(np.uint32), b.astype(np.uint32)


def signatures(shingles: ShingleSets, *, num_perm: int, seed: int) -> np.ndarray:
    """MinHash signatures of every record with at least one shingle, one row per record.

    Rows of records without shingles are all 2**32 - 1 (datasketch's empty MinHash).

    Args:
        shingles: Output of `shingle_sets`.
        num_perm: Permutations (columns).
        seed: Seed of datasketch's permutations.

    Returns:
        A `(records, num_perm)` uint32 array.
    """
    a, b = _permutations(num_perm, seed)
    out = np.full((len(shingles.sets), num_perm), np.iinfo(np.uint32).max, dtype=np.uint32)
    filled = [i for i, s in enumerate(shingles.sets) if s]
    if not filled:
        return out
    lengths = np.fromiter((len(shingles.sets[i]) for i in filled), dtype=np.int64)
    values = np.fromiter(
        chain.from_iterable(shingles.sets[i] for i in filled),
        dtype=np.uint32,
        count=int(lengths.sum()),
    )
    with np.errstate(over="ignore"):
        values ^= values >> np.uint32(16)
        values *= _FMIX32_MULTIPLIERS[0]
        values ^= values >> np.uint32(13)
        values *= _FMIX32_MULTIPLIERS[1]
        values ^= values >> np.uint32(16)
        permuted = a[:, None] * values[None, :] + b[:, None]
    starts = np.concatenate(([0], np.cumsum(lengths)[:-1]))
    out[filled] = np.minimum.reduceat(permuted, starts, axis=1).T
    return out


def band_rows(threshold: float, num_perm: int) -> int:
    """Rows per LSH band: the most that still make a pair at `threshold` a candidate in at least
    99% of draws (fewer, wider bands mean fewer spurious candidates to confirm)."""
    best = 1
    for rows in range(1, num_perm + 1):
        if 1 - (1 - threshold**rows) ** (num_perm // rows) >= _CANDIDATE_RECALL:
            best = rows
    return best


def candidate_pairs(signature: np.ndarray, rows: int) -> set[tuple[int, int]]:
    """Pairs `(i, j)`, `i < j`, of records that agree on every row of at least one band."""
    num_perm = signature.shape[1]
    pairs: set[tuple[int, int]] = set()
    live = np.flatnonzero(~np.all(signature == np.iinfo(np.uint32).max, axis=1))
    mixer = np.random.default_rng(0).integers(1, 2**63, size=rows, dtype=np.uint64) | np.uint64(1)
    for start in range(0, num_perm - rows + 1, rows):
        band = signature[live, start : start + rows].astype(np.uint64)
        # One 64-bit key per band; a rare collision only adds a candidate that is then refuted.
        with np.errstate(over="ignore"):
            keys = (band * mixer).sum(axis=1, dtype=np.uint64)
        order = np.argsort(keys, kind="stable")
        members, sorted_keys = live[order].tolist(), keys[order]
        edges = [0, *(np.flatnonzero(sorted_keys[1:] != sorted_keys[:-1]) + 1).tolist()]
        for start, end in zip(edges, [*edges[1:], len(members)], strict=True):
            if end - start > 1:
                pairs.update(combinations(sorted(members[start:end]), 2))
    return pairs


def jaccard(a: frozenset[int], b: frozenset[int]) -> float:
    """Exact Jaccard similarity of two shingle sets (0.0 when both are empty)."""
    common = len(a & b)
    union = len(a) + len(b) - common
    return common / union if union else 0.0


def similar_pairs(
    token_lists: Sequence[Sequence[str]],
    *,
    shingle_size: int,
    threshold: float,
    num_perm: int,
    seed: int,
) -> list[tuple[int, int, float]]:
    """Pairs of records whose word-shingle sets have a Jaccard similarity of at least `threshold`.

    Args:
        token_lists: Per record, its tokens.
        shingle_size: Tokens per shingle.
        threshold: Smallest exact Jaccard similarity of a returned pair.
        num_perm: MinHash permutations of the candidate search.
        seed: Seed of the permutations (fixed, so the same input gives the same pairs).

    Returns:
        `(i, j, similarity)` with `i < j`, sorted.
    """
    shingles = shingle_sets(token_lists, shingle_size)
    signature = signatures(shingles, num_perm=num_perm, seed=seed)
    sets = shingles.sets
    confirmed = []
    for i, j in sorted(candidate_pairs(signature, band_rows(threshold, num_perm))):
        similarity = jaccard(sets[i], sets[j])
        if similarity >= threshold:
            confirmed.append((i, j, similarity))
    return confirmed
