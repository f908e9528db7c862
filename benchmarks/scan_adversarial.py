"""Milliseconds per 10 kB of each PII recognizer on adversarial input, vs plain prose (#16.3).

Each recognizer of the built analyzer (Presidio's predefined ones we load and ours) reads
texts of 10, 50 and 100 thousand characters made of one repeated adversarial unit (runs of
dots, hyphens, digits, at signs, spaces, repeated names, long Latin words, `www.` ...; Han
inputs for the Chinese pack) and plain prose of the same length, in this process. Printed per
recognizer: the worst input's ms per 10 kB at each size, the growth 100 kB / 10 kB (10 is
linear) and the ratio to prose. The issue's target is 100 ms per 10 kB. spaCy's NER (not a
recognizer: it runs once per text before them) is printed apart, ours (read in chunks,
`PackNlpEngine.process_long`) beside bare spaCy (`nlp.pipe` of the same model with the same
components: what the hardware costs for that model, whatever we do around it).
Artifacts come from spaCy's tokenizer only (NER is timed separately), as in
`tests/test_scan_budget.py`, which asserts linearity on the same inputs at 10 and 100 kB.

    nice .venv/bin/python benchmarks/scan_adversarial.py [--sizes 10000,50000,100000]
        [--packs en,zh,spacy,findings] [--spacy-sizes 10000,50000]

`findings` (not in the default `--packs`) times the whole scan of one text (`pii.scan_text`,
spaCy and every recognizer, then the engine's merging of overlaps and its context words) on
texts of many findings, a table's worth of identifiers and of names at the `--findings-sizes`:
the recognizers may each be linear while what combines their results is not (Presidio's
context enhancer walked the text's tokens once per result).
"""

import argparse
import gc
import json
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipelines.steps.offline import enforce_offline  # noqa: E402

ADVERSARIAL_UNITS = (
    ".", "a.", "www.", "-", "a-", "A-", "a'", "1", "1 ", "1-", "1.", "+1 ", "(1) ", "@", "a@",
    "a@a.", " ", "\n", "a", "A", "John ", "John Smith, ", "Mr. ", "ab, ", "Abc ", "a at ",
    "12 Main St ", "key: ", "a=", "a/", "x_", "ab12", "Ab-", "A. ", "password is ", "pw '",
    "a@a.a / ", "user a:b1c2 ", "ID #-", "account number is: ", " @a-", "//@a:",
)  # fmt: skip
"""Repeated units of the Latin-script adversarial inputs."""
HAN_UNITS = ("的", "王", "王先生说", "北京市海淀区", "张三和李四、", "王伟，男，", "王伟，王先生，")
"""Repeated units of the Han inputs (the Chinese pack's LAC-based recognizers)."""
PROSE = (
    "Please forward the signed contract to the regional office before the end of the month. "
    "The committee met on Tuesday to review the budget, and most members agreed with it. "
)
HAN_PROSE = "委员会周二开会审议了预算，大多数成员表示同意。请在月底前把合同寄到地区办公室。"


