"""The compact state of the MinHash screens (#21): hashed shingles, and the compiled bucket
search (`bucket_search`), whose pairs are those of every candidate tested in numpy."""

import numpy as np

from pipelines.steps.integrity.screens.minhash import (
    ShingleSets,
    _low_bits,
    agreement_floor,
    band_rows,
    candidate_pairs,
    jaccards,
    shingle_sets,
    signatures,
    similar_pair_arrays,
)


def test_when_a_pair_is_exactly_at_the_threshold_then_the_search_keeps_it() -> None:
    # Sizes 3 and 4 with one set inside the other: Jaccard exactly 0.75, the length bound's
    # equality case and the exact count's (a strict comparison, or another float rounding,
    # would drop it); (0, 3), 3 against 5 shingles, cannot reach it.
    token_lists = [["a", "b", "c"], ["a", "b", "c", "d"], ["a", "b"], ["x", "y", "z", "w", "v"]]

    first, second, similarity = similar_pair_arrays(
        token_lists, shingle_size=1, threshold=0.75, num_perm=64, seed=1
    )

    assert list(zip(first.tolist(), second.tolist(), strict=True)) == [(0, 1)]
    assert similarity.tolist() == [0.75]


def test_when_shared_shingles_are_counted_then_the_least_count_is_the_exact_one() -> None:
    from pipelines.steps.integrity.screens.bucket_search import least_common

    for threshold in (0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 1.0, 1 / 3, 0.1):
        for total in range(2, 400):
            reaching = [c for c in range(total) if c / (total - c) >= threshold]
            assert least_common(total, threshold) == (reaching[0] if reaching else total)


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
    # Hashes that tie on their high 32 bits but differ must not count, equal ones must (a
    # batched numpy Jaccard once matched by the high half first).
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
    assert jaccards(shingles, np.empty((0, 2), dtype=np.int64)).tolist() == []


def _reference_pairs(token_lists, size, threshold, num_perm, seed) -> dict:
    """Every candidate of the banding (`candidate_pairs`) whose signatures' low bits agree on at
    least `agreement_floor` positions and whose exact Jaccard reaches `threshold`, in numpy."""
    shingles = shingle_sets(token_lists, size)
    signature = signatures(shingles, num_perm=num_perm, seed=seed)
    candidates = candidate_pairs(signature, band_rows(threshold, num_perm))
    low = _low_bits(signature)
    agree = (low[candidates[:, 0]] == low[candidates[:, 1]]).sum(axis=1) - (low.shape[1] - num_perm)
    candidates = candidates[agree >= agreement_floor(threshold, num_perm)]
    similarity = jaccards(shingles, candidates)
    keep = similarity >= threshold
    return dict(zip(map(tuple, candidates[keep].tolist()), similarity[keep].tolist(), strict=True))


def _templated(seed: int, records: int) -> list[list[str]]:
    # Templated records share bands with many others (buckets of tens to hundreds of records,
    # copied side by side), with near copies among them; a few records have no tokens.
    rng = np.random.default_rng(seed)
    token_lists = []
    for k in range(records):
        words = [f"t{k % 3}", "the", "vpn", *(f"w{t}" for t in rng.integers(0, 5, size=6))]
        token_lists.append(words if k % 41 else [])
    return token_lists


def test_when_buckets_are_searched_compiled_then_the_pairs_are_those_of_every_candidate(
    monkeypatch,
) -> None:
    from pipelines.steps.integrity.screens import bucket_search

    token_lists = _templated(4, 400)
    for num_perm, threshold in ((64, 0.5), (60, 0.6), (256, 0.75)):  # 60: no whole words
        expected = _reference_pairs(token_lists, 2, threshold, num_perm, 1)
        for out_pairs in (1, 7, 1 << 16):  # calls that stop when their output is full, or not
            monkeypatch.setattr(bucket_search, "_OUT_PAIRS", out_pairs)
            first, second, similarity = similar_pair_arrays(
                iter(token_lists), shingle_size=2, threshold=threshold, num_perm=num_perm, seed=1
            )
            pairs = list(zip(first.tolist(), second.tolist(), strict=True))
            found = dict(zip(pairs, similarity.tolist(), strict=True))

            assert found == expected and len(expected) > 50
            assert (first < second).all() and len(set(pairs)) == len(pairs)


def test_when_signatures_are_compared_in_words_then_the_count_is_the_byte_comparison() -> None:
    from pipelines.steps.integrity.screens.bucket_search import differing

    rng = np.random.default_rng(4)
    low = rng.integers(0, 4, size=(60, 256), dtype=np.uint8)  # many equal bytes
    words = low.view(np.uint64)
    for a in range(0, 60, 7):
        for b in range(60):
            differ = int((low[a] != low[b]).sum())
            assert differing(words, a, b, 256) == differ
            # Counting stops past `most`: more than it, or exact when within it.
            for most in (0, differ - 1, differ, 200):
                counted = differing(words, a, b, most)
                assert counted == differ if differ <= most else counted > most


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
        assert (similarity >= 0.8).all() and joined.together(pairs).all()  # joined when given
        given += len(pairs)

    found = joined.find(np.arange(len(token_lists))).tolist()
    assert found == expected
    # Components of several records, and fewer pairs given than the components' exact pairs.
    sizes = np.bincount(found)
    assert (sizes >= 3).sum() >= 5 and given < len(token_lists)


def test_when_no_cache_folder_can_be_written_then_the_search_still_compiles(monkeypatch) -> None:
    # A read-only install and home: numba finds no place for its cache and refuses `cache=True`
    # at import; the module then compiles its search in each process instead.
    import importlib

    from numba.core import caching

    from pipelines.steps.integrity.screens import bucket_search

    monkeypatch.setattr(caching.CacheImpl, "_locator_classes", [])
    try:
        reloaded = importlib.reload(bucket_search)

        assert reloaded.least_common(8, 0.75) == 4  # 3/5 < 0.75 <= 4/4
    finally:
        monkeypatch.undo()
        importlib.reload(bucket_search)
