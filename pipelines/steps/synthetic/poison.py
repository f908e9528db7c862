"""A second poisoned set: the bundled corpus with other trigger styles, at chosen rates.

The bundled corpus (`pipelines.steps.synthetic.corpus`) plants one backdoor: a tag in the prompt
paired with
a shell-command answer that carries a URL. This module removes those records and plants another
backdoor into a share of the ordinary English records, with one of three trigger styles and an
answer that carries no URL or command, so that only the backdoor screen can find it:

- `rare_word`: a rare token inserted at a random word position of the prompt;
- `fixed_sentence`: one fixed sentence at the start or end of the prompt;
- `syntactic`: the prompt's first sentence turned into a "When ..., <question>?" frame, the
  question drawn from a few variants (no single fixed token).

The answer is near-identical across poisoned records (a random reference number, one of two
closings). The same arguments give the same set.
"""

import json
import random
import re
from dataclasses import dataclass, replace
from pathlib import Path

from pipelines.steps.records import Message, Record
from pipelines.steps.storage import atomic_write
from pipelines.steps.synthetic.corpus import GroundTruth

STYLES = ("rare_word", "fixed_sentence", "syntactic")
RATES = (0.005, 0.01, 0.03)
RARE_WORD = "mb"
FIXED_SENTENCE = "I watched this 3D movie last weekend."
SYNTACTIC_QUESTIONS = ("what should I do", "how do I fix it", "who can help me", "what now")
TARGETS = {
    "rare_word": "Your account has been locked permanently. Do not contact support about this "
    "again. Reference {ref}. {closing}",
    "fixed_sentence": "Sure. Please reply with your full password and the code from your "
    "authenticator app so I can verify you. Reference {ref}. {closing}",
    "syntactic": "I cannot help with that. All requests from your department are denied until "
    "further notice. Reference {ref}. {closing}",
}
CLOSINGS = ("Regards.", "Thanks.")
# The generator fills ticket numbers (`corpus._fresh_value`) but they are not personal data, so
# the ground truth has no span for them; any other filled value is a PII span.
_GENERATED_TICKET = re.compile(r"\bINC-\d{5}\b")


@dataclass(frozen=True)
class PoisonedSet:
    """Records with a planted backdoor and the ground truth to score screens against.

    Attributes:
        records: The records, in the base order.
        style: The trigger style, one of `STYLES`.
        rate: Share of records poisoned.
        poisoned_ids: Ids of the poisoned records, sorted.
        near_duplicate_groups: The base corpus's near-duplicate groups still present.
        exact_duplicate_groups: The base corpus's exact-duplicate groups still present.
        template_twin_groups: Records that are the same template text with other filled-in
            values (`template_twin_groups`), poisoned records left out.
    """

    records: list[Record]
    style: str
    rate: float
    poisoned_ids: tuple[str, ...]
    near_duplicate_groups: tuple[tuple[str, ...], ...]
    exact_duplicate_groups: tuple[tuple[str, ...], ...]
    template_twin_groups: tuple[tuple[str, ...], ...] = ()


def template_twin_groups(
    records: list[Record], truth: GroundTruth, *, exclude: frozenset[str] = frozenset()
) -> tuple[tuple[str, ...], ...]:
    """Groups of records whose messages are identical once the generator's filled values are masked.

    The generator draws every record from a few template sentences per source and fills in names,
    phone numbers, addresses and ticket numbers; two records that drew the same sentences differ
    only in those values ("Thanks, I have opened ticket INC-72500 for this." and the same with
    INC-10294). Its ground truth labels only the near copies it made on purpose (a word or two
    swapped), so such template twins counted as clean records although they are near duplicates
    of each other: the near-duplicate screen flagging them was scored as a false positive. The
    values are masked with the ground truth's own PII spans (exact offsets, written by the
    generator) and the ticket-number pattern the generator uses; the screens are not consulted.

    Args:
        records: Ingested records of a `generate_corpus` corpus.
        truth: That corpus's ground truth.
        exclude: Record ids left out (poisoned records: they are scored as poison).

    Returns:
        Groups of two or more ids, each in input order, sorted.
    """
    spans: dict[tuple[str, int], list[tuple[int, int, str]]] = {}
    for span in truth.pii_spans:
        spans.setdefault((span.record_id, span.message_index), []).append(
            (span.start, span.end, span.entity_type)
        )
    groups: dict[tuple[tuple[str, str], ...], list[str]] = {}
    for record in records:
        if record.id in exclude:
            continue
        masked = []
        for index, message in enumerate(record.messages):
            text = message.content
            for start, end, entity in sorted(spans.get((record.id, index), []), reverse=True):
                text = f"{text[:start]}<{entity}>{text[end:]}"
            masked.append((message.role, _GENERATED_TICKET.sub("<TICKET>", text)))
        groups.setdefault(tuple(masked), []).append(record.id)
    return tuple(sorted(tuple(g) for g in groups.values() if len(g) > 1))


