"""The `sovtune` command line on small files, and its error messages."""

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipelines.cli import app

runner = CliRunner()


def test_when_a_chat_file_is_scanned_then_each_record_gets_offsets_into_its_field(tmp_path):
    text = "Hi, I am John Smith, mail me at john.smith@example.com or call 212-555-0187."
    src = tmp_path / "in.jsonl"
    src.write_text(
        json.dumps(
            {
                "id": "r1",
                "messages": [
                    {"role": "user", "content": text},
                    {"role": "assistant", "content": "Noted."},
                ],
            }
        )
        + "\n"
        + json.dumps({"text": "Nothing personal here, just a printer question."})
        + "\n"
        + "{broken\n",
        encoding="utf-8",
    )
    out = tmp_path / "out.jsonl"
    result = runner.invoke(app, ["scan", str(src), "--out", str(out)])
    assert result.exit_code == 0, result.output
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert [x["id"] for x in lines] == ["r1", "in.jsonl:2", "in.jsonl:3"]
    found = {
        (f["field"], text[f["start"] : f["end"]], f["entity_type"]) for f in lines[0]["findings"]
    }
    assert ("messages[0].content", "john.smith@example.com", "EMAIL_ADDRESS") in found
    assert ("messages[0].content", "John Smith", "PERSON") in found
    assert lines[1]["findings"] == []
    assert lines[2]["error"] == "bad_json"
    # the dry run prints counts, never a value
    assert "john.smith" not in result.output


