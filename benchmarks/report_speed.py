"""`sovtune report` wall time: the local-store read (the CLI) vs MLflow's client (the old path).

Usage: python benchmarks/report_speed.py [--runs 5]

Registers three versions of a model in a throwaway SQLite registry, then times, alternately in
fresh processes (imports are what cost), `sovtune report m:2` (reads the store directly) and the
same look-up through `MLflowRegistry.report_location` as `report` did before (the Dagster
definitions, then MLflow's client). Prints the median of each and their ratio, measured in the
same run so that the load on a shared host falls on both alike.
"""

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

OLD_PATH = """
import sys
from pipelines.definitions import build_resources
from pipelines.steps.config import load_config
cfg = load_config(sys.argv[1])
registry = build_resources(cfg)["registry"].model_copy(update={"model_name": "m"})
print(registry.report_location("2"))
"""


def _register(root: Path) -> Path:
    from mlflow import MlflowClient

    uri = f"sqlite:///{root / 'mlflow' / 'mlflow.db'}"
    (root / "mlflow").mkdir(parents=True)
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    experiment = client.create_experiment("sovtune", artifact_location=(root / "a").as_uri())
    client.create_registered_model("m")
    for n in (1, 2, 3):
        run = client.create_run(experiment)
        client.create_model_version("m", f"{run.info.artifact_uri}/adapter", run.info.run_id)
        client.set_model_version_tag("m", str(n), "sovtune.report", f"/r/m/v{n}/report.html")
    profile = root / "profile.yaml"
    profile.write_text(f"data_root: {root}\n", encoding="utf-8")
    return profile


def _seconds(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    sovtune = str(Path(sys.executable).parent / "sovtune")
    with tempfile.TemporaryDirectory() as tmp:
        profile = str(_register(Path(tmp)))
        new, old = [], []
        for _ in range(args.runs):
            new.append(_seconds([sovtune, "report", "m:2", "--profile", profile]))
            old.append(_seconds([sys.executable, "-c", OLD_PATH, profile]))
    a, b = statistics.median(new), statistics.median(old)
    print(f"sovtune report (local store read)   median {a:.2f} s over {args.runs} runs")
    print(f"MLflow client via the definitions   median {b:.2f} s over {args.runs} runs")
    print(f"ratio                               {b / a:.1f}x faster")


if __name__ == "__main__":
    main()
