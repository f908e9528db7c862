"""Byte-level search for planted PII values and canaries outside the raw zone, after a run.

Reads the synthetic corpus's ground truth (offsets only) and the landing files to recover every
planted value in memory, and the audit's canaries the pipeline planted on a run whose data had
no canary list (`raw/planted_canaries.json`), then searches every file of the zones that must
never hold one: Dagster's home (run and event storage, compute logs), the MLflow store and
artifacts, adapters and model store, reports, and any log files given. Prints counts and file
names, never a value.

    .venv/bin/python scripts/pii_leak_scan.py --data-root var --dagster-home dagster_home \\
        --log /tmp/demo.err
"""

import argparse
import csv
import io
import json
import sys
from pathlib import Path

from pipelines.steps.audit.planting import PLANTED_FILE, read_planted
from pipelines.steps.synthetic.corpus import CSV_FILE, JSONL_FILE, read_ground_truth

ZONES = ("mlflow", "adapters", "models", "reports")
MIN_CHARS = 6  # shorter values (a 4-digit PIN, "Li Na") match unrelated bytes by chance


def planted_values(data_root: Path) -> set[str]:
    """Every planted PII value of at least MIN_CHARS characters, canary sentences and secrets
    (the generator's, and those the pipeline planted; a run without either has none)."""
    values = set()
    planted = data_root / "raw" / PLANTED_FILE
    if planted.is_file():
        canaries = read_planted(planted).canaries
        values |= {c.prefix + c.secret for c in canaries}
        values |= {c.secret for c in canaries if len(c.secret) >= MIN_CHARS}
    if not (data_root / "raw" / "ground_truth.json").is_file():
        return values
    truth = read_ground_truth(data_root / "raw" / "ground_truth.json")
    texts: dict[str, list[str]] = {}
    # the bundled corpus is one data drop: `landing/default/` for the demo, or the landing root
    landing = data_root / "landing"
    folder = next((p.parent for p in sorted(landing.rglob(JSONL_FILE))), landing)
    for line in (folder / JSONL_FILE).read_bytes().splitlines():
        try:
            row = json.loads(line)
        except (ValueError, UnicodeDecodeError):
            continue
        if isinstance(row, dict) and isinstance(row.get("messages"), list) and "id" in row:
            texts.setdefault(str(row["id"]), [m.get("content", "") for m in row["messages"]])
    csv_path = folder / CSV_FILE
    if csv_path.is_file():
        for row in csv.DictReader(io.StringIO(csv_path.read_text(encoding="utf-8"))):
            texts.setdefault(row["id"], [row["instruction"], row["output"]])
    for span in truth.pii_spans:
        contents = texts.get(span.record_id)
        if contents and span.message_index < len(contents):
            value = contents[span.message_index][span.start : span.end]
            if len(value) >= MIN_CHARS:
                values.add(value)
    values |= {c.prefix + c.secret for c in truth.canaries}
    values |= {c.secret for c in truth.canaries if len(c.secret) >= MIN_CHARS}
    return values


def scan(paths: list[Path], values: set[str]) -> dict[str, int]:
    """File -> number of distinct planted values found in its bytes."""
    needles = [v.encode("utf-8") for v in values]
    hits = {}
    for root in paths:
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for path in files:
            blob = path.read_bytes()
            found = sum(1 for n in needles if n in blob)
            if found:
                hits[str(path)] = found
    return hits


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", type=Path, default=Path("var"))
    parser.add_argument("--dagster-home", type=Path, default=Path("dagster_home"))
    parser.add_argument("--log", type=Path, action="append", default=[])
    args = parser.parse_args()
    values = planted_values(args.data_root)
    targets = [args.dagster_home, *(args.data_root / z for z in ZONES), *args.log]
    targets = [t for t in targets if t.exists()]
    files = sum(1 if t.is_file() else sum(1 for p in t.rglob("*") if p.is_file()) for t in targets)
    hits = scan(targets, values)
    print(f"searched {files} files in {len(targets)} places for {len(values)} planted values")
    for path, found in sorted(hits.items()):
        print(f"  LEAK: {found} planted value(s) in {path}")
    print("no planted value found outside the raw zone" if not hits else f"{len(hits)} files leak")
    return 1 if hits else 0


if __name__ == "__main__":
    sys.exit(main())