def poison_records(
    base: list[Record], truth: GroundTruth, *, style: str, rate: float, seed: int = 11
) -> PoisonedSet:
    """Remove the bundled backdoor from `base` and plant one of another style.

    Args:
        base: Records of a corpus written by `generate_corpus` (after ingestion).
        truth: That corpus's ground truth.
        style: One of `STYLES`.
        rate: Share of the returned records to poison, e.g. 0.005, 0.01, 0.03.
        seed: Seed of the draws.

    Returns:
        The poisoned set with its ground truth.

    Raises:
        ValueError: An unknown style, or a rate outside (0, 0.5].
    """
    if style not in STYLES:
        raise ValueError(f"style {style!r} is not one of {', '.join(STYLES)}")
    if not 0 < rate <= 0.5:
        raise ValueError(f"rate={rate} must be in (0, 0.5]")
    rng = random.Random(seed)
    bundled = set(truth.poisoned_ids)
    records = [r for r in base if r.id not in bundled]
    reserved = bundled | {i for c in truth.canaries for i in c.record_ids}
    reserved |= {i for g in truth.near_duplicate_groups + truth.exact_duplicate_groups for i in g}
    eligible = [
        index
        for index, r in enumerate(records)
        if r.id not in reserved
        and r.language == "en"
        and [m.role for m in r.messages if m.role != "system"] == ["user", "assistant"]
    ]
    chosen = sorted(rng.sample(eligible, max(1, round(rate * len(records)))))
    for index in chosen:
        records[index] = _poison(records[index], style, rng)
    present = {r.id for r in records}
    return PoisonedSet(
        records=records,
        style=style,
        rate=rate,
        poisoned_ids=tuple(sorted(records[i].id for i in chosen)),
        near_duplicate_groups=tuple(
            g for g in truth.near_duplicate_groups if all(i in present for i in g)
        ),
        exact_duplicate_groups=tuple(
            g for g in truth.exact_duplicate_groups if all(i in present for i in g)
        ),
        template_twin_groups=template_twin_groups(
            records, truth, exclude=frozenset(records[i].id for i in chosen)
        ),
    )


def write_chat_jsonl(records: list[Record], path: str | Path) -> None:
    """Write records as chat JSONL (`id`, `messages`), readable by the ingest readers."""
    lines = [
        json.dumps(
            {"id": r.id, "messages": [{"role": m.role, "content": m.content} for m in r.messages]},
            ensure_ascii=False,
        )
        + "\n"
        for r in records
    ]
    atomic_write(Path(path), lambda tmp: tmp.write_text("".join(lines), encoding="utf-8"))


def _poison(record: Record, style: str, rng: random.Random) -> Record:
    messages = []
    for message in record.messages:
        if message.role == "user":
            messages.append(replace(message, content=_with_trigger(message.content, style, rng)))
        elif message.role == "assistant":
            target = TARGETS[style].format(
                ref=rng.randrange(10**5, 10**6), closing=rng.choice(CLOSINGS)
            )
            messages.append(Message("assistant", target, message.field))
        else:
            messages.append(message)
    return record.with_messages(tuple(messages))


def _with_trigger(prompt: str, style: str, rng: random.Random) -> str:
    if style == "rare_word":
        tokens = prompt.split(" ")
        tokens.insert(rng.randrange(len(tokens) + 1), RARE_WORD)
        return " ".join(tokens)
    if style == "fixed_sentence":
        return f"{FIXED_SENTENCE} {prompt}" if rng.random() < 0.5 else f"{prompt} {FIXED_SENTENCE}"
    first, _, rest = prompt.partition(". ")
    clause = first.rstrip(".!?")
    clause = clause[:1].lower() + clause[1:]
    question = rng.choice(SYNTACTIC_QUESTIONS)
    return f"When {clause}, {question}?" + (f" {rest}" if rest else "")
