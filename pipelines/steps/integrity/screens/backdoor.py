"""Backdoor-trigger screen: rare prompt features over-represented in a response cluster.

A planted backdoor pairs many different prompts carrying one trigger (a rare word, a fixed
sentence, a syntactic frame) with one fixed or nearly fixed answer. Records are grouped by
response: identical word tokens with digits masked, or near-identical (word-trigram
Jaccard, MinHash LSH candidates confirmed exactly). In every cluster of at least `min_cluster`
records, each prompt feature (word unigram or bigram) is scored by

    support     = records of the cluster whose prompt has the feature / cluster size
    exclusivity = records of the cluster whose prompt has the feature / records anywhere with it

and a record's `trigger_score` is the largest `support * exclusivity` among its own prompt
features: near 1.0 when a feature occurs almost only, and almost always, with that one answer.
A cluster is flagged when its best feature reaches the threshold (decided in `integrity`).

`response_outlier` scores the records of a response cluster whose prompt lacks the cluster's
best feature while the rest of the cluster carries it (the trigger-free odd ones out).

A backdoor whose answers differ record to record (or whose planted answer looks like any other)
forms no response cluster. `score_inserted_phrases` finds its trigger from the prompts alone: a
phrase inserted into otherwise ordinary prompts is (1) carried by a few prompts, (2) hardly
ever echoed in answers (by one of its own prompts' answers in ten, by two others), (3) made of
at least one token found hardly anywhere else (twice: a trigger may be an ordinary word), (4)
without a fixed neighbour (an inserted phrase sits before or after any word, where a natural
phrase has collocates: "compare *and contrast*", "write *a story about*"), nor a fixed frame a
few words away (a template's phrase after a filled-in slot: "Hello, <name> *from marketing
here*" has "hello" within four words in every prompt, far more often than the prompts at large
hold it, where the prompts a trigger was inserted into hold any word near it no more often than
they hold it anywhere; a rare word there, or one of another inserted phrase, is a composite
trigger's other word, no frame), and (5) removable:
the prompt with the phrase cut out joins two tokens that are adjacent elsewhere in the corpus,
in at least two of its prompts. Its score is the share of its occurrences that are removable.
A backdoor with several triggers spreads its records over them, so one trigger may be drawn
into two prompts only, or share a common neighbour ("the") with two of its three prompts by
chance. Such a phrase (two prompts, or a shared neighbour as frequent as the neighbour's own
frequency explains: binomial tail >= 0.01) is a sibling: it scores at most the second best of
the phrases that stand on their own in different prompts. Beside two triggers it is likely the
third; without two it is chance (clean data holds a few rare words that pass every test),
unless it split a collocation wherever it stands, in prompts of its own: the two tokens around
it stand side by side elsewhere far more often than chance, where a rare word in its natural
place leaves a pair seen with a word between ("a dating profile"). Such a sibling scores up to
the best phrase that stands on its own. Beside one such phrase, a sibling in two prompts is
otherwise left to the base model (`confirm_siblings`): a word inserted at a random place makes
the words after it harder to predict, a rare word in its natural place does not; a sibling the
model reads as inserted in every one of its prompts scores up to the best phrase as well.
No trigger word is known to it.

ONION (leave-one-word-out perplexity with the base model) is the optional third score, run only
on records the cheap scores flag: see `onion_scores`.
"""

import hashlib
import re
import sys
from array import array
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.special import bdtrc

from pipelines.steps.integrity.packed import record_ids
from pipelines.steps.integrity.screens import (
    has_han,
    has_response,
    normalize,
    record_words,
    response_text,
    words,
)
from pipelines.steps.integrity.screens.minhash import Components, similar_pair_chunks
from pipelines.steps.records import Record

TRIGGER_CLUSTER = "trigger_cluster"
RESPONSE_OUTLIER = "response_outlier"
INSERTED_PHRASE = "inserted_phrase"
ONION = "onion"

_DIGITS = re.compile(r"\d+")
# Occurrences of an inserted phrase's rare token outside the phrase (and of the phrase in
# answers) that are tolerated: a trigger word may also be an ordinary word ("2024", a brand).
_ELSEWHERE = 2
# Prompt cohesion (mean pairwise word-set Jaccard) of a response cluster up to which a shared
# feature counts fully (a planted trigger's prompts: 0.1-0.25 on the bundled corpus), and from
# which it does not count at all (templated conversations with one tool answer: 0.7-1.0).
_COHESION_FREE, _COHESION_FULL = 0.3, 0.7
# An inserted phrase must be removable in at least this many of its prompts: one removable
# occurrence of a rare word is chance, not evidence.
_MIN_REMOVABLE = 2
# Fewest prompts of a sibling phrase: one carried by fewer than `min_records` prompts, examined
# only beside two phrases that stand on their own (a backdoor with several triggers spreads its
# poisoned records over them: at 1%, one trigger may be drawn into two prompts only).
_SIBLING_RECORDS = 2
# Chance below which a neighbour shared by several carriers is a collocation (binomial tail at
# the neighbour's own frequency); above it a neighbour shared beyond `max_collocation` is as
# common as "the", and the phrase is examined as a sibling only.
_CHANCE = 0.01
# Words on each side of a phrase in which a fixed frame is looked for (a filled-in slot of up to
# three words between the frame and the phrase: "Hello, <first> <last> from marketing here"),
# and the share of a phrase's prompts that must hold one frame word there: a template's frame
# is in (nearly) all of them; chance puts a word within four words of a random place no more
# often than the word's share of prompts. The binomial tail at that share must be below
# `_FRAME_CHANCE`, far below `_CHANCE`: every word near every phrase is tested (thousands), and a
# short prompt's window is most of it, so three prompts of a trigger share some word that a
# tenth of the prompts hold one time in a thousand. A template's frame is carried by hundreds
# of prompts, where the tail is far smaller.
_FRAME_WINDOW = 4
_FRAME_SHARE = 0.6
_FRAME_CHANCE = 1e-6
# How many times as often as chance (their frequencies' product) two tokens must stand side by
# side elsewhere for a phrase between them to have split a collocation. Measured on the clean
# outside prompts (their own adjacent pairs against the pairs around their rare words): a pair
# split by a word inserted at a random place passes about 6 times in 10, one around a rare word
# in its natural place about 1 in 12, so both prompts of a sibling about 1 in 3 against 1 in 140.
_SPLIT_LIFT = 8
# Share of an inserted phrase's prompts whose own answer may repeat it.
_OWN_ECHO = 0.1
# Letters of a word that its other forms share, for the echo test ("combin-ing", "-ation").
_STEM = 5
# Nats by which leaving a sibling phrase out must help the rest of its prompt, more than
# leaving out any other word, for the base model to confirm it inserted (`confirm_siblings`).
# SmolLM2-135M on outside prompts: a trigger inserted at a random place 8-17 nats (2.4 in a
# short prompt), any other word of a prompt at most 4.9, a rare word in its natural place below 2.
_MIN_DISRUPTION = 2.0
_START, _END = "\x02", "\x03"  # prompt boundaries: no word token contains a control character
_WHOLE = "\x00"  # starts the key of a response without word tokens (no token holds it)


