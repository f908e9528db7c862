"""Near-duplicate screen: MinHash LSH (datasketch permutations) over normalized word shingles.

A near duplicate is the same exchange twice: the record's own turns (user and assistant) reach
the Jaccard threshold, system turns left out of that measure (a system prompt or a tool list is
shared by many records that are not copies of each other). On top, the user turns on their own,
and the system turns on their own, must be at least `side_threshold` alike: a template answer
given to different questions ("hi" and "hello" answered with the same greeting) is no near copy,
nor is the same exchange under another system prompt or tool list (a record without one and a
record with one: 0.0). Pairs come from MinHash LSH candidates, each confirmed with the exact
Jaccard similarity, and are clustered in input order: a record joins the most similar earlier
representative it is a near copy of (a copy of a copy that is not itself a near copy of the
representative starts its own cluster). Each member other than the representative names it and
is scored with its highest Jaccard similarity to another record.
"""

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from pipelines.steps.integrity.packed import record_ids
from pipelines.steps.integrity.screens import record_words
from pipelines.steps.integrity.screens.minhash import jaccards, shingle_sets, similar_pair_arrays
from pipelines.steps.records import Record

NEAR_DUPLICATE = "near_duplicate"
# The user turns, and the system turns, of a near duplicate must each be at least this alike
# (word-shingle Jaccard): a near copy with a word or two changed in a short prompt scores 0.5-0.6
# on that side, a different question with the same template answer 0.0-0.3.
SIDE_THRESHOLD = 0.5
_OWN_ROLES = ("user", "assistant")
# Roles whose turns must each be `side_threshold` alike on their own: the question, and the
# system prompt (a tool list or an instruction conditions the answer: with another one, or with
# none, the same exchange is another example). The answers count in the whole only, since a
# near copy's short answer may change by a word or two ("thanks for the update").
_SIDES = ("system", "user")


def dedup_tokens(record: Record) -> tuple[str, ...]:
    """Word tokens of the record's user and assistant turns (all turns when it has neither)."""
    return record_words(record, *_OWN_ROLES) or record_words(record)


def _side_similarity(a: Record, b: Record, role: str, shingle_size: int) -> float:
    """Word-shingle Jaccard of the two records' turns of `role`; 1.0 when neither has one."""
    sets = []
    for record in (a, b):
        tokens = record_words(record, role)
        if len(tokens) <= shingle_size:
            sets.append({tokens} if tokens else set())
        else:
            sets.append(set(zip(*(tokens[k:] for k in range(shingle_size)), strict=False)))
    union = len(sets[0] | sets[1])
    return len(sets[0] & sets[1]) / union if union else 1.0


def _alike_sides(
    records: Sequence[Record],
    pairs: "list[tuple[int, int, float]] | np.ndarray",
    shingle_size: int,
    side_threshold: float,
) -> list[bool]:
    """Per pair, whether its user turns and its system turns are each `side_threshold` alike:
    `_side_similarity` for many pairs at once (numpy batches over the records of the pairs only;
    one call per pair tokenized both records again, and the confirmed pairs of a templated
    corpus grow faster than its records: 90,685 at 100k records, #21).

    `pairs`: `(i, j, similarity)` triples, or an array whose first two columns are `i, j`."""
    if not len(pairs):
        return []
    ends = np.asarray([(p[0], p[1]) for p in pairs] if isinstance(pairs, list) else pairs[:, :2])
    ends = ends.astype(np.int64)
    involved, local = np.unique(ends, return_inverse=True)
    local = local.reshape(ends.shape)
    alike = np.ones(len(pairs), dtype=bool)
    for role in _SIDES:
        tokens = [record_words(records[i], role) for i in involved.tolist()]
        sets = shingle_sets(tokens, shingle_size)
        has = np.diff(sets.offsets) > 0
        first, second = has[local[:, 0]], has[local[:, 1]]
        # A role that neither record has counts as alike (1.0), as in `_side_similarity`; one
        # that only one of them has as 0.0. Only the pairs still alike where both have the role
        # are compared (#21.1: the confirmed pairs grow with N², most without a system turn).
        compared = np.flatnonzero(alike & first & second)
        similarity = np.zeros(len(pairs))
        similarity[compared] = jaccards(sets, local[compared])
        alike &= (~first & ~second) | (similarity >= side_threshold)
    return alike.tolist()


