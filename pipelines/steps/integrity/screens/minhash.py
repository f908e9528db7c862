"""Similar pairs of a whole corpus: MinHash LSH for candidates, exact Jaccard to confirm.

datasketch's `MinHash` is one Python object per record, hashed and inserted into `MinHashLSH` one
record at a time; on short instruction records that per-record overhead was most of the screens'
cost. Here the shingles are hashed in numpy batches with datasketch's own permutations (scheme
`affine32`: the MurmurHash3 32-bit finalizer, then `a * h + b` modulo 2**32), so a record's
signature equals `MinHash.bulk([its shingle ids], hashfunc=int)`; banding the signatures gives
the candidate pairs, and each candidate is confirmed with the exact Jaccard similarity of the two
shingle sets. A pair is therefore decided without estimation noise; the sketches only choose
which pairs are compared (a candidate whose signatures agree far less than a pair at the
threshold would, `agreement_floor`, is not compared at all).

The state is compact, so that memory stays within bounds on a large corpus (#21): shingle ids in
one uint32 array, candidates as integer arrays, Jaccard computed in numpy batches.
"""

import contextlib
import math
import os
from array import array
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from itertools import count

import numpy as np
from datasketch import MinHash

# MurmurHash3's 32-bit finalizer (fmix32), which datasketch applies before its affine32 permutation.
_FMIX32_MULTIPLIERS = (np.uint32(0x85EBCA6B), np.uint32(0xC2B2AE35))
_SEPARATOR = "\x1f"
# Candidate recall demanded of the banding for a pair exactly at the threshold.
_CANDIDATE_RECALL = 0.99
# Shingles hashed per batch of records in `signatures` (64 permutations: 16 MiB of uint32).
_BATCH_SHINGLES = 1 << 16
# Share of the banding's own miss, for a pair exactly at the threshold, that `agreement_floor` may
# add (such a candidate is not confirmed): 1% of it (at 0.75 and 64 permutations: the banding
# misses 0.23% of such pairs, the floor 0.0015% more; pairs above the threshold far less).
_AGREEMENT_MISS_SHARE = 0.01
# Candidate pairs whose signatures are compared per numpy batch.
_AGREEMENT_BATCH = 1 << 18
# Shingle ids of candidate pairs compared per numpy batch in `jaccards` (8 bytes each).
_JACCARD_BATCH = 1 << 22


@dataclass(frozen=True)
class ShingleSets:
    """Per record, the ids of its distinct word shingles (ids are dense, corpus-wide).

    Compact: record `i`'s ids, sorted, are `ids[offsets[i]:offsets[i + 1]]` (uint32), about 4
    bytes a shingle where a frozenset of Python ints took some 60.

    Attributes:
        ids: Every record's shingle ids, record after record.
        offsets: `records + 1` bounds into `ids`.
    """

    ids: np.ndarray
    offsets: np.ndarray

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def members(self, index: int) -> np.ndarray:
        """The sorted shingle ids of record `index`."""
        return self.ids[self.offsets[index] : self.offsets[index + 1]]


def shingle_sets(token_lists: Iterable[Sequence[str]], size: int) -> ShingleSets:
    """Word `size`-grams of each record, as dense integer ids.

    A record with `size` tokens or fewer has one shingle, all of its tokens; a record without
    tokens has none (it is never similar to anything).

    Args:
        token_lists: Per record, its tokens (`pipelines.steps.integrity.screens.words`).
        size: Tokens per shingle.

    Returns:
        The shingle-id sets, in input order.
    """
    # A missing shingle gets the next id: a subscript is the cheapest lookup per shingle. A
    # shingle is keyed by its tokens joined with a unit separator, which no token holds (it is
    # whitespace to `str.split`): one string, where a tuple kept every token string alive.
    vocabulary: defaultdict[str, int] = defaultdict(count().__next__)
    ids = array("I")
    offsets = array("q", [0])
    for tokens in token_lists:
        if tokens:
            grams = (
                map(_SEPARATOR.join, zip(*(tokens[k:] for k in range(size)), strict=False))
                if len(tokens) > size
                else (_SEPARATOR.join(tokens),)
            )
            ids.extend(sorted({vocabulary[g] for g in grams}))
        offsets.append(len(ids))
    return ShingleSets(np.frombuffer(ids, dtype=np.uint32), np.frombuffer(offsets, dtype=np.int64))


