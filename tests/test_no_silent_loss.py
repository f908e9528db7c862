"""No silent loss: a corpus with 5% malformed lines of every kind still accounts for every line.

records_in = accepted + quarantined at ingestion, and accepted = kept + filtered at screening,
each quarantined or filtered record with a reason code; nothing crashes.
"""

import json
import random

from pipelines.steps.config import CurationConfig
from pipelines.steps.ingest.landing import REASONS, ingest_landing
from pipelines.steps.integrity.curate import screen_records

GOOD = "Could you check why my laptop battery drains overnight? It started after the update."


def _malformed(kind: str, rng: random.Random, n: int) -> bytes:
    if kind == "invalid_utf8":
        return b'{"id": "u%d", "text": "caf\xe9 \xff"}' % n
    if kind == "bom":  # a BOM in the middle of a file is not whitespace to JSON
        return b'\xef\xbb\xbf{"id": "b%d", "text": "x"}' % n
    if kind == "nul":
        return b'{"id": "n%d", "text": "a\x00b"}' % n
    if kind == "blank":
        return b"   "
    if kind == "truncated":
        return json.dumps({"id": f"t{n}", "text": GOOD}).encode()[: rng.randint(2, 40)]
    if kind == "schema_drift":
        return json.dumps({"id": f"s{n}", "body": GOOD, "role": "user"}).encode()
    if kind == "wrong_type":
        return json.dumps({"id": f"w{n}", "messages": "not a list"}).encode()
    if kind == "duplicate_id":
        return json.dumps({"id": "good-0", "text": GOOD + f" variant {n}"}).encode()
    raise ValueError(kind)


KINDS = [
    "invalid_utf8",
    "bom",
    "nul",
    "blank",
    "truncated",
    "schema_drift",
    "wrong_type",
    "duplicate_id",
]


def test_when_5_percent_of_lines_are_malformed_then_every_line_is_accounted_for(tmp_path):
    rng = random.Random(0)
    lines = [
        json.dumps({"id": f"good-{i}", "text": f"{GOOD} Ticket {i}."}).encode() for i in range(760)
    ]
    for n in range(40):  # 40 / 800 = 5%, every kind five times
        lines.insert(rng.randrange(1, len(lines)), _malformed(KINDS[n % len(KINDS)], rng, n))
    # one 20 MB line: too long to be a record, but it must not crash or vanish
    lines.insert(400, json.dumps({"id": "huge", "text": "a" * 20_000_000}).encode())
    landing = tmp_path / "landing"
    landing.mkdir()
    (landing / "drop.jsonl").write_bytes(b"\n".join(lines) + b"\n")

    result = ingest_landing(landing, languages=["en"], max_record_chars=100_000)
    assert result.records_in == len(lines) == 801
    assert result.records_in == len(result.accepted) + len(result.quarantined)
    assert len(result.accepted) == 760
    assert all(q.reason in REASONS and q.source_line >= 1 for q in result.quarantined)
    counts = result.quarantine_counts()
    assert counts["too_long"] == 1
    assert counts["duplicate_id"] == 5
    assert counts["empty_line"] == 5
    assert counts["nul_bytes"] == 5
    assert counts["invalid_utf8"] == 5
    assert counts["missing_field"] == 5
    assert counts["bad_field_type"] == 5

    screened = screen_records(result.accepted, CurationConfig())
    assert len(screened.kept) + len(screened.filtered) == len(result.accepted)
    assert all(f.reason for f in screened.filtered)
