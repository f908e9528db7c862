"""The privacy audit's cost on this machine: seconds of each part, and of each canary's exposure.

Audits the adapter a default run (`make demo`) left under the data root exactly as the
`privacy_audit` asset does (`pipelines.steps.audit.suite.audit_model` with the profile's audit
settings, the pipeline's PII engine for the extraction attack, no control models), and prints
the wall time of every part: canary exposure (per canary, with its method and candidate count),
membership inference, PII extraction and the backdoor rate, with the load average before and
after. Prints ids, counts, exposures and seconds only, never a secret or a PII value.

    .venv/bin/python benchmarks/audit_cost.py --data-root var [--profile default] \\
        [--json benchmarks/out/audit_cost.json]
"""

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


def _latest_adapter(root: Path) -> dict:
    """The training summary of the newest adapter under `root/adapters` (a default run's)."""
    summaries = sorted((root / "adapters").glob("*.training.json"), key=lambda p: p.stat().st_mtime)
    if not summaries:
        raise SystemExit(f"no adapter under {root / 'adapters'}: run `make demo` first")
    return json.loads(summaries[-1].read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default="var", help="Data root of a finished default run.")
    parser.add_argument("--profile", default="default")
    parser.add_argument("--json", type=Path, default=None, help="Also write the result here.")
    args = parser.parse_args()

    import torch

    from assets.audit import _audit_data
    from pipelines.definitions import build_resources
    from pipelines.steps.audit.suite import audit_model
    from pipelines.steps.config import load_config
    from pipelines.steps.training.dp_lora import load_adapter_model

    torch.set_num_threads(os.cpu_count() or 1)
    root = Path(args.data_root)
    cfg = load_config(args.profile).model_copy(update={"data_root": str(root)})
    resources = build_resources(cfg)
    auditor, pii = resources["auditor"], resources["pii"]
    adapter = _latest_adapter(root)
    load_before = os.getloadavg()
    started = time.perf_counter()
    model, tokenizer = load_adapter_model(
        root / "models" / cfg.model.name,
        adapter["adapter_dir"],
        expected_sha256=adapter["adapter_sha256"],
    )
    load_s = time.perf_counter() - started
    data = _audit_data(
        auditor,
        adapter,
        {"path": str(root / "curated" / "curated_corpus.parquet")},
        {"path": str(root / "raw" / "raw_corpus.parquet")},
    )
    started = time.perf_counter()
    result = audit_model(model, tokenizer, data, auditor.settings, scan=pii.scan)
    total_s = time.perf_counter() - started
    seconds = result["seconds"]
    summary = {
        "profile": args.profile,
        "candidates": auditor.candidates,
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "model_load_seconds": round(load_s, 1),
        "audit_seconds": round(total_s, 1),
        "part_seconds": {k: v for k, v in seconds.items() if k != "exposure_by_canary"},
        "canaries": [
            {
                "canary_id": c["canary_id"],
                "insertions": c["insertions"],
                "method": c["method"],
                "candidates": c["candidates"],
                "rank": c["rank"],
                "exposure_bits": round(c["exposure_bits"], 3),
                "seconds": seconds["exposure_by_canary"][c["canary_id"]],
            }
            for c in result["canaries"]
        ],
        "mia_records": auditor.mia_records,
        "pii_probes": result["pii_extraction"]["probes"],
        "pii_extracted": result["pii_extraction"]["extracted"],
        "backdoor_prompts": None if result["backdoor"] is None else result["backdoor"]["prompts"],
    }
    print(json.dumps(summary, indent=2))
    print(f"\nprofile {args.profile}, {auditor.candidates} candidates per canary")
    print(
        f"load average before {summary['load_average_before']}, "
        f"after {summary['load_average_after']}"
    )
    print("\n| audit part | seconds |\n|---|---:|")
    for part, value in summary["part_seconds"].items():
        print(f"| {part} | {value:.0f} |")
    print(f"| total | {total_s:.0f} |")
    print("\n| canary | insertions | method | candidates | rank | exposure (bits) | seconds |")
    print("|---|---:|---|---:|---:|---:|---:|")
    for c in summary["canaries"]:
        print(
            f"| {c['canary_id']} | {c['insertions']} | {c['method']} | {c['candidates']} | "
            f"{c['rank']} | {c['exposure_bits']:.2f} | {c['seconds']:.0f} |"
        )
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
