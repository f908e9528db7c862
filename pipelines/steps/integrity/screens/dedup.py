"""Near-duplicate screen: MinHash LSH (datasketch permutations) over normalized word shingles.

Records whose word-shingle sets reach the Jaccard threshold are joined into clusters (union-find
over LSH candidate pairs, each confirmed with the exact Jaccard similarity). Each cluster keeps its
first record in input order as the representative; every other member is scored with its highest
Jaccard similarity to another member and names the representative.
"""

from dataclasses import dataclass

from pipelines.steps.integrity.screens import record_words
from pipelines.steps.integrity.screens.minhash import similar_pairs
from pipelines.steps.records import Record

NEAR_DUPLICATE = "near_duplicate"


@dataclass(frozen=True)
class DedupScores:
    """What the near-duplicate screen measured.

    Attributes:
        similarity: Per record id, the highest Jaccard similarity to another record
            of its cluster (0.0 for a record with no near duplicate).
        representative: Per clustered record id, the id of its cluster's representative.
        clusters: Every cluster of two or more records, ids in input order.
    """

    similarity: dict[str, float]
    representative: dict[str, str]
    clusters: list[tuple[str, ...]]


def score_near_duplicates(
    records: list[Record], *, threshold: float, num_perm: int, shingle_size: int, seed: int = 1
) -> DedupScores:
    """Cluster records whose word-shingle sets have a Jaccard similarity of at least `threshold`.

    Candidates come from MinHash LSH, each candidate pair is confirmed with the exact Jaccard
    similarity (`pipelines.steps.integrity.screens.minhash`).

    Args:
        records: Records in input order (exact duplicates already removed).
        threshold: Jaccard similarity at which two records count as near duplicates.
        num_perm: MinHash permutations of the candidate search.
        shingle_size: Words per shingle.
        seed: MinHash seed (fixed, so the same input gives the same clusters).

    Returns:
        Similarities, representatives and clusters.
    """
    if not records:
        return DedupScores({}, {}, [])
    pairs = similar_pairs(
        [record_words(r) for r in records],
        shingle_size=shingle_size,
        threshold=threshold,
        num_perm=num_perm,
        seed=seed,
    )
    parent = list(range(len(records)))
    best = [0.0] * len(records)

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j, similarity in pairs:
        best[i] = max(best[i], similarity)
        best[j] = max(best[j], similarity)
        a, b = root(i), root(j)
        parent[max(a, b)] = min(a, b)
    members: dict[int, list[int]] = {}
    for index in range(len(records)):
        members.setdefault(root(index), []).append(index)
    clusters = [tuple(records[i].id for i in group) for group in members.values() if len(group) > 1]
    representative = {rid: group[0] for group in clusters for rid in group}
    similarity = {r.id: round(best[i], 4) for i, r in enumerate(records)}
    return DedupScores(similarity, representative, sorted(clusters))
