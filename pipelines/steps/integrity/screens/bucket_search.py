"""The pairs of one LSH band's buckets that are near copies, compiled (#21.1).

`minhash.similar_pair_chunks` hands each band here as its records sorted by band key: every
pair of records that share a bucket is a candidate, and a template's records share buckets by
the thousand, so the candidates grow with the square of N on a templated corpus (the near
copies themselves do: a record of the 1M-record benchmark corpus has hundreds). Each candidate
is refuted or confirmed by the same tests, cheapest first, as the numpy batches before this
module applied them: the exact length bound, "found in an earlier band" (a pair sharing several
bands is tested in the first only), the agreement of the signatures' low bits, and the exact
Jaccard similarity of the two shingle sets. Compiled with numba, one candidate at a time, no
test builds an array of candidates, and the exact Jaccard stops once the shared shingles left
cannot reach the threshold: at 300k records of that corpus the near-copy search's candidates
cost 5 s instead of some 30–40 s, for the same pairs.

With a union-find (`minhash.Components`), a candidate already inside one component is skipped
before its signatures are read and a confirmed pair is joined at once, so later candidates see
every join before them (the components are those of every confirmed pair).
"""

import numba
import numpy as np

# Per process, since import: candidate pairs enumerated, and pairs compared by exact Jaccard
# (read by `benchmarks/screen_search.py`; counting costs two additions per band and chunk).
SEARCH_COUNTS = np.zeros(2, dtype=np.int64)
# A bucket of at least this many records has its records' band keys and signature bits copied
# side by side before its pairs are tested (its s records are read s - 1 times each).
_GATHER_FROM = 8
# Confirmed pairs returned per call at most (more when one record's pairs in its bucket need it).
_OUT_PAIRS = 1 << 16


def _compiled(function):
    """`function` compiled by numba (no Python objects, so without the interpreter's lock), its
    machine code cached beside this module, or in the user's cache folder, for the next
    process (compiling takes some 5 s). Where neither can be written (a read-only install and
    home), it is compiled in each process instead: numba would refuse to import the module."""
    try:
        return numba.njit(cache=True, nogil=True)(function)
    except RuntimeError:  # numba: "cannot cache function ...: no locator available"
        return numba.njit(nogil=True)(function)


@_compiled
def _root(parent: np.ndarray, item: int) -> int:
    """`item`'s root in the union-find `parent` (paths halved on the way, as `Components`)."""
    root = item
    while parent[root] != root:
        parent[root] = parent[parent[root]]
        root = parent[root]
    return root


@_compiled
def least_common(total: int, threshold: float) -> int:
    """Fewest shared shingles `c` at which two sets of `total` shingles together are `threshold`
    alike: `c / (total - c) >= threshold`, computed as `minhash.jaccards` divides (so a pair
    exactly at the threshold is kept); `total` when no smaller `c` reaches it (two nonempty sets
    share at most half their `total`, so no pair reaches the threshold then)."""
    need = int(np.ceil(threshold * total / (1.0 + threshold)))
    need = min(max(need, 0), total)
    while need > 0 and (need - 1) / (total - need + 1) >= threshold:
        need -= 1
    while need < total and not need / (total - need) >= threshold:
        need += 1
    return need


@_compiled
def differing(words: np.ndarray, a: int, b: int, most: int) -> int:
    """Signature positions (a byte each, eight to a 64-bit word) on which rows `a` and `b` of
    `words` differ, counted until more than `most` are found."""
    differ = 0
    for k in range(words.shape[1]):
        d = words[a, k] ^ words[b, k]
        # Each nonzero byte folded onto its lowest bit, the eight bits summed by a multiply.
        d |= d >> np.uint64(4)
        d |= d >> np.uint64(2)
        d |= d >> np.uint64(1)
        d &= np.uint64(0x0101010101010101)
        differ += (d * np.uint64(0x0101010101010101)) >> np.uint64(56)
        if differ > most:
            break
    return differ


@_compiled
def _shared(ids: np.ndarray, i: int, iend: int, j: int, jend: int, need: int) -> int:
    """Shingles shared by the sorted runs `ids[i:iend]` and `ids[j:jend]`, or -1 as soon as the
    shingles left cannot bring the count to `need`."""
    common = 0
    while i < iend and j < jend:
        x, y = ids[i], ids[j]
        common += x == y
        i += x <= y
        j += y <= x
        if common + min(iend - i, jend - j) < need:
            return -1
    return common if common >= need else -1


@_compiled
def pair_jaccards(offsets, ids, pairs, out):
    """`out[n]`: the exact Jaccard similarity of the records of `pairs[n]` (0.0 when both are
    empty; `minhash.jaccards`)."""
    for n in range(len(pairs)):
        i, j = pairs[n, 0], pairs[n, 1]
        total = offsets[i + 1] - offsets[i] + offsets[j + 1] - offsets[j]
        common = _shared(ids, offsets[i], offsets[i + 1], offsets[j], offsets[j + 1], 0)
        union = total - common
        out[n] = common / union if union > 0 else 0.0


