"""Payload screen: one answer segment repeated across prompts that have nothing in common.

Poisoning without a trigger (content injection: unwarranted refusals, a brand, an insult) and a
backdoor with several triggers (each seen in one or two prompts) have one thing in common: many
records answer with the same words while their prompts share no topic. The repeated words may
open the answer, close it or stand anywhere in it. A clean segment that recurs comes with
related prompts ("Once upon a time" answers prompts asking for a story, "If you have any other
questions" answers a user's thanks), or is rare.

Records are grouped by three kinds of answer segment (digits masked; Han text as character
bigrams, as everywhere in the screens), in every assistant turn:

- the opening: the first `opening_words` word tokens of the first answer;
- every sentence of at least `opening_words` word tokens, whole (a short payload sentence
  appended to varied answers);
- word shingles of `segment_words` tokens anywhere in an answer, winnowed (of each window of
  `WINDOW` consecutive shingles the one with the smallest hash is kept), so that any shared
  run of `segment_words + WINDOW - 1` tokens or more gives every record that carries it a
  shared key: a payload whose opening (or ending) is varied from record to record.

Groups with the same members are one group. For every group of at least `min_records` records
(and at most `max_share` of the corpus: a segment that frequent is the data's own style, not an
injection), the prompts' relatedness is measured with TF-IDF unit vectors of their user-turn
words. A segment's prompt is the user turns of the exchange whose answer carries it (those
since the previous answer; a record's last exchange also takes any user turn after its last
answer), not the whole conversation: a stock sentence in the third answer of a long
conversation answers the third question, and three unrelated questions beside it would make
any group of long conversations look unrelated. A record with one answer is one exchange.
Document frequencies and the baseline count exchanges. A group whose members share segments in
several exchanges (an alike first exchange, then a payload) is judged on each way its segments
pick the exchanges and scores the highest: related questions in one exchange do not vouch for
a segment repeated after unrelated ones.

    cohesion(G)  = mean pairwise cosine of the prompts in G = (|sum of v_i|^2 - |G|) / (|G|(|G|-1))
    baseline     = the same mean over every exchange
    unrelatedness = baseline / cohesion(G)   (capped at `CAP`)

exact and linear in the records. A group whose prompts are no more alike than prompts drawn at
random scores about 1.0; a generic segment tied to a task kind or a turn of conversation scores
0.05-0.5. A record's score is the highest of its groups'. Keys are 64-bit hashes counted in
arrays (memory of about 16 bytes per key, not a dictionary of strings); only a flagged
group's segment is hashed for the reason's detail. No word of any attack is known to the
screen: the segment is kept only as a hash in the reason's detail.
"""

import hashlib
import math
import re
from array import array
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from pipelines.steps.integrity.packed import record_ids, subset
from pipelines.steps.integrity.screens import has_response, record_words, words
from pipelines.steps.records import Record

REPEATED_PAYLOAD = "repeated_payload"
# The screen's settings (module constants, measured on outside data: docs/benchmarks.md).
# Word tokens of an opening, and the fewest of a sentence keyed whole (Han text counts
# character bigrams).
OPENING_WORDS = 3
# Word tokens of a shingle. Shorter shingles are common phrases of the language ("it is
# important to", "a wide range of"): on the outside clean data 4-word shingles made groups of
# unrelated prompts in every English set, 6-word ones an AI disclaimer in alpaca_zh; 8 none.
SEGMENT_WORDS = 8
# Winnowing window: of each run of WINDOW consecutive shingles the one with the smallest hash is
# a key, about 2 / (WINDOW + 1) of the shingles; a shared run of SEGMENT_WORDS + WINDOW - 1 = 11
# tokens or more always yields a shared key.
WINDOW = 4
# Smallest group examined: 8 records, 0.5% of 1,600; a smaller one is too noisy to call.
MIN_RECORDS = 8
# Largest group examined, as a share of the records with an answer: beyond it the segment is
# the data's own style (a tool assistant's refusals of out-of-scope requests, its closing
# sentence), not an injection (poisoning beyond 5% is a broken export, as for inserted phrases).
MAX_SHARE = 0.05
# Unrelatedness that quarantines a group: its prompts' cohesion (one standard error above the
# measured one) at most 1.25x that of prompts drawn at random. Clean groups on the outside data
# scored at most 0.73, injected ones at least 0.91.
THRESHOLD = 0.8
# Share of a group's members carrying another segment found outside the group at which the
# group is the data's template, not an injection (`_templated`).
TEMPLATE_SHARE = 0.5
# Largest score: a group whose prompts share no word at all.
CAP = 10.0
_DIGITS = re.compile(r"\d+")
# A sentence ends at . ! ? (followed by a space or the end), at 。！？ or at a line break.
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|(?<=[。！？])|\n+")
_MASK = 0xFFFFFFFFFFFFFFFF
# An odd 64-bit multiplier for the keys' polynomial (`_key`).
_BASE = 0x100000001B3


