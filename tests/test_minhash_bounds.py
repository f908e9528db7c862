"""The compact state of the MinHash screens (#21): the exact length bound that refutes
candidates before they are compared, hashed shingles, band-by-band candidates."""

import numpy as np

from pipelines.steps.integrity.screens.minhash import (
    ShingleSets,
    _long_enough,
    band_candidates,
    band_rows,
    candidate_pairs,
    jaccards,
    shingle_sets,
    signatures,
)


def test_when_candidates_are_bounded_by_length_then_no_pair_at_the_threshold_is_refuted() -> None:
    # Sizes 3 and 4 with one set inside the other: Jaccard exactly 0.75, the bound's equality
    # case (a strict comparison, or another float rounding, would drop it).
    rng = np.random.default_rng(3)
    token_lists = [["a", "b", "c"], ["a", "b", "c", "d"], ["a", "b"], ["x", "y", "z", "w", "v"]]
    token_lists += [
        [str(t) for t in rng.integers(0, 12, size=rng.integers(1, 9))] for _ in range(80)
    ]
    shingles = shingle_sets(token_lists, 1)
    pairs = np.array(
        [(i, j) for i in range(len(token_lists)) for j in range(i + 1, len(token_lists))]
    )
    similarity = jaccards(shingles, pairs)

    kept = {tuple(p) for p in _long_enough(shingles, pairs, 0.75).tolist()}

    at_threshold = {tuple(p) for p, s in zip(pairs.tolist(), similarity, strict=True) if s >= 0.75}
    assert (0, 1) in at_threshold and at_threshold <= kept
    # ... and it refutes something: (0, 3), 3 against 5 shingles, cannot reach 0.75.
    assert (0, 3) not in kept and len(kept) < len(pairs)


def _shingle_tuples(tokens: list[str], size: int) -> set[tuple[str, ...]]:
    if len(tokens) > size:
        return set(zip(*(tokens[k:] for k in range(size)), strict=False))
    return {tuple(tokens)} if tokens else set()


def test_when_shingles_are_hashed_then_jaccard_equals_that_of_the_token_tuples() -> None:
    # 64-bit shingle hashes instead of a vocabulary of shingle strings (#21): on records short
    # and long (one shingle of all tokens; none), the exact Jaccard of every pair is that of
    # the Python sets of token tuples, and each record has as many hashes as distinct shingles.
    rng = np.random.default_rng(8)
    vocab = [f"w{i}" for i in range(12)] + ["", "Ü", "语言"]
    token_lists = [
        [str(t) for t in rng.choice(vocab, size=rng.integers(0, 10))] for _ in range(150)
    ]
    pairs = np.array([(i, j) for i in range(150) for j in range(i + 1, 150)])
    for size in (1, 2, 3):
        sets = [_shingle_tuples(t, size) for t in token_lists]

        shingles = shingle_sets(iter(token_lists), size)

        assert [len(shingles.members(i)) for i in range(150)] == [len(s) for s in sets]
        expected = [
            len(sets[i] & sets[j]) / len(sets[i] | sets[j]) if sets[i] | sets[j] else 0.0
            for i, j in pairs
        ]
        assert jaccards(shingles, pairs).tolist() == expected
    # A shingle's hash depends on its tokens only: the same shingle in two corpora.
    one = shingle_sets([["a", "b", "c"]], 2)
    other = shingle_sets([["x"], ["y", "a", "b"]], 2)
    assert set(one.members(0).tolist()) & set(other.members(1).tolist())


def test_when_hashes_share_their_high_half_then_jaccard_still_counts_exact_matches() -> None:
    # The batched Jaccard finds matches by the hashes' high 32 bits, then compares them whole:
    # hashes that tie on the high half but differ must not count, equal ones must.
    high = np.uint64(7) << np.uint64(32)
    ids = np.array(
        [high | np.uint64(1), high | np.uint64(5), high | np.uint64(9)]  # record 0
        + [high | np.uint64(5), high | np.uint64(9)]  # record 1: 2 of record 0's 3
        + [high | np.uint64(2), high | np.uint64(3), high | np.uint64(4)],  # record 2: none
        dtype=np.uint64,
    )
    shingles = ShingleSets(ids, np.array([0, 3, 5, 8], dtype=np.int64))

    assert jaccards(shingles, np.array([(0, 1), (0, 2), (1, 2), (1, 1)])).tolist() == [
        2 / 3,
        0.0,
        0.0,
        1.0,
    ]


def test_when_candidates_come_band_by_band_then_they_are_the_all_at_once_pairs_each_once() -> None:
    rng = np.random.default_rng(4)
    # Templated records share bands with many others, so buckets span several chunks.
    token_lists = [
        [f"t{k % 3}", "the", "vpn", *(f"w{t}" for t in rng.integers(0, 6, size=4))]
        for k in range(300)
    ] + [[]]
    shingles = shingle_sets(token_lists, 2)
    signature = signatures(shingles, num_perm=64, seed=1)
    rows = band_rows(0.5, 64)
    expected = candidate_pairs(signature, rows)

    for chunk in (1, 50, 1 << 20):
        found = np.concatenate(list(band_candidates(signature, rows, chunk)))

        assert len(found) == len(expected) > 1000  # each pair once
        assert (found[:, 0] < found[:, 1]).all()
        assert np.array_equal(found[np.lexsort((found[:, 1], found[:, 0]))], expected)