@_compiled
def search(
    order,
    bucket_end,
    lengths,
    start,
    live,
    offsets,
    ids,
    keys,
    words,
    band,
    threshold,
    width,
    floor,
    parent,
    items,
    gathered_keys,
    gathered_words,
    out_pairs,
    out_similarity,
    counts,
):
    """The confirmed pairs of band `band`'s buckets, from slot `start` on.

    Args:
        order: The rows (of `keys`, `words` and `live`) in buckets of two or more, sorted by
            their key in this band; a bucket's rows are consecutive.
        bucket_end: Per slot of `order`, the slot after its bucket's last.
        lengths: Per slot, its record's shingle count.
        start: The first slot to search (a call ends early when `out_pairs` is full).
        live: Per row, its record's index (the index into `offsets`).
        offsets, ids: The records' sorted shingle hashes (`minhash.ShingleSets`).
        keys: Per row, one key per band.
        words: Per row, the low 8 bits of its signature, eight positions to a 64-bit word.
        threshold: Smallest exact Jaccard similarity of a confirmed pair.
        width: Signature positions (`words` may hold zero bytes beyond them, which agree).
        floor: Fewest positions on which a confirmed pair's signatures agree.
        parent: A union-find over the records (or over `items`' values), or an empty array.
        items: Per record, its item in `parent`; empty when records are the items.
        gathered_keys, gathered_words: Scratch rows into which the records of a bucket of at
            least `_GATHER_FROM` are copied (a larger bucket than they hold is read in place).
        out_pairs, out_similarity: Where confirmed pairs `(i, j)`, `i < j`, are written.
        counts: Candidates enumerated and pairs compared are added to its two entries.

    Returns:
        `(next slot, pairs written)`: the search is done when the next slot is `len(order)`.
    """
    capacity = len(out_similarity)
    joined = len(parent) > 0
    mapped = len(items) > 0
    most = width - floor  # positions that may differ
    found = 0
    enumerated = compared = 0
    base = -1  # the slot the gathered rows start at, -1 when none are gathered
    block_end = 0
    p = start
    while p < len(order):
        end = bucket_end[p]
        if found + (end - p - 1) > capacity:
            if found > 0:
                break
            raise ValueError("bucket_search.search: out_pairs holds fewer pairs than a bucket")
        if p >= block_end:
            block_end = end
            base = -1
            # Within the scratch rows only (compiled code checks no bounds).
            if _GATHER_FROM <= end - p <= len(gathered_keys):
                base = p
                for s in range(p, end):
                    gathered_keys[s - p, :band] = keys[order[s], :band]
                    gathered_words[s - p] = words[order[s]]
        if base >= 0:
            key_rows, word_rows, a = gathered_keys, gathered_words, p - base
        else:
            key_rows, word_rows, a = keys, words, order[p]
        first = live[order[p]]
        first_length = lengths[p]
        for q in range(p + 1, end):
            enumerated += 1
            second_length = lengths[q]
            smaller = min(first_length, second_length)
            larger = max(first_length, second_length)
            if not (smaller / larger if larger > 0 else 0.0) >= threshold:
                continue
            second = live[order[q]]
            if joined:
                x = _root(parent, items[first] if mapped else first)
                y = _root(parent, items[second] if mapped else second)
                if x == y:
                    continue
            b = q - base if base >= 0 else order[q]
            earlier = False
            for k in range(band):
                if key_rows[a, k] == key_rows[b, k]:
                    earlier = True
                    break
            if earlier or differing(word_rows, a, b, most) > most:
                continue
            compared += 1
            total = first_length + second_length
            common = _shared(
                ids,
                offsets[first],
                offsets[first + 1],
                offsets[second],
                offsets[second + 1],
                least_common(total, threshold),
            )
            if common < 0:
                continue
            union = total - common
            similarity = common / union if union > 0 else 0.0
            if not similarity >= threshold:
                continue
            out_pairs[found, 0] = min(first, second)
            out_pairs[found, 1] = max(first, second)
            out_similarity[found] = similarity
            found += 1
            if joined:
                x = _root(parent, items[first] if mapped else first)
                y = _root(parent, items[second] if mapped else second)
                parent[max(x, y)] = min(x, y)
        p += 1
    counts[0] += enumerated
    counts[1] += compared
    return p, found


def band_pairs(
    order: np.ndarray,
    sizes: np.ndarray,
    *,
    band: int,
    live: np.ndarray,
    offsets: np.ndarray,
    ids: np.ndarray,
    keys: np.ndarray,
    words: np.ndarray,
    width: int,
    threshold: float,
    floor: int,
    parent: np.ndarray | None = None,
    items: np.ndarray | None = None,
):
    """The confirmed pairs of one band, in chunks: `((pairs, 2) int64 record indices, i < j in
    each row, exact similarities)`. `order` holds the rows of the band's buckets of two or more,
    sorted by key, `sizes` those buckets' sizes in that order; the other arguments as `search`'s.
    With `parent`, each confirmed pair is already joined in it when it is given."""
    if not len(order):
        return
    empty = np.empty(0, dtype=np.int64)
    bucket_end = np.repeat(np.cumsum(sizes), sizes)
    lengths = np.diff(offsets)[live[order]]
    largest = int(sizes.max())
    gathered_keys = np.empty((largest if largest >= _GATHER_FROM else 0, keys.shape[1]), keys.dtype)
    gathered_words = np.empty((len(gathered_keys), words.shape[1]), words.dtype)
    capacity = max(_OUT_PAIRS, largest)
    out_pairs = np.empty((capacity, 2), dtype=np.int64)
    out_similarity = np.empty(capacity)
    slot = 0
    while slot < len(order):
        slot, found = search(
            order,
            bucket_end,
            lengths,
            slot,
            live,
            offsets,
            ids,
            keys,
            words,
            band,
            threshold,
            width,
            floor,
            empty if parent is None else parent,
            empty if items is None else items,
            gathered_keys,
            gathered_words,
            out_pairs,
            out_similarity,
            SEARCH_COUNTS,
        )
        if found:
            yield out_pairs[:found].copy(), out_similarity[:found].copy()
