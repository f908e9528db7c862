"""The `sovtune` command line on small files, and its error messages."""

import json

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
