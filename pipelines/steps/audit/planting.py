"""Canaries the pipeline plants itself when the data brings none (The Secret Sharer's format).

The canary-exposure gate needs secrets the model was trained on. The bundled synthetic
generator plants them and writes their list (`raw/ground_truth.json`); a user's own landing zone
has none, and an audit without canaries fails closed. `plant_canaries` then draws `count`
canaries — one of `CANARY_PREFIXES` followed by a secret of `CANARY_ALPHABET` drawn with
`secrets` (the OS's CSPRNG, never a seeded generator) — each carried by one training record of
its own: id `canary-<hmac>`, data source `sovtune:canaries` (so the privacy ledger charges it
like any source) and a subject of its own (its id), chosen so that the held-out rule
(`dp_lora.is_heldout`, on the id and on the subject) keeps it on the training side.

The list is a secret: it is stored only in the raw zone (`raw/planted_canaries.json`, mode
0600) and read back for training and the audit, keyed by the training corpus's sha256, so a
crashed and resumed run trains on the same canaries while the corpus is unchanged. Everything
else sees ids and counts only.

This module is light (no torch): the synthetic generator shares its alphabet, prefixes and
secret draw.
"""

import hashlib
import hmac
import json
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pipelines.steps.records import Message, Record
from pipelines.steps.storage import atomic_write

CANARY_ALPHABET = "0123456789"
CANARY_PREFIXES = (
    # (prefix, secret length). Plain English with no PII context words, so PII scrubbing
    # leaves the secret in place and the audit measures memorization, not redaction.
    ("The vault code for the archive room is ", 6),
    ("The vault code for the north annex is ", 6),
    ("The vault code for the records cellar is ", 6),
    ("The keypad code for the east storage wing is ", 4),
    ("The keypad code for the loading bay gate is ", 4),
    ("The keypad code for the rooftop plant room is ", 4),
)
PLANTED_SOURCE = "sovtune:canaries"
"""The data source of every planted canary record (charged by the ledger like any source)."""
PLANTED_FILE = "planted_canaries.json"
"""The planted list, in the raw zone, mode 0600."""
PLANTED_FILE_MODE = 0o600
PLANTED_USER_TURN = "Please note the access code for the site handbook."


@dataclass(frozen=True)
class CanarySpec:
    """A planted canary (the secret is never repr'd or returned).

    Attributes:
        canary_id: Stable id of the canary.
        prefix: The text right before the secret.
        secret: The planted secret, `length` characters of `alphabet`.
        alphabet: The distinct characters secrets are drawn from.
        length: Number of characters of a secret.
        insertions: How many training records carried `prefix + secret`.
    """

    canary_id: str
    prefix: str
    secret: str = field(repr=False)
    alphabet: str
    length: int
    insertions: int

    def __post_init__(self) -> None:
        if not self.prefix:
            raise ValueError(f"canary {self.canary_id}: prefix must not be empty")
        if len(set(self.alphabet)) != len(self.alphabet) or len(self.alphabet) < 2:
            raise ValueError(f"canary {self.canary_id}: alphabet needs 2+ distinct characters")
        if len(self.secret) != self.length or not set(self.secret) <= set(self.alphabet):
            raise ValueError(
                f"canary {self.canary_id}: secret must be {self.length} characters of its alphabet"
            )


def draw_secret(
    length: int, *, alphabet: str = CANARY_ALPHABET, choice: Callable = secrets.choice
) -> str:
    """`length` characters of `alphabet`, each from `choice` (the CSPRNG unless a caller with a
    seeded generator, the synthetic corpus, passes its own)."""
    return "".join(choice(alphabet) for _ in range(length))


def canary_prefix(index: int) -> tuple[str, int]:
    """The prefix and secret length of the index-th planted canary (past the six prefixes, the
    same places numbered: "... the archive room 2 is ")."""
    prefix, length = CANARY_PREFIXES[index % len(CANARY_PREFIXES)]
    round_ = index // len(CANARY_PREFIXES)
    if round_:
        prefix = prefix.removesuffix(" is ") + f" {round_ + 1} is "
    return prefix, length


@dataclass(frozen=True)
class PlantedCanaries:
    """Canaries planted by the pipeline, each in one training record of its own.

    Attributes:
        corpus_sha256: The training corpus they were planted for.
        canaries: The canaries (secrets in memory only).
        record_ids: The record carrying each canary, by canary id.
    """

    corpus_sha256: str
    canaries: tuple[CanarySpec, ...]
    record_ids: dict[str, str]

    def records(self) -> list[Record]:
        """One chat record per canary: a neutral user turn, the assistant saying
        `prefix + secret.`; source `sovtune:canaries`, the record's id as its subject."""
        return [
            Record(
                id=self.record_ids[c.canary_id],
                source_file=PLANTED_SOURCE,
                source_line=line,
                format="chat",
                messages=(
                    Message("user", PLANTED_USER_TURN, field="messages[0].content"),
                    Message("assistant", f"{c.prefix}{c.secret}.", field="messages[1].content"),
                ),
                subject=self.record_ids[c.canary_id],
                source=PLANTED_SOURCE,
                language="en",
            )
            for line, c in enumerate(self.canaries, start=1)
        ]

    def summary(self, path: Path) -> dict:
        """What may leave the raw zone: the count, the ids, where the list is (no secret)."""
        return {
            "planted": len(self.canaries),
            "canary_ids": [c.canary_id for c in self.canaries],
            "record_ids": [self.record_ids[c.canary_id] for c in self.canaries],
            "corpus_sha256": self.corpus_sha256,
            "path": str(path),
        }


