"""Near-duplicate screen: MinHash LSH (datasketch) over normalized word shingles.

Records whose estimated Jaccard similarity reaches the threshold are joined into clusters
(union-find over LSH candidate pairs that the MinHash estimate confirms). Each cluster keeps its
first record in input order as the representative; every other member is scored with its highest
estimated similarity to another member and names the representative.
"""

import zlib
from dataclasses import dataclass

from datasketch import MinHash, MinHashLSH

from pipelines.steps.records import Record
from pipelines.steps.screens import words

NEAR_DUPLICATE = "near_duplicate"


@dataclass(frozen=True)
class DedupScores:
    """What the near-duplicate screen measured.

    Attributes:
        similarity: Per record id, the highest estimated Jaccard similarity to another record
            of its cluster (0.0 for a record with no near duplicate).
        representative: Per clustered record id, the id of its cluster's representative.
        clusters: Every cluster of two or more records, ids in input order.
    """

    similarity: dict[str, float]
    representative: dict[str, str]
    clusters: list[tuple[str, ...]]


def shingles(text: str, size: int) -> set[bytes]:
    """Word `size`-grams of the normalized text (Han runs as character bigrams, see `words`)."""
    tokens = words(text)
    if len(tokens) <= size:
        return {" ".join(tokens).encode()}
    return {" ".join(tokens[i : i + size]).encode() for i in range(len(tokens) - size + 1)}


def score_near_duplicates(
    records: list[Record], *, threshold: float, num_perm: int, shingle_size: int, seed: int = 1
) -> DedupScores:
    """Cluster records whose estimated Jaccard similarity is at least `threshold`.

    Args:
        records: Records in input order (exact duplicates already removed).
        threshold: Jaccard similarity at which two records count as near duplicates.
        num_perm: MinHash permutations.
        shingle_size: Characters per shingle.
        seed: MinHash seed (fixed, so the same input gives the same clusters).

    Returns:
        Similarities, representatives and clusters.
    """
    if not records:
        return DedupScores({}, {}, [])
    sketches = MinHash.bulk(
        [shingles(r.text, shingle_size) for r in records],
        num_perm=num_perm,
        seed=seed,
        hashfunc=zlib.crc32,
    )
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    parent = list(range(len(records)))
    best = [0.0] * len(records)

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for index, sketch in enumerate(sketches):
        for other in lsh.query(sketch):
            similarity = sketch.jaccard(sketches[other])
            if similarity >= threshold:
                best[index] = max(best[index], similarity)
                best[other] = max(best[other], similarity)
                a, b = root(index), root(other)
                parent[max(a, b)] = min(a, b)
        lsh.insert(index, sketch)
    members: dict[int, list[int]] = {}
    for index in range(len(records)):
        members.setdefault(root(index), []).append(index)
    clusters = [tuple(records[i].id for i in group) for group in members.values() if len(group) > 1]
    representative = {rid: group[0] for group in clusters for rid in group}
    similarity = {r.id: round(best[i], 4) for i, r in enumerate(records)}
    return DedupScores(similarity, representative, sorted(clusters))