Signer = Callable[..., np.ndarray]
"""Computes `signatures(shingles, num_perm=, seed=)` (equal rows), e.g. on a Ray cluster."""
_SIGNERS: list[tuple[int, Signer]] = []


@contextlib.contextmanager
def signatures_by(signer: Signer) -> Iterator[None]:
    """Make `similar_pairs` compute its signatures with `signer` in this process for the block
    (`pipelines.steps.execution`: per batch on Ray); a forked child computes them itself."""
    entry = (os.getpid(), signer)
    _SIGNERS.append(entry)
    try:
        yield
    finally:
        _SIGNERS.remove(entry)


def _signer() -> Signer:
    if _SIGNERS and _SIGNERS[-1][0] == os.getpid():
        return _SIGNERS[-1][1]
    return signatures


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
    out = np.full((len(shingles), num_perm), np.iinfo(np.uint32).max, dtype=np.uint32)
    lengths = np.diff(shingles.offsets)
    filled = np.flatnonzero(lengths)
    # Records are hashed in batches of about `_BATCH_SHINGLES` shingles: the permuted values of
    # a batch (permutations x shingles) are the only large intermediate, bounded whatever the
    # corpus size (the whole corpus at once took gigabytes at 100k records).
    batch_of = np.cumsum(lengths[filled]) // _BATCH_SHINGLES
    for batch in np.split(filled, np.flatnonzero(np.diff(batch_of)) + 1):
        if len(batch):
            out[batch] = _min_hashes(shingles, batch, a, b)
    return out


def _min_hashes(
    shingles: ShingleSets, batch: np.ndarray, a: np.ndarray, b: np.ndarray
) -> np.ndarray:
    """Signatures `(len(batch), len(a))` of consecutive records with shingles (affine32)."""
    lo, hi = shingles.offsets[batch[0]], shingles.offsets[batch[-1] + 1]
    # The batch's records are consecutive but for records without shingles, which own no ids.
    values = shingles.ids[lo:hi].copy()
    starts = shingles.offsets[batch] - lo
    with np.errstate(over="ignore"):
        values ^= values >> np.uint32(16)
        values *= _FMIX32_MULTIPLIERS[0]
        values ^= values >> np.uint32(13)
        values *= _FMIX32_MULTIPLIERS[1]
        values ^= values >> np.uint32(16)
        permuted = a[:, None] * values[None, :] + b[:, None]
    return np.minimum.reduceat(permuted, starts, axis=1).T


