"""The stewards' desk renders: the Dagster UI in headless Chromium, after a completed run.

A run of the ingestion stage (raw corpus, quarantine and their checks; the whole graph
would take minutes) completes on a temporary instance; the webserver then serves the code
location on 127.0.0.1. Its GraphQL endpoint gives the facts (every asset, its checks, the
latest run) and Chromium the pixels: the rendered asset graph names the assets, and its
screenshot is kept as docs/ui-asset-graph.png (rewritten only with
`SOVTUNE_UPDATE_SCREENSHOTS=1`, so a test run leaves the tree clean).
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import dagster as dg
import pytest
import yaml
from PIL import Image

from pipelines.definitions import build_definitions
from pipelines.drops import register_drops
from pipelines.jobs import DROP_JOB
from pipelines.steps.config import load_config
from pipelines.steps.synthetic.corpus import generate_corpus
from tests.browser import CHROMIUM, chromium_command
from tests.pipeline_runs import DROP_ASSETS, RELEASE_ASSETS

ROOT = Path(__file__).resolve().parents[1]
SCREENSHOT = ROOT / "docs" / "ui-asset-graph.png"
ASSETS = {*DROP_ASSETS, *RELEASE_ASSETS}

pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="Debian's chromium is not installed (make test installs it as root)"
)

QUERY = """
{
  assetNodes { assetKey { path } assetChecksOrError { ... on AssetChecks { checks { name } } } }
  runsOrError(limit: 1) { ... on Runs { results { runId jobName status } } }
  repositoriesOrError { ... on RepositoryConnection { nodes { schedules { name }
    sensors { name } } } }
}
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _graphql(url: str, query: str) -> dict:
    request = urllib.request.Request(
        f"{url}/graphql",
        data=json.dumps({"query": query}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)["data"]


def _chromium(url: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        chromium_command(
            tmp_path / "chromium",
            "--window-size=1920,1200",
            "--virtual-time-budget=15000",
            *args,
            url,
        ),
        check=True,
        capture_output=True,
        timeout=90,
        text=True,
    )


@pytest.fixture(scope="module")
def webserver(tmp_path_factory):
    root = tmp_path_factory.mktemp("ui")
    home = root / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    cfg = load_config("quick").model_copy(update={"data_root": str(root / "data")})
    profile = root / "profile.yaml"
    profile.write_text(yaml.safe_dump(cfg.model_dump(mode="json")))
    generate_corpus(root / "data" / "landing" / "default", records=100, seed=5)
    job = build_definitions(cfg).resolve_job_def(DROP_JOB)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "DAGSTER_HOME": str(home), "SOVTUNE_PROFILE": str(profile)}
    with dg.DagsterInstance.from_config(str(home)) as instance:
        # the webserver starts (seconds of imports) while the run executes on the same storage
        server = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "dagster-webserver"),
                *("-h", "127.0.0.1", "-p", str(port), "-m", "pipelines.definitions"),
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=open(root / "webserver.log", "wb"),  # noqa: SIM115 — closed with the process
        )
        try:
            register_drops(instance, root / "data" / "landing")
            run = job.execute_in_process(
                instance=instance,
                partition_key="default",
                asset_selection=[dg.AssetKey("raw_corpus"), dg.AssetKey("raw_quarantine")],
                tags={"sovtune/launched_by": "test"},
            )
        except BaseException:
            server.terminate()
            raise
    try:
        assert run.success
        deadline = time.monotonic() + 120
        while True:
            assert server.poll() is None, (root / "webserver.log").read_text()[-2000:]
            try:
                with urllib.request.urlopen(f"{url}/server_info", timeout=2):
                    break
            except OSError:
                assert time.monotonic() < deadline, "webserver did not start in 120 s"
                time.sleep(0.5)
        yield {"url": url, "run_id": run.run_id}
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_when_the_ui_is_queried_then_every_asset_its_checks_and_the_latest_run_are_there(
    webserver,
):
    data = _graphql(webserver["url"], QUERY)
    nodes = {"/".join(n["assetKey"]["path"]): n for n in data["assetNodes"]}
    assert set(nodes) == ASSETS
    checks = {
        name: [c["name"] for c in n["assetChecksOrError"]["checks"]] for name, n in nodes.items()
    }
    assert "no_residual_pii" in checks["scrubbed_corpus"]
    assert "canary_exposure_bounded" in checks["privacy_audit"]
    assert sum(len(c) for c in checks.values()) >= 10
    [run] = data["runsOrError"]["results"]
    assert run == {"runId": webserver["run_id"], "jobName": DROP_JOB, "status": "SUCCESS"}
    [repo] = data["repositoriesOrError"]["nodes"]
    assert [s["name"] for s in repo["schedules"]] == ["weekly_retraining"]
    assert {"sovtune_automation", "data_drops", "steward_decisions"} <= {
        s["name"] for s in repo["sensors"]
    }


def test_when_the_asset_graph_is_opened_in_chromium_then_it_renders_and_is_kept(
    webserver, tmp_path
):
    data = _graphql(webserver["url"], "{ assetNodes { groupName } }")
    groups = sorted({node["groupName"] for node in data["assetNodes"]})
    assert groups == ["audit", "ingestion", "release", "screening", "scrubbing", "training"]
    # no first-visit dialog over the graph, and every stage's group drawn open
    _graphql(webserver["url"], "mutation { setNuxSeen }")
    # a group's node id in the UI's `expanded` URL state: global, or per code location
    expanded = ",".join(
        f"{scope}:{group}"
        for group in groups
        for scope in ("global@global", "__repository__@pipelines.definitions")
    )
    url = f"{webserver['url']}/asset-groups?expanded={expanded}"
    dom = _chromium(url, tmp_path, "--dump-dom").stdout
    # the graph draws its nodes with the asset names (an unrendered app shell has none); nodes
    # outside the viewport are not drawn, so the catalog below accounts for every asset
    drawn = {name for name in ASSETS if name in dom}
    assert len(drawn) >= 6, f"drawn: {sorted(drawn)}"
    assert all(f">{group}<" in dom for group in groups)
    catalog = _chromium(f"{webserver['url']}/assets", tmp_path, "--dump-dom").stdout
    assert {name for name in ASSETS if name in catalog} == ASSETS
    shot = tmp_path / "graph.png"
    _chromium(url, tmp_path, f"--screenshot={shot}")
    image = Image.open(shot).convert("RGB")
    assert image.size == (1920, 1200)
    # a rendered graph has many colours (nodes, edges, text); a blank or error page has few
    assert len(image.getcolors(maxcolors=1 << 24)) > 200
    run_page = _chromium(f"{webserver['url']}/runs/{webserver['run_id']}", tmp_path, "--dump-dom")
    assert "raw_corpus" in run_page.stdout
    if os.environ.get("SOVTUNE_UPDATE_SCREENSHOTS") == "1":
        shutil.copyfile(shot, SCREENSHOT)
