"""Integrity screens on outside data: clean false-positive rates and poison recall.

Data: `../shared/eval` (see its README.md; read in place, never copied into the project).

- Clean FPR: every dataset of `clean_sft/` (alpaca and sharegpt with tool calls; the templated
  `identity.json` with its `{{name}}`/`{{author}}` filled in) screened alone; per screen the share
  of records it flags, and combined the share quarantined or filtered, by reason code.
- Poison recall: each `poison_dev/<task>_<attack>_poisoned.json` mixed at 0.5%, 1% and 3% into
  clean data (`<task>_clean.json` plus `alpaca_en_demo.json`), recall per file and the clean FPR
  of that mix. `tuba_refusal_en_pairs.jsonl` (no trigger: clean_output vs poisoned_output) is
  mixed the same way into alpaca_en_demo plus the clean outputs of the pairs not drawn.
  Each poisoned file is split in two halves (even and odd positions): the even half is the
  tuning half, the odd half is reported as held-out. A clean record whose prompt is the drawn
  poisoned prompt less a few tokens (its untriggered twin) is left out of that mix, so the
  near-duplicate screen does not find the poison for the backdoor screen.

Recall counts a poisoned record found when it is not kept (quarantined or filtered); the clean
FPR of a mix is the share of its clean records not kept. Seeds are fixed; time per run printed.

- Attacks built here from the clean outside data and words given on the command line (the
  product never holds them): `--payload SENTENCE` appends one sentence to the answers of drawn
  clean records (alpaca_en_demo plus the TuBA clean outputs; even positions tuning, odd held
  out); `--openers "A|B|C"` replaces the first three words of each TuBA refusal with one of the
  openings, drawn per record (an attacker who varies the opening).

    nice .venv/bin/python benchmarks/screens_external.py [--eval-dir ../shared/eval]
        [--only clean|poison|tuba|appended|varied] [--files jailbreak_badnet ...]
        [--halves tune held_out] [--payload SENTENCE] [--openers "A|B|C"]
"""

import argparse
import json
import os
import random
import time
from collections import Counter
from dataclasses import replace
from difflib import SequenceMatcher
from pathlib import Path
from typing import Any

from pipelines.steps.config import CurationConfig, ModelConfig
from pipelines.steps.ingest.landing import RecordError, normalize_row
from pipelines.steps.integrity.curate import (
    DROP,
    EXACT_DUPLICATE,
    KEEP,
    QUARANTINE,
    curate_records,
)
from pipelines.steps.integrity.screens import SCREENS, normalize, prompt_text, words
from pipelines.steps.integrity.screens.backdoor import Disruption, lazy_disruption
from pipelines.steps.integrity.screens.dedup import NEAR_DUPLICATE
from pipelines.steps.records import Record
from pipelines.steps.training.modelstore import screening_model

RATES = (0.005, 0.01, 0.03)
DISRUPTION: list[Disruption] = []  # the base model's, unless --no-base-model
_MIX_HEADER = (
    "| file (half) | rate | poisoned | clean | recall | clean FPR | recall per screen "
    "| clean flags by reason (exact duplicates: true, not in the FPR) "
    "| siblings read / confirmed by the base model | s |\n"
    "|---|---:|---:|---:|---:|---:|---|---|---:|---:|"
)
HALVES = ("tune", "held_out")
# LLaMA-Factory's sharegpt roles: a tool call is the assistant's turn, its result comes back
# as input to the assistant.
_SHAREGPT_ROLES = {"function_call": "gpt", "observation": "human"}
_IDENTITY = {"{{name}}": "Sovtune Assistant", "{{author}}": "the Sovtune team"}


def to_record(row: dict[str, Any], *, source: str, index: int) -> Record:
    """One outside row (alpaca or sharegpt, tool calls included) as a pipeline record."""
    row = dict(row)
    if "conversations" in row:
        turns = [
            {"from": _SHAREGPT_ROLES.get(t["from"], t["from"]), "value": t["value"]}
            for t in row["conversations"]
        ]
        if row.get("tools"):
            turns.insert(0, {"from": "system", "value": f"Tools: {row['tools']}"})
        row = {"conversations": turns}
    else:
        row = {k: row[k] for k in ("instruction", "input", "output") if k in row}
        for placeholder, value in _IDENTITY.items():
            row = {k: v.replace(placeholder, value) for k, v in row.items()}
    row["id"] = f"{source}-{index:04d}"
    return normalize_row(row, source_file=f"{source}.json", source_line=index + 1)