def band_rows(threshold: float, num_perm: int) -> int:
    """Rows per LSH band: the most that still make a pair at `threshold` a candidate in at least
    99% of draws (fewer, wider bands mean fewer spurious candidates to confirm)."""
    best = 1
    for rows in range(1, num_perm + 1):
        if 1 - (1 - threshold**rows) ** (num_perm // rows) >= _CANDIDATE_RECALL:
            best = rows
    return best


def candidate_pairs(signature: np.ndarray, rows: int) -> np.ndarray:
    """Pairs `(i, j)`, `i < j`, of records that agree on every row of at least one band.

    Returns:
        An `(pairs, 2)` integer array, sorted (the pairs of a set, in `sorted` order): numpy
        rather than a set of tuples, whose ~100 bytes a pair came to gigabytes at 100k
        records (templated records share bands by the million).
    """
    records, num_perm = signature.shape
    live = np.flatnonzero(~np.all(signature == np.iinfo(np.uint32).max, axis=1))
    mixer = np.random.default_rng(0).integers(1, 2**63, size=rows, dtype=np.uint64) | np.uint64(1)
    codes = []
    for start in range(0, num_perm - rows + 1, rows):
        band = signature[live, start : start + rows].astype(np.uint64)
        # One 64-bit key per band; a rare collision only adds a candidate that is then refuted.
        with np.errstate(over="ignore"):
            keys = (band * mixer).sum(axis=1, dtype=np.uint64)
        order = np.argsort(keys, kind="stable")
        codes.append(_bucket_pairs(live[order], keys[order], records))
    merged = np.concatenate(codes) if codes else np.empty(0, dtype=np.int64)
    del codes
    merged.sort()
    unique = merged[np.concatenate(([True], merged[1:] != merged[:-1]))] if len(merged) else merged
    del merged
    pairs = np.empty((len(unique), 2), dtype=np.int32 if records < 2**31 else np.int64)
    np.floor_divide(unique, max(records, 1), out=pairs[:, 0], casting="unsafe")
    np.remainder(unique, max(records, 1), out=pairs[:, 1], casting="unsafe")
    return pairs


def _bucket_pairs(members: np.ndarray, sorted_keys: np.ndarray, records: int) -> np.ndarray:
    """Every pair of members sharing a key (keys sorted), each coded `i * records + j`, `i < j`."""
    if len(members) < 2:
        return np.empty(0, dtype=np.int64)
    edges = np.flatnonzero(np.concatenate(([True], sorted_keys[1:] != sorted_keys[:-1])))
    ends = np.append(edges[1:], len(members))
    # For each position, how many later members its bucket has: it pairs with each of them.
    bucket_end = np.repeat(ends, ends - edges)
    later = bucket_end - np.arange(len(members)) - 1
    total = int(later.sum())
    if not total:
        return np.empty(0, dtype=np.int64)
    first = np.repeat(np.arange(len(members)), later)
    # The k-th partner of a position p is p + 1 + k.
    offsets = np.cumsum(later) - later
    second = first + 1 + np.arange(total) - np.repeat(offsets, later)
    a, b = members[first].astype(np.int64), members[second].astype(np.int64)
    return np.minimum(a, b) * records + np.maximum(a, b)


def agreement_floor(threshold: float, num_perm: int) -> int:
    """Fewest signature positions on which two records at `threshold` agree but for a chance of
    at most 1% of the banding's own miss at `threshold` (binomial tail): a candidate agreeing on
    fewer is not confirmed.

    Candidates that share one band only because their records share a template are most of the
    candidates of a templated corpus (word-shingle Jaccard 0.3-0.6, agreeing on 25-35 of 64
    positions) and each cost an exact Jaccard computation. A floor with a miss of 10**-9 (25 of
    64 at 0.75) kept most of them; this one (33 of 64) refutes about half, and the chance that a
    pair at the threshold is missed rises from 0.227% (the banding) to 0.229% (#21).
    """
    rows = band_rows(threshold, num_perm)
    budget = _AGREEMENT_MISS_SHARE * (1 - threshold**rows) ** (num_perm // rows)
    floor = 0
    tail = 0.0
    for k in range(num_perm + 1):
        tail += math.comb(num_perm, k) * threshold**k * (1 - threshold) ** (num_perm - k)
        if tail > budget:
            break
        floor = k + 1
    return floor


def _agreeing(signature: np.ndarray, pairs: np.ndarray, floor: int) -> np.ndarray:
    """The candidate pairs whose signatures agree on at least `floor` positions.

    Compared first on the low 8 bits of each value (a quarter of the memory traffic of the
    full values; two equal values have equal low bits, so this keeps every pair the full
    comparison keeps), then on the full values for the pairs that pass (#21: 9.7 million
    candidates at 100k records of the templated benchmark corpus, 1.9 million passing).
    """
    low = (signature & np.uint32(0xFF)).astype(np.uint8)
    keep = np.zeros(len(pairs), dtype=bool)
    for start in range(0, len(pairs), _AGREEMENT_BATCH):
        batch = pairs[start : start + _AGREEMENT_BATCH]
        same = low[batch[:, 0]] == low[batch[:, 1]]
        keep[start : start + len(batch)] = same.sum(axis=1) >= floor
    pairs = pairs[keep]
    keep = np.zeros(len(pairs), dtype=bool)
    for start in range(0, len(pairs), _AGREEMENT_BATCH):
        batch = pairs[start : start + _AGREEMENT_BATCH]
        same = signature[batch[:, 0]] == signature[batch[:, 1]]
        keep[start : start + len(batch)] = same.sum(axis=1) >= floor
    return pairs[keep]


def _long_enough(shingles: ShingleSets, pairs: np.ndarray, threshold: float) -> np.ndarray:
    """The candidate pairs whose shingle counts allow a Jaccard similarity of `threshold`.

    Exact, not an estimate: two sets share at most the smaller one's members, and their union
    holds at least the larger one's, so `jaccard <= smaller / larger` (equal when one set holds
    the other; computed as `jaccards` divides, so a pair exactly at the bound is kept). On the
    templated benchmark corpus this refutes a third of the candidates before their signatures
    and shingles are compared (#21).
    """
    lengths = np.diff(shingles.offsets)
    keep = np.zeros(len(pairs), dtype=bool)
    # In batches: the lengths and bounds of 15 million candidates at once were 600 MB.
    for start in range(0, len(pairs), _AGREEMENT_BATCH):
        batch = pairs[start : start + _AGREEMENT_BATCH]
        first, second = lengths[batch[:, 0]], lengths[batch[:, 1]]
        smaller, larger = np.minimum(first, second), np.maximum(first, second)
        bound = np.divide(smaller, larger, out=np.zeros(len(batch)), where=larger > 0)
        keep[start : start + len(batch)] = bound >= threshold
    return pairs[keep]


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """Exact Jaccard similarity of two sorted shingle-id arrays (0.0 when both are empty)."""
    common = len(np.intersect1d(a, b, assume_unique=True))
    union = len(a) + len(b) - common
    return common / union if union else 0.0


def jaccards(shingles: ShingleSets, pairs: np.ndarray) -> np.ndarray:
    """Exact Jaccard similarity of every pair `(i, j)` of records (rows of `pairs`), as
    `jaccard` computes it, many pairs per numpy pass (7 million candidates at 100k records
    took minutes one `jaccard` call at a time)."""
    out = np.empty(len(pairs), dtype=np.float64)
    lengths = np.diff(shingles.offsets)
    cost = lengths[pairs[:, 0]] + lengths[pairs[:, 1]] if len(pairs) else np.empty(0)
    batch_of = np.cumsum(cost) // _JACCARD_BATCH
    for batch in np.split(np.arange(len(pairs)), np.flatnonzero(np.diff(batch_of)) + 1):
        if len(batch):
            out[batch] = _batch_jaccards(shingles, pairs[batch])
    return out


def _batch_jaccards(shingles: ShingleSets, pairs: np.ndarray) -> np.ndarray:
    # Each id is tagged with its pair's index in the high bits: a record's ids are sorted, so
    # each side's tagged ids are sorted as a whole, and the ids the two records of a pair share
    # are found by binary search (no sort of the batch).
    tagged, sizes = [], []
    for rows in (pairs[:, 0], pairs[:, 1]):
        starts = shingles.offsets[rows]
        lengths = shingles.offsets[rows + 1] - starts
        within = np.arange(int(lengths.sum())) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        ids = shingles.ids[np.repeat(starts, lengths) + within].astype(np.uint64)
        owner = np.repeat(np.arange(len(rows), dtype=np.uint64), lengths)
        tagged.append(ids | (owner << np.uint64(32)))
        sizes.append(lengths)
    left, right = tagged
    common = np.zeros(len(pairs), dtype=np.int64)
    if len(left) and len(right):
        found = np.minimum(np.searchsorted(right, left), len(right) - 1)
        shared = left[right[found] == left] >> np.uint64(32)
        common = np.bincount(shared.astype(np.int64), minlength=len(pairs))
    union = sizes[0] + sizes[1] - common
    return np.divide(common, union, out=np.zeros(len(pairs)), where=union > 0)


def similar_pairs(
    token_lists: Iterable[Sequence[str]],
    *,
    shingle_size: int,
    threshold: float,
    num_perm: int,
    seed: int,
) -> list[tuple[int, int, float]]:
    """Pairs of records whose word-shingle sets have a Jaccard similarity of at least `threshold`.

    Args:
        token_lists: Per record, its tokens (an iterator will do: each is read once, so the
            tokens of the whole corpus need not be held at once).
        shingle_size: Tokens per shingle.
        threshold: Smallest exact Jaccard similarity of a returned pair.
        num_perm: MinHash permutations of the candidate search.
        seed: Seed of the permutations (fixed, so the same input gives the same pairs).

    Returns:
        `(i, j, similarity)` with `i < j`, sorted.
    """
    shingles = shingle_sets(token_lists, shingle_size)
    signature = _signer()(shingles, num_perm=num_perm, seed=seed)
    candidates = candidate_pairs(signature, band_rows(threshold, num_perm))
    candidates = _long_enough(shingles, candidates, threshold)
    candidates = _agreeing(signature, candidates, agreement_floor(threshold, num_perm))
    del signature
    similarity = jaccards(shingles, candidates)
    keep = similarity >= threshold
    return [
        (i, j, s)
        for (i, j), s in zip(candidates[keep].tolist(), similarity[keep].tolist(), strict=True)
    ]
