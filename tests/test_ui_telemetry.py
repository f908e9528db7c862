"""`make ui` serves MLflow's UI with its telemetry off (the served setting, not just an env var).

The MLflow UI asks its server (`/ajax-api/3.0/mlflow/ui-telemetry`) whether to collect and
send usage events; the server says no only when MLflow's telemetry is off in its environment.
MLflow also turns telemetry off by itself under CI or pytest, so the server here runs in a clean
environment: only what the Makefile exports. Dagster's side: tests/test_cli.py (dagster.yaml).
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SERVED = """
import json, sys
from mlflow.telemetry.utils import is_telemetry_disabled
if not is_telemetry_disabled():  # asking the server now would fetch MLflow's remote config
    print(json.dumps({"off": False}))
    sys.exit()
from mlflow.server import app
client = app.test_client()
served = client.get("/ajax-api/3.0/mlflow/ui-telemetry").get_json()
posted = client.post("/ajax-api/3.0/mlflow/ui-telemetry", json={"records": [{}]}).get_json()
print(json.dumps({"served": served, "posted": posted, "off": True}))
"""


def _make_environment() -> dict[str, str]:
    """The environment `make ui` gives its commands, starting from an empty one."""
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    clean = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp")}
    out = subprocess.run(
        ["make", "-s", "--eval", "sovtune-env: ; @env", "sovtune-env"],
        cwd=ROOT,
        env=clean,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def _serve(env: dict[str, str]) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", SERVED], env=env, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_when_make_ui_serves_mlflow_then_the_ui_is_told_telemetry_is_off():
    env = _make_environment()
    result = _serve(env)
    assert result["off"] is True
    assert result["served"]["disable_ui_telemetry"] is True
    assert result["posted"] == {"status": "disabled"}  # events from the UI are dropped
    # the control: without the Makefile's switches, MLflow's telemetry is on here
    bare = {k: v for k, v in env.items() if k not in ("MLFLOW_DISABLE_TELEMETRY", "DO_NOT_TRACK")}
    assert _serve(bare)["off"] is False