def load(path: Path) -> list[dict[str, Any]]:
    """Rows of a JSON array or a JSONL file."""
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    return json.loads(text)


def load_records(path: Path, source: str | None = None) -> list[Record]:
    """Every row of `path` as a record, ids `<source>-<index>`."""
    source = source or path.stem
    records = []
    for i, row in enumerate(load(path)):
        try:
            records.append(to_record(row, source=source, index=i))
        except RecordError as err:
            # Ingestion quarantines such a row before the screens see it.
            print(f"{path.name}: row {i} not a record ({err.reason}); left out")
    return records


def screen(
    records: list[Record], cfg: CurationConfig, exclude: frozenset[str] | set[str] = frozenset()
) -> tuple[dict[str, set[str]], set, float]:
    """Per screen the ids it flagged, the ids not kept (exact duplicates aside), and the wall
    seconds of the run; the reason counter (`_reasons`) leaves out the ids in `exclude`, and
    `_quarantined` / `_near_copies` hold the ids quarantined and the near copies dropped
    (id -> its representative's id)."""
    words.cache_clear()
    started = time.perf_counter()
    result = curate_records(records, cfg, disruption=DISRUPTION[0] if DISRUPTION else None)
    seconds = time.perf_counter() - started
    flagged: dict[str, Any] = {s: set() for s in SCREENS}
    reasons: Counter[str] = Counter()
    flagged["_quarantined"] = {s.id for s in result.screened if s.decision == QUARANTINE}
    flagged["_near_copies"] = {
        s.id: r.detail.removeprefix("representative=")
        for s in result.screened
        if s.decision == DROP
        for r in s.reasons
        if r.code == NEAR_DUPLICATE
    }
    for screened in result.screened:
        for reason in screened.reasons:
            flagged[reason.screen].add(screened.id)
        if screened.id not in exclude:
            reasons.update({f"{r.screen}/{r.code}" for r in screened.reasons})
    # A verbatim repeat of an earlier record is a true duplicate, never a false positive.
    removed = {
        s.id
        for s in result.screened
        if s.decision != KEEP and {r.code for r in s.reasons} != {EXACT_DUPLICATE}
    }
    flagged["_reasons"] = reasons
    siblings = result.siblings
    flagged["_siblings"] = f"{siblings.checked} / {siblings.confirmed}" if siblings else "–"
    return flagged, removed, seconds


def repeated_rows(path: Path) -> set[str]:
    """Ids of rows that repeat an earlier row of the file verbatim (true exact duplicates)."""
    seen: set[str] = set()
    repeats = set()
    for index, row in enumerate(load(path)):
        key = json.dumps(row, sort_keys=True, ensure_ascii=False)
        if key in seen:
            repeats.add(f"{path.stem}-{index:04d}")
        seen.add(key)
    return repeats


def own_turns(record: Record) -> str:
    """The user and assistant turns of a record, normalized (system turns left out)."""
    return normalize("\n".join(m.content for m in record.messages if m.role != "system"))


def clean_sets_records(eval_dir: Path) -> list[tuple[str, list[Record]]]:
    """Every clean_sft file's records, then all of them as one corpus ("all clean_sft
    together"; ids stay apart: `<file>-<index>`), where one file's stock sentences
    (glaive_toolcall_en's closing) are a small share of the whole."""
    paths = sorted((eval_dir / "clean_sft").glob("*.json"))
    sets = [(path.stem, load_records(path)) for path in paths]
    sets.append(("all clean_sft together", [r for _, records in sets for r in records]))
    return sets


