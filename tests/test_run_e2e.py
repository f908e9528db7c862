"""A newcomer's path through the CLI (issue #20's "Done when"), on the tiny in-process model.

A LLaMA-Factory dataset folder (alpaca and sharegpt entries, a system prompt, a multi-turn
conversation) is written here; `sovtune init DIR` makes the user's own profile (extends
default; the tiny model and the `test` profile's small audit set in it); `sovtune run` takes
the folder through every stage; `sovtune export` hands a LLaMA-Factory dataset back that our
reader reads again; the registered adapter loads with `PeftModel.from_pretrained` and
generates; `sovtune config env` (what `make ui` evaluates) names the profile's own Dagster
home and MLflow store, and the review desk opens its data root. Then the data root is moved
(`mv`) and `report`, `export` and `ids resolve` still work, and no stored output names the old
place. One pipeline run for the whole module.
"""

import json
import os
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipelines.cli import app
from tests.tiny_model import make_tiny_model_dir, synthetic_sentences

runner = CliRunner()
MODEL_NAME = "tiny-test"
SETTINGS = """
# the tiny in-process model and a small audit: settings only the `test` profile may use
profile: test
model: {{kind: hf, name: {name}, path: {path}}}
training: {{target_epsilon: 8.0, target_delta: 1.0e-5, accountant: rdp, expected_batch_size: 16,
  steps: 3, max_seq_len: 48, learning_rate: 0.01, noise_seed: 0}}
audit: {{candidates: 20, max_exposure_bits: 64.0, max_mia_auc: 1.0, mia_records: 16,
  extraction_probes: 2, backdoor_prompts: 0}}
"""


def test_stored_paths_are_relative_to_the_data_root_and_resolve_through_it(tmp_path):
    from pipelines.steps.storage import from_stored, portable, resolved, to_stored

    root = tmp_path / "root"
    assert to_stored(root / "curated" / "x.parquet", root) == "curated/x.parquet"
    assert to_stored((root / "mlflow" / "a").as_uri(), root) == "file:mlflow/a"
    assert to_stored(f"sqlite:///{root / 'mlflow.db'}", root) == "sqlite:mlflow.db"
    # outside the root (a user's own model) and remote URIs stay as they are
    assert to_stored("/models/mine", root) == "/models/mine"
    assert to_stored("http://mlflow:5000", root) == "http://mlflow:5000"
    moved = tmp_path / "moved"
    assert from_stored("curated/x.parquet", moved) == str(moved / "curated" / "x.parquet")
    assert from_stored("file:mlflow/a", moved) == (moved / "mlflow" / "a").as_uri()
    assert from_stored("sqlite:mlflow.db", moved) == f"sqlite:///{moved / 'mlflow.db'}"
    summary = {
        "path": str(root / "a.parquet"),
        "drops": [{"scrubbed_path": str(root / "s" / "b.parquet"), "drop": "d1"}],
        # a data source label is not a path, even when it looks like a file name
        "budget_ledger": [{"source": "file-0de9.json", "epsilon": 1.0}],
        "note": str(root / "kept as it is: not a path key"),
    }
    stored = portable(summary, root)
    assert stored["path"] == "a.parquet" and stored["drops"][0]["scrubbed_path"] == "s/b.parquet"
    assert stored["budget_ledger"] == summary["budget_ledger"]
    back = resolved(stored, moved)
    assert back["path"] == str(moved / "a.parquet")
    assert back["budget_ledger"][0]["source"] == "file-0de9.json"


def test_a_moved_mlflow_store_is_rebased_onto_the_artifacts_of_its_new_root(tmp_path):
    from mlflow import MlflowClient

    from pipelines.steps.release.registry_store import local_artifact_uri, rebase_artifacts

    old, new = tmp_path / "old", tmp_path / "new"
    (old / "mlflow").mkdir(parents=True)
    uri = f"sqlite:///{old / 'mlflow' / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    experiment = client.create_experiment(
        "e", artifact_location=(old / "mlflow" / "artifacts").as_uri()
    )
    run = client.create_run(experiment)
    client.create_registered_model("m")
    client.create_model_version("m", f"{run.info.artifact_uri}/model", run.info.run_id)
    db = old / "mlflow" / "mlflow.db"
    assert rebase_artifacts(db, old) == 0  # nothing moved: nothing written
    os.rename(old, new)
    db = new / "mlflow" / "mlflow.db"
    assert rebase_artifacts(db, new) == 4  # experiment, run, version source and storage
    with sqlite3.connect(db) as con:
        dump = "\n".join(con.iterdump())
    assert str(old) not in dump and (new / "mlflow" / "artifacts").as_uri() in dump
    assert local_artifact_uri("http://host/x/mlflow/artifacts/1", new).startswith("http://")