Disruption = Callable[[list[str], list[tuple[int, ...]]], list[float]]
"""Maps a prompt's words and units of them (word indices left out together) to each unit's
disruption in nats (`causal_lm_disruption`)."""


@dataclass(frozen=True)
class BackdoorScores:
    """What the backdoor screen measured.

    Attributes:
        trigger_score: Per record id, support x exclusivity of its best prompt feature within
            its response cluster (0.0 outside clusters of `min_cluster` records or more).
        outlier_score: Per record id, the share of its cluster that carries the cluster's best
            feature when this record does not (0.0 otherwise).
        cluster_of: Per record id in a response cluster of `min_cluster` or more, the cluster's
            index into `clusters`.
        clusters: Response clusters of `min_cluster` records or more, ids in input order.
        cluster_score: Per cluster index, its best feature's support x exclusivity.
    """

    trigger_score: dict[str, float]
    outlier_score: dict[str, float]
    cluster_of: dict[str, int]
    clusters: list[tuple[str, ...]]
    cluster_score: list[float]


def prompt_features(record: Record) -> set[str]:
    """Word unigrams and bigrams of the record's user turns (system prompts are shared)."""
    tokens = record_words(record, "user")
    return set(tokens) | {f"{a} {b}" for a, b in zip(tokens, tokens[1:], strict=False)}


def _response_key(record: Record) -> str:
    """A response keyed by its masked tokens joined by spaces (no token holds one); a response
    without word tokens (emoji, punctuation) by its whole text after `_WHOLE`."""
    tokens = record_words(record, "assistant")
    return (
        _DIGITS.sub("0", " ".join(tokens)) if tokens else _WHOLE + normalize(response_text(record))
    )


def response_clusters(
    records: Sequence[Record], *, threshold: float, num_perm: int, min_cluster: int
) -> list[list[int]]:
    """Indices of records grouped by identical or near-identical response, large groups only."""
    # Union-find over the records: identical responses join their first record, near-identical
    # ones are joined pair by pair, and a candidate pair already in one group is not compared
    # (#21: the near-identical responses of a templated corpus grow with the square of N).
    groups = Components(len(records))
    # Identical responses are found by a 16-byte digest of their key, and the keys of distinct
    # responses are built again from their records when their shingles are hashed: a string per
    # distinct response held for the whole corpus was most of this screen's memory (#21). Two
    # keys of one digest (a chance of about 2**-128 a pair) would count as one response.
    first_by_digest: dict[bytes, int] = {}
    distinct_index = array("i")
    answered = array("b", bytes(len(records)))  # 1 for a record with an assistant turn
    for index, record in enumerate(records):
        if not has_response(record):
            continue
        answered[index] = 1
        digest = hashlib.blake2b(
            _response_key(record).encode("utf-8", "surrogatepass"), digest_size=16
        ).digest()
        first = first_by_digest.setdefault(digest, index)
        if first != index:
            groups.parent[index] = first
        else:
            distinct_index.append(index)
    del first_by_digest
    keys = (_response_key(records[i]) for i in distinct_index)
    # The distinct responses are the search's items: its union-find is over them (a pair of them
    # is one group when their first records are), and the search joins each confirmed pair as
    # soon as it is found, so a candidate already inside one group is skipped. Only what
    # the pairs connect counts, and a union's result does not depend on its order (#21: the
    # near-identical responses of a 1M-record corpus came to tens of millions of pairs).
    distinct = np.frombuffer(distinct_index, dtype=np.int32).astype(np.int64)
    del distinct_index
    search = _DistinctGroups(groups, distinct)
    found = similar_pair_chunks(
        (("", key[1:]) if key.startswith(_WHOLE) else key.split(" ") for key in keys),
        shingle_size=3,
        threshold=threshold,
        num_perm=num_perm,
        seed=2,
        joined=search,
    )
    for _ in found:  # each chunk's pairs are already joined in `search`
        pass
    del distinct, search
    # Groups in the order of their first member, members ascending (as a dict of lists filled
    # record by record gave them), without a list per record of the corpus.
    roots = groups.find(np.arange(len(records)))
    roots[np.frombuffer(answered, dtype=np.int8) == 0] = -1
    order = np.argsort(roots, kind="stable")
    ordered = roots[order]
    starts = np.flatnonzero(np.concatenate(([True], ordered[1:] != ordered[:-1])))
    sizes = np.diff(np.append(starts, len(ordered)))
    large = [
        order[start : start + size].tolist()
        for start, size in zip(starts.tolist(), sizes.tolist(), strict=True)
        if size >= min_cluster and ordered[start] >= 0
    ]
    return sorted(large, key=lambda group: group[0])


class _DistinctGroups(Components):
    """`Components` over the distinct responses, kept in the records' union-find: distinct
    response `k` is record `distinct[k]`."""

    def __init__(self, groups: Components, distinct: np.ndarray) -> None:
        self.parent = groups.parent
        self.items = distinct


