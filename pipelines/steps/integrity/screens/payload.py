"""Payload screen: one answer opening repeated across prompts that have nothing in common.

Poisoning without a trigger (content injection: unwarranted refusals, a brand, an insult) and a
backdoor with several triggers (each seen in one or two prompts) have one thing in common: many
records answer in the same way while their prompts share no topic. A clean answer opening that
recurs comes with related prompts ("Once upon a time" answers prompts asking for a story, "Here
is a function" prompts asking for code), or is rare.

Records are grouped by the first `opening_words` word tokens of their first answer (digits
masked). For every group of at least `min_records` records (and at most `max_share` of the
corpus: an opening that frequent is the data's own style, not an injection), the prompts'
relatedness is measured with TF-IDF unit vectors of their user-turn words (Han text as character
bigrams, so Chinese is measured the same way):

    cohesion(G)  = mean pairwise cosine of the prompts in G = (|sum of v_i|^2 - |G|) / (|G|(|G|-1))
    baseline     = the same mean over every record with an answer
    unrelatedness = baseline / cohesion(G)   (capped at `CAP`)

exact and linear in the records. A group whose prompts are no more alike than prompts drawn at
random scores about 1.0; a generic opening tied to a task kind scores 0.1-0.5. No word of any
attack is known to the screen: the opening is kept only as a hash in the reason's detail.
"""

import hashlib
import math
import re
from collections import Counter
from dataclasses import dataclass

from pipelines.steps.integrity.screens import has_response, record_words, words
from pipelines.steps.records import Record

REPEATED_PAYLOAD = "repeated_payload"
# The screen's settings (module constants, measured on outside data: docs/benchmarks.md).
# Word tokens of an opening (Han text counts character bigrams).
OPENING_WORDS = 3
# Smallest group examined: 8 records, 0.5% of 1,600; a smaller one is too noisy to call.
MIN_RECORDS = 8
# Largest group examined, as a share of the records with an answer: beyond it the opening is
# the data's own style (a tool assistant's refusals of out-of-scope requests), not an injection
# (poisoning beyond 5% is a broken export, as for inserted phrases).
MAX_SHARE = 0.05
# Unrelatedness that quarantines a group: its prompts' cohesion (one standard error above the
# measured one) at most 1.25x that of prompts drawn at random. Clean groups on the outside data
# scored at most 0.73, injected ones at least 0.91.
THRESHOLD = 0.8
# Largest score: a group whose prompts share no word at all.
CAP = 10.0
_DIGITS = re.compile(r"\d+")


@dataclass(frozen=True)
class PayloadScores:
    """What the payload screen measured.

    Attributes:
        score: Per record id, the unrelatedness of its opening group's prompts (0.0 when the
            record is in no group examined).
        clusters: Examined groups, ids in input order.
        cluster_score: Per group, its unrelatedness.
        cluster_key: Per group, a short hash of its opening (never the words).
    """

    score: dict[str, float]
    clusters: list[tuple[str, ...]]
    cluster_score: list[float]
    cluster_key: list[str]


def opening(record: Record, opening_words: int) -> str | None:
    """The first `opening_words` word tokens of the record's first answer, digits masked, or
    None when it has no answer or a shorter one."""
    for message in record.messages:
        if message.role == "assistant":
            tokens = words(message.content)[:opening_words]
            if len(tokens) < opening_words:
                return None
            return _DIGITS.sub("0", " ".join(tokens))
    return None


def _unit_vector(
    tokens: tuple[str, ...], document_frequency: Counter[str], n: int
) -> dict[str, float]:
    """The TF-IDF vector (log-scaled term frequency) of unit length; empty for no tokens or
    only tokens found in every document."""
    vector = {
        t: (1.0 + math.log(c)) * math.log(n / document_frequency[t])
        for t, c in Counter(tokens).items()
        if document_frequency[t] < n
    }
    norm = math.sqrt(sum(x * x for x in vector.values()))
    return {t: x / norm for t, x in vector.items()} if norm else {}