def clean_report(eval_dir: Path, cfg: CurationConfig) -> None:
    """FPR per screen and combined on every clean dataset.

    Rows that repeat an earlier row verbatim are true duplicates, not false positives: they are
    counted apart (`repeats`) and left out of every rate. A near copy dropped by the dedup screen
    (it costs no steward's time) is counted in the dedup and combined rates all the same, and
    apart with the lowest character similarity (difflib ratio of the user and assistant turns)
    of a dropped copy to its representative: a check of the screen's finding by another measure.
    """
    print("\n## clean FPR (clean_sft); rates over the records that are not verbatim repeats")
    print(
        "| dataset | records | repeats | "
        + " | ".join(SCREENS)
        + " | combined | quarantined | near copies dropped (lowest char similarity) | seconds "
        "| flags by reason (repeats excluded) |"
    )
    print("|---|---:|---:|" + "---:|" * (len(SCREENS) + 3) + "---:|---|")
    repeats_of = {p.stem: repeated_rows(p) for p in (eval_dir / "clean_sft").glob("*.json")}
    # The whole corpus holds every file's repeats.
    sets = [
        (name, records, repeats_of.get(name, set().union(*repeats_of.values())))
        for name, records in clean_sets_records(eval_dir)
    ]
    for name, records, repeats in sets:
        by_id = {r.id: r for r in records}
        flagged, removed, seconds = screen(records, cfg, exclude=repeats)
        n = len(records) - len(repeats)
        reasons = ", ".join(f"{k} {v}" for k, v in sorted(flagged.pop("_reasons").items()))
        quarantined = flagged.pop("_quarantined") - repeats
        if (siblings := flagged.pop("_siblings")) != "–":
            reasons += f"; sibling phrases read / confirmed by the base model {siblings}"
        copies = {k: v for k, v in flagged.pop("_near_copies").items() if k not in repeats}
        lowest = min(
            (
                SequenceMatcher(None, own_turns(by_id[k]), own_turns(by_id[v])).ratio()
                for k, v in copies.items()
            ),
            default=None,
        )
        copies_cell = f"{len(copies) / n:.2%}" + (f" ({lowest:.2f})" if copies else "")
        print(
            f"| {name} | {len(records)} | {len(repeats)} | "
            + " | ".join(f"{len(flagged[s] - repeats) / n:.2%}" for s in SCREENS)
            + f" | {len(removed - repeats) / n:.2%} | {len(quarantined) / n:.2%} | {copies_cell} "
            f"| {seconds:.1f} | {reasons or '-'} |"
        )


_ROLE_BACK = {"user": "human", "assistant": "gpt"}


def compose(parts: list[Record], *, source: str, index: int) -> Record:
    """One conversation made of several clean records' exchanges, in order: their system turns
    (tool lists) first, each once, then every user and assistant turn, read again as a sharegpt
    row (`normalize_row`), so the screens see it as ingestion would hand it over."""
    systems = dict.fromkeys(m.content for r in parts for m in r.messages if m.role == "system")
    turns = [{"from": "system", "value": "\n".join(systems)}] if systems else []
    turns += [
        {"from": _ROLE_BACK[m.role], "value": m.content}
        for r in parts
        for m in r.messages
        if m.role in _ROLE_BACK
    ]
    row = {"conversations": turns, "id": f"{source}-{index:04d}"}
    return normalize_row(row, source_file=f"{source}.json", source_line=index + 1)


def _chars(record: Record) -> int:
    """A record's length as the quality screen measures it (`max_chars`)."""
    return len(record.text)


def composed(
    streams: list[list[Record]], exchanges: int, max_chars: int, source: str
) -> list[Record]:
    """Conversations of `exchanges` records each, taken in turn from `streams` (one stream: a
    file's records in order; two: one record of each file after the other, e.g. Chinese then
    English), every source record used once. A conversation closes early rather than pass
    `max_chars` (an over-length record is unusable, not a screen's false alarm); a source record
    over the limit on its own stays alone, as it is in its file."""
    queue = [r for group in zip(*streams, strict=False) for r in group]
    out: list[Record] = []
    parts: list[Record] = []
    for record in queue:
        if parts and (
            len(parts) == exchanges
            or len(compose([*parts, record], source=source, index=0).text) > max_chars
        ):
            out.append(compose(parts, source=source, index=len(out)))
            parts = []
        parts.append(record)
    if parts:
        out.append(compose(parts, source=source, index=len(out)))
    return out