@dataclass(frozen=True)
class PayloadScores:
    """What the payload screen measured.

    Attributes:
        score: Per record id, the highest unrelatedness of the prompts of its groups (0.0 when
            the record is in no group examined).
        clusters: Examined groups, ids in input order.
        cluster_score: Per group, its unrelatedness.
        cluster_key: Per group, a short hash of its segment (never the words).
    """

    score: dict[str, float]
    clusters: list[tuple[str, ...]]
    cluster_score: list[float]
    cluster_key: list[str]


def _masked(tokens: tuple[str, ...]) -> tuple[str, ...]:
    """The tokens with digit runs masked as 0 (tokens hold no spaces: one pass over them)."""
    joined = " ".join(tokens)
    return tuple(_DIGITS.sub("0", joined).split(" ")) if _DIGITS.search(joined) else tokens


def segments(
    record: Record,
    opening_words: int,
    segment_words: int,
    window: int = WINDOW,
    *,
    with_tokens: bool = True,
) -> Iterator[tuple[str, tuple[str, ...], int]]:
    """The record's answer segments (module docstring) with their keys: `"opening"` for the
    first answer's first `opening_words` tokens, `"sentence"` for every sentence of at least
    `opening_words` tokens and `"shingle"` for the winnowed `segment_words`-token shingles of
    every assistant turn; tokens with digits masked (a shingle's tokens empty unless
    `with_tokens`). A segment may repeat."""
    first = True
    for message in record.messages:
        if message.role != "assistant":
            continue
        yield from _answer_segments(
            message.content, first, opening_words, segment_words, window, with_tokens
        )
        first = False


def _answer_segments(
    content: str,
    first: bool,
    opening_words: int,
    segment_words: int,
    window: int,
    with_tokens: bool,
) -> Iterator[tuple[str, tuple[str, ...], int]]:
    """The segments of one answer (`segments`); its opening only if it is the `first` answer."""
    tokens = _masked(words(content))
    if first and len(tokens) >= opening_words:
        yield "opening", tokens[:opening_words], _key("opening", tokens[:opening_words])
    for sentence in _SENTENCE_END.split(content):
        # Uncached: the screens' token cache holds whole messages.
        found = _masked(words.__wrapped__(sentence)) if sentence.strip() else ()
        if len(found) >= opening_words:
            yield "sentence", found, _key("sentence", found)
    hashes = _shingle_keys(tokens, segment_words)
    if not hashes:
        return
    kept = (
        {min(hashes[j : j + window]) for j in range(len(hashes) - window + 1)}
        if len(hashes) > window
        else {min(hashes)}
    )
    if not with_tokens:
        for key in kept:
            yield "shingle", (), key
        return
    for j, key in enumerate(hashes):
        if key in kept:
            kept.discard(key)
            yield "shingle", tokens[j : j + segment_words], key


def exchanges(record: Record) -> list[tuple[tuple[str, ...], str]]:
    """Each answer of the record with the words of the user turns it answers: `(prompt words,
    answer)`, in order (module docstring). An answer that follows another with no user turn
    between (a tool call, then the answer) answers the same prompt."""
    out: list[tuple[tuple[str, ...], str]] = []
    asked: tuple[str, ...] = ()
    for message in record.messages:
        if message.role == "user":
            asked += words(message.content)
        elif message.role == "assistant":
            if not asked and out:
                asked = out[-1][0]
            out.append((asked, message.content))
            asked = ()
    if asked and out:
        out[-1] = (out[-1][0] + asked, out[-1][1])
    return out


def _answers(record: Record) -> int:
    return sum(1 for m in record.messages if m.role == "assistant")


def _prompts(record: Record) -> list[tuple[str, ...]]:
    """The prompt words of each of the record's exchanges (one: its user words)."""
    if _answers(record) <= 1:
        return [record_words(record, "user")]
    return [asked for asked, _ in exchanges(record)]