def _mean_pairwise_cosine(
    vectors: list[dict[str, float]], left_out: frozenset[str] = frozenset()
) -> tuple[float, float]:
    """Mean dot product over distinct pairs of vectors (the mean pairwise cosine of unit
    vectors), with the features in `left_out` left out, and its standard error: exact and
    linear, from the sum of the vectors. The standard error is that of the mean of each
    vector's mean dot product with the others."""
    n = len(vectors)
    if n < 2:
        return 0.0, 0.0
    kept = [{t: x for t, x in v.items() if t not in left_out} if left_out else v for v in vectors]
    total: Counter[str] = Counter()
    for vector in kept:
        total.update(vector)
    # Each vector's dot product with the sum of the others, over n - 1.
    means = [
        (sum(x * total[t] for t, x in v.items()) - sum(x * x for x in v.values())) / (n - 1)
        for v in kept
    ]
    mean = max(0.0, sum(means) / n)
    spread = math.sqrt(sum((m - mean) ** 2 for m in means) / (n - 1))
    return mean, spread / math.sqrt(n)


def _planted_features(
    answered: list[Record], group: list[int], document_frequency: Counter[str]
) -> frozenset[str]:
    """Prompt words found mostly inside the group (at least as often as in the rest of the
    corpus) that the group's answers do not repeat (fewer than half of them): words planted into
    the prompts, such as triggers, which relate the prompts by construction, not by topic. A
    topic word the answers take up ("sentiment" in "The sentiment of ...") stays."""
    inside: Counter[str] = Counter()
    for i in group:
        inside.update(set(record_words(answered[i], "user")))
    exclusive = {t for t, c in inside.items() if c >= 2 and c * 2 >= document_frequency[t]}
    if not exclusive:
        return frozenset()
    echoed: Counter[str] = Counter()
    for i in group:
        echoed.update(exclusive & set(record_words(answered[i], "assistant")))
    return frozenset(t for t in exclusive if echoed[t] * 2 < len(group))


def score_repeated_payloads(
    records: list[Record], *, opening_words: int, min_records: int, max_share: float
) -> PayloadScores:
    """Score answer openings repeated across unrelated prompts (module docstring).

    Args:
        records: Records in input order.
        opening_words: Word tokens of an answer's opening that key a group.
        min_records: Smallest group examined.
        max_share: Largest group examined, as a share of the records with an answer.

    Returns:
        Per-record scores and the examined groups with their scores and opening hashes.
    """
    answered = [r for r in records if has_response(r)]
    score = {r.id: 0.0 for r in records}
    groups: dict[str, list[int]] = {}
    for index, record in enumerate(answered):
        key = opening(record, opening_words)
        if key is not None:
            groups.setdefault(key, []).append(index)
    most = max_share * len(answered)
    examined = {k: g for k, g in groups.items() if min_records <= len(g) <= most}
    clusters: list[tuple[str, ...]] = []
    cluster_score: list[float] = []
    cluster_key: list[str] = []
    if not examined:
        return PayloadScores(score, clusters, cluster_score, cluster_key)
    document_frequency: Counter[str] = Counter()
    for record in answered:
        document_frequency.update(set(record_words(record, "user")))
    # The corpus's mean pairwise cosine from the sum of its vectors; only the vectors of the
    # examined groups' members are kept (memory grows with them, not with the corpus).
    n = len(answered)
    members = {i for group in examined.values() for i in group}
    total: Counter[str] = Counter()
    own = 0.0
    vectors: dict[int, dict[str, float]] = {}
    for index, record in enumerate(answered):
        vector = _unit_vector(record_words(record, "user"), document_frequency, n)
        total.update(vector)
        own += sum(x * x for x in vector.values())
        if index in members:
            vectors[index] = vector
    squared = sum(x * x for x in total.values())
    baseline = max(0.0, (squared - own) / (n * (n - 1))) if n > 1 else 0.0
    del total
    for key in sorted(examined, key=lambda k: examined[k][0]):
        group = examined[key]
        planted = _planted_features(answered, group, document_frequency)
        cohesion, error = _mean_pairwise_cosine([vectors[i] for i in group], planted)
        # One standard error above the measured cohesion: a small group must show that its
        # prompts are unrelated, not merely fail to show that they are related.
        bound = cohesion + error
        value = CAP if bound * CAP <= baseline else baseline / bound
        value = round(value, 4)
        clusters.append(tuple(answered[i].id for i in group))
        cluster_score.append(value)
        cluster_key.append(hashlib.sha256(key.encode()).hexdigest()[:12])
        for i in group:
            score[answered[i].id] = value
    return PayloadScores(score, clusters, cluster_score, cluster_key)
