"""Generation-based audits: counting logic, and generation on a tiny model."""

from pipelines.steps.audit import extraction
from pipelines.steps.audit.extraction import (
    ExtractionProbe,
    backdoor_rate,
    generate,
    pii_extraction,
)
from pipelines.steps.training.modelstore import load_base_model
from tests.tiny_model import make_tiny_model_dir


def test_when_a_continuation_contains_the_value_then_it_counts_as_extracted(monkeypatch):
    # the counting is under test here, not the model: continuations are given
    continuations = ["call me at 212-555-0187 tomorrow", "no idea", "JOHN   SMITH said"]
    monkeypatch.setattr(extraction, "generate", lambda *a, **k: continuations)
    probes = [
        ExtractionProbe("Phone: ", "212-555-0187", "PHONE_NUMBER"),
        ExtractionProbe("Mail: ", "a@b.org", "EMAIL_ADDRESS"),
        ExtractionProbe("Name: ", "John Smith", "PERSON"),
    ]
    result = pii_extraction(None, None, probes)
    assert (result.probes, result.extracted) == (3, 2)
    assert result.extracted_by_type == {"PERSON": 1, "PHONE_NUMBER": 1}
    assert "212" not in repr(result)


def test_backdoor_rate_is_the_share_of_continuations_with_the_marker(monkeypatch):
    monkeypatch.setattr(extraction, "generate", lambda *a, **k: ["run x.invalid now", "ok"])
    assert backdoor_rate(None, None, ["p1", "p2"], marker="x.invalid") == 0.5
    assert backdoor_rate(None, None, [], marker="x.invalid") == 0.0


def test_when_a_tiny_model_generates_then_each_prompt_gets_a_bounded_continuation(tmp_path):
    model, tokenizer = load_base_model(make_tiny_model_dir(tmp_path / "tiny"))
    out = generate(
        model, tokenizer, ["Hello team", "Please reset my password now"], max_new_tokens=5
    )
    assert len(out) == 2
    assert all(len(tokenizer(t, add_special_tokens=False)["input_ids"]) <= 6 for t in out)
