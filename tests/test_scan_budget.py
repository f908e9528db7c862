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

import gc
import json
import random
import time

import pytest
from presidio_analyzer import AnalyzerEngine
from typer.testing import CliRunner

from pipelines.cli import app
from pipelines.steps.config import ConfigError, PIIConfig, load_config
from pipelines.steps.privacy import pii
from pipelines.steps.privacy.normalize import normalize
from pipelines.steps.privacy.recognizers.base import ScanTimeout
from pipelines.steps.privacy.recognizers.cn_lac import lac_tokens
from pipelines.steps.privacy.recognizers.cn_names import _block_tags, posseg
from pipelines.steps.privacy.recognizers.nlp_engine import chunks
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


class _CountingNlp:
    """spaCy's English pipeline, counting and timing the calls that run NER (one per chunk)."""

    def __init__(self, nlp) -> None:
        self.nlp = nlp
        self.seconds: list[float] = []

    def __call__(self, text):
        started = time.perf_counter()
        try:
            return self.nlp(text)
        finally:
            self.seconds.append(time.perf_counter() - started)

    def __getattr__(self, name):
        return getattr(self.nlp, name)


def test_when_ner_alone_runs_past_the_budget_then_it_stops_within_one_chunk_of_it(analyzer):
    budget = 0.5  # the tokenizer's pass over the whole text comes first, within it
    cfg = CFG.model_copy(update={"scan_budget_seconds": budget})
    text = f"Contact {SECRET_NAME}. " + LONG_PROSE * 6  # 120 kB: NER alone is seconds
    engine = analyzer.nlp_engine
    counting = _CountingNlp(engine.nlp["en"])
    engine.nlp["en"] = counting
    try:
        result = pii.scrub_records([_record("slow", text)], analyzer, cfg, key=KEY)
    finally:
        engine.nlp["en"] = counting.nlp
    assert result.timed_out == ("slow",) and result.records == []
    # The deadline is checked before each chunk: every chunk but the last began in budget,
    # and the rest of the text was never read.
    assert 0 < len(counting.seconds) < len(chunks(text))
    assert sum(counting.seconds[:-1]) <= budget


def test_a_long_text_read_in_chunks_gets_the_entities_of_a_whole_reading(analyzer):
    sentences = [
        f"{first} {last} met the board in {city} on Monday, and the minutes were filed. "
        for first, last, city in zip(
            ["Maria", "John", "Akira", "Fatima", "Pierre"] * 12,
            ["Garcia", "Smith", "Tanaka", "Haddad", "Dubois"] * 12,
            ["Paris", "Chicago", "Osaka", "Cairo", "Lisbon", "Denver"] * 10,
            strict=True,
        )
    ]
    text = "".join(sentences)
    assert len(chunks(text)) > 2
    nlp = analyzer.nlp_engine.nlp["en"]
    whole = {(e.start_char, e.end_char) for e in nlp(text).ents}
    parts = analyzer.nlp_engine.process_long(text, "en").entities
    found = [(e.start_char, e.end_char) for e in parts]
    assert len(found) == len(set(found))  # an entity in two chunks' overlap is kept once
    assert len(set(found) & whole) >= 0.95 * len(whole)


def test_a_long_digit_run_read_in_windows_gives_every_phone_once(analyzer):
    phones = [f"212-555-{1000 + i:04d}" for i in range(400)]  # one run of 5,000 characters
    text = "Numbers:\n" + "\n".join(phones)
    [recognizer] = [r for r in analyzer.registry.recognizers if r.name == "IntlPhoneRecognizer_en"]
    found = sorted((r.start, r.end) for r in recognizer.analyze(text, CFG.entities, None))
    expected = []
    position = text.index(phones[0])
    for phone in phones:
        expected.append((position, position + len(phone)))
        position += len(phone) + 1
    assert found == expected


# --- 1. every recognizer is linear --------------------------------------------------------

