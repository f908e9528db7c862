"""The steward decisions file: approve or reject quarantined records by id.

A CSV file with a header row and the columns `id` and `decision` (`approve` or `reject`), and
optionally `steward`, `decided_at` and `note`; other columns are refused, and a note is one of
the codes in `NOTES`, never free text, so that nothing that could quote personal data ends up
next to the curated zone. A later row for the same id
overrides an earlier one. A file that does not parse is an error naming the file and the line:
decisions never fall back to "approve".
"""

import csv
import hashlib
import io
from datetime import UTC, datetime
from pathlib import Path

from pipelines.steps.storage import atomic_write

DECISIONS = ("approve", "reject")
COLUMNS = ("id", "decision", "steward", "decided_at", "note")
REQUIRED = ("id", "decision")
# Why a steward decided, as a code (free text could quote the record's personal data).
NOTES = (
    "false_positive",  # the screen was wrong: the record is fine to train on
    "confirmed_poison",  # a planted trigger or injection
    "duplicate",  # a near copy of a record that is kept
    "unrequested_content",  # a link, command or code the prompt did not ask for
    "low_quality",  # unusable text
    "out_of_scope",  # not data this model should learn from
    "erasure_request",  # the data subject asked to be erased
)


class DecisionsError(ValueError):
    """A steward decisions file that must be fixed before curation can use it."""


def read_decisions(path: str | Path) -> dict[str, str]:
    """Read the decisions file; a missing file means no decisions.

    Args:
        path: The CSV file.

    Returns:
        Record id -> `approve` or `reject` (the last row for an id wins).

    Raises:
        DecisionsError: Naming the file and line of a bad header, id or decision.
    """
    path = Path(path)
    if not path.is_file():
        return {}
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DecisionsError(f"{path}: not UTF-8 text ({exc.reason})") from None
    reader = csv.DictReader(io.StringIO(text))
    header = reader.fieldnames or []
    unknown = sorted(set(header) - set(COLUMNS))
    missing = [c for c in REQUIRED if c not in header]
    if missing or unknown:
        raise DecisionsError(
            f"{path}: line 1: header must have {', '.join(REQUIRED)} (optional: steward, "
            f"decided_at, note); missing {missing or 'none'}, unknown {unknown or 'none'}"
        )
    decisions: dict[str, str] = {}
    for row in reader:
        line = reader.line_num
        record_id = (row.get("id") or "").strip()
        decision = (row.get("decision") or "").strip().lower()
        if None in row:
            raise DecisionsError(f"{path}: line {line}: more fields than the header names")
        if not record_id:
            raise DecisionsError(f"{path}: line {line}: empty id")
        if decision not in DECISIONS:
            raise DecisionsError(
                f"{path}: line {line}: decision must be approve or reject for id {record_id}"
            )
        note = (row.get("note") or "").strip()
        if note and note not in NOTES:
            raise DecisionsError(
                f"{path}: line {line}: note for id {record_id} must be empty or one of "
                f"{', '.join(NOTES)} (free text is refused)"
            )
        decisions[record_id] = decision
    return decisions


def append_decisions(
    path: str | Path, decisions: dict[str, str], *, steward: str = "", note: str = ""
) -> None:
    """Add decisions to the file (created with its header if missing), atomically.

    A file with fewer columns (hand-written `id,decision`) is rewritten under the full header,
    its rows unchanged.

    Args:
        path: The CSV file.
        decisions: Record id -> `approve` or `reject`.
        steward: Who decided (an account name, not a data subject).
        note: Why, as one of `NOTES` (or empty).

    Raises:
        DecisionsError: A decision is neither approve nor reject, a note is not one of
            `NOTES`, or the file does not parse.
    """
    path = Path(path)
    read_decisions(path)  # refuse to append to a broken file
    bad = sorted(i for i, d in decisions.items() if d not in DECISIONS)
    if bad:
        raise DecisionsError(f"decision for id(s) {', '.join(bad)} must be approve or reject")
    if note and note not in NOTES:
        raise DecisionsError(f"note must be empty or one of {', '.join(NOTES)}")
    existing = path.read_text(encoding="utf-8") if path.is_file() else ""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n", restval="")
    rows = list(csv.DictReader(io.StringIO(existing)))
    if existing and existing.splitlines()[0].split(",") == list(COLUMNS):
        out.write(existing if existing.endswith("\n") else existing + "\n")
    else:
        # No file, or one written with fewer columns: the same rows under the full header, so
        # that every new row keeps who decided and why.
        writer.writeheader()
        writer.writerows(rows)
    stamp = datetime.now(UTC).isoformat(timespec="seconds")
    for record_id, decision in decisions.items():
        row = {"id": record_id, "decision": decision, "steward": steward, "decided_at": stamp}
        writer.writerow({**row, "note": note})
    content = out.getvalue()
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: tmp.write_text(content, encoding="utf-8"))


def decisions_fingerprint(path: str | Path) -> str:
    """SHA-256 of the file's bytes ("" when it does not exist): a sensor's cursor."""
    path = Path(path)
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else ""