@dataclass(frozen=True)
class DedupScores:
    """What the near-duplicate screen measured.

    Attributes:
        similarity: Per record id, the highest Jaccard similarity of a near-copy pair it is
            part of (0.0 for a record with no near duplicate).
        representative: Per clustered record id, the id of its cluster's representative.
        clusters: Every cluster of two or more records, ids in input order.
    """

    similarity: dict[str, float]
    representative: dict[str, str]
    clusters: list[tuple[str, ...]]


def score_near_duplicates(
    records: list[Record],
    *,
    threshold: float,
    num_perm: int,
    shingle_size: int,
    seed: int = 1,
    side_threshold: float = SIDE_THRESHOLD,
) -> DedupScores:
    """Cluster records whose own turns have a word-shingle Jaccard similarity of at least
    `threshold`, user and system turns each at least `side_threshold` (module docstring).

    Candidates come from MinHash LSH, each candidate pair is confirmed with the exact Jaccard
    similarity (`pipelines.steps.integrity.screens.minhash`).

    Args:
        records: Records in input order (exact duplicates already removed).
        threshold: Jaccard similarity at which two records count as near duplicates.
        num_perm: MinHash permutations of the candidate search.
        shingle_size: Words per shingle.
        seed: MinHash seed (fixed, so the same input gives the same clusters).
        side_threshold: Smallest Jaccard similarity of the user turns, and of the system
            turns, of a pair (a role that neither record has counts as alike).

    Returns:
        Similarities, representatives and clusters.
    """
    if not records:
        return DedupScores({}, {}, [])
    first, second, similarity = similar_pair_arrays(
        (dedup_tokens(r) for r in records),
        shingle_size=shingle_size,
        threshold=threshold,
        num_perm=num_perm,
        seed=seed,
    )
    alike = np.array(
        _alike_sides(records, np.column_stack((first, second)), shingle_size, side_threshold),
        dtype=bool,
    )
    first, second, similarity = first[alike], second[alike], similarity[alike]
    best = np.zeros(len(records))
    np.maximum.at(best, first, similarity)
    np.maximum.at(best, second, similarity)
    # In input order, a record joins the most similar earlier representative it is a near copy
    # of; one that is only a copy of copies starts a cluster of its own (no chains). The pairs
    # are grouped by their later record, in input order (an earlier one's leader is final).
    by_later = np.lexsort((first, second))
    first, second, similarity = first[by_later], second[by_later], similarity[by_later]
    leader = list(range(len(records)))
    edges = (
        np.flatnonzero(np.concatenate(([True], second[1:] != second[:-1]))) if len(second) else []
    )
    bounds = [*np.asarray(edges).tolist(), len(second)]
    for lo, hi in zip(bounds[:-1], bounds[1:], strict=False):
        index = int(second[lo])
        partners = [
            (s, -i)
            for s, i in zip(similarity[lo:hi].tolist(), first[lo:hi].tolist(), strict=True)
            if leader[i] == i
        ]
        if partners:
            leader[index] = -max(partners)[1]
    members: dict[int, list[int]] = {}
    for index, head in enumerate(leader):
        if head != index:
            members.setdefault(head, [head]).append(index)
    clusters = [tuple(records[i].id for i in group) for group in members.values()]
    representative = {rid: group[0] for group in clusters for rid in group}
    scores = {rid: round(b, 4) for rid, b in zip(record_ids(records), best.tolist(), strict=True)}
    return DedupScores(scores, representative, sorted(clusters))