def write_llamafactory_folder(folder: Path) -> int:
    """A LLaMA-Factory `data/` folder: 60 alpaca records (system prompt, one with history) and
    30 two-turn sharegpt conversations (one with a system turn). Returns the record count."""
    s = synthetic_sentences(400, seed=7)
    alpaca = [
        {"instruction": s[i], "input": "", "output": s[i + 1], "system": "You answer tickets."}
        for i in range(0, 120, 2)
    ]
    alpaca[0]["history"] = [[s[390], s[391]]]
    sharegpt = [
        {"conversations": [{"from": f, "value": s[i + k]} for k, f in enumerate(TURNS)]}
        for i in range(200, 320, 4)
    ]
    sharegpt[0]["conversations"].insert(0, {"from": "system", "value": "Be brief."})
    folder.mkdir(parents=True)
    (folder / "tickets_alpaca.json").write_text(json.dumps(alpaca), encoding="utf-8")
    (folder / "chats_sharegpt.json").write_text(json.dumps(sharegpt), encoding="utf-8")
    info = {
        "tickets": {"file_name": "tickets_alpaca.json"},
        "chats": {"file_name": "chats_sharegpt.json", "formatting": "sharegpt"},
    }
    (folder / "dataset_info.json").write_text(json.dumps(info), encoding="utf-8")
    return len(alpaca) + len(sharegpt)


TURNS = ("human", "gpt", "human", "gpt")


def env_of(output: str) -> dict[str, str]:
    return dict(line.removeprefix("export ").split("=", 1) for line in output.splitlines())


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory):
    base = tmp_path_factory.mktemp("newcomer")
    model_dir = make_tiny_model_dir(base / "tiny")
    root = base / "acme"
    init = runner.invoke(app, ["init", str(root)])
    assert init.exit_code == 0, init.output
    profile = root / "profile.yaml"
    text = profile.read_text(encoding="utf-8").replace("profile: acme\n", "")
    profile.write_text(
        text + SETTINGS.format(name=MODEL_NAME, path=json.dumps(str(model_dir))), encoding="utf-8"
    )
    records = write_llamafactory_folder(root / "landing" / "lf_data")
    with pytest.MonkeyPatch.context() as mp:
        # the CLI sets DAGSTER_HOME to the profile's own; restore the environment afterwards
        mp.setenv("DAGSTER_HOME", "unset")
        mp.delenv("DAGSTER_HOME")
        mp.delenv("SOVTUNE_DATA_ROOT", raising=False)
        result = runner.invoke(app, ["run", "--profile", str(profile), "--json"])
    assert result.exit_code == 0, result.output[-3000:]
    summary = json.loads(result.stdout)
    return {
        "base": base,
        "root": root,
        "profile": profile,
        "model_dir": model_dir,
        "records": records,
        "summary": summary,
    }


def test_when_a_llamafactory_folder_runs_through_sovtune_run_then_a_model_is_registered(world):
    s = world["summary"]
    assert s["success"] and s["command"] == "run" and s["profile"] == "test"
    assert s["drops"] == ["lf_data"] and not s["corpus_generated"]
    assert s["records_in"] == world["records"]
    assert s["accepted"] + s["quarantined"] == world["records"]
    assert s["model_name"] == "sovtune-dp-lora" and s["model_version"] == "1"
    assert Path(s["report"]).is_file() and Path(s["report"]).is_relative_to(world["root"])