LATIN_UNITS = (
    ".", "a.", "www.", "-", "a-", "A-", "a'", "1 ", "1-", "+1 ", "@", "a@a.", " ",
    "John Smith, ", "ab, ", "12 Main St ", "Mr. ", "A. ", "(1) ", "key: ", "pw '", "a@a.a / ",
    "user a:b1c2 ", "ID #-", "account number is: ", " @a-", "//@a:", "nine ",
    "AB/CD ", "username=a1 ", "Patient: Ab, Cd ",
)  # fmt: skip
"""Repeated units of the adversarial inputs (benchmarks/scan_adversarial.py has more)."""
HAN_UNITS = (
    "的",
    "王",
    "王先生说",
    "王伟，男，",
    "王伟，王先生，",
    "姓名：王伟",
    "建设路1号院2号楼，",
    "令狐",
    "道1号1-1-1",
    "Cindy 刘",
)
SMALL, LARGE = 10_000, 100_000
HAN_SMALL, HAN_LARGE = 500, 5_000
"""Han inputs are shorter: LAC, the Chinese pack's NER model, costs about 0.05-0.1 ms per
character on ordinary text too (the benchmark compares it with Chinese prose)."""
MAX_GROWTH = 12.0
"""Cost of the large input over the small one, 10 times longer: 10 is linear."""
SLACK = 0.08
"""Seconds added to the allowed cost (8 ms per 10 kB at 100 kB, far under the issue's 100):
a 10 kB input stays in the CPU's caches and can cost a few milliseconds less than a tenth of
100 kB, and a loaded machine adds noise; a quadratic recognizer is seconds over."""
CEILING = 10.0
"""Seconds one recognizer may take on the large input, however loaded the machine."""


