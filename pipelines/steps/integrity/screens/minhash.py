"""Similar pairs of a whole corpus: MinHash LSH for candidates, exact Jaccard to confirm.

datasketch's `MinHash` is one Python object per record, hashed and inserted into `MinHashLSH` one
record at a time; on short instruction records that per-record overhead was most of the screens'
cost. Here the shingles are hashed in numpy batches with datasketch's own permutations (scheme
`affine32`: the MurmurHash3 32-bit finalizer, then `a * h + b` modulo 2**32), so a record's
signature equals `MinHash.bulk([its shingle hashes, folded to 32 bits], hashfunc=int)`; banding
the signatures gives the candidate pairs, and each candidate is confirmed with the exact Jaccard
similarity of the two shingle sets. A pair is therefore decided without estimation noise; the
sketches only choose which pairs are compared (a candidate whose signatures agree far less than a
pair at the threshold would, `agreement_floor`, is not compared at all).

The state is compact, so that memory stays within bounds on a large corpus (#21): a shingle is
a 64-bit hash of its tokens (no vocabulary of shingle strings), the shingles of all records are
one uint64 array, candidates are enumerated band by band and refuted or confirmed one by one
(never held as an array), and only the confirmed pairs are kept, as arrays. Signatures are not
kept either: per record, a 32-bit key per band and the low 8 bits of each signature value
(`_sketch`).

The records of one template are 0.3-0.7 alike, so on a templated corpus most candidates are
such siblings, and their number grows with the square of N. Longer bands (256 permutations, 6
rows x 42 bands at 0.75, against 4 x 16 at 64; at least as likely to find a pair at or above
the threshold) make far fewer of them candidates; a caller that wants only connected components
(`Components`) skips candidates whose records are already joined (#21).

The siblings still grow with N² (a template's records make buckets that grow with N, and so
do the near copies themselves: 137,641 pairs at or above 0.75 in the first 100k records of the
1M corpus, 1,207,932 in its first 300k), so each candidate is made cheap (#21.1): a band's
buckets are searched by compiled code (`bucket_search`), one candidate at a time with no array
of candidates, the rows of a large bucket copied side by side first, the signatures compared
eight positions a word, the exact Jaccard stopped once the threshold is out of reach, and a
`Components` caller's candidates checked against its components before the costlier tests and
joined as soon as they are confirmed. An exact prefix filter (AllPairs/PPJoin) was
measured and not taken: on this corpus the records' rarest shingles are a template's, and its
candidates (probe prefix x index prefix) were 503 million at 300k records, the banding's 110
million.
"""

import hashlib
import math
from array import array
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import cache

import numpy as np
from datasketch import MinHash

# MurmurHash3's 32-bit finalizer (fmix32), which datasketch applies before its affine32 permutation.
_FMIX32_MULTIPLIERS = (np.uint32(0x85EBCA6B), np.uint32(0xC2B2AE35))
# MurmurHash3's 64-bit finalizer (fmix64), which chains the token hashes of a shingle.
_FMIX64_MULTIPLIERS = (np.uint64(0xFF51AFD7ED558CCD), np.uint64(0xC4CEB9FE1A85EC53))
_CHAIN = np.uint64(0x9E3779B97F4A7C15)  # odd: multiplies the chain before the next token
# Tokens whose hashes are remembered (a token's blake2b is computed once while cached); the
# cache is emptied when it reaches this size, so its memory is bounded whatever the corpus
# (2**18 tokens, about 35 MB in each process that shingles: 2**20 came to some 130 MB once a
# 1M-record corpus's names and numbers filled it, #21).
_TOKEN_CACHE = 1 << 18
# Tokens whose shingles are hashed per numpy batch in `shingle_sets` (some ten 8-byte
# intermediates each: 1 << 20 was the near-duplicate screen's peak, 100 MiB, #21).
_BATCH_TOKENS = 1 << 18
# Candidate recall demanded of the banding for a pair exactly at the threshold: 99.7%, so that
# the layout at 256 permutations misses no more pairs at or above a 0.75 threshold than the
# 64-permutation layout did (4 rows x 16 bands, 99.77% there; 256 permutations: 6 x 42, 99.97%).
_CANDIDATE_RECALL = 0.997
# Permuted values (permutations x shingles) per batch of records in `signatures`: 16 MiB of
# uint32, 65,536 shingles at 64 permutations, 16,384 at 256 (a fixed count of shingles made the
# batch 4 times larger at 256 permutations: +100 MiB at 20k records, #21).
_BATCH_VALUES = 1 << 22
# Share of the banding's own miss, for a pair exactly at the threshold, that `agreement_floor` may
# add (such a candidate is not confirmed): 1% of it (at 0.75 and 64 permutations: the banding
# misses 0.23% of such pairs, the floor 0.0015% more; pairs above the threshold far less).
_AGREEMENT_MISS_SHARE = 0.01