def test_when_the_run_is_exported_then_a_llamafactory_dataset_reads_back_the_same(world, tmp_path):
    from pipelines.steps.ingest.landing import ingest_landing
    from pipelines.steps.records import frame_to_records
    from pipelines.steps.storage import read_parquet

    out = tmp_path / "landing" / "governed"
    args = ["export", "--format", "llamafactory", "--out", str(out)]
    result = runner.invoke(app, [*args, "--profile", str(world["profile"])])
    assert result.exit_code == 0, result.output
    info = json.loads((out / "dataset_info.json").read_text(encoding="utf-8"))
    assert set(info) == {"sovtune_alpaca", "sovtune_sharegpt"}
    assert info["sovtune_sharegpt"]["formatting"] == "sharegpt"
    for entry in info.values():
        assert (out / entry["file_name"]).is_file() and not Path(entry["file_name"]).is_absolute()
    trained = frame_to_records(read_parquet(world["root"] / "curated" / "curated_corpus.parquet"))
    back = ingest_landing(out.parent, languages=["en"], max_record_chars=20_000)
    assert not back.quarantined and len(back.accepted) == len(trained)

    def turns(records):
        return sorted(tuple((m.role, m.content) for m in r.messages) for r in records)

    assert turns(back.accepted) == turns(trained)
    # the system prompt and the multi-turn conversation came back with their roles
    assert any(r.messages[0].role == "system" for r in back.accepted)
    assert any(sum(m.role == "assistant" for m in r.messages) == 2 for r in back.accepted)


def test_the_registered_adapter_loads_with_peft_and_names_its_base_model_portably(world, tmp_path):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from pipelines.definitions import build_resources
    from pipelines.steps.config import load_config

    registry = build_resources(load_config(str(world["profile"])))["registry"]
    bundle = registry.download("1", tmp_path / "bundle")
    adapter = bundle / "adapter"
    config = json.loads((adapter / "adapter_config.json").read_text(encoding="utf-8"))
    # what LLaMA-Factory (adapter_name_or_path) and vLLM (LoRARequest) read
    assert config["peft_type"] == "LORA" and config["task_type"] == "CAUSAL_LM"
    assert config["target_modules"] == ["q_proj", "v_proj"] and config["r"] >= 1
    assert not config.get("modules_to_save") and not config.get("use_dora")
    # the base model by name, not this machine's folder; its hash is on the MLflow version
    assert config["base_model_name_or_path"] == MODEL_NAME
    version = registry.client.get_model_version(registry.model_name, "1")
    assert version.tags["sovtune.base_model"] == MODEL_NAME
    manifest_sha = _manifest_sha(world["root"] / "models" / MODEL_NAME)
    assert version.tags["sovtune.fingerprint.base_model"] == manifest_sha

    tokenizer = AutoTokenizer.from_pretrained(bundle / "tokenizer")
    base = AutoModelForCausalLM.from_pretrained(world["model_dir"], dtype=torch.float32)
    model = PeftModel.from_pretrained(base, adapter, is_trainable=False).eval()
    prompt = tokenizer("Which desk handles ticket 3?", return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**prompt, max_new_tokens=4, do_sample=False)
    assert out.shape[1] == prompt["input_ids"].shape[1] + 4


def _manifest_sha(folder: Path) -> str:
    from pipelines.steps.storage import sha256_file
    from pipelines.steps.training.modelstore import MANIFEST_NAME

    return sha256_file(folder / MANIFEST_NAME)