def _repeat(unit: str, size: int) -> str:
    return (unit * (size // len(unit) + 1))[:size]


def _seconds(function, *args, repeat: int = 1) -> float:
    """Best time of `repeat` calls, caches cleared, the garbage collector paused: a full
    collection over the loaded models costs tens of milliseconds whatever the text."""
    best = float("inf")
    for _ in range(repeat):
        lac_tokens.cache_clear()
        posseg.cache_clear()
        _block_tags.cache_clear()
        gc.disable()
        try:
            started = time.perf_counter()
            function(*args)
            best = min(best, time.perf_counter() - started)
        finally:
            gc.enable()
    return best


@pytest.fixture
def frozen_heap():
    """Move every object alive now into the collector's permanent generation for the test: after
    a whole suite the heap holds millions of objects (models of earlier tests), and each
    collection the timing loop triggers would otherwise walk all of them (hours in all)."""
    gc.collect()
    gc.freeze()
    yield
    gc.unfreeze()


def _too_slow(label: str, function, texts, artifacts, sizes: tuple[int, int]) -> str | None:
    """A message when the large input costs more than linear growth allows, or None.

    A pair over the bound is measured again, twice (best of three and of two, then of four and
    of three): a busy machine can stall one call, not every one (the phone matcher on "1 1 1
    ..." took 474-768 ms at 100 kB in three runs back to back, 46 ms at 10 kB, and failed a
    fresh-clone run with two attempts).
    """
    growth_allowed = MAX_GROWTH * (sizes[1] / sizes[0]) / 10
    small = large = 0.0
    for attempt in range(3):
        small = _seconds(function, texts[0], *artifacts[0], repeat=2 + attempt)
        large = _seconds(function, texts[1], *artifacts[1], repeat=1 + attempt)
        if large <= CEILING and large <= growth_allowed * small + SLACK:
            return None
    return f"{label}: {small * 1000:.1f} ms -> {large * 1000:.1f} ms"


def test_every_recognizer_is_linear_on_adversarial_latin_input(analyzer, frozen_heap):
    rng = random.Random(5)
    units = [*LATIN_UNITS, "".join(rng.choice("a.-@1 /:_'A") for _ in range(97))]
    slow = []
    for unit in units:
        texts = [_repeat(unit, size) for size in (SMALL, LARGE)]
        artifacts = [analyzer.nlp_engine.tokens_only(text, "en") for text in texts]
        arguments = [(CFG.entities, artifact) for artifact in artifacts]
        for recognizer in analyzer.registry.recognizers:
            if recognizer.supported_language == "en":
                label = f"{recognizer.name} on {unit!r}"
                slow.append(_too_slow(label, recognizer.analyze, texts, arguments, (SMALL, LARGE)))
        label = f"normalize on {unit!r}"
        slow.append(_too_slow(label, normalize, texts, [(), ()], (SMALL, LARGE)))
    slow = [s for s in slow if s]
    assert not slow, "\n".join(slow)


def test_every_chinese_recognizer_is_linear_on_han_runs(analyzer, frozen_heap):
    rng = random.Random(5)
    rare = "".join(chr(rng.randrange(0x4E00, 0x9FA5)) for _ in range(HAN_LARGE))
    inputs = [[_repeat(unit, size) for size in (HAN_SMALL, HAN_LARGE)] for unit in HAN_UNITS]
    inputs.append([rare[:HAN_SMALL], rare])
    # one run, then one colon: a pattern that reads a label as any run before a colon reads
    # the run again from each of its characters
    inputs.append([rare[: HAN_SMALL - 1] + "：", rare[: HAN_LARGE - 1] + "："])
    slow = []
    for texts in inputs:
        unit = texts[0][:4]
        artifacts = [analyzer.nlp_engine.tokens_only(text, "zh") for text in texts]
        arguments = [(CFG.entities, artifact) for artifact in artifacts]
        for recognizer in analyzer.registry.recognizers:
            if recognizer.supported_language == "zh":
                label = f"{recognizer.name} on {unit!r}"
                sizes = (HAN_SMALL, HAN_LARGE)
                slow.append(_too_slow(label, recognizer.analyze, texts, arguments, sizes))
    slow = [s for s in slow if s]
    assert not slow, "\n".join(slow)


def test_when_the_scrub_asset_meets_a_record_over_the_budget_then_it_is_quarantined_in_raw(
    tmp_path,
):
    import dagster as dg

    from assets.scrubbed import scrubbed_corpus
    from pipelines.steps.records import frame_to_records, records_to_frame
    from pipelines.steps.storage import read_parquet, write_parquet
    from resources import CorpusStorage, DataEngine, PIIEngine

    storage = CorpusStorage(data_root=str(tmp_path / "data"))
    engine = PIIEngine(
        key_file=str(tmp_path / "data" / "secrets" / "pseudonym.key"),
        scan_budget_seconds=TINY_BUDGET,
    )
    raw = storage.drop_dir(storage.raw, "d1") / "raw_corpus.parquet"
    slow = _record("slow", f"{SECRET_NAME} " + LONG_PROSE)
    write_parquet(records_to_frame([_record("ok", f"Call {SECRET_NAME}."), slow]), raw)
    out = scrubbed_corpus(
        context=dg.build_asset_context(partition_key="d1"),
        raw_corpus={"drop": "d1", "drop_sha256": "x", "path": str(raw)},
        storage=storage,
        pii=engine,
        execution=DataEngine(),
    )
    # records in (2) = passed on (1) + quarantined (1), with its reason; nothing else lost
    assert (out["records"], out["quarantined"]) == (1, 1)
    assert out["quarantine_by_reason"] == {"scan_timeout": 1}
    assert [r.id for r in frame_to_records(read_parquet(out["path"]))] == ["ok"]
    quarantine = read_parquet(storage.drop_dir(storage.raw, "d1") / "scan_quarantine.parquet")
    assert quarantine[["id", "reason"]].values.tolist() == [["slow", "scan_timeout"]]
    assert SECRET_NAME not in quarantine["detail"][0]
    assert SECRET_NAME not in read_parquet(out["path"]).to_json()  # the unscanned text stays raw
