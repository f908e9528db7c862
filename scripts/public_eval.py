"""Write the bundled public eval set of the utility check (pipelines/config/public_eval.jsonl).

64 records of the bundled synthetic generator, drawn with another seed than the demo corpus
(20261204, not 7): only well-formed chat lines, none carrying a canary or the backdoor trigger,
none a near or exact duplicate. Every value in them (names, numbers) is synthetic: the set is
public by construction, which is what `training.utility.public_eval_file` must be.

    .venv/bin/python -m scripts.public_eval [--out PATH]
"""

import argparse
import json
import tempfile
from pathlib import Path

from pipelines.steps.storage import write_text
from pipelines.steps.synthetic.corpus import JSONL_FILE, generate_corpus
from pipelines.steps.training.utility import BUNDLED_PUBLIC_EVAL

SEED = 20261204
RECORDS = 64


def public_eval_lines(*, seed: int = SEED, records: int = RECORDS) -> list[str]:
    """The JSONL lines ({"id", "messages"}) of the public eval set."""
    with tempfile.TemporaryDirectory(prefix="sovtune-public-eval-") as tmp:
        truth = generate_corpus(Path(tmp), records=max(200, 3 * records), seed=seed)
        raw_lines = (Path(tmp) / JSONL_FILE).read_bytes().splitlines()
    excluded = set(truth.poisoned_ids)
    excluded.update(rid for canary in truth.canaries for rid in canary.record_ids)
    for group in (*truth.near_duplicate_groups, *truth.exact_duplicate_groups):
        excluded.update(group)
    out = []
    for raw in raw_lines:
        try:
            row = json.loads(raw.decode("utf-8"))
            messages = [{"role": m["role"], "content": m["content"]} for m in row["messages"]]
        except (ValueError, KeyError, TypeError):
            continue  # the generator's planted malformed lines
        if row.get("id") in excluded or not messages or not all(m["content"] for m in messages):
            continue
        out.append(json.dumps({"id": f"public-{row['id']}", "messages": messages}))
        if len(out) == records:
            break
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=BUNDLED_PUBLIC_EVAL)
    args = parser.parse_args()
    lines = public_eval_lines()
    write_text("\n".join(lines) + "\n", args.out)
    print(f"{len(lines)} records -> {args.out}")


if __name__ == "__main__":
    main()
