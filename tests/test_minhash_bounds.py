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


def test_when_buckets_come_as_runs_then_their_pairs_are_the_bucket_pairs_in_order() -> None:
    from pipelines.steps.integrity.screens import minhash

    # Buckets of 1 to 40 rows in each band (one key taken by many rows, as a template's
    # records share a band), and chunks small enough that runs split between buckets.
    rng = np.random.default_rng(21)
    keys = rng.integers(0, 60, size=(400, 5), dtype=np.uint32) ** 2
    keys[::7, 2] = 7
    for chunk in (1, 50, 1 << 17):
        expected: dict[int, list[list[int]]] = {}
        for band, pairs in minhash._bucket_pairs_by_band(keys, chunk):
            expected.setdefault(band, []).extend(pairs.tolist())

        runs = list(minhash._bucket_runs(keys, chunk))

        found: dict[int, list[list[int]]] = {}
        for band, rows_of, pairs in runs:
            found.setdefault(band, []).extend(rows_of[pairs].tolist())
        assert found == expected and len(expected) == 5
        # A run's rows are rows of buckets of two or more: no row alone in its bucket.
        for band, rows_of, pairs in runs:
            assert (keys[rows_of[pairs[:, 0]], band] == keys[rows_of[pairs[:, 1]], band]).all()
            values, counts = np.unique(keys[:, band], return_counts=True)
            assert np.isin(keys[rows_of, band], values[counts > 1]).all()


def test_when_agreement_is_counted_in_words_then_it_equals_the_byte_comparison() -> None:
    from pipelines.steps.integrity.screens import minhash

    rng = np.random.default_rng(4)
    for width in (64, 256, 60):  # 60: not whole words, compared byte by byte
        low = rng.integers(0, 4, size=(120, width), dtype=np.uint8)  # many equal bytes
        pairs = np.array([(i, j) for i in range(120) for j in range(i + 1, 120)], dtype=np.int32)
        same = (low[pairs[:, 0]] == low[pairs[:, 1]]).sum(axis=1)
        for floor in (0, width // 4, width // 4 + 3, width):
            assert minhash._agreement(low, pairs, floor).tolist() == (same >= floor).tolist()
        # A view that is not C-contiguous takes the byte comparison, with the same answer.
        view = low[:, ::-1]
        flipped = (view[pairs[:, 0]] == view[pairs[:, 1]]).sum(axis=1)
        assert (
            minhash._agreement(view, pairs, width // 4).tolist() == (flipped >= width // 4).tolist()
        )


def _brute_components(token_lists: list[list[str]], size: int, threshold: float) -> list[int]:
    sets = [_shingle_tuples(t, size) for t in token_lists]
    parent = list(range(len(sets)))

    def root(i: int) -> int:
        while parent[i] != i:
            i = parent[i]
        return i

    for i in range(len(sets)):
        for j in range(i + 1, len(sets)):
            union = len(sets[i] | sets[j])
            if union and len(sets[i] & sets[j]) / union >= threshold:
                parent[max(root(i), root(j))] = min(root(i), root(j))
    return [root(i) for i in range(len(sets))]


def test_when_only_components_are_wanted_then_they_equal_those_of_exact_jaccard() -> None:
    from pipelines.steps.integrity.screens.minhash import Components, similar_pair_chunks

    # Templates whose records are siblings (0.3-0.7 alike) with near copies planted (one word
    # changed: 0.8 or more), so that buckets hold several components and many pairs each.
    rng = np.random.default_rng(13)
    templates = [[f"t{k}w{i}" for i in range(40)] for k in range(4)]
    token_lists = []
    for _ in range(160):
        words = list(templates[int(rng.integers(0, 4))])
        for slot in rng.choice(40, size=int(rng.integers(3, 12)), replace=False):
            words[slot] = f"v{int(rng.integers(0, 6))}"
        token_lists.append(words)
        for _ in range(int(rng.integers(0, 4))):  # near copies: one word changed, 0.85 alike
            copy = list(words)
            copy[int(rng.integers(0, 40))] = f"x{int(rng.integers(0, 1000))}"
            token_lists.append(copy)
    expected = _brute_components(token_lists, 3, 0.8)

    joined = Components(len(token_lists))
    given = 0
    for pairs, similarity in similar_pair_chunks(
        iter(token_lists), shingle_size=3, threshold=0.8, num_perm=256, seed=2, joined=joined
    ):
        assert (similarity >= 0.8).all() and not joined.together(pairs).any()
        joined.union(pairs)
        given += len(pairs)

    found = joined.find(np.arange(len(token_lists))).tolist()
    assert found == expected
    # Components of several records, and fewer pairs given than the components' exact pairs.
    sizes = np.bincount(found)
    assert (sizes >= 3).sum() >= 5 and given < len(token_lists)
