"""A single record cannot burn the CPU (issue #16.3).

1. Every recognizer is linear on adversarial input (runs of dots, hyphens, digits, at signs,
   spaces, repeated names, Han characters, long words): the cost of 100 kB is at most about
   twelve times the cost of 10 kB, and under a generous absolute ceiling. Measured as a ratio
   in the same process, so a loaded machine slows both sides alike; the issue's figure
   (100 ms per 10 kB) is printed by `benchmarks/scan_adversarial.py`.
2. A record whose scan runs past `pii.scan_budget_seconds` is quarantined as `scan_timeout`
   (the scrub, `sovtune scan`, the residual gate), never passed on unscanned, and no text of
   it reaches the reason.
"""

import json
import time

import pytest
from presidio_analyzer import AnalyzerEngine
from typer.testing import CliRunner

from pipelines.cli import app
from pipelines.steps.config import ConfigError, PIIConfig, load_config
from pipelines.steps.privacy import pii
from pipelines.steps.privacy.recognizers.base import ScanTimeout
from pipelines.steps.records import Message, Record

CFG = PIIConfig()
KEY = b"scan-budget-test-key-0123456789abcdef"
LONG_PROSE = (
    "Please forward the signed contract to the regional office before the end of the month, "
    "and keep a copy of the invoice for the auditors. "
) * 150  # about 20,000 characters: spaCy alone takes longer than the tiny budget below
TINY_BUDGET = 0.25
SECRET_NAME = "Wilhelmina Quackenbush"


@pytest.fixture(scope="module")
def analyzer() -> AnalyzerEngine:
    return pii.build_analyzer(CFG)


def _record(record_id: str, text: str) -> Record:
    messages = (Message(role="user", content=text, field="text"),)
    return Record(record_id, "t.jsonl", 1, "alpaca", messages, language="en")


def test_when_a_record_runs_past_the_budget_then_the_scrub_quarantines_it_and_passes_the_rest(
    analyzer,
):
    cfg = CFG.model_copy(update={"scan_budget_seconds": TINY_BUDGET})
    slow = _record("slow", f"Contact {SECRET_NAME}. " + LONG_PROSE)
    fast = [_record(f"ok-{i}", f"Call {SECRET_NAME} at 212-555-01{i:02d}.") for i in range(3)]
    result = pii.scrub_records([fast[0], slow, *fast[1:]], analyzer, cfg, key=KEY)
    assert result.timed_out == ("slow",)  # an id: no text of the record
    assert [r.id for r in result.records] == ["ok-0", "ok-1", "ok-2"]  # conserved: 3 + 1 = 4
    assert all(SECRET_NAME not in r.text for r in result.records)  # the others are scrubbed


def test_when_no_budget_is_exceeded_then_nothing_is_quarantined(analyzer):
    slow = _record("slow", f"Contact {SECRET_NAME}. " + LONG_PROSE)
    result = pii.scrub_records([slow], analyzer, CFG, key=KEY)
    assert result.timed_out == () and len(result.records) == 1


def test_when_the_residual_rescan_runs_past_the_budget_then_the_gate_counts_it(analyzer):
    cfg = CFG.model_copy(update={"scan_budget_seconds": TINY_BUDGET})
    counts = pii.residual_pii([_record("slow", LONG_PROSE)], analyzer, cfg)
    assert counts == {pii.RESIDUAL_TIMEOUT: 1}  # the gate fails: not re-read is not clean


def test_when_a_text_runs_past_the_budget_then_scan_text_raises_rather_than_returning_nothing(
    analyzer,
):
    cfg = CFG.model_copy(update={"scan_budget_seconds": TINY_BUDGET})
    with pytest.raises(ScanTimeout) as err:
        pii.scan_text(analyzer, f"{SECRET_NAME} " + LONG_PROSE, cfg)
    assert SECRET_NAME not in str(err.value)
    with pytest.raises(ScanTimeout):
        pii.scan_records([_record("slow", LONG_PROSE)], analyzer, cfg)  # no set: raises


def test_when_scan_meets_a_record_over_the_budget_then_it_is_refused_as_scan_timeout(tmp_path):
    src = tmp_path / "in.jsonl"
    rows = [
        {"id": "a", "text": f"Mail {SECRET_NAME} at wq@example.com"},
        {"id": "slow", "text": f"{SECRET_NAME} " + LONG_PROSE},
        {"id": "b", "text": "Call 212-555-0101"},
    ]
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    profile = tmp_path / "p.yaml"
    profile.write_text(f"pii:\n  scan_budget_seconds: {TINY_BUDGET}\n")
    out = tmp_path / "out.jsonl"
    result = CliRunner().invoke(
        app, ["scan", str(src), "--out", str(out), "--profile", str(profile)]
    )
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [x["id"] for x in lines] == ["a", "slow", "b"]  # one line per record
    assert lines[1] == {"id": "slow", "findings": [], "error": "scan_timeout"}
    assert "error" not in lines[0] and lines[0]["findings"]
    assert "error" not in lines[2] and lines[2]["findings"]
    assert "scan_timeout" in result.output and SECRET_NAME not in out.read_text()


@pytest.mark.parametrize("value", [0, -1, 60, 600])
def test_when_the_budget_is_out_of_range_then_the_setting_is_named(tmp_path, value):
    path = tmp_path / "p.yaml"
    path.write_text(f"pii:\n  scan_budget_seconds: {value}\n")
    with pytest.raises(ConfigError, match="pii.scan_budget_seconds"):
        load_config(str(path))


def test_the_deadline_is_checked_between_recognizers(analyzer):
    # Every recognizer of the registry is wrapped: a deadline already past stops the first one.
    from pipelines.steps.privacy.recognizers.base import scan_deadline

    recognizer = analyzer.registry.recognizers[0]
    started = time.perf_counter()
    with scan_deadline(-1.0), pytest.raises(ScanTimeout):
        recognizer.analyze("text", CFG.entities, None)
    assert time.perf_counter() - started < 1.0