def test_the_profiles_uis_open_its_own_dagster_home_mlflow_store_and_desk(world, monkeypatch):
    import dagster as dg
    from fastapi.testclient import TestClient

    from pipelines.desk.app import DeskSettings, create_app
    from pipelines.steps.config import load_config

    monkeypatch.delenv("SOVTUNE_DATA_ROOT", raising=False)
    root, profile = world["root"], str(world["profile"])
    result = runner.invoke(app, ["config", "env", "--profile", profile])
    assert result.exit_code == 0, result.output
    env = env_of(result.output)
    assert env["SOVTUNE_PROFILE"] == profile  # what `make ui` gives the desk and Dagster
    assert env["DAGSTER_HOME"] == str(root / "dagster_home")
    assert env["SOVTUNE_MLFLOW_URI"] == f"sqlite:///{root / 'mlflow' / 'mlflow.db'}"
    # the runs of `sovtune run` are in that Dagster home, the version in that MLflow store
    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        run_ids = {r.run_id for r in instance.get_runs()}
    assert world["summary"]["dagster_run_id"] in run_ids
    assert set(world["summary"]["drop_run_ids"]) <= run_ids
    db = Path(env["SOVTUNE_MLFLOW_URI"].removeprefix("sqlite:///"))
    with sqlite3.connect(db) as con:
        assert con.execute("SELECT count(*) FROM model_versions").fetchone() == (1,)
    # the desk (`python -m pipelines.desk`, SOVTUNE_PROFILE) reads that profile's data root
    cfg = load_config(profile)
    desk = create_app(DeskSettings(data_root=Path(cfg.data_root).resolve(), curation=cfg.curation))
    page = TestClient(desk, base_url="http://127.0.0.1").get("/")
    assert page.status_code == 200 and "lf_data" in page.text


# --- last: the data root is moved ---------------------------------------------------------


@pytest.fixture(scope="module")
def moved(world):
    old = world["root"]
    new = world["base"] / "moved-root"
    os.rename(old, new)
    return old, new


def _stored_files(root: Path):
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.is_symlink() and path.name != "profile.yaml":
            yield path


def test_when_the_data_root_is_moved_then_report_export_and_ids_still_work(
    world, moved, monkeypatch, tmp_path
):
    from pipelines.steps.records import frame_to_records
    from pipelines.steps.storage import read_parquet

    old, new = moved
    monkeypatch.setenv("SOVTUNE_DATA_ROOT", str(new))
    profile = str(new / "profile.yaml")
    env = env_of(runner.invoke(app, ["config", "env", "--profile", profile]).output)
    assert env["DAGSTER_HOME"] == str(new / "dagster_home")

    report = runner.invoke(app, ["report", "sovtune-dp-lora:1", "--profile", profile])
    assert report.exit_code == 0, report.output
    [html] = [Path(x.split()[-1]) for x in report.output.splitlines() if "report (HTML)" in x]
    assert html == new / "reports" / "sovtune-dp-lora" / "v1" / "report.html" and html.is_file()
    [artifacts] = [x.split()[-1] for x in report.output.splitlines() if "MLflow artifacts" in x]
    assert artifacts.startswith((new / "mlflow" / "artifacts").as_uri())
    assert Path(artifacts.removeprefix("file://")).is_dir()

    out = tmp_path / "export"
    exported = runner.invoke(app, ["export", "--out", str(out), "--profile", profile])
    assert exported.exit_code == 0, exported.output
    assert (out / "dataset_info.json").is_file()

    record = frame_to_records(read_parquet(new / "curated" / "curated_corpus.parquet"))[0]
    resolved = runner.invoke(app, ["ids", "resolve", record.id, "--profile", profile])
    assert resolved.exit_code == 0, resolved.output


def test_when_the_data_root_is_moved_then_no_stored_output_names_the_old_place(world, moved):
    import dagster as dg
    import pyarrow.parquet as pq

    old, new = moved
    needle = str(old).encode()
    found = []
    for path in _stored_files(new):
        if needle in path.read_bytes():
            found.append(str(path.relative_to(new)))
        if path.suffix == ".parquet":  # compressed pages: read the string columns
            table = pq.read_table(path)
            for name in table.column_names:
                if any(str(old) in str(v) for v in table.column(name).to_pylist() if v):
                    found.append(f"{path.relative_to(new)}:{name}")
    # config env (above) pointed MLflow's absolute artifact locations at the new root; every
    # other stored path (Dagster metadata and pickles, summaries, tags, the adapter's config,
    # reports, lineage) is relative to the data root
    assert found == []
    # Dagster's `path` metadata resolves under the new root
    with dg.DagsterInstance.from_config(str(new / "dagster_home")) as instance:
        event = instance.get_latest_materialization_event(dg.AssetKey("dp_lora_adapter"))
    path = event.asset_materialization.metadata["path"].value
    assert not Path(path).is_absolute() and (new / path).exists()