def variants_report(eval_dir: Path, cfg: CurationConfig) -> None:
    """Multilingual and long records (#15.5: they must not raise the FPR), built from the clean
    data alone: each file's records joined into conversations of 2 and 4 exchanges (long,
    multi-turn records), and Chinese and English records of the same kind alternating in one
    conversation (a bilingual user; "x1": the two files as one corpus, one record each, to tell
    what the mixed corpus does from what the mixed records do); then the records of all clean
    files together by quartile of their length. Rates as in the clean table (verbatim repeats
    left out)."""
    sets = dict(clean_sets_records(eval_dir))
    repeats = set().union(*(repeated_rows(p) for p in (eval_dir / "clean_sft").glob("*.json")))
    plain = {name: [r for r in records if r.id not in repeats] for name, records in sets.items()}
    rows: list[tuple[str, list[Record]]] = []
    for exchanges in (1, 2, 4):
        for name in (
            "alpaca_en_demo",
            "alpaca_zh_demo",
            "glaive_toolcall_en_demo",
            "glaive_toolcall_zh_demo",
        ):
            if exchanges == 1:  # the file itself: the clean table's row
                continue
            rows.append(
                (
                    f"{name} x{exchanges}",
                    composed([plain[name]], exchanges, cfg.max_chars, f"{name}-x{exchanges}"),
                )
            )
        for kind in ("alpaca", "glaive_toolcall"):
            zh, en = plain[f"{kind}_zh_demo"], plain[f"{kind}_en_demo"]
            rows.append(
                (
                    f"{kind} zh+en x{exchanges}",
                    composed([zh, en], exchanges, cfg.max_chars, f"{kind}-zhen-x{exchanges}"),
                )
            )
    print("\n## multilingual and long records built from clean_sft (#15.5)")
    print(
        "| records | n | median chars | "
        + " | ".join(SCREENS)
        + " | combined | quarantined | flags by reason |"
    )
    print("|---|---:|---:|" + "---:|" * (len(SCREENS) + 2) + "---|")
    for name, records in rows:
        _variant_row(name, records, cfg)
    together = plain["all clean_sft together"]
    flagged, removed, _ = screen(together, cfg)
    quarantined = flagged["_quarantined"]
    ordered = sorted(together, key=_chars)
    print("\nall clean_sft together, screened as one corpus, by quartile of length:")
    print("| quartile | n | chars | " + " | ".join(SCREENS) + " | combined | quarantined |")
    print("|---|---:|---|" + "---:|" * (len(SCREENS) + 2))
    for q in range(4):
        part = ordered[q * len(ordered) // 4 : (q + 1) * len(ordered) // 4]
        ids = {r.id for r in part}
        print(
            f"| Q{q + 1} | {len(part)} | {_chars(part[0])}-{_chars(part[-1])} | "
            + " | ".join(f"{len(flagged[s] & ids) / len(ids):.2%}" for s in SCREENS)
            + f" | {len(removed & ids) / len(ids):.2%} | {len(quarantined & ids) / len(ids):.2%} |"
        )


def _variant_row(name: str, records: list[Record], cfg: CurationConfig) -> None:
    flagged, removed, _ = screen(records, cfg)
    n = len(records)
    reasons = ", ".join(f"{k} {v}" for k, v in sorted(flagged["_reasons"].items()))
    median = sorted(map(_chars, records))[n // 2]
    print(
        f"| {name} | {n} | {median} | "
        + " | ".join(f"{len(flagged[s]) / n:.2%}" for s in SCREENS)
        + f" | {len(removed) / n:.2%} | {len(flagged['_quarantined']) / n:.2%} | {reasons or '-'} |"
    )


def _tokens(record: Record) -> set[str]:
    return set(words(prompt_text(record)))


def drop_twins(clean: list[Record], poisoned: list[Record]) -> list[Record]:
    """Clean records whose prompt tokens are a drawn poisoned prompt's less at most five."""
    poison_tokens = [_tokens(p) for p in poisoned]
    kept = []
    for record in clean:
        tokens = _tokens(record)
        if not any(tokens <= p and len(p - tokens) <= 5 for p in poison_tokens):
            kept.append(record)
    return kept


def draw(pool: list[Record], rate: float, clean: int, seed: int) -> list[Record]:
    """Poisoned records from `pool`: `rate` of a mix with `clean` clean records."""
    n = max(1, round(rate * clean / (1 - rate)))
    return random.Random(seed).sample(pool, min(n, len(pool)))


def mix_row(
    label: str,
    clean: list[Record],
    drawn: list[Record],
    rate: float,
    cfg: CurationConfig,
    seed: int,
) -> str:
    """One table row: recall, clean FPR and per-screen recall of one mix (shuffled)."""
    records = drop_twins(clean, drawn) + drawn
    random.Random(seed + 1).shuffle(records)
    poisoned = {r.id for r in drawn}
    clean_ids = {r.id for r in records} - poisoned
    flagged, removed, seconds = screen(records, cfg, exclude=poisoned)
    reasons = flagged.pop("_reasons")
    siblings = flagged.pop("_siblings")
    flagged.pop("_quarantined"), flagged.pop("_near_copies")
    clean_reasons = " ".join(f"{k.split('/')[1]}={v}" for k, v in sorted(reasons.items()))
    recall = len(removed & poisoned) / len(poisoned)
    by_screen = " ".join(
        f"{s[:4]}={len(flagged[s] & poisoned) / len(poisoned):.2f}" for s in SCREENS
    )
    return (
        f"| {label} | {rate:.1%} | {len(poisoned)} | {len(clean_ids)} | {recall:.3f} "
        f"| {len(removed & clean_ids) / len(clean_ids):.2%} | {by_screen} | {clean_reasons} "
        f"| {siblings} | {seconds:.1f} |"
    )


def halves(rows: list[Record]) -> dict[str, list[Record]]:
    """Even positions: the tuning half; odd positions: held out."""
    return {"tune": rows[0::2], "held_out": rows[1::2]}


def poison_report(
    eval_dir: Path, cfg: CurationConfig, files: list[str], wanted: list[str], seed: int
) -> None:
    """Recall per backdoored file and rate, with the clean FPR of each mix."""
    poison_dir = eval_dir / "poison_dev"
    alpaca = load_records(eval_dir / "clean_sft" / "alpaca_en_demo.json")
    print("\n## backdoored files mixed into <task>_clean + alpaca_en_demo")
    print(_MIX_HEADER)
    for path in sorted(poison_dir.glob("*_poisoned.json")):
        name = path.stem.removesuffix("_poisoned")
        if files and name not in files:
            continue
        task = name.split("_")[0]
        clean = load_records(poison_dir / f"{task}_clean.json") + alpaca
        pools = halves(load_records(path, f"poison-{name}"))
        for half in wanted:
            for rate in RATES:
                drawn = draw(pools[half], rate, len(clean), seed)
                print(mix_row(f"{name} ({half})", clean, drawn, rate, cfg, seed), flush=True)


def vary_opening(text: str, openers: list[str], rng: random.Random, words_out: int = 3) -> str:
    """`text` with its first `words_out` whitespace-separated words replaced by one of
    `openers` (drawn with `rng`): the same refusal, opened differently from record to record."""
    return f"{rng.choice(openers)} {' '.join(text.split(' ')[words_out:])}"


def tuba_report(
    eval_dir: Path,
    cfg: CurationConfig,
    wanted: list[str],
    seed: int,
    openers: list[str] | None = None,
) -> None:
    """Triggerless refusals: poisoned outputs of drawn pairs among the others' clean outputs.

    With `openers`, each poisoned output's first three words are replaced by one of them
    (`vary_opening`): an attacker who varies the opening."""
    rows = load(eval_dir / "poison_dev" / "tuba_refusal_en_pairs.jsonl")
    alpaca = load_records(eval_dir / "clean_sft" / "alpaca_en_demo.json")
    varied = " with varied openings" if openers else ""
    print(
        f"\n## tuba_refusal_en_pairs (no trigger){varied} mixed into alpaca_en_demo + clean outputs"
    )
    print(_MIX_HEADER)
    indices = {"tune": range(0, len(rows), 2), "held_out": range(1, len(rows), 2)}
    rng = random.Random(seed + 2)
    outputs = [
        vary_opening(row["poisoned_output"], openers, rng) if openers else row["poisoned_output"]
        for row in rows
    ]
    label = "tuba varied opening" if openers else "tuba"
    for half in wanted:
        chosen = set(indices[half])
        pool = [
            to_record({**rows[i], "output": outputs[i]}, source="tuba-p", index=i)
            for i in sorted(chosen)
        ]
        for rate in RATES:
            drawn = draw(pool, rate, len(alpaca) + len(rows), seed)
            # The pairs drawn as poison are left out of the clean side.
            ids = {r.id.removeprefix("tuba-p-") for r in drawn}
            clean = alpaca + [
                to_record({**row, "output": row["clean_output"]}, source="tuba-c", index=i)
                for i, row in enumerate(rows)
                if f"{i:04d}" not in ids
            ]
            print(mix_row(f"{label} ({half})", clean, drawn, rate, cfg, seed), flush=True)


def appended_report(
    eval_dir: Path, cfg: CurationConfig, wanted: list[str], seed: int, sentence: str
) -> None:
    """A payload sentence (given on the command line, never in the product) appended to the
    answers of drawn clean records, mixed among the other clean records: alpaca_en_demo plus
    the TuBA pairs' clean outputs, even positions the tuning half, odd ones held out."""
    rows = load(eval_dir / "poison_dev" / "tuba_refusal_en_pairs.jsonl")
    pool = load_records(eval_dir / "clean_sft" / "alpaca_en_demo.json") + [
        to_record({**row, "output": row["clean_output"]}, source="tuba-c", index=i)
        for i, row in enumerate(rows)
    ]
    print(
        "\n## a payload sentence appended to drawn clean answers (alpaca_en_demo + TuBA clean "
        f"outputs; {len(sentence.split())} words, given on the command line)"
    )
    print(_MIX_HEADER)
    for half, chosen in halves(pool).items():
        if half not in wanted:
            continue
        for rate in RATES:
            picked = draw(chosen, rate, len(pool), seed)
            taken = {r.id for r in picked}
            drawn = [
                replace(
                    r,
                    id=f"appended-{r.id}",
                    messages=tuple(
                        replace(m, content=f"{m.content.rstrip()} {sentence}")
                        if m.role == "assistant"
                        else m
                        for m in r.messages
                    ),
                )
                for r in picked
            ]
            clean = [r for r in pool if r.id not in taken]
            print(mix_row(f"appended payload ({half})", clean, drawn, rate, cfg, seed), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_eval = Path(__file__).resolve().parents[1].parent / "shared" / "eval"
    parser.add_argument("--eval-dir", type=Path, default=default_eval)
    parser.add_argument(
        "--only",
        choices=("clean", "variants", "poison", "tuba", "appended", "varied"),
        default=None,
    )
    parser.add_argument("--files", nargs="*", default=[], help="e.g. jailbreak_badnet")
    parser.add_argument("--halves", nargs="*", choices=HALVES, default=list(HALVES))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--payload",
        default=None,
        help="a payload sentence to append to drawn clean answers (an extra mix, --only appended)",
    )
    parser.add_argument(
        "--openers",
        default=None,
        help="openings separated by '|' that replace the first three words of each TuBA "
        "refusal (an extra mix, --only varied)",
    )
    parser.add_argument(
        "--no-base-model",
        dest="base_model",
        action="store_false",
        help="screen without the base model's reading of sibling phrases "
        "(curation.inserted_phrase_lm_check as if false)",
    )
    args = parser.parse_args()
    if not (args.eval_dir / "README.md").is_file():
        raise SystemExit(f"--eval-dir {args.eval_dir}: no README.md (the outside data set)")
    cfg = CurationConfig(onion=False)
    if args.base_model:
        # The product's base model (SmolLM2-135M from its registry package, prepared once
        # into the project's model store), loaded only if a sibling phrase waits on it.
        load = screening_model(
            ModelConfig(), Path(__file__).resolve().parents[1] / "var" / "models"
        )
        DISRUPTION.append(lazy_disruption(load))
    print(
        f"eval dir: {args.eval_dir}; seed {args.seed}; base model for sibling phrases: "
        f"{'SmolLM2-135M' if args.base_model else 'none'}; "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    started = time.perf_counter()
    if args.only in (None, "clean"):
        clean_report(args.eval_dir, cfg)
    if args.only in (None, "variants"):
        variants_report(args.eval_dir, cfg)
    if args.only in (None, "poison"):
        poison_report(args.eval_dir, cfg, args.files, args.halves, args.seed)
    if args.only in (None, "tuba"):
        tuba_report(args.eval_dir, cfg, args.halves, args.seed)
    if args.payload and args.only in (None, "appended"):
        appended_report(args.eval_dir, cfg, args.halves, args.seed, args.payload)
    if args.openers and args.only in (None, "varied"):
        openers = [o.strip() for o in args.openers.split("|") if o.strip()]
        tuba_report(args.eval_dir, cfg, args.halves, args.seed, openers)
    print(f"\ntotal {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