@dataclass(frozen=True)
class ShingleSets:
    """Per record, the 64-bit hashes of its distinct word shingles.

    Compact: record `i`'s hashes, sorted, are `ids[offsets[i]:offsets[i + 1]]` (uint64), 8 bytes a
    shingle. Two shingles are equal when their tokens are; two different shingles share a hash
    with a chance of about 2**-64 per pair (some 10**-6 for the 6 million distinct shingles of a
    1M-record corpus: a collision would only make two records one shingle more alike).

    Attributes:
        ids: Every record's shingle hashes, record after record.
        offsets: `records + 1` bounds into `ids`.
    """

    ids: np.ndarray
    offsets: np.ndarray

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def members(self, index: int) -> np.ndarray:
        """The sorted shingle hashes of record `index`."""
        return self.ids[self.offsets[index] : self.offsets[index + 1]]


class _TokenHashes(dict[str, int]):
    """Token -> 64-bit hash (blake2b), computed on first use; emptied at `_TOKEN_CACHE` tokens."""

    def __missing__(self, token: str) -> int:
        value = int.from_bytes(
            hashlib.blake2b(token.encode("utf-8", "surrogatepass"), digest_size=8).digest(),
            "little",
        )
        if len(self) >= _TOKEN_CACHE:
            self.clear()
        self[token] = value
        return value


def _fmix64(values: np.ndarray) -> np.ndarray:
    """MurmurHash3's 64-bit finalizer, in place (a bijection that spreads every input bit)."""
    with np.errstate(over="ignore"):
        values ^= values >> np.uint64(33)
        values *= _FMIX64_MULTIPLIERS[0]
        values ^= values >> np.uint64(33)
        values *= _FMIX64_MULTIPLIERS[1]
        values ^= values >> np.uint64(33)
    return values


def shingle_sets(token_lists: Iterable[Sequence[str]], size: int) -> ShingleSets:
    """Word `size`-grams of each record, as 64-bit hashes.

    A record with `size` tokens or fewer has one shingle, all of its tokens; a record without
    tokens has none (it is never similar to anything). A shingle's hash chains its tokens'
    hashes (`h = fmix64(h * C + token_hash)` token after token), so it depends on its tokens and
    their order only: equal shingles have equal hashes in any record of any corpus, and no
    vocabulary of shingle strings is kept (#21: it was 2.4 KB a record and grew with N).

    Args:
        token_lists: Per record, its tokens (`pipelines.steps.integrity.screens.words`); an
            iterator will do, each is read once.
        size: Tokens per shingle.

    Returns:
        The shingle-hash sets, in input order.
    """
    hashes = _TokenHashes()
    ids = array("Q")
    offsets = array("q", [0])
    tokens: list[str] = []
    counts: list[int] = []
    for record_tokens in token_lists:
        tokens.extend(record_tokens)
        counts.append(len(record_tokens))
        if len(tokens) >= _BATCH_TOKENS:
            _hash_batch(tokens, counts, size, hashes, ids, offsets)
            tokens, counts = [], []
    if counts:
        _hash_batch(tokens, counts, size, hashes, ids, offsets)
    return ShingleSets(np.frombuffer(ids, dtype=np.uint64), np.frombuffer(offsets, dtype=np.int64))


