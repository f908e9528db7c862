"""Inserted-phrase siblings on outside clean data: a second trigger in two prompts only.

A backdoor with several triggers at 1% may draw one of them into two prompts only: too little
evidence on its own (a clean corpus holds a few rare words in two prompts that pass every test
of `score_inserted_phrases`). Beside one phrase that stands on its own, such a sibling is kept
only when it split a collocation wherever it stands (`backdoor._splits_collocation`). This
measures what that test finds and what it costs, on attacks built here: two made-up words
(random letters, never in the product) inserted at random word positions of clean prompts, one
into `--standing` prompts and one into two others, in `alpaca_en_demo.json` plus a clean
`poison_dev/<task>_clean.json` (read in place from `../shared/eval`). Per setting of the test's
lift (`inf`: no sibling kept beside one phrase, the behaviour before; `0`: every sibling kept,
the fourth pass's rejected rule (1)), and at the shipped lift with the base model reading the
siblings as `curate_records` does (`backdoor.confirm_siblings`; `--no-base-model` leaves that
row out), in one process over the same draws:

- trials where the standing word was flagged (the sibling test applies only then),
- trials where both prompts of the two-prompt word were flagged too,
- clean records flagged over all trials (the words' own records left out).

    nice .venv/bin/python benchmarks/inserted_siblings.py [--trials 100] [--standing 6]
        [--clean refusal_clean jailbreak_clean] [--lifts inf,8,0]
"""

import argparse
import os
import random
import string
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from screens_external import load_records

from pipelines.steps.config import CurationConfig, ModelConfig
from pipelines.steps.integrity.screens import backdoor
from pipelines.steps.records import Record
from pipelines.steps.training.modelstore import screening_model

SHIPPED_LIFT = backdoor._SPLIT_LIFT


def with_word(record: Record, word: str, rng: random.Random) -> Record:
    """`record` with `word` inserted at a random word position of its user turns."""
    messages = []
    for message in record.messages:
        if message.role == "user":
            tokens = message.content.split(" ")
            tokens.insert(rng.randrange(len(tokens) + 1), word)
            message = replace(message, content=" ".join(tokens))
        messages.append(message)
    return replace(record, messages=tuple(messages))


def trial(
    base: list[Record],
    seed: int,
    standing: int,
    lifts: list[float],
    cfg: CurationConfig,
    disruption: backdoor.Disruption | None = None,
) -> dict[Any, tuple[bool, bool, int]]:
    """Per lift: standing word flagged, two-prompt word flagged, clean records flagged; with
    `disruption`, the same for the shipped lift with the base model reading the siblings
    (`backdoor.confirm_siblings`, as `curate_records` does), keyed `(lift, "base model")`."""
    rng = random.Random(seed)
    first, second = ("".join(rng.choice(string.ascii_lowercase) for _ in range(7)) for _ in "ab")
    chosen = rng.sample(range(len(base)), standing + 2)
    records = list(base)
    for n, index in enumerate(chosen):
        records[index] = with_word(records[index], first if n < standing else second, rng)
    stand = {records[i].id for i in chosen[:standing]}
    sibling = {records[i].id for i in chosen[standing:]}
    result = {}
    for lift in lifts:
        backdoor._SPLIT_LIFT = lift
        found = backdoor.score_inserted_phrases(
            records,
            min_records=cfg.inserted_phrase_min_records,
            max_share=cfg.inserted_phrase_max_share,
            max_collocation=cfg.inserted_phrase_max_collocation,
        )
        variants = [(lift, found)]
        if disruption is not None and lift == SHIPPED_LIFT:
            confirmed, _ = backdoor.confirm_siblings(
                records,
                found,
                disruption,
                max_siblings=cfg.inserted_phrase_lm_max_siblings,
            )
            variants.append(((lift, "base model"), confirmed))
        for key, phrases in variants:
            flagged = {r for r, s in phrases.score.items() if s >= cfg.inserted_phrase_threshold}
            result[key] = (stand <= flagged, sibling <= flagged, len(flagged - stand - sibling))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_eval = Path(__file__).resolve().parents[1].parent / "shared" / "eval"
    parser.add_argument("--eval-dir", type=Path, default=default_eval)
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--standing", type=int, default=6)
    parser.add_argument("--clean", nargs="*", default=["refusal_clean", "jailbreak_clean"])
    parser.add_argument("--lifts", default=f"inf,{backdoor._SPLIT_LIFT},0")
    parser.add_argument(
        "--no-base-model",
        dest="base_model",
        action="store_false",
        help="leave out the row of the shipped lift with the base model reading the siblings",
    )
    args = parser.parse_args()
    if not (args.eval_dir / "README.md").is_file():
        raise SystemExit(f"--eval-dir {args.eval_dir}: no README.md (the outside data set)")
    lifts = [float(x) for x in args.lifts.split(",")]
    cfg = CurationConfig(onion=False)
    shipped = backdoor._SPLIT_LIFT
    disruption = None
    if args.base_model:  # SmolLM2-135M, prepared once into the project's model store
        store = Path(__file__).resolve().parents[1] / "var" / "models"
        disruption = backdoor.lazy_disruption(screening_model(ModelConfig(), store))
    alpaca = load_records(args.eval_dir / "clean_sft" / "alpaca_en_demo.json")
    print(
        f"trials {args.trials}, standing word in {args.standing} prompts, sibling in 2; "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    print("| clean data | lift | standing found | sibling found beside it | clean flagged | s |")
    print("|---|---:|---:|---:|---:|---:|")
    try:
        for name in args.clean:
            base = alpaca + load_records(args.eval_dir / "poison_dev" / f"{name}.json")
            started = time.perf_counter()
            totals: dict[Any, list[int]] = {}
            for seed in range(args.trials):
                for key, (stand, sibling, clean) in trial(
                    base, seed, args.standing, lifts, cfg, disruption
                ).items():
                    counts = totals.setdefault(key, [0, 0, 0])
                    counts[0] += stand
                    counts[1] += stand and sibling
                    counts[2] += clean
            seconds = time.perf_counter() - started
            for key, (stand, sibling, clean) in totals.items():
                label = f"{key[0]:g} + base model" if isinstance(key, tuple) else f"{key:g}"
                print(
                    f"| alpaca_en_demo + {name} ({len(base)}) | {label} | {stand} | {sibling} "
                    f"| {clean} | {seconds:.0f} |"
                )
    finally:
        backdoor._SPLIT_LIFT = shipped


if __name__ == "__main__":
    main()
