"""The exact length bound that refutes near-duplicate candidates before they are compared (#21)."""

import numpy as np

from pipelines.steps.integrity.screens.minhash import (
    _long_enough,
    jaccards,
    shingle_sets,
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