def _hash_batch(
    tokens: list[str],
    counts: list[int],
    size: int,
    hashes: _TokenHashes,
    ids: array,
    offsets: array,
) -> None:
    """Append the sorted distinct shingle hashes of a batch of records to `ids` / `offsets`."""
    token_hash = np.fromiter(map(hashes.__getitem__, tokens), dtype=np.uint64, count=len(tokens))
    count_of = np.array(counts, dtype=np.int64)
    starts = np.cumsum(count_of) - count_of
    # Per record, its shingles: one per window of `size` tokens, or one of all its tokens.
    windows = np.where(count_of > size, count_of - size + 1, np.minimum(count_of, 1))
    owner = np.repeat(np.arange(len(counts)), windows)
    first = np.repeat(starts, windows) + (
        np.arange(int(windows.sum())) - np.repeat(np.cumsum(windows) - windows, windows)
    )
    width = np.minimum(count_of, size)[owner]
    chained = np.zeros(len(first), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for k in range(size):
            live = width > k
            chained[live] = _fmix64(chained[live] * _CHAIN + token_hash[first[live] + k])
    # Sorted and distinct per record: sort by record, then hash; drop repeats within a record.
    order = np.lexsort((chained, owner))
    chained, owner = chained[order], owner[order]
    distinct = np.ones(len(chained), dtype=bool)
    distinct[1:] = (chained[1:] != chained[:-1]) | (owner[1:] != owner[:-1])
    ids.frombytes(chained[distinct].tobytes())
    per_record = np.bincount(owner[distinct], minlength=len(counts))
    offsets.frombytes((offsets[-1] + np.cumsum(per_record)).astype(np.int64).tobytes())


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
    out = np.full((len(shingles), num_perm), np.iinfo(np.uint32).max, dtype=np.uint32)
    for batch, rows in _signature_batches(shingles, num_perm=num_perm, seed=seed):
        out[batch] = rows
    return out


def _signature_batches(
    shingles: ShingleSets, *, num_perm: int, seed: int
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """`(records, their signature rows)` of the records with shingles, batch after batch."""
    a, b = _permutations(num_perm, seed)
    lengths = np.diff(shingles.offsets)
    filled = np.flatnonzero(lengths)
    # Records are hashed in batches of `_BATCH_VALUES` permuted values: the permuted values of
    # a batch (permutations x shingles) are the only large intermediate, bounded whatever the
    # corpus size (the whole corpus at once took gigabytes at 100k records).
    batch_of = np.cumsum(lengths[filled]) // max(1, _BATCH_VALUES // num_perm)
    for batch in np.split(filled, np.flatnonzero(np.diff(batch_of)) + 1):
        if len(batch):
            yield batch, _min_hashes(shingles, batch, a, b)


def _min_hashes(
    shingles: ShingleSets, batch: np.ndarray, a: np.ndarray, b: np.ndarray
) -> np.ndarray:
    """Signatures `(len(batch), len(a))` of consecutive records with shingles (affine32)."""
    lo, hi = shingles.offsets[batch[0]], shingles.offsets[batch[-1] + 1]
    # The batch's records are consecutive but for records without shingles, which own no ids.
    values = fold32(shingles.ids[lo:hi])
    starts = shingles.offsets[batch] - lo
    with np.errstate(over="ignore"):
        values ^= values >> np.uint32(16)
        values *= _FMIX32_MULTIPLIERS[0]
        values ^= values >> np.uint32(13)
        values *= _FMIX32_MULTIPLIERS[1]
        values ^= values >> np.uint32(16)
        permuted = a[:, None] * values[None, :] + b[:, None]
    return np.minimum.reduceat(permuted, starts, axis=1).T


def fold32(ids: np.ndarray) -> np.ndarray:
    """The 32-bit values the permutations take (datasketch's `affine32` hashes 32-bit inputs):
    a 64-bit shingle hash's two halves XORed."""
    return ((ids ^ (ids >> np.uint64(32))) & np.uint64(0xFFFFFFFF)).astype(np.uint32)


def band_rows(threshold: float, num_perm: int) -> int:
    """Rows per LSH band: the most that still make a pair at `threshold` a candidate in at least
    99.7% of draws (fewer, longer bands mean fewer spurious candidates to confirm)."""
    best = 1
    for rows in range(1, num_perm + 1):
        if 1 - (1 - threshold**rows) ** (num_perm // rows) >= _CANDIDATE_RECALL:
            best = rows
    return best


def candidate_pairs(signature: np.ndarray, rows: int) -> np.ndarray:
    """Pairs `(i, j)`, `i < j`, of records that agree on every row of at least one band, all at
    once: the reference the compiled search (`similar_pair_arrays`, `bucket_search`) is tested
    against.

    Returns:
        An `(pairs, 2)` integer array, sorted (the pairs of a set, in `sorted` order): numpy
        rather than a set of tuples, whose ~100 bytes a pair came to gigabytes at 100k
        records (templated records share bands by the million).
    """
    records = signature.shape[0]
    live, keys = _band_keys(signature, rows)
    codes = []
    for band_keys in keys.T:
        order = np.argsort(band_keys, kind="stable")
        codes.append(_bucket_pairs(live[order], band_keys[order], records))
    merged = np.concatenate(codes) if codes else np.empty(0, dtype=np.int64)
    del codes
    merged.sort()
    unique = merged[np.concatenate(([True], merged[1:] != merged[:-1]))] if len(merged) else merged
    del merged
    pairs = np.empty((len(unique), 2), dtype=np.int32 if records < 2**31 else np.int64)
    np.floor_divide(unique, max(records, 1), out=pairs[:, 0], casting="unsafe")
    np.remainder(unique, max(records, 1), out=pairs[:, 1], casting="unsafe")
    return pairs


def _band_keys(signature: np.ndarray, rows: int) -> tuple[np.ndarray, np.ndarray]:
    """The records with shingles, and per such record one 32-bit key per band, `(live, bands)`.

    A rare collision of two keys only adds a candidate that is then refuted.
    """
    live = np.flatnonzero(~np.all(signature == np.iinfo(np.uint32).max, axis=1))
    return live, _keys_of(signature[live], rows)


def _keys_of(signature: np.ndarray, rows: int) -> np.ndarray:
    """Per signature row, one 32-bit key per band, `(rows of signature, bands)`: the band's values
    mixed into 64 bits (`fmix64` of a weighted sum), the high half kept. Two rows of unequal
    band values share a key with a chance of about 2**-32 (some 5,000 spurious candidates over
    42 bands of a 1M-record corpus, each refuted by the bounds: 4 bytes a key rather than 8)."""
    mixer = np.random.default_rng(0).integers(1, 2**63, size=rows, dtype=np.uint64) | np.uint64(1)
    keys = np.empty((signature.shape[0], signature.shape[1] // rows), dtype=np.uint32)
    for band, start in enumerate(range(0, signature.shape[1] - rows + 1, rows)):
        with np.errstate(over="ignore"):
            mixed = (signature[:, start : start + rows].astype(np.uint64) * mixer).sum(
                axis=1, dtype=np.uint64
            )
        keys[:, band] = _fmix64(mixed) >> np.uint64(32)
    return keys


def _bucket_starts(sorted_keys: np.ndarray) -> np.ndarray:
    """Positions in `sorted_keys` where a new key (a bucket) starts."""
    return np.flatnonzero(np.concatenate(([True], sorted_keys[1:] != sorted_keys[:-1])))


def _buckets(band_keys: np.ndarray, dtype: type) -> tuple[np.ndarray, np.ndarray]:
    """`(order, starts)`: the rows sorted by their key in this band (stable) and the positions in
    that order where each bucket starts."""
    order = np.argsort(band_keys, kind="stable").astype(dtype)
    return order, _bucket_starts(band_keys[order])


def _bucket_pairs(members: np.ndarray, sorted_keys: np.ndarray, records: int) -> np.ndarray:
    """Every pair of members sharing a key (keys sorted), each coded `i * records + j`, `i < j`."""
    if len(members) < 2:
        return np.empty(0, dtype=np.int64)
    edges = _bucket_starts(sorted_keys)
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


def _low_bits(signature: np.ndarray) -> np.ndarray:
    """The low 8 bits of every signature value (what `bucket_search` compares), zero bytes
    added to a multiple of eight positions (read as 64-bit words; added bytes always agree)."""
    low = np.zeros((signature.shape[0], _padded(signature.shape[1])), dtype=np.uint8)
    low[:, : signature.shape[1]] = signature & np.uint32(0xFF)
    return low


def _padded(num_perm: int) -> int:
    """`num_perm` rounded up to a multiple of 8."""
    return -(-num_perm // 8) * 8


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """Exact Jaccard similarity of two sorted shingle-id arrays (0.0 when both are empty)."""
    common = len(np.intersect1d(a, b, assume_unique=True))
    union = len(a) + len(b) - common
    return common / union if union else 0.0


def jaccards(shingles: ShingleSets, pairs: np.ndarray) -> np.ndarray:
    """Exact Jaccard similarity of every pair `(i, j)` of records (rows of `pairs`), as
    `jaccard` computes it, one pair at a time in compiled code (`bucket_search`: the
    near-duplicate screen reads every confirmed pair again, and those grow with N² on a
    templated corpus; numpy batches took 9 of 1,400 CPU-s at 1M records, #21.1)."""
    # Imported here, as `similar_pair_chunks` imports it (numba only where a screen searches).
    from pipelines.steps.integrity.screens import bucket_search

    out = np.empty(len(pairs), dtype=np.float64)
    if len(pairs):
        bucket_search.pair_jaccards(
            shingles.offsets, shingles.ids, np.ascontiguousarray(pairs), out
        )
    return out


def similar_pair_arrays(
    token_lists: Iterable[Sequence[str]],
    *,
    shingle_size: int,
    threshold: float,
    num_perm: int,
    seed: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairs of records whose word-shingle sets have a Jaccard similarity of at least `threshold`.

    Candidates come band by band, bucket by bucket (`bucket_search`): each is refuted by the
    exact length bound, by an earlier band that holds it too and by the signature agreement, or
    confirmed by exact Jaccard, as it is enumerated: only the confirmed pairs are kept (#21).

    Args:
        token_lists: Per record, its tokens (an iterator will do: each is read once, so the
            tokens of the whole corpus need not be held at once).
        shingle_size: Tokens per shingle.
        threshold: Smallest exact Jaccard similarity of a returned pair.
        num_perm: MinHash permutations of the candidate search.
        seed: Seed of the permutations (fixed, so the same input gives the same pairs).

    Returns:
        `(first, second, similarity)`: record indices with `first < second`, sorted by
        `(first, second)`, and the exact similarity of each pair.
    """
    found, similar = [], []
    for chunk, similarity in similar_pair_chunks(
        token_lists,
        shingle_size=shingle_size,
        threshold=threshold,
        num_perm=num_perm,
        seed=seed,
    ):
        found.append(chunk)
        similar.append(similarity)
    pairs = np.concatenate(found) if found else np.empty((0, 2), dtype=np.int64)
    similarity = np.concatenate(similar) if similar else np.empty(0)
    order = np.lexsort((pairs[:, 1], pairs[:, 0]))
    return pairs[order, 0], pairs[order, 1], similarity[order]


def similar_pair_chunks(
    token_lists: Iterable[Sequence[str]],
    *,
    shingle_size: int,
    threshold: float,
    num_perm: int,
    seed: int,
    joined: "Components | None" = None,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The pairs of `similar_pair_arrays` as they are confirmed, chunk by chunk, in no set order:
    `((pairs, 2) record indices with i < j in each row, exact similarities)`. A caller that
    needs only what the pairs connect never holds them all (#21: the near-identical responses of
    a 1M-record templated corpus make some tens of millions of pairs).

    With `joined`, for a caller that needs only the connected components of the pairs: each
    confirmed pair is joined in `joined` as soon as it is found, and a candidate whose records
    are already in one component is neither compared nor given (the components are those of
    every pair; which of a component's pairs are given is not set)."""
    # Imported here: numba and its compiler's libraries are some 125 MiB of resident memory in
    # each process that imports them (25 MiB of its own), and only the screens search.
    from pipelines.steps.integrity.screens import bucket_search

    shingles = shingle_sets(token_lists, shingle_size)
    rows = band_rows(threshold, num_perm)
    live, keys, low = _sketch(shingles, num_perm=num_perm, seed=seed, rows=rows)
    words = low.view(np.uint64)
    floor = agreement_floor(threshold, num_perm)
    index_type = np.int32 if len(shingles) < 2**31 else np.int64
    parent, items = (None, None) if joined is None else (joined.parent, joined.items)
    for band, band_keys in enumerate(keys.T):
        if len(live) < 2:
            break
        order, starts = _buckets(band_keys, np.int64)
        sizes = np.diff(np.append(starts, len(order)))
        # Rows alone in their bucket pair with nothing: most rows of a band, dropped first.
        shared = sizes > 1
        order, sizes = order[np.repeat(shared, sizes)], sizes[shared]
        for pairs, similarity in bucket_search.band_pairs(
            order,
            sizes,
            band=band,
            live=live,
            offsets=shingles.offsets,
            ids=shingles.ids,
            keys=keys,
            words=words,
            width=num_perm,
            threshold=threshold,
            floor=floor,
            parent=parent,
            items=items,
        ):
            # 4-byte indices where they fit: the near-duplicate screen holds every confirmed
            # pair (#21: some millions at 1M records).
            yield pairs.astype(index_type), similarity


def _sketch(
    shingles: ShingleSets, *, num_perm: int, seed: int, rows: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`(live, keys, low)`: the records with shingles, per such record a 32-bit key per band
    (`(live, bands)`, `_keys_of`) and the low 8 bits of its signature (`(live, num_perm)`,
    `_low_bits`).

    The signatures themselves are not kept: computed batch by batch, each batch's band keys
    and low bits are taken and the batch dropped (#21: 256 permutations of 4 bytes were 1 KB a
    record; keys and low bits are 424 B at 0.75, fewer than 64 permutations' 448 B were).
    """
    live = np.flatnonzero(np.diff(shingles.offsets))
    keys = np.empty((len(live), num_perm // rows), dtype=np.uint32)
    low = np.empty((len(live), _padded(num_perm)), dtype=np.uint8)
    # Batches hold consecutive records with shingles: their positions in `live` are consecutive.
    done = 0
    for batch, signature in _signature_batches(shingles, num_perm=num_perm, seed=seed):
        keys[done : done + len(batch)] = _keys_of(signature, rows)
        low[done : done + len(batch)] = _low_bits(signature)
        done += len(batch)
    return live, keys, low


class Components:
    """Union-find over `size` items in numpy: `union` joins the two ends of each pair, `together`
    tells which pairs are already in one component (#21: a candidate inside a component need not
    be compared when only the components are wanted; merges are at most `size - 1`).

    Attributes:
        parent: Per item, its parent (a root is its own).
        items: `None`, or per item of the pairs that `together` and `union` take, its index in
            `parent` (a search over some of the items of a larger union-find).
    """

    def __init__(self, size: int) -> None:
        self.parent = np.arange(size, dtype=np.int64)
        self.items: np.ndarray | None = None

    def find(self, items: np.ndarray) -> np.ndarray:
        """The root of each item (paths halved on the way)."""
        parent = self.parent
        roots = parent[items]
        while True:
            above = parent[roots]
            if np.array_equal(above, roots):
                break
            parent[roots] = parent[above]
            roots = parent[above]
        parent[items] = roots
        return roots

    def together(self, pairs: np.ndarray) -> np.ndarray:
        """Per pair, whether its two items are in one component."""
        if not len(pairs):
            return np.zeros(0, dtype=bool)
        if self.items is not None:
            pairs = self.items[pairs]
        return self.find(pairs[:, 0]) == self.find(pairs[:, 1])

    def union(self, pairs: np.ndarray) -> None:
        """Join the two items of every pair; each component's root is its smallest item."""
        if self.items is not None:
            pairs = self.items[pairs]
        left, right = pairs[:, 0], pairs[:, 1]
        while len(left):
            a, b = self.find(left), self.find(right)
            apart = a != b
            if not apart.any():
                break
            left, right, a, b = left[apart], right[apart], a[apart], b[apart]
            # Several pairs may relink one root in a pass: one link wins, the rest are joined
            # in the next pass (every pass joins at least one pair; roots only ever decrease).
            self.parent[np.maximum(a, b)] = np.minimum(a, b)
