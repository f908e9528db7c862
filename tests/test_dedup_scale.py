"""Near-duplicate screening at scale (#21.1): the cheaper steps decide as the plain definitions."""

import math

import numpy as np

from pipelines.steps.integrity.screens.dedup import _alike_sides, _side_similarity
from pipelines.steps.integrity.screens.minhash import agreement_floor, band_rows
from pipelines.steps.records import Message, Record


def _binomial_tail(num_perm: int, threshold: float, below: int) -> float:
    """Chance that two records at `threshold` agree on fewer than `below` of `num_perm`."""
    return sum(
        math.comb(num_perm, k) * threshold**k * (1 - threshold) ** (num_perm - k)
        for k in range(below)
    )


def test_when_the_agreement_floor_is_set_then_it_adds_at_most_a_hundredth_of_the_band_miss() -> (
    None
):
    for threshold, num_perm in ((0.75, 64), (0.8, 64), (0.7, 128), (0.9, 32)):
        rows = band_rows(threshold, num_perm)
        band_miss = (1 - threshold**rows) ** (num_perm // rows)
        floor = agreement_floor(threshold, num_perm)

        # The largest floor within the budget: one more position would exceed it.
        assert _binomial_tail(num_perm, threshold, floor) <= 0.01 * band_miss
        assert _binomial_tail(num_perm, threshold, floor + 1) > 0.01 * band_miss
    # At the default settings it refutes template siblings (Jaccard 0.5 agree on ~32 of 64).
    assert agreement_floor(0.75, 64) == 33


def _record(index: int, system: str | None, user: str | None, answer: str) -> Record:
    messages = [Message("system", system)] if system is not None else []
    messages += [Message("user", user)] if user is not None else []
    messages.append(Message("assistant", answer))
    return Record(f"r{index}", "t.jsonl", index + 1, "chat", tuple(messages), language="en")


def test_when_side_checks_run_in_batches_then_they_equal_the_pairwise_definition() -> None:
    rng = np.random.default_rng(5)
    words = ["reset", "my", "password", "please", "the", "vpn", "drops", "hi", "thanks", "now"]

    def text(low: int) -> str | None:
        size = int(rng.integers(low, 7))
        return " ".join(rng.choice(words, size=size)) if size > 0 else None

    # Roles missing, one-word turns (one shingle of all tokens) and longer ones, so that every
    # branch of `_side_similarity` (neither has the role: 1.0; one has it: 0.0) is drawn.
    records = [_record(i, text(-3), text(-1), text(1) or "ok") for i in range(60)]
    pairs = [(i, j, 0.9) for i in range(60) for j in range(i + 1, 60) if (i * j) % 3 == 0]

    for shingle_size, side_threshold in ((2, 0.5), (1, 0.3)):
        expected = [
            all(
                _side_similarity(records[i], records[j], role, shingle_size) >= side_threshold
                for role in ("system", "user")
            )
            for i, j, _ in pairs
        ]

        found = _alike_sides(records, pairs, shingle_size, side_threshold)

        assert found == expected and 0 < sum(found) < len(found)
    assert _alike_sides(records, [], 2, 0.5) == []


def test_when_agreement_is_checked_on_low_bits_then_it_keeps_every_pair_full_values_keep() -> None:
    from pipelines.steps.integrity.screens import minhash
    from pipelines.steps.integrity.screens.bucket_search import differing

    rng = np.random.default_rng(11)
    # Values that differ only above their low 8 bits agree there: the low bits keep such pairs
    # (the exact Jaccard refutes them later) and never drop a pair the full values keep.
    signature = rng.integers(0, 2**32 - 1, size=(200, 64), dtype=np.uint32)
    signature[1::2] = signature[::2]
    signature[1::4, :40] += np.uint32(256)
    pairs = [(i, j) for i in range(200) for j in range(i + 1, 200)]
    same = np.array([(signature[i] == signature[j]).sum() for i, j in pairs])
    words = minhash._low_bits(signature).view(np.uint64)
    agree = np.array([64 - differing(words, i, j, 64) for i, j in pairs])

    for floor in (1, 24, 33, 64):
        assert ((agree >= floor) | (same < floor)).all()  # kept by the full values: kept
    assert (agree >= 33).sum() == 100  # 50 more than the full values keep
    assert (same >= 33).sum() == 50


def test_when_scores_are_kept_as_columns_then_each_record_reads_as_its_dict() -> None:
    from pipelines.steps.integrity.curate import ScoreTable

    table = ScoreTable(["a", "b", "c"])
    expected: dict[str, dict[str, float]] = {"a": {}, "b": {}, "c": {}}
    for record_id, code, value in [
        ("a", "near_duplicate", 0.5),
        ("b", "near_duplicate", 0.0),
        ("a", "onion", 90.25),
        ("c", "garbled_text", float("nan")),
        ("a", "near_duplicate", 0.75),  # a score set twice keeps the last
    ]:
        table.put(record_id, code, value)
        expected[record_id][code] = value

    assert table["a"] == {"near_duplicate": 0.75, "onion": 90.25}
    assert table["b"] == {"near_duplicate": 0.0}  # a zero score is a score, not absent
    assert "onion" not in table["b"] and list(table) == ["a", "b", "c"] and len(table) == 3
    assert table.get("zz", {}) == {} and math.isnan(table["c"]["garbled_text"])
    # Equal to the dict of dicts it replaces (NaN aside: NaN equals nothing, itself included).
    expected["c"] = {}
    table.put("c", "garbled_text", 0.25)
    expected["c"]["garbled_text"] = 0.25
    assert table == expected and expected == table


class _Unpicklable(Record):
    def __reduce__(self):
        raise AssertionError("a record was pickled for the second process")


def test_when_screened_in_a_second_process_then_records_are_inherited_not_pickled() -> None:
    # The forked process inherits the candidates (#21): pickling them through the pool's pipe
    # held a second copy of the corpus in the parent while it screened.
    from pipelines.steps.config import CurationConfig
    from pipelines.steps.integrity import curate

    base = [
        _record(
            i, None, f"my vpn drops every day since monday and the office is slow too {i}", "ok"
        )
        for i in range(40)
    ]
    records = [_Unpicklable(**vars(r)) for r in base]
    two = CurationConfig(parallel_min_records=1)
    one = CurationConfig(parallel_min_records=0)

    forked = curate.curate_records(records, two)

    assert forked.screened == curate.curate_records(records, one).screened
    assert forked.scores == curate.curate_records(records, one).scores
    assert forked.near_duplicate_clusters and not curate._FORKED_CANDIDATES


def test_when_response_pairs_are_joined_chunk_by_chunk_then_the_clusters_are_the_same(
    monkeypatch,
) -> None:
    # Response clusters are joined as the pairs are found, never all held (#21.1): a search
    # that returns 3 pairs at a time gives the clusters of one that returns them all.
    from pipelines.steps.integrity.screens import backdoor, bucket_search

    rng = np.random.default_rng(11)
    stems = [" ".join(rng.choice(list("abcdefghij"), size=12)) for _ in range(6)]
    records = [
        _record(i, None, f"question {i}", f"{stems[i % 6]} {rng.integers(3)} {'x' * (i % 2)}")
        for i in range(80)
    ]
    whole = backdoor.response_clusters(records, threshold=0.6, num_perm=64, min_cluster=3)
    monkeypatch.setattr(bucket_search, "_OUT_PAIRS", 3)

    chunked = backdoor.response_clusters(records, threshold=0.6, num_perm=64, min_cluster=3)

    assert chunked == whole and len(whole) >= 3
    assert sorted(i for group in whole for i in group) == list(range(80))


def _component_labels(size: int, pairs: "np.ndarray | list[tuple[int, int]]") -> list[int]:
    """Per item, the smallest item of its component (plain union-find, one pair at a time)."""
    parent = list(range(size))

    def root(i: int) -> int:
        while parent[i] != i:
            i = parent[i]
        return i

    for i, j in np.asarray(pairs).reshape(-1, 2).tolist():
        a, b = root(i), root(j)
        parent[max(a, b)] = min(a, b)
    return [root(i) for i in range(size)]


def test_when_pairs_are_joined_in_numpy_then_the_components_are_the_plain_union_finds() -> None:
    from pipelines.steps.integrity.screens.minhash import Components

    rng = np.random.default_rng(3)
    for size, count in ((1, 0), (50, 30), (400, 380), (400, 2000)):
        pairs = rng.integers(0, size, size=(count, 2))
        components = Components(size)
        for chunk in np.array_split(pairs, 7):  # several passes, several links to one root
            components.union(chunk)

        assert components.find(np.arange(size)).tolist() == _component_labels(size, pairs)
        assert components.together(pairs).all()


def test_when_candidates_inside_a_component_are_skipped_then_the_components_are_the_same(
    monkeypatch,
) -> None:
    # #21.1: a candidate whose records are already joined is not compared; the components equal
    # those of every confirmed pair, with fewer pairs compared and yielded.
    from pipelines.steps.integrity.screens import bucket_search, minhash
    from pipelines.steps.integrity.screens.minhash import Components

    rng = np.random.default_rng(8)
    stems = [list(rng.choice([f"w{k}" for k in range(60)], size=40)) for _ in range(12)]
    token_lists = []
    for i in range(240):
        tokens = list(stems[i % 12])
        tokens[int(rng.integers(40))] = f"x{rng.integers(4)}"  # near copies of a stem
        token_lists.append(tokens if i % 17 else [])  # a few records without tokens
    settings = {"shingle_size": 2, "threshold": 0.7, "num_perm": 128, "seed": 1}
    first, second, _ = minhash.similar_pair_arrays(token_lists, **settings)
    monkeypatch.setattr(bucket_search, "_OUT_PAIRS", 16)  # given in small chunks
    joined = Components(len(token_lists))
    skipped = 0
    for pairs, similarity in minhash.similar_pair_chunks(token_lists, **settings, joined=joined):
        assert (similarity >= 0.7).all() and joined.together(pairs).all()
        skipped += len(pairs)

    expected = _component_labels(len(token_lists), np.column_stack((first, second)))
    assert joined.find(np.arange(len(token_lists))).tolist() == expected
    assert len(set(expected)) <= 12 + 240 // 17 + 1  # a component per stem, one per empty
    assert skipped < len(first) / 4  # most confirmed pairs were inside a component already


def test_when_bands_are_laid_out_at_256_permutations_then_no_pair_above_the_threshold_is_missed_more_often() -> (  # noqa: E501
    None
):
    # #21.1: 256 permutations in longer bands; at every similarity at or above the threshold a
    # pair is a candidate at least as often as with the 64-permutation layouts used before
    # (4 rows x 16 bands at 0.75, 5 x 12 at 0.8).
    for threshold, (old_rows, old_bands) in ((0.75, (4, 16)), (0.8, (5, 12))):
        rows = band_rows(threshold, 256)
        bands = 256 // rows
        for similarity in np.linspace(threshold, 1.0, 51):
            old = 1 - (1 - similarity**old_rows) ** old_bands
            new = 1 - (1 - similarity**rows) ** bands
            assert new >= old - 1e-12
        assert rows > old_rows  # longer bands: fewer spurious candidates
    assert (band_rows(0.75, 256), band_rows(0.8, 256)) == (6, 8)