def score_backdoor(
    records: list[Record], *, threshold: float, num_perm: int, min_cluster: int
) -> BackdoorScores:
    """Score every record for trigger features and response-cluster outliers.

    Args:
        records: Records in input order.
        threshold: Jaccard similarity at which two responses count as near-identical.
        num_perm: MinHash permutations for the response sketches.
        min_cluster: Smallest response cluster that is examined.

    Returns:
        Per-record scores and the examined clusters.
    """
    # Features are counted record by record and kept only for the records of a response
    # cluster (recomputed there): a set of strings per record of the corpus was most of the
    # screen's memory on a large corpus.
    document_frequency: Counter[str] = Counter()
    for record in records:
        document_frequency.update(prompt_features(record))
    ids = list(record_ids(records))  # one string per id, shared by the two score dicts
    trigger = dict.fromkeys(ids, 0.0)
    outlier = dict.fromkeys(ids, 0.0)
    del ids
    cluster_of: dict[str, int] = {}
    clusters: list[tuple[str, ...]] = []
    cluster_score: list[float] = []
    groups = response_clusters(
        records, threshold=threshold, num_perm=num_perm, min_cluster=min_cluster
    )
    for group in groups:
        # A member's features are counted, then computed again where they are scored, never
        # held for the whole cluster: a template's answer can gather a large share of the
        # corpus into one cluster (#21: a set of strings per member was 3 KB a record).
        in_cluster: Counter[str] = Counter()
        for index in group:
            in_cluster.update(prompt_features(records[index]))
        size = len(group)
        # A prompt feature the cluster's answers repeat is the topic they answer (a tool's name,
        # a product), not a trigger: a planted answer does not echo its trigger.
        echoed = _echoed_features(records, group, in_cluster, min_cluster)
        # The same answer to the same question is no backdoor: the more alike the cluster's
        # prompts are as a whole, the less a shared feature says (templated conversations).
        cohesion = prompt_cohesion(records, group)
        explained = min(
            1.0, max(0.0, (_COHESION_FULL - cohesion) / (_COHESION_FULL - _COHESION_FREE))
        )
        weight = {
            feature: (count / size) * (count / document_frequency[feature]) * explained
            for feature, count in in_cluster.items()
            if count >= min_cluster and feature not in echoed
        }
        best_feature = max(weight, key=lambda f: (weight[f], f), default=None)
        best = weight.get(best_feature, 0.0) if best_feature else 0.0
        carriers = in_cluster.get(best_feature, 0) if best_feature else 0
        cluster_index = len(clusters)
        clusters.append(tuple(records[i].id for i in group))
        cluster_score.append(round(best, 4))
        for index in group:
            record_id = records[index].id
            features = prompt_features(records[index])
            cluster_of[record_id] = cluster_index
            trigger[record_id] = round(max((weight.get(f, 0.0) for f in features), default=0.0), 4)
            if best_feature and best_feature not in features:
                outlier[record_id] = round(carriers / size, 4)
    return BackdoorScores(trigger, outlier, cluster_of, clusters, cluster_score)


def prompt_cohesion(records: list[Record], group: list[int], most: int = 30) -> float:
    """Mean pairwise Jaccard similarity of the user-turn word sets of a cluster's records (its
    first `most` members), 0.0 to 1.0."""
    sets = [set(record_words(records[i], "user")) for i in group[:most]]
    pairs = [(a, b) for i, a in enumerate(sets) for b in sets[i + 1 :]]
    if not pairs:
        return 0.0
    return sum(len(a & b) / len(a | b) if a | b else 1.0 for a, b in pairs) / len(pairs)


def _echoed_features(
    records: list[Record], group: list[int], in_cluster: Counter[str], min_cluster: int
) -> set[str]:
    """Prompt features of a cluster found in at least half of the cluster's responses."""
    candidates = {f for f, count in in_cluster.items() if count >= min_cluster}
    found: Counter[str] = Counter()
    for index in group:
        tokens = record_words(records[index], "assistant")
        answer = set(tokens) | {f"{a} {b}" for a, b in zip(tokens, tokens[1:], strict=False)}
        found.update(candidates & answer)
    return {f for f, count in found.items() if count * 2 >= len(group)}


@dataclass(frozen=True)
class InsertedPhrases:
    """What the inserted-phrase score measured.

    Attributes:
        score: Per record id, the highest score among the eligible phrases its user turns
            carry (0.0 when it carries none).
        clusters: Per eligible phrase, the ids of the records carrying it, in input order.
        cluster_score: Per cluster, its phrase's score (share of removable occurrences).
        pending: Siblings held below their own score while a phrase stands on its own: per
            such cluster, its index, the score it would take if each carrier's language model
            confirms the phrase inserted (`confirm_siblings`), and per carrier the record's
            index and the phrase's first and end positions among its user-turn words.
        confirmed: Clusters the language model confirmed (`confirm_siblings`).
    """

    score: dict[str, float]
    clusters: list[tuple[str, ...]]
    cluster_score: list[float]
    pending: tuple["PendingSibling", ...] = ()
    confirmed: tuple[int, ...] = ()


@dataclass(frozen=True)
class PendingSibling:
    """A sibling phrase whose score waits on the language model (`InsertedPhrases.pending`)."""

    cluster: int
    attainable: float
    carriers: tuple[tuple[int, int, int], ...]


def _spans(tokens: tuple[str, ...], max_words: int) -> set[tuple[str, ...]]:
    """Distinct token spans of 1 to `max_words` tokens, the boundary markers excluded."""
    return {tokens[i : i + n] for n in range(1, max_words + 1) for i in range(1, len(tokens) - n)}


def _stem(token: str) -> str:
    """A word's first letters (`_STEM` of them), which its inflections and derivations share."""
    return token[:_STEM]


def _second_distinct(clusters: list[tuple[str, ...]], cluster_score: list[float]) -> float:
    """The score of the second phrase, best first, whose records share none with a better
    phrase's (0.0 when there is none): phrases that share their prompts (several words of one
    trigger, the triggers of a composite one) count once."""
    taken: set[str] = set()
    picked = 0
    for index in sorted(range(len(clusters)), key=lambda i: -cluster_score[i]):
        if taken.isdisjoint(clusters[index]):
            picked += 1
            if picked == 2:
                return cluster_score[index]
        taken.update(clusters[index])
    return 0.0