def adversarial_texts(size: int) -> dict[str, str]:
    """Name -> text of `size` characters, one per adversarial unit, plus the prose baseline."""
    texts = {repr(unit): (unit * (size // len(unit) + 1))[:size] for unit in ADVERSARIAL_UNITS}
    rng = random.Random(7)
    texts["random ascii"] = "".join(rng.choice("a.-@1 /:_'A") for _ in range(size))
    return texts


def han_texts(size: int) -> dict[str, str]:
    return {repr(unit): (unit * (size // len(unit) + 1))[:size] for unit in HAN_UNITS}


EVAL_ZH = Path(__file__).resolve().parents[2] / "shared" / "eval" / "pii_zh_dev.jsonl"
"""Outside Chinese sentences (CLUENER, read in place, never copied): a baseline that does not
repeat, so no cache of repeated sentences makes it look cheap."""


def prose(size: int, han: bool = False) -> str:
    if han and EVAL_ZH.is_file():
        lines = EVAL_ZH.read_text(encoding="utf-8").splitlines()
        text = "".join(json.loads(line)["text"] for line in lines)
        if len(text) >= size:
            return text[:size]
    unit = HAN_PROSE if han else PROSE
    return (unit * (size // len(unit) + 1))[:size]


CLOCK = [time.process_time]
"""What a cost is measured with: this process's CPU time (default: the other jobs on shared
cores do not count; every step measured is single-threaded Python or spaCy on one thread) or
wall time (`--clock wall`)."""


def time_recognizer(recognizer, text: str, entities: list[str], artifacts) -> float:
    """Seconds of one `analyze` call (the Chinese pack's LAC and jieba caches cleared first: no
    free second read of a text another recognizer already tagged)."""
    from pipelines.steps.privacy.recognizers.cn_lac import lac_tokens
    from pipelines.steps.privacy.recognizers.cn_names import _block_tags, posseg

    lac_tokens.cache_clear()
    posseg.cache_clear()
    _block_tags.cache_clear()
    gc.disable()  # a full collection over the loaded models is not the recognizer's cost
    try:
        started = CLOCK[0]()
        recognizer.analyze(text, entities, artifacts)
        return CLOCK[0]() - started
    finally:
        gc.enable()


def _spacy_rows(engine, spacy_model: str, sizes: list[int]) -> None:
    """spaCy NER per 10 kB: bare (`nlp.pipe` of the model with only the components we use, the
    hardware's floor) and ours (`process_long`: chunks, a deadline check between them), on
    prose and on every adversarial input, one call each, in turns."""
    import spacy

    from pipelines.steps.privacy.recognizers.nlp_engine import EXCLUDED_PIPES

    bare = spacy.load(spacy_model, exclude=EXCLUDED_PIPES)
    print(f"\n[spaCy NER, en] ms per 10 kB; bare: {spacy_model} {bare.pipe_names} nlp.pipe")
    columns = ("bare prose", "ours prose", "bare worst", "ours worst")
    print(f"{'chars':>7} " + " ".join(f"{c:>11}" for c in columns))
    for size in sizes:
        timings: dict[str, dict[str, float]] = {"bare": {}, "ours": {}}
        for name, text in [("prose", prose(size)), *adversarial_texts(size).items()]:
            for who, run in (
                ("bare", lambda t: list(bare.pipe([t], batch_size=1))),
                ("ours", lambda t: engine.process_long(t, "en")),
            ):
                gc.disable()
                try:
                    started = CLOCK[0]()
                    run(text)
                    timings[who][name] = (CLOCK[0]() - started) * 1000 * 10_000 / size
                finally:
                    gc.enable()
        worst = {
            who: max((v, k) for k, v in row.items() if k != "prose") for who, row in timings.items()
        }
        print(
            f"{size:>7} {timings['bare']['prose']:11.1f} {timings['ours']['prose']:11.1f} "
            f"{worst['bare'][0]:11.1f} {worst['ours'][0]:11.1f}  worst: bare {worst['bare'][1]}, "
            f"ours {worst['ours'][1]}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,50000,100000")
    parser.add_argument("--packs", default="en,zh,spacy", help="what to measure")
    parser.add_argument(
        "--han-sizes", default="2000,10000,20000", help="characters of the Han inputs"
    )
    parser.add_argument(
        "--spacy-sizes", default="10000,50000", help="characters of spaCy's inputs (slow)"
    )
    parser.add_argument(
        "--findings-sizes",
        default="22000,44000,88000",
        help="characters of the many-findings texts",
    )
    parser.add_argument("--clock", choices=("cpu", "wall"), default="cpu")
    args = parser.parse_args()
    CLOCK[0] = time.process_time if args.clock == "cpu" else time.perf_counter
    print(f"clock: {args.clock} time")
    enforce_offline()
    from pipelines.steps.config import PIIConfig
    from pipelines.steps.privacy import pii

    cfg = PIIConfig()
    analyzer = pii.build_analyzer(cfg)
    engine = analyzer.nlp_engine
    packs = args.packs.split(",")
    for language, sizes, make, baseline in (
        ("en", [int(s) for s in args.sizes.split(",")], adversarial_texts, prose),
        ("zh", [int(s) for s in args.han_sizes.split(",")], han_texts, prose),
    ):
        if language not in packs:
            continue
        recognizers = [r for r in analyzer.registry.recognizers if r.supported_language == language]
        rows: dict[str, dict] = {}
        for size in sizes:
            texts = make(size)
            plain = baseline(size, han=language == "zh")
            for name, text in [("prose", plain), *texts.items()]:
                artifacts = engine.tokens_only(text, language)
                for recognizer in recognizers:
                    seconds = time_recognizer(recognizer, text, cfg.entities, artifacts)
                    per_10k = seconds * 1000 * 10_000 / size
                    row = rows.setdefault(recognizer.name, {})
                    if name == "prose":
                        row.setdefault("prose", {})[size] = per_10k
                    else:
                        worst = row.setdefault("worst", {})
                        if per_10k > worst.get(size, (0.0, ""))[0]:
                            worst[size] = (per_10k, name)
        unit = "10 kB" if language == "en" else "10 k Han chars"
        print(f"\n[{language}] ms per {unit}, worst adversarial input; sizes {sizes}")
        print(
            f"{'recognizer':34} " + " ".join(f"{s:>9}" for s in sizes) + "  growth  vs prose  worst"
        )
        for name, row in sorted(rows.items()):
            worst = row["worst"]
            values = [worst[s][0] for s in sizes]
            growth = (values[-1] * sizes[-1]) / max(values[0] * sizes[0], 1e-9)
            vs_prose = values[-1] / max(row["prose"][sizes[-1]], 1e-3)
            print(
                f"{name:34} "
                + " ".join(f"{v:9.1f}" for v in values)
                + f"  {growth:6.1f}  {vs_prose:8.1f}  {worst[sizes[-1]][1]}"
            )
    if "findings" in packs:
        _findings_rows(analyzer, [int(s) for s in args.findings_sizes.split(",")])
    if "spacy" not in packs:
        return 0
    _spacy_rows(engine, cfg.spacy_model, [int(s) for s in args.spacy_sizes.split(",")])
    return 0


FINDING_UNITS = {
    "keyed ids": "licence ID AB-{n:07d} ",
    "names and phones": "Call Maria Lopez on 212-555-{m:04d}. ",
}
"""Units of the many-findings texts: each holds one or two findings."""


def _findings_rows(analyzer, sizes: list[int]) -> None:
    """Seconds of one whole `scan_text` per text of many findings, at each size, and the growth
    from the smallest to the largest against the growth in length (equal: linear)."""
    from pipelines.steps.config import PIIConfig
    from pipelines.steps.privacy import pii

    cfg = PIIConfig(scan_budget_seconds=59.0)  # the largest texts may take longer than 5 s
    print(f"\n[findings] seconds of one whole scan; sizes {sizes} characters")
    print(f"{'text':20} " + " ".join(f"{s:>9}" for s in sizes) + "  growth  length growth")
    for name, unit in FINDING_UNITS.items():
        seconds = []
        for size in sizes:
            text, n = "", 0
            while len(text) < size:
                text += unit.format(n=n, m=n % 10_000)
                n += 1
            started = CLOCK[0]()
            findings = pii.scan_text(analyzer, text, cfg)
            seconds.append(CLOCK[0]() - started)
            gc.collect()
        growth = seconds[-1] / max(seconds[0], 1e-9)
        print(
            f"{name:20} "
            + " ".join(f"{v:9.2f}" for v in seconds)
            + f"  {growth:6.1f}  {sizes[-1] / sizes[0]:6.1f}   ({len(findings)} findings)"
        )


if __name__ == "__main__":
    raise SystemExit(main())