def test_when_a_csv_in_alpaca_form_is_scanned_then_the_field_is_the_column(tmp_path):
    src = tmp_path / "in.csv"
    src.write_text("instruction,output\nWrite to jane.doe@example.org,Done.\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    assert runner.invoke(app, ["scan", str(src), "--out", str(out)]).exit_code == 0
    [line] = [json.loads(x) for x in out.read_text().splitlines()]
    assert [f["field"] for f in line["findings"]] == ["instruction"]


def test_when_the_input_is_missing_then_the_message_names_it(tmp_path):
    result = runner.invoke(app, ["scan", str(tmp_path / "nope.jsonl"), "--out", "x.jsonl"])
    assert result.exit_code == 2
    assert "nope.jsonl is not a file" in result.output


def test_when_the_input_type_is_unsupported_then_the_message_lists_the_supported_ones(tmp_path):
    src = tmp_path / "notes.docx"
    src.write_bytes(b"PK")
    result = runner.invoke(app, ["scan", str(src), "--out", str(tmp_path / "o.jsonl")])
    assert result.exit_code == 2 and ".jsonl" in result.output


def test_when_the_demo_profile_is_broken_then_nothing_runs_and_the_setting_is_named(tmp_path):
    bad = tmp_path / "p.yaml"
    bad.write_text("data_root: " + str(tmp_path / "data") + "\ntraining:\n  target_delta: 2\n")
    result = runner.invoke(app, ["demo", "--profile", str(bad)])
    assert result.exit_code == 2
    assert "training.target_delta" in result.output and "p.yaml" in result.output
    assert not (tmp_path / "data").exists()


def test_when_a_record_is_in_a_script_without_a_pack_then_scan_refuses_it_with_its_patterns(
    tmp_path,
):
    # issue #15.3: refused (fail closed) but its e-mail is still reported
    text = "Пожалуйста, пишите мне на почту ivan@example.com или звоните мне завтра утром."
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps({"id": "ru", "text": text}) + "\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    result = runner.invoke(app, ["scan", str(src), "--out", str(out)])
    assert result.exit_code == 0, result.output
    [line] = [json.loads(x) for x in out.read_text().splitlines()]
    assert (line["error"], line["language"]) == ("unsupported_language", "ru")
    found = {(text[f["start"] : f["end"]], f["entity_type"]) for f in line["findings"]}
    assert found == {("ivan@example.com", "EMAIL_ADDRESS")}


def test_when_init_makes_a_profile_then_it_extends_default_and_has_its_own_landing_zone(tmp_path):
    from pipelines.steps.config import load_config

    result = runner.invoke(app, ["init", str(tmp_path / "acme")])
    assert result.exit_code == 0, result.output
    profile = tmp_path / "acme" / "profile.yaml"
    assert (tmp_path / "acme" / "landing").is_dir()
    cfg = load_config(str(profile))
    assert (cfg.profile, cfg.data_root) == ("acme", str(tmp_path / "acme"))
    assert cfg.training.steps == load_config("default").training.steps
    again = runner.invoke(app, ["init", str(tmp_path / "acme")])
    assert again.exit_code == 2 and "already exists" in again.output


def test_when_config_show_runs_then_the_effective_settings_and_their_files_are_printed(tmp_path):
    import yaml

    profile = tmp_path / "mine.yaml"
    profile.write_text("training:\n  steps: 7\n", encoding="utf-8")
    result = runner.invoke(app, ["config", "show", "--profile", str(profile)])
    assert result.exit_code == 0, result.output
    header, _, body = result.output.partition("\n")
    assert header.startswith("# profile mine: ") and header.endswith("default.yaml")
    shown = yaml.safe_load(body)
    assert shown["training"]["steps"] == 7
    assert shown["training"]["expected_batch_size"] == 32  # from default.yaml


def test_when_two_profiles_are_opened_then_their_dagster_homes_and_mlflow_stores_differ(
    tmp_path, monkeypatch
):
    monkeypatch.delenv("SOVTUNE_DATA_ROOT", raising=False)
    envs = {}
    for name in ("one", "two"):
        profile = tmp_path / f"{name}.yaml"
        profile.write_text(f"data_root: {tmp_path / name}\n", encoding="utf-8")
        result = runner.invoke(app, ["config", "env", "--profile", str(profile)])
        assert result.exit_code == 0, result.output
        envs[name] = dict(
            line.removeprefix("export ").split("=", 1) for line in result.output.splitlines()
        )
    assert envs["one"]["DAGSTER_HOME"] == str(tmp_path / "one" / "dagster_home")
    assert envs["one"]["SOVTUNE_MLFLOW_URI"].endswith(f"{tmp_path}/one/mlflow/mlflow.db")
    for key in ("DAGSTER_HOME", "SOVTUNE_MLFLOW_URI", "SOVTUNE_MLFLOW_ARTIFACTS"):
        assert envs["one"][key] != envs["two"][key]
    # a profile's own Dagster home is made with telemetry off, like the repository's
    text = (tmp_path / "one" / "dagster_home" / "dagster.yaml").read_text()
    assert "telemetry:\n  enabled: false" in text
    # the default profile keeps the repository's dagster_home/ (CI and the browser test use it)
    default = runner.invoke(app, ["config", "env", "--profile", "default"]).output
    assert "export DAGSTER_HOME=" + str(Path(__file__).resolve().parents[1] / "dagster_home") in (
        default.splitlines()
    )


def test_when_the_landing_zone_is_empty_then_run_says_where_to_put_data(tmp_path):
    profile = tmp_path / "p.yaml"
    profile.write_text(f"extends: quick\ndata_root: {tmp_path / 'root'}\n", encoding="utf-8")
    result = runner.invoke(app, ["run", "--profile", str(profile)])
    assert result.exit_code == 2
    assert f"the landing zone {tmp_path / 'root' / 'landing'} is empty" in result.output


def test_when_the_training_set_is_exported_then_llamafactory_files_are_written(tmp_path):
    from pipelines.steps.records import Message, Record, records_to_frame
    from pipelines.steps.storage import write_parquet

    records = [
        Record(
            "a1",
            "lf/x.json",
            1,
            "alpaca",
            (Message("user", "Say hi.", "instruction"), Message("assistant", "Hi.", "output")),
        ),
        Record("t1", "notes.jsonl", 1, "text", (Message("user", "A note.", "text"),)),
    ]
    profile = tmp_path / "p.yaml"
    profile.write_text(f"data_root: {tmp_path / 'root'}\n", encoding="utf-8")
    write_parquet(
        records_to_frame(records), tmp_path / "root" / "curated" / "curated_corpus.parquet"
    )
    out = tmp_path / "out"
    result = runner.invoke(
        app, ["export", "--format", "llamafactory", "--out", str(out), "--profile", str(profile)]
    )
    assert result.exit_code == 0, result.output
    assert "exported 2 of 2 records" in result.output
    info = json.loads((out / "dataset_info.json").read_text())
    assert set(info) == {"sovtune_alpaca", "sovtune_text"}
    [row] = json.loads((out / "sovtune_alpaca.json").read_text())
    assert (row["instruction"], row["output"]) == ("Say hi.", "Hi.")
    again = runner.invoke(app, ["export", "--out", str(out), "--profile", str(profile)])
    assert again.exit_code == 2 and "must be an empty folder" in again.output
    other = runner.invoke(app, ["export", "--format", "csv", "--out", str(tmp_path / "o")])
    assert other.exit_code == 2 and "unknown format" in other.output


@pytest.mark.parametrize(
    ("args", "env"),
    [(["PROFILE=mine.yaml"], {}), ([], {"SOVTUNE_PROFILE": "mine.yaml"})],
)
def test_when_make_ui_names_a_profile_either_way_then_every_ui_opens_that_profile(args, env):
    import os
    import shutil
    import subprocess

    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    root = Path(__file__).resolve().parents[1]
    dry = subprocess.run(
        ["make", "-n", "ui", *args],
        cwd=root,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    # the Dagster home and the MLflow store come from the profile (sovtune config env)
    assert "sovtune config env --profile 'mine.yaml'" in dry
    assert '--backend-store-uri "$SOVTUNE_MLFLOW_URI"' in dry
    assert dry.count("SOVTUNE_PROFILE=mine.yaml") == 2  # the review desk and Dagster


def test_when_a_profiles_dagster_home_is_made_then_its_ui_shows_no_telemetry_or_first_run_modal(
    tmp_path,
):
    import dagster as dg
    from dagster_graphql.schema.roots.query import GrapheneQuery

    profile = tmp_path / "p.yaml"
    profile.write_text(f"data_root: {tmp_path / 'root'}\n", encoding="utf-8")
    assert runner.invoke(app, ["config", "env", "--profile", str(profile)]).exit_code == 0
    # the repository's dagster_home/dagster.yaml (the default profile's), opened in a copy
    repository_home = tmp_path / "repository_home"
    repository_home.mkdir()
    (repository_home / "dagster.yaml").write_text(
        (Path(__file__).resolve().parents[1] / "dagster_home" / "dagster.yaml").read_text()
    )
    for home in (repository_home, tmp_path / "root" / "dagster_home"):
        with dg.DagsterInstance.from_config(str(home)) as instance:
            assert instance.telemetry_enabled is False
            # what the webserver serves as shouldShowNux (the community sign-up modal)
            context = type("Context", (), {"instance": instance})()
            info = type("Info", (), {"context": context})()
            assert GrapheneQuery.resolve_shouldShowNux(None, info) is False


def test_when_scan_writes_to_dash_then_findings_stream_on_stdout_and_the_summary_on_stderr(
    tmp_path,
):
    src = tmp_path / "in.jsonl"
    src.write_text(
        json.dumps({"id": "r1", "text": "Mail jane.doe@example.org about the invoice."}) + "\n",
        encoding="utf-8",
    )
    result = runner.invoke(app, ["scan", str(src), "--out", "-"])
    assert result.exit_code == 0, result.output
    [line] = [json.loads(x) for x in result.stdout.splitlines()]
    assert line["id"] == "r1" and line["findings"][0]["entity_type"] == "EMAIL_ADDRESS"
    assert "scanned 1 records" in result.stderr
    assert not (Path.cwd() / "-").exists()


def test_when_scan_previews_then_the_context_shows_types_never_values(tmp_path):
    text = "Please call John Smith at 212-555-0187 before the audit on Friday afternoon."
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps({"id": "r1", "text": text}) + "\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    result = runner.invoke(app, ["scan", str(src), "--out", str(out), "--preview"])
    assert result.exit_code == 0, result.output
    previews = [x for x in result.stderr.splitlines() if x.startswith("r1 text ")]
    assert any("PHONE_NUMBER: " in x and "[PHONE_NUMBER]" in x for x in previews)
    assert all("call [PERSON] at [PHONE_NUMBER] before" in x for x in previews)
    for value in ("212-555-0187", "John Smith"):
        assert value not in result.output
    assert "preview" not in out.read_text()  # the findings file is unchanged


def test_the_redacted_context_marks_every_finding_in_its_window():
    from pipelines.cli import redacted_context

    text = "a" * 50 + " Ann at 555-0100 " + "b" * 50
    person = {"start": 51, "end": 54, "entity_type": "PERSON"}
    phone = {"start": 58, "end": 66, "entity_type": "PHONE"}
    shown = redacted_context(text, 58, 66, [person, phone])
    assert shown.startswith("…") and shown.endswith("…")
    assert "[PERSON] at [PHONE]" in shown and "555" not in shown and "Ann" not in shown


def test_when_the_default_profile_runs_on_another_data_root_then_it_gets_its_own_dagster_home(
    tmp_path, monkeypatch
):
    monkeypatch.setenv("SOVTUNE_DATA_ROOT", str(tmp_path / "elsewhere"))
    out = runner.invoke(app, ["config", "env", "--profile", "default"]).output
    assert f"export DAGSTER_HOME={tmp_path / 'elsewhere' / 'dagster_home'}" in out.splitlines()


def test_every_command_and_option_has_help_in_one_style():
    """`sovtune --help` and each command's: a one-line summary ending in a full stop, and help
    on every option and argument (issue #20.5: consistent help text)."""
    import typer

    def walk(cmd, path):
        if hasattr(cmd, "commands"):
            for name, sub in cmd.commands.items():
                yield from walk(sub, [*path, name])
        else:
            yield " ".join(path), cmd

    commands = dict(walk(typer.main.get_command(app), []))
    assert {"run", "init", "export", "report", "scan", "config show", "config env"} <= set(commands)
    for name, cmd in commands.items():
        summary = (cmd.help or "").strip().splitlines()[0] if cmd.help else ""
        assert summary[:1].isupper() and summary.endswith("."), name
        assert all(getattr(p, "help", None) for p in cmd.params), name
        result = runner.invoke(app, [*name.split(), "--help"])
        assert result.exit_code == 0 and summary.split()[0] in result.output, name


def test_when_screen_writes_to_dash_then_decisions_stream_on_stdout(tmp_path):
    src = tmp_path / "in.jsonl"
    rows = [
        {
            "id": f"r{i}",
            "messages": [
                {"role": "user", "content": f"Question {i} about invoices?"},
                {"role": "assistant", "content": "Paid on Monday."},
            ],
        }
        for i in range(3)
    ]
    src.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    result = runner.invoke(app, ["screen", str(src), "--out", "-"])
    assert result.exit_code == 0, result.output
    lines = [json.loads(x) for x in result.stdout.splitlines()]
    assert sorted(x["id"] for x in lines) == ["r0", "r1", "r2"]
    assert not (Path.cwd() / "-").exists()