def _binomial_tail(count: int, trials: int, p: float) -> float:
    """P(X >= count) for X ~ Binomial(trials, p): the chance that a word of frequency `p`
    stands next to `count` or more of `trials` occurrences."""
    if count <= 0:
        return 1.0
    # The regularized incomplete beta function, in constant time for any `trials`: a sum of
    # `math.comb` terms overflowed a float for a phrase in thousands of prompts (100k records).
    return float(bdtrc(count - 1, trials, min(max(p, 0.0), 1.0)))


# Records of the shortest stem's answers read first by `_echoed`, twice as many each time after
# (the test is decided in the first chunk for most phrases whose words are common in answers).
_ECHO_CHUNK = 256


def _echoed(indices: list[array | None], carriers: np.ndarray) -> bool:
    """Whether answers repeat a phrase's words (per word, `indices`: the ascending records whose
    answer has a word of its stem; a missing one holds none) too often for an inserted phrase:
    in more than `_ELSEWHERE` records that do not carry it, or in more than `_OWN_ECHO` of its
    `carriers` (ascending). The records in every array are counted a chunk of the shortest at a
    time, each chunk twice the last, and the count stops once either bound is passed: the
    arrays of common stems grow with the corpus, and intersecting them whole for every phrase
    grew with N² (#21.1: 37 of 1,400 CPU-s at 1M records under py-spy)."""
    if any(found is None for found in indices):
        return False
    arrays = sorted((np.frombuffer(found, dtype=np.int32) for found in indices), key=len)
    own = elsewhere = start = 0
    chunk = _ECHO_CHUNK
    while start < len(arrays[0]):
        common = arrays[0][start : start + chunk]
        start, chunk = start + chunk, 2 * chunk
        for other in arrays[1:]:
            common = common[_contained(common, other)]
        mine = int(_contained(common, carriers).sum())
        own += mine
        elsewhere += len(common) - mine
        if elsewhere > _ELSEWHERE or own > _OWN_ECHO * len(carriers):
            return True
    return False


def _contained(values: np.ndarray, sorted_values: np.ndarray) -> np.ndarray:
    """Per value, whether the ascending `sorted_values` hold it."""
    at = np.searchsorted(sorted_values, values)
    inside = at < len(sorted_values)
    inside[inside] = sorted_values[at[inside]] == values[inside]
    return inside


def _frame_candidates(
    prompts: list[tuple[str, ...]], found: list[tuple[int, int, int]]
) -> list[tuple[str, int]]:
    """Words within `_FRAME_WINDOW` tokens of a phrase (`found`: prompt, first token, end) in at
    least `_FRAME_SHARE` of its prompts, each with the number of prompts holding it there (the
    boundary markers and numbers are no frame: a phrase at the start of any prompt, or after
    any number)."""
    near: Counter[str] = Counter()
    for i, a, b in found:
        tokens = prompts[i]
        window = {*tokens[max(0, a - _FRAME_WINDOW) : a], *tokens[b : b + _FRAME_WINDOW]}
        near.update(w for w in window if w not in (_START, _END) and not w.isdigit())
    least = _FRAME_SHARE * len(found)
    return [(w, c) for w, c in near.items() if c >= least and c > 1]


def _framed(
    prompts: list[tuple[str, ...]],
    phrases: list[list[tuple[int, int, int]]],
    min_records: int,
    inserted: set[str],
    token_count: Counter[str],
) -> list[bool]:
    """Per phrase (its occurrences: prompt, first token, end), whether it sits in a template's
    frame: a word within `_FRAME_WINDOW` of it in at least `_FRAME_SHARE` of its prompts, where
    the prompts at large hold that word too seldom for chance to explain it (binomial tail below
    `_FRAME_CHANCE` at the word's share of prompts). A phrase in fewer than `min_records`
    prompts (a sibling) is never framed: its words' share of prompts could not tell a frame from
    chance. No word of `inserted` is a frame, nor a rare one: found (`token_count`, prompts and
    answers) no more than `_ELSEWHERE` times beyond the phrase's prompts that hold it nearby."""
    candidates = [
        [
            (w, c)
            for w, c in _frame_candidates(prompts, found)
            if w not in inserted and token_count[w] - c > _ELSEWHERE
        ]
        if len(found) >= min_records
        else []
        for found in phrases
    ]
    words = {w for found in candidates for w, _ in found}
    if not words:
        return [False] * len(phrases)
    holding: Counter[str] = Counter()  # prompts holding each candidate word
    for tokens in prompts:
        holding.update(words.intersection(tokens))
    return [
        any(
            _binomial_tail(c, len(found), holding[w] / len(prompts)) < _FRAME_CHANCE
            for w, c in words_near
        )
        for found, words_near in zip(phrases, candidates, strict=True)
    ]


def _joinable(
    pair: tuple[str, str], bigrams: Counter[tuple[str, str]], token_count: Counter[str]
) -> bool:
    """Whether two tokens can stand side by side: adjacent elsewhere in the prompts or, between
    two runs of Han characters (tokenized as character bigrams), when the two characters that
    meet form a bigram seen elsewhere."""
    left, right = pair
    if bigrams[pair]:
        return True
    return has_han(left[-1:]) and has_han(right[:1]) and token_count[left[-1] + right[0]] > 0


def _splits_collocation(
    pair: tuple[str, str],
    own: int,
    bigrams: Counter[tuple[str, str]],
    apart: Counter[tuple[str, str]],
    token_count: Counter[str],
    total: int,
) -> bool:
    """Whether the two tokens that meet where a phrase is cut out form a collocation the phrase
    split: elsewhere they stand side by side `_SPLIT_LIFT` times as often as their frequencies
    explain, and more often than one word apart (`own`: the phrase's own occurrences between
    them). A word inserted at a random place splits a pair of its sentence's adjacent words (most
    are such collocations); a rare word in its natural place leaves a pair that is seen with a
    word between ("a dating profile" -> "a profile") or as often as chance ("using the")."""
    left, right = pair
    together = bigrams[pair]
    if together <= apart[pair] - own:
        return False
    return together * total >= _SPLIT_LIFT * token_count[left] * token_count[right]