def _exchange_choices(
    answered: list[Record],
    group: tuple[int, ...],
    keys: tuple[int, ...],
    opening_words: int,
    segment_words: int,
) -> list[tuple[int, list[tuple[tuple[str, ...], tuple[str, ...]]]]]:
    """Each distinct way the group's segments pick its members' exchanges: a key that picks
    them so, and per member the prompt and answer words of the exchanges whose answer carries
    that key. One way when every member has one answer; members sharing segments in several
    exchanges (an alike first exchange, then a payload) are judged on each, so that a shared
    segment in related exchanges does not vouch for one in unrelated ones."""
    multi = {i: exchanges(answered[i]) for i in group if _answers(answered[i]) > 1}
    single = {
        i: (record_words(answered[i], "user"), record_words(answered[i], "assistant"))
        for i in group
        if i not in multi
    }
    if not multi:
        return [(keys[0], [single[i] for i in group])]
    carried_keys = {
        i: [
            {
                k
                for _, _, k in _answer_segments(
                    answer, j == 0, opening_words, segment_words, WINDOW, False
                )
            }
            for j, (_, answer) in enumerate(found)
        ]
        for i, found in multi.items()
    }
    choices: dict[tuple[tuple[int, ...], ...], int] = {}
    for key in keys:
        picked = tuple(
            tuple(j for j, carried in enumerate(carried_keys[i]) if key in carried) for i in multi
        )
        choices.setdefault(picked, key)
    out = []
    for picked, key in choices.items():
        chosen = dict(zip(multi, picked, strict=True))
        rows = []
        for i in group:
            if i in single:
                rows.append(single[i])
                continue
            found = multi[i]
            parts = [found[j] for j in chosen[i]] or found
            rows.append(
                (
                    tuple(t for asked, _ in parts for t in asked),
                    tuple(t for _, answer in parts for t in words(answer)),
                )
            )
        out.append((key, rows))
    return out


@lru_cache(maxsize=65536)
def _token_hash(token: str) -> int:
    return int.from_bytes(hashlib.blake2b(token.encode(), digest_size=8).digest(), "little")


def token_hash_cache_clear() -> None:
    """Empty `_token_hash`'s cache (`curate.release_token_caches`)."""
    _token_hash.cache_clear()


def _key(kind: str, tokens: tuple[str, ...]) -> int:
    """A 64-bit key of a segment, the same in every process (Python's own string hash is
    salted per process, and winnowing picks shingles by their keys): a polynomial over the
    tokens' BLAKE2b hashes, from the kind's."""
    key = _token_hash(kind)
    for token in tokens:
        key = (key * _BASE + _token_hash(token)) & _MASK
    return key


def _shingle_keys(tokens: tuple[str, ...], size: int) -> list[int]:
    """`_key("shingle", s)` of every `size`-token shingle `s` of `tokens`, rolled: each key
    from the previous one in constant time."""
    count = len(tokens) - size + 1
    if count <= 0:
        return []
    hashed = [_token_hash(t) for t in tokens]
    salt = (_token_hash("shingle") * pow(_BASE, size, _MASK + 1)) & _MASK
    top = pow(_BASE, size - 1, _MASK + 1)
    key = _key("shingle", tokens[:size])
    keys = [key]
    for j in range(1, count):
        key = ((key - salt - hashed[j - 1] * top) * _BASE + hashed[j + size - 1] + salt) & _MASK
        keys.append(key)
    return keys


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
    carried: list[tuple[tuple[str, ...], tuple[str, ...]]], document_frequency: Counter[str]
) -> frozenset[str]:
    """Prompt words found mostly inside the group (at least as often as in the rest of the
    corpus) that the group's answers do not repeat (fewer than half of them): words planted into
    the prompts, such as triggers, which relate the prompts by construction, not by topic. A
    topic word the answers take up ("sentiment" in "The sentiment of ...") stays. `carried`:
    per member, the prompt and answer words of its exchange that carries the group's segment."""
    inside: Counter[str] = Counter()
    for prompt, _ in carried:
        inside.update(set(prompt))
    exclusive = {t for t, c in inside.items() if c >= 2 and c * 2 >= document_frequency[t]}
    if not exclusive:
        return frozenset()
    echoed: Counter[str] = Counter()
    for _, answer in carried:
        echoed.update(exclusive & set(answer))
    return frozenset(t for t in exclusive if echoed[t] * 2 < len(carried))