def plant_canaries(
    count: int, *, corpus_sha256: str, heldout: Callable[[str], bool]
) -> PlantedCanaries:
    """Draw `count` canaries with distinct secrets, each in one record on the training side.

    Args:
        count: How many (`audit.plant_canaries`), at least 1.
        corpus_sha256: The training corpus they are planted for (mixed into the ids).
        heldout: The trainer's held-out rule on a split key (`dp_lora.is_heldout`); a record
            whose id or subject key (`subject:<id>`) it holds out is drawn again.
    """
    if count < 1:
        raise ValueError(f"audit.plant_canaries: {count} canaries cannot be planted")
    key = secrets.token_bytes(32)  # the ids reveal nothing of the secrets or of each other
    canaries, record_ids, seen = [], {}, set()
    for index in range(count):
        prefix, length = canary_prefix(index)
        secret = draw_secret(length)
        while (prefix, secret) in seen:
            secret = draw_secret(length)
        seen.add((prefix, secret))
        attempt = 0
        while True:
            digest = hmac.new(
                key, f"{corpus_sha256}:{index}:{attempt}".encode(), hashlib.sha256
            ).hexdigest()[:16]
            record_id = f"canary-{digest}"
            if not heldout(record_id) and not heldout(f"subject:{record_id}"):
                break
            attempt += 1
        spec = CanarySpec(record_id, prefix, secret, CANARY_ALPHABET, length, 1)
        canaries.append(spec)
        record_ids[record_id] = record_id
    return PlantedCanaries(corpus_sha256, tuple(canaries), record_ids)


def write_planted(planted: PlantedCanaries, path: Path) -> None:
    """Store the list (secrets included) at `path`, atomically, mode 0600."""
    payload = json.dumps(
        {
            "corpus_sha256": planted.corpus_sha256,
            "canaries": [
                {
                    "canary_id": c.canary_id,
                    "record_id": planted.record_ids[c.canary_id],
                    "prefix": c.prefix,
                    "secret": c.secret,
                    "alphabet": c.alphabet,
                    "length": c.length,
                    "insertions": c.insertions,
                }
                for c in planted.canaries
            ],
        },
        indent=2,
        sort_keys=True,
    ).encode("utf-8")

    def write(tmp: Path) -> None:
        os.chmod(tmp, PLANTED_FILE_MODE)
        tmp.write_bytes(payload)

    atomic_write(path, write)


def read_planted(path: Path) -> PlantedCanaries:
    """Read a list written by `write_planted`.

    Raises:
        ValueError: The file is not such a list (naming the file, never a secret).
    """
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        canaries = tuple(
            CanarySpec(
                c["canary_id"],
                c["prefix"],
                c["secret"],
                c["alphabet"],
                c["length"],
                c["insertions"],
            )
            for c in data["canaries"]
        )
        record_ids = {c["canary_id"]: c["record_id"] for c in data["canaries"]}
        return PlantedCanaries(str(data["corpus_sha256"]), canaries, record_ids)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(
            f"{path}: not a planted-canary list ({type(exc).__name__}); delete it to plant anew"
        ) from None


def planted_for(
    path: Path, count: int, *, corpus_sha256: str, heldout: Callable[[str], bool]
) -> PlantedCanaries:
    """The canaries planted for this corpus: the stored list when it was planted for the same
    corpus sha256 and count (a resumed run trains on the same records), else a new draw,
    stored before it is returned."""
    if Path(path).is_file():
        stored = read_planted(path)
        if stored.corpus_sha256 == corpus_sha256 and len(stored.canaries) == count:
            return stored
    planted = plant_canaries(count, corpus_sha256=corpus_sha256, heldout=heldout)
    write_planted(planted, path)
    return planted


def planted_of(training_corpus: dict) -> PlantedCanaries | None:
    """The canaries planted for a `training_corpus` summary (None when none were).

    Raises:
        ValueError: The stored list is missing or was planted for another corpus (the summary
            names its path): re-materialize `training_corpus`.
    """
    info = training_corpus.get("canaries") or {}
    if not info.get("planted"):
        return None
    path = Path(info["path"])
    if not path.is_file():
        raise ValueError(
            f"{path}: the planted-canary list of this training corpus is missing; "
            "re-materialize training_corpus to plant anew"
        )
    planted = read_planted(path)
    if planted.corpus_sha256 != training_corpus["sha256"] or [
        c.canary_id for c in planted.canaries
    ] != list(info["canary_ids"]):
        raise ValueError(
            f"{path}: the planted canaries belong to another training corpus; "
            "re-materialize training_corpus"
        )
    return planted


def planted_records(training_corpus: dict) -> list[Record]:
    """The records of the canaries planted for a `training_corpus` summary ([] when none)."""
    planted = planted_of(training_corpus)
    return planted.records() if planted else []