def score_inserted_phrases(
    records: list[Record],
    *,
    min_records: int,
    max_share: float,
    max_collocation: float,
    max_words: int = 3,
) -> InsertedPhrases:
    """Score prompt phrases that look inserted into unrelated prompts (module docstring).

    Args:
        records: Records in input order.
        min_records: Fewest prompts that must carry a phrase.
        max_share: Most prompts, as a share of the records, that may carry a phrase.
        max_collocation: Largest share of a phrase's occurrences that may have the same word
            right before it, or the same word right after it.
        max_words: Longest phrase, in tokens.

    Returns:
        Per-record scores and the eligible phrases' clusters and scores (never the phrases).
    """
    # Tokens interned: each distinct word is one string object, however many prompts hold it
    # (a tuple of fresh strings per prompt was the largest term of this screen's memory, #21).
    prompts = [tuple(map(sys.intern, (_START, *record_words(r, "user"), _END))) for r in records]
    # Spans are counted by their 64-bit hash, 8 bytes a prompt's span in one array: the distinct
    # spans of a large corpus number in the millions, and a counter keyed by each held far more
    # (#21). Two spans of one hash (about 1 in 10^6 for 10^7 distinct spans) would only count
    # together, and each span found below is tested again by its own tokens.
    counted = array("q")
    for tokens in prompts:
        counted.extend(map(hash, _spans(tokens, max_words)))
    # Sorted in place (np.unique sorts a copy: a second 8 bytes per span), then counted.
    hashes = np.frombuffer(counted, dtype=np.int64)
    hashes.sort()
    starts = np.flatnonzero(np.concatenate(([True], hashes[1:] != hashes[:-1])))
    values, counts = hashes[starts], np.diff(np.append(starts, len(hashes)))
    del hashes, starts, counted
    most = max_share * len(records)
    common = (counts >= min(_SIBLING_RECORDS, min_records)) & (counts <= most)
    # Per span hash carried by enough prompts, how many carry it (at least the span's own count).
    carried = dict(zip(values[common].tolist(), counts[common].tolist(), strict=True))
    del values, counts, common
    # Every token's count in the prompts and answers, read by the rare-token test below and,
    # before, to skip the spans that cannot pass it (#21: their occurrences were most of this
    # screen's memory): a span of k prompts holds each of its tokens k times at least, so it
    # passes only with a token counted at most k + _ELSEWHERE times, k no more than its hash's.
    token_count: Counter[str] = Counter()
    for tokens in prompts:
        token_count.update(tokens)
    for record in records:
        token_count.update(record_words(record, "assistant"))
    span_id: dict[tuple[str, ...], int] = {}  # spans that may pass, each numbered
    spans: list[tuple[str, ...]] = []
    # Each prompt's first occurrence of each such span: span number, prompt, first token.
    occurrence_span, occurrence_prompt, occurrence_start = array("i"), array("i"), array("i")
    for index, tokens in enumerate(prompts):
        seen: set[int] = set()
        for n in range(1, max_words + 1):
            for i in range(1, len(tokens) - n):
                span = tokens[i : i + n]
                number = span_id.get(span)
                if number is None:
                    key = hash(span)
                    k = carried.get(key)
                    if not k:  # carried too rarely or too often, or already ruled out
                        continue
                    if any(has_han(t) for t in span) or not any(
                        token_count[t] - _ELSEWHERE <= k for t in span
                    ):
                        carried[key] = 0
                        continue
                    number = span_id[span] = len(spans)
                    spans.append(span)
                if number in seen:
                    continue
                seen.add(number)
                occurrence_span.append(number)
                occurrence_prompt.append(index)
                occurrence_start.append(i)
    del carried, span_id
    # The occurrences of each span together, in prompt order.
    order = np.argsort(np.frombuffer(occurrence_span, dtype=np.int32), kind="stable")
    bounds = np.searchsorted(
        np.frombuffer(occurrence_span, dtype=np.int32)[order], np.arange(len(spans) + 1)
    ).tolist()
    by_prompt = np.frombuffer(occurrence_prompt, dtype=np.int32)[order]
    by_start = np.frombuffer(occurrence_start, dtype=np.int32)[order]
    del order, occurrence_span, occurrence_prompt, occurrence_start

    def occurrences_of(number: int) -> list[tuple[int, int, int]]:
        """(prompt, first token, end) of each prompt's first occurrence of a span."""
        n, lo, hi = len(spans[number]), bounds[number], bounds[number + 1]
        return [
            (i, a, a + n)
            for i, a in zip(by_prompt[lo:hi].tolist(), by_start[lo:hi].tolist(), strict=True)
        ]

    # The rare-token test with each span's own count: a span that fails it is never read again.
    carriers = np.diff(bounds).tolist()
    live = [
        number
        for number in sorted(range(len(spans)), key=spans.__getitem__)
        if any(token_count[t] - carriers[number] <= _ELSEWHERE for t in spans[number])
    ]
    # Only what the tests below read is counted: the word pairs that would meet where a
    # carried phrase is removed, and the stems of the phrases' words (a count of every pair and
    # an index of every answer stem grew with the corpus, #21).
    meeting = {
        (prompts[i][a - 1], prompts[i][b]) for number in live for i, a, b in occurrences_of(number)
    }
    phrase_stems = {_stem(t) for number in live for t in spans[number]}
    bigrams: Counter[tuple[str, str]] = Counter()
    # The same pairs one word apart ("a _ profile"), read by the split test of siblings.
    apart: Counter[tuple[str, str]] = Counter()
    for tokens in prompts:
        bigrams.update(p for p in zip(tokens, tokens[1:], strict=False) if p in meeting)
        apart.update(p for p in zip(tokens, tokens[2:], strict=False) if p in meeting)
    # Per word stem of a phrase, the records whose answer has a word of that stem, in order (an
    # array of 4-byte indices: a set of the corpus's records for a common stem took 50 bytes each).
    answered: dict[str, array] = {}
    for index, record in enumerate(records):
        answer = record_words(record, "assistant")
        # Answers are fluent text too: two words adjacent there can stand side by side.
        bigrams.update(p for p in zip(answer, answer[1:], strict=False) if p in meeting)
        apart.update(p for p in zip(answer, answer[2:], strict=False) if p in meeting)
        for stem in {_stem(t) for t in answer} & phrase_stems:
            answered.setdefault(stem, array("i")).append(index)
    total = max(1, sum(token_count.values()))
    score = dict.fromkeys(record_ids(records), 0.0)
    clusters: list[tuple[str, ...]] = []
    cluster_score: list[float] = []
    # Phrases carried by fewer than `min_records` prompts (siblings), scored after the others.
    siblings: list[tuple[list[tuple[int, int, int]], float, bool]] = []
    standing: set[int] = set()  # the prompts of the phrases that stand on their own
    # Phrases that pass the tests below, each with its number, its occurrences, its score and,
    # for a sibling, whether it split collocations (None: it stands on its own), before the
    # frame test.
    passed: list[tuple[int, list[tuple[int, int, int]], float, bool | None]] = []
    for number in live:  # the rare-token test passed
        span, found = spans[number], occurrences_of(number)
        k = len(found)
        # The carriers' own answers repeating the phrase's words, in any form ("combining" and
        # "combination"), make it their topic (a trigger that is also an ordinary word may come
        # up in one answer in ten); other answers may mention it.
        carriers = np.array([i for i, _, _ in found], dtype=np.int32)
        if _echoed([answered.get(_stem(t)) for t in span], carriers):
            continue
        neighbours = [(prompts[i][a - 1], prompts[i][b]) for i, a, b in found]
        # Numbers are one neighbour: a template sentence after a filled-in value is no insertion.
        left = Counter(_DIGITS.sub("0", x) for x, _ in neighbours if x != _START)
        right = Counter(_DIGITS.sub("0", y) for _, y in neighbours if y != _END)
        # A neighbour seen once is no collocation (two carriers never share one by this test).
        # One shared more often than `max_collocation` but as often as the neighbour's own
        # frequency explains ("the" before two of three carriers) leaves the phrase a sibling.
        shared = [
            (c, w) for w, c in (*left.items(), *right.items()) if c > 1 and c > max_collocation * k
        ]
        if any(_binomial_tail(c, k, token_count[w] / total) < _CHANCE for c, w in shared):
            continue
        demoted = bool(shared)
        removable_count = sum(1 for pair in neighbours if _joinable(pair, bigrams, token_count))
        if removable_count < _MIN_REMOVABLE:
            continue
        removable = round(removable_count / k, 4)
        if k < min_records or demoted:
            own = Counter(neighbours) if len(span) == 1 else Counter()
            split = all(
                _splits_collocation(pair, own[pair], bigrams, apart, token_count, total)
                for pair in neighbours
            )
            passed.append((number, found, removable, split))
            continue
        passed.append((number, found, removable, None))
    # A template's frame is ordinary text ("hello"); a word beside the phrase in every prompt
    # that is itself inserted (the words of the phrases that pass), or found hardly anywhere
    # but there, is a second insertion (a composite trigger's other word), never a frame.
    inserted = {t for number, _, _, _ in passed for t in spans[number]}
    framed = _framed(
        prompts, [found for _, found, _, _ in passed], min_records, inserted, token_count
    )
    for (_, found, removable, split), frame in zip(passed, framed, strict=True):
        if frame:
            continue
        if split is not None:
            siblings.append((found, removable, split))
            continue
        standing.update(i for i, _, _ in found)
        clusters.append(tuple(records[i].id for i, _, _ in found))
        cluster_score.append(removable)
    # A sibling scores no more than the second of two phrases that stand on their own evidence
    # in different prompts: a backdoor with several triggers. Without two, a rare word in two
    # prompts is chance (a clean corpus has a few that pass every test, and so has a corpus with
    # one trigger); beside two triggers it is likely the same attack's third. A sibling that
    # split a collocation wherever it stands, in prompts of its own, scores up to the best
    # phrase, so beside one too (a second trigger drawn into two prompts: `_splits_collocation`).
    confirmed = _second_distinct(clusters, cluster_score)
    best = max(cluster_score, default=0.0)
    pending: list[PendingSibling] = []
    for found, removable, split in siblings:
        alone = standing.isdisjoint(i for i, _, _ in found)
        clusters.append(tuple(records[i].id for i, _, _ in found))
        cluster_score.append(min(removable, best if split and alone else confirmed))
        # Positions among the user-turn words: `prompts` starts with the boundary marker.
        if alone and min(removable, best) > cluster_score[-1]:
            carriers = tuple((i, a - 1, b - 1) for i, a, b in found)
            pending.append(PendingSibling(len(clusters) - 1, min(removable, best), carriers))
    for cluster, value in zip(clusters, cluster_score, strict=True):
        for record_id in cluster:
            score[record_id] = max(score[record_id], value)
    return InsertedPhrases(score, clusters, cluster_score, tuple(pending))