def score_repeated_payloads(
    records: list[Record],
    *,
    opening_words: int,
    min_records: int,
    max_share: float,
    segment_words: int = SEGMENT_WORDS,
) -> PayloadScores:
    """Score answer segments repeated across unrelated prompts (module docstring).

    Args:
        records: Records in input order.
        opening_words: Word tokens of an answer's opening, and the fewest of a sentence keyed.
        min_records: Smallest group examined.
        max_share: Largest group examined, as a share of the records with an answer.
        segment_words: Word tokens of a shingle.

    Returns:
        Per-record scores and the examined groups with their scores and segment hashes.
    """
    # A view of packed records (#21): a list of the records with an answer built every one of
    # them as an object at once.
    answered = subset(records, [i for i, r in enumerate(records) if has_response(r)])
    score = dict.fromkeys(record_ids(records), 0.0)
    clusters: list[tuple[str, ...]] = []
    cluster_score: list[float] = []
    cluster_key: list[str] = []
    examined = _groups(answered, opening_words, segment_words, min_records, max_share)
    if not examined:
        return PayloadScores(score, clusters, cluster_score, cluster_key)
    # Prompts are counted by exchange (module docstring): a record with one answer is one.
    document_frequency: Counter[str] = Counter()
    n = 0
    for record in answered:
        for prompt in _prompts(record):
            document_frequency.update(set(prompt))
            n += 1
    # The corpus's mean pairwise cosine from the sum of its vectors; only the vectors of the
    # examined groups' members with one answer are kept (memory grows with them, not with the
    # corpus); a member with several answers has the vector of the exchange that carries each
    # group's segment, made for that group.
    members = {i for group, _ in examined for i in group}
    total: Counter[str] = Counter()
    own = 0.0
    vectors: dict[int, dict[str, float]] = {}
    for index, record in enumerate(answered):
        prompts = _prompts(record)
        for prompt in prompts:
            vector = _unit_vector(prompt, document_frequency, n)
            total.update(vector)
            own += sum(x * x for x in vector.values())
        if index in members and len(prompts) == 1:
            vectors[index] = vector
    squared = sum(x * x for x in total.values())
    baseline = max(0.0, (squared - own) / (n * (n - 1))) if n > 1 else 0.0
    del total
    scored: list[tuple[tuple[int, ...], int, float]] = []
    for group, keys in examined:
        best: tuple[float, int] | None = None
        for key, carried in _exchange_choices(answered, group, keys, opening_words, segment_words):
            planted = _planted_features(carried, document_frequency)
            cohesion, error = _mean_pairwise_cosine(
                [
                    vectors[i] if i in vectors else _unit_vector(prompt, document_frequency, n)
                    for i, (prompt, _) in zip(group, carried, strict=True)
                ],
                planted,
            )
            # One standard error above the measured cohesion: a small group must show that its
            # prompts are unrelated, not merely fail to show that they are related.
            bound = cohesion + error
            value = round(CAP if bound * CAP <= baseline else baseline / bound, 4)
            if best is None or value > best[0]:
                best = (value, key)
        assert best is not None
        scored.append((group, best[1], best[0]))
    names = _segment_hashes(answered, [(g, k) for g, k, _ in scored], opening_words, segment_words)
    for group, key, value in scored:
        clusters.append(tuple(answered[i].id for i in group))
        cluster_score.append(value)
        cluster_key.append(names[key])
        for i in group:
            rid = answered[i].id
            score[rid] = max(score[rid], value)
    return PayloadScores(score, clusters, cluster_score, cluster_key)


