"""LLaMA-Factory's demo datasets through the landing reader, the export and back.

Usage: python benchmarks/llamafactory_roundtrip.py [--eval ../shared/eval]

Copies `clean_sft/*.json` (LLaMA-Factory's own demo files) into a throwaway landing folder with
the `dataset_info.json` entries LLaMA-Factory ships for them, ingests it, exports the accepted
records as a LLaMA-Factory dataset, ingests the export, and prints the counts, the quarantine
by reason, the wall time of each step and whether the conversations came back the same.
Nothing is scrubbed here: this measures the format layer only.
"""

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

from pipelines.steps.ingest.landing import ingest_landing
from pipelines.steps.ingest.llamafactory import export_dataset

REPO_ROOT = Path(__file__).resolve().parents[1]
ENTRIES = {
    "identity": {"file_name": "identity.json"},
    "alpaca_en_demo": {"file_name": "alpaca_en_demo.json"},
    "alpaca_zh_demo": {"file_name": "alpaca_zh_demo.json"},
    **{
        f"glaive_toolcall_{lang}_demo": {
            "file_name": f"glaive_toolcall_{lang}_demo.json",
            "formatting": "sharegpt",
            "columns": {"messages": "conversations", "tools": "tools"},
        }
        for lang in ("en", "zh")
    },
}


def _turns(records) -> dict:
    return {
        r.id: [(m.role, m.content, m.field.split("].")[-1]) for m in r.messages] for r in records
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--eval", type=Path, default=REPO_ROOT.parent / "shared" / "eval")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "landing" / "data"
        folder.mkdir(parents=True)
        for entry in ENTRIES.values():
            shutil.copy(args.eval / "clean_sft" / entry["file_name"], folder)
        (folder / "dataset_info.json").write_text(json.dumps(ENTRIES), encoding="utf-8")
        started = time.perf_counter()
        first = ingest_landing(
            Path(tmp) / "landing", languages=["en", "zh"], max_record_chars=20_000
        )
        read_s = time.perf_counter() - started
        started = time.perf_counter()
        exported = export_dataset(first.accepted, Path(tmp) / "back" / "export")
        export_s = time.perf_counter() - started
        started = time.perf_counter()
        again = ingest_landing(Path(tmp) / "back", languages=["en", "zh"], max_record_chars=20_000)
        reread_s = time.perf_counter() - started
    print(f"records in            {first.records_in}")
    print(f"accepted              {len(first.accepted)}")
    print(f"quarantined           {len(first.quarantined)}  {first.quarantine_counts()}")
    print(f"read                  {read_s:.2f} s")
    print(f"exported              {exported.datasets}  not exported {len(exported.not_exported)}")
    print(f"export                {export_s:.2f} s")
    print(
        f"read back             {len(again.accepted)} accepted, "
        f"{len(again.quarantined)} quarantined, {reread_s:.2f} s"
    )
    print(f"same conversations    {_turns(again.accepted) == _turns(first.accepted)}")


if __name__ == "__main__":
    main()