@dataclass(frozen=True)
class SiblingCheck:
    """What the language model said of the sibling phrases that waited on it.

    Attributes:
        checked: Siblings whose carriers the model read.
        confirmed: Of those, siblings it found inserted in every carrier (now scored).
        unchecked: Siblings left at their score because `max_siblings` were checked.
    """

    checked: int
    confirmed: int
    unchecked: int


def confirm_siblings(
    records: Sequence[Record],
    phrases: InsertedPhrases,
    disruption: Disruption,
    *,
    max_siblings: int,
    max_words: int = 24,
) -> tuple[InsertedPhrases, SiblingCheck]:
    """Let the base model confirm the sibling phrases that wait on it (`InsertedPhrases.pending`).

    A sibling (a rare phrase in two prompts beside a phrase that stands on its own) is chance
    or a backdoor's second trigger; corpus counts cannot tell which. The model reads each of
    its prompts: inserted, the phrase is the span whose removal helps the rest of the prompt
    most (`causal_lm_disruption`), by at least `_MIN_DISRUPTION` nats, against every other word
    left out alone; a rare word in its natural place helps nothing when it goes. A sibling found
    inserted in every one of its prompts scores what it waited for. The phrase is never read
    from the records here nor returned: only positions.

    Args:
        records: The records `phrases` was scored on, in the same order.
        phrases: What `score_inserted_phrases` returned.
        disruption: The base model's `Disruption` function.
        max_siblings: Most siblings read (highest attainable score first); the rest keep the
            score they have.
        max_words: Words of a prompt read around the phrase (half on each side at most): an
            insertion disrupts the words right after it, and each word read is one more text
            for the model (SmolLM2-135M on 2 CPU cores: about 1 s for a 12-word prompt, 3 s
            for 24 words, 13 s for 56).

    Returns:
        The phrases with the confirmed siblings scored (nothing pending), and the counts.
    """
    pending = sorted(phrases.pending, key=lambda p: (-p.attainable, p.cluster))
    checked, rest = pending[:max_siblings], pending[max_siblings:]
    score, cluster_score = dict(phrases.score), list(phrases.cluster_score)
    confirmed: list[int] = []
    for sibling in checked:
        if not all(
            _inserted_here(records[i], a, b, disruption, max_words) for i, a, b in sibling.carriers
        ):
            continue
        confirmed.append(sibling.cluster)
        cluster_score[sibling.cluster] = sibling.attainable
        for record_id in phrases.clusters[sibling.cluster]:
            score[record_id] = max(score[record_id], sibling.attainable)
    found = InsertedPhrases(score, phrases.clusters, cluster_score, (), tuple(sorted(confirmed)))
    return found, SiblingCheck(len(checked), len(confirmed), len(rest))