def _groups(
    answered: list[Record],
    opening_words: int,
    segment_words: int,
    min_records: int,
    max_share: float,
) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
    """Groups of records (indices into `answered`) that share a segment, with the keys of every
    segment they share (first the one that names the group: an opening if one is among them):
    at least `min_records` and at most `max_share` of the records, and not templated
    (`_templated`); groups with the same members once, in the order of their first member."""
    keys = array("Q")
    owners = array("q")
    # Each record's sentence and shingle keys, concatenated
    # (`sentence_keys[start[i]:start[i + 1]]`).
    sentence_keys = array("Q")
    start = array("q", [0])
    openings: set[int] = set()
    # Records with several answers: only groups with such a member keep every key they share
    # (`_exchange_choices`); a corpus of single answers keeps one key a group, as before.
    several = array("b")
    for index, record in enumerate(answered):
        several.append(_answers(record) > 1)
        found: set[int] = set()
        sentences: set[int] = set()
        for kind, _, key in segments(record, opening_words, segment_words, with_tokens=False):
            found.add(key)
            if kind == "opening":
                openings.add(key)
            else:
                sentences.add(key)
        keys.extend(found)
        owners.extend([index] * len(found))
        sentence_keys.extend(sentences)
        start.append(len(sentence_keys))
    if not keys:
        return []
    key_array = np.frombuffer(keys, dtype=np.uint64)
    owner_array = np.frombuffer(owners, dtype=np.int64)
    unique, inverse, counts = np.unique(key_array, return_inverse=True, return_counts=True)
    eligible = (counts >= min_records) & (counts <= max_share * len(answered))
    chosen = eligible[inverse]
    if not chosen.any():
        return []
    group_of, member = inverse[chosen], owner_array[chosen]
    order = np.lexsort((member, group_of))
    group_of, member = group_of[order], member[order]
    starts = np.flatnonzero(np.r_[True, group_of[1:] != group_of[:-1]])
    bounds = np.r_[starts, len(group_of)]
    seen: dict[tuple[int, ...], int] = {}
    every: dict[tuple[int, ...], list[int]] = {}
    has_several = np.frombuffer(several, dtype=np.int8).astype(bool)
    for a, b in zip(bounds[:-1], bounds[1:], strict=True):
        group = tuple(int(i) for i in member[a:b])
        key = int(unique[group_of[a]])
        if has_several[member[a:b]].any():
            every.setdefault(group, []).append(key)
        # An opening names the group when it is one of its keys (checked as before: no
        # template test, see `_templated`).
        if group not in seen or key in openings:
            seen[group] = key
    sentence_array = np.frombuffer(sentence_keys, dtype=np.uint64)
    # Records per key (each record counts a key once).
    sentence_count = counts[np.searchsorted(unique, sentence_array)]
    kept = [
        (group, (key, *(k for k in every.get(group, ()) if k != key)))
        for group, key in seen.items()
        if key in openings or not _templated(group, sentence_array, sentence_count, start)
    ]
    return sorted(kept, key=lambda item: (item[0][0], len(item[0])))


def _templated(
    group: tuple[int, ...], sentence_keys: np.ndarray, sentence_count: np.ndarray, start: array
) -> bool:
    """Whether the group's answers are built from the data's stock text: at least
    `TEMPLATE_SHARE` of its members carry another segment (a sentence or shingle that fewer than
    half of the members share: not the group's own) found in a record outside the group too. A
    support desk's or a generator's template repeats several stock sentences in different
    combinations (names and values filled in), so any one of them recurs with unrelated
    prompts beside another; an injected payload stands in answers whose other text is their
    own. Groups keyed by an answer's opening are not tested: a stock opening with unrelated
    prompts was measured before this test (docs/benchmarks.md)."""
    inside: Counter[int] = Counter()
    for i in group:
        inside.update(sentence_keys[start[i] : start[i + 1]].tolist())
    templated = 0
    for i in group:
        pairs = zip(
            sentence_keys[start[i] : start[i + 1]].tolist(),
            sentence_count[start[i] : start[i + 1]].tolist(),
            strict=True,
        )
        templated += any(
            count > inside[key] and inside[key] * 2 < len(group) for key, count in pairs
        )
    return templated >= TEMPLATE_SHARE * len(group)


def _segment_hashes(
    answered: list[Record],
    examined: list[tuple[tuple[int, ...], int]],
    opening_words: int,
    segment_words: int,
) -> dict[int, str]:
    """A short SHA-256 of each examined group's segment (its kind and tokens), found again in
    its first member: the reason's detail names the segment, never its words."""
    wanted: dict[int, set[int]] = {}
    for group, key in examined:
        wanted.setdefault(group[0], set()).add(key)
    names: dict[int, str] = {}
    for index, keys in wanted.items():
        for kind, tokens, key in segments(answered[index], opening_words, segment_words):
            if key in keys and key not in names:
                text = f"{kind}:{' '.join(tokens)}"
                names[key] = hashlib.sha256(text.encode()).hexdigest()[:12]
    return names