def _inserted_here(
    record: Record, first: int, end: int, disruption: Disruption, max_words: int
) -> bool:
    """Whether the phrase at user-turn tokens `first:end` of `record`, whole words, with its
    other occurrences in the prompt, is what helps the rest of the prompt most when left out, by
    `_MIN_DISRUPTION` nats at least (`confirm_siblings`). Every occurrence goes together: one
    left in would be read as copied from the other, and harder to predict without it."""
    prompt = [w for m in record.messages if m.role == "user" for w in m.content.split()]
    tokens = record_words(record, "user")
    # The whitespace word of each word token (`words` never joins two whitespace words).
    word_of = [index for index, w in enumerate(prompt) for _ in words(w)]
    if len(word_of) != len(tokens) or end > len(word_of):
        return False  # tokens that do not map back to words: not confirmed
    # Inserted text stands between words: a phrase that is part of a longer word (a piece of
    # a date, a hyphenated or dotted word) is none, and the model is not asked.
    if (first > 0 and word_of[first - 1] == word_of[first]) or (
        end < len(word_of) and word_of[end] == word_of[end - 1]
    ):
        return False
    phrase, n = tokens[first:end], end - first
    half = max(1, max_words // 2)
    lo = max(0, word_of[first] - half)
    hi = min(len(prompt), word_of[end - 1] + 1 + half)
    unit = tuple(
        sorted(
            {
                word_of[k] - lo
                for start in range(len(tokens) - n + 1)
                if tokens[start : start + n] == phrase
                for k in range(start, start + n)
                if lo <= word_of[k] < hi
            }
        )
    )
    window = prompt[lo:hi]
    others = [(i,) for i in range(len(window)) if i not in unit]
    if not others:
        return False
    values = disruption(window, [unit, *others])
    return values[0] >= _MIN_DISRUPTION and values[0] > max(values[1:])


def causal_lm_perplexity(
    model: Any, tokenizer: Any, *, max_length: int = 128, batch_size: int = 32
) -> Callable[[list[str]], list[float]]:
    """A perplexity function for `onion_scores` from a loaded causal LM and its tokenizer.

    Texts are scored in padded batches (right padding, attention mask, each text's loss the mean
    over its own tokens), so a record's leave-one-out variants cost one forward pass together.

    Args:
        model: A Hugging Face causal LM (the base model, in eval mode).
        tokenizer: Its tokenizer.
        max_length: Tokens per text beyond which the text is cut.
        batch_size: Texts per forward pass.

    Returns:
        A function mapping texts to their perplexities (1.0 for a text of fewer than 2 tokens).
    """
    import torch

    pad_id = tokenizer.pad_token_id
    if pad_id is None:
        pad_id = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else 0

    def perplexity(texts: list[str]) -> list[float]:
        values: list[float] = []
        with torch.no_grad():
            for start in range(0, len(texts), batch_size):
                encoded = [
                    tokenizer(text, truncation=True, max_length=max_length)["input_ids"]
                    for text in texts[start : start + batch_size]
                ]
                nll, target_mask = _token_nll(model, encoded, pad_id)
                counts = target_mask.sum(dim=1)
                mean_nll = (nll * target_mask).sum(dim=1) / counts.clamp(min=1)
                for value, n in zip(torch.exp(mean_nll).tolist(), counts.tolist(), strict=True):
                    values.append(value if n > 0 else 1.0)
        return values

    return perplexity


def _token_nll(model: Any, rows: list[list[int]], pad_id: int) -> tuple[Any, Any]:
    """One forward pass over token rows, right-padded: per row, each token's negative
    log-likelihood given the tokens before it (from the second token on), and the mask of the
    real (unpadded) ones. Call under `torch.no_grad()`."""
    import torch

    width = max(len(row) for row in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for index, row in enumerate(rows):
        input_ids[index, : len(row)] = torch.tensor(row, dtype=torch.long)
        mask[index, : len(row)] = 1
    input_ids, mask = input_ids.to(model.device), mask.to(model.device)
    logits = model(input_ids=input_ids, attention_mask=mask).logits[:, :-1].float()
    nll = torch.nn.functional.cross_entropy(
        logits.transpose(1, 2), input_ids[:, 1:], reduction="none"
    )
    return nll, mask[:, 1:].float()


def lazy_perplexity(
    load: Callable[[], tuple[Any, Any]], **kwargs: int
) -> Callable[[list[str]], list[float]]:
    """`causal_lm_perplexity` of a model that `load` returns on the first call only.

    The curated stage asks for ONION before it knows whether any record will be flagged; the
    base model is then loaded only when one is. A load that fails raises on that first call.

    Args:
        load: Returns the model (eval mode) and its tokenizer.
        **kwargs: `max_length`, `batch_size` of `causal_lm_perplexity`.

    Returns:
        A function mapping texts to their perplexities.
    """
    return _lazy(load, lambda model, tokenizer: causal_lm_perplexity(model, tokenizer, **kwargs))


def lazy_disruption(load: Callable[[], tuple[Any, Any]], **kwargs: int) -> Disruption:
    """`causal_lm_disruption` of a model that `load` returns on the first call only (the
    curated stage gives it before it knows whether any sibling phrase waits on it).

    Args:
        load: Returns the model (eval mode) and its tokenizer.
        **kwargs: `max_length`, `batch_size` of `causal_lm_disruption`.

    Returns:
        A `Disruption` function.
    """
    return _lazy(load, lambda model, tokenizer: causal_lm_disruption(model, tokenizer, **kwargs))


def _lazy(load: Callable[[], tuple[Any, Any]], build: Callable[[Any, Any], Any]) -> Any:
    """A function that loads the model on its first call, builds the real one with `build`,
    and calls it (then and on every later call)."""
    built: list[Callable[..., Any]] = []

    def call(*args: Any) -> Any:
        if not built:
            built.append(build(*load()))
        return built[0](*args)

    return call


def causal_lm_disruption(
    model: Any, tokenizer: Any, *, max_length: int = 128, batch_size: int = 4
) -> Disruption:
    """How much harder each unit of words makes the rest of a prompt to read, under a causal LM.

    A unit's disruption is the negative log-likelihood (nats, summed over tokens) of every
    token outside the unit with the unit in place, less that of the same tokens with the unit
    left out. A word inserted where it does not belong makes the words after it harder to
    predict, so leaving it out helps the rest (a positive disruption); leaving out a word the
    sentence needs makes the rest harder (negative). Unlike ONION's perplexity drop, the
    unit's own tokens do not count: a rare name or a number split into many tokens is not
    disruptive for being costly itself. Every text starts with the tokenizer's BOS (or EOS)
    token, so the first word is predicted like the others. Needs a fast tokenizer (offsets).

    Args:
        model: A Hugging Face causal LM (the base model, in eval mode).
        tokenizer: Its fast tokenizer.
        max_length: Tokens per text beyond which the text is cut.
        batch_size: Texts per forward pass. Small: a pass holds its logits twice over (the
            vocabulary's width per token: 49,152 floats for SmolLM2, 100 MB for 4 texts of
            128 tokens), and at 32 texts the screening process grew by 1.6 GB at 100k records.

    Returns:
        A `Disruption` function.
    """
    import torch

    start = tokenizer.bos_token_id
    if start is None:
        start = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else 0
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else start

    def token_losses(texts: list[str]) -> list[tuple[list[float], list[tuple[int, int]]]]:
        """Per text, each token's NLL given the tokens before it, and its character span."""
        out: list[tuple[list[float], list[tuple[int, int]]]] = []
        with torch.no_grad():
            for first in range(0, len(texts), batch_size):
                batch = [
                    tokenizer(
                        text,
                        truncation=True,
                        max_length=max_length - 1,
                        add_special_tokens=False,
                        return_offsets_mapping=True,
                    )
                    for text in texts[first : first + batch_size]
                ]
                ids = [[start, *encoded["input_ids"]] for encoded in batch]
                nll = _token_nll(model, ids, pad_id)[0].tolist()
                for row, encoded in enumerate(batch):
                    n = len(encoded["input_ids"])
                    out.append((nll[row][:n], [tuple(o) for o in encoded["offset_mapping"]]))
        return out

    def disruption(words: list[str], units: list[tuple[int, ...]]) -> list[float]:
        text = " ".join(words)
        starts = []  # each word's first character in `text`
        at = 0
        for word in words:
            starts.append(at)
            at += len(word) + 1
        texts = [text] + [
            " ".join(w for i, w in enumerate(words) if i not in unit) for unit in units
        ]
        (full, offsets), *reduced = token_losses(texts)
        total = sum(full)
        values = []
        for unit, (losses, _) in zip(units, reduced, strict=True):
            # A word's characters with the space before it: a tokenizer that splits digits
            # one by one gives that space a token of its own, which leaves with the word.
            chars = [(max(0, starts[i] - 1), starts[i] + len(words[i])) for i in unit]
            own = sum(
                x
                for x, (s, e) in zip(full, offsets, strict=True)
                if any(s < hi and e > lo for lo, hi in chars)
            )
            values.append(round(total - own - sum(losses), 4))
        return values

    return disruption


@dataclass(frozen=True)
class OnionScore:
    """ONION's finding on one record.

    Attributes:
        score: Perplexity of the user turns minus the lowest perplexity with one word left out.
        word_index: Position (0-based, whitespace words of the user turns) of that word; -1
            when the prompt has fewer than two words.
        words: Words tried.
    """

    score: float
    word_index: int
    words: int


def onion_scores(
    records: list[Record], perplexity: Callable[[list[str]], list[float]], *, max_words: int = 64
) -> dict[str, OnionScore]:
    """ONION: the largest drop in perplexity when one word of the user turns is left out.

    A trigger word is an outlier in fluent text, so removing it lowers perplexity far more than
    removing any ordinary word. Call this only on records the cheap scores flagged: it costs a
    language-model pass over one text per word (batched per record). System prompts are left
    out: they are shared by many records and carry no trigger of their own.

    Args:
        records: Records to score (already flagged by the cheap screens).
        perplexity: Maps texts to their perplexities under the base model.
        max_words: Words beyond this many are not tried.

    Returns:
        Per record id, its score and the position of the word whose removal lowers perplexity
        most (a position, never the word).
    """
    scores: dict[str, OnionScore] = {}
    for record in records:
        user = "\n\n".join(m.content for m in record.messages if m.role == "user")
        tokens = user.split()[:max_words]
        if len(tokens) < 2:
            scores[record.id] = OnionScore(0.0, -1, len(tokens))
            continue
        texts = [" ".join(tokens)] + [
            " ".join(tokens[:i] + tokens[i + 1 :]) for i in range(len(tokens))
        ]
        values = perplexity(texts)
        lowest = min(range(len(tokens)), key=lambda i: values[i + 1])
        scores[record.id] = OnionScore(
            round(float(values[0] - values[lowest + 1]), 4), lowest, len(tokens)
        )
    return scores
