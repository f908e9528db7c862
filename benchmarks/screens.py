"""Integrity screens against ground truth: poison recall, clean false-positive rate, near-duplicate
recall, and records/s per screen.

Data: the bundled corpus (`generate_corpus`, its own backdoor: a tag and a shell-command answer)
and the second poisoned set (`pipelines.steps.synthetic.poison`: rare word, fixed sentence,
syntactic frame)
at 0.5%, 1% and 3%. "Clean" records are neither poisoned, nor part of a planted duplicate group,
nor template twins (`poison.template_twin_groups`: the same template sentences with other filled
values, which the generator does not label); the dedup FPR with template twins counted as clean
is printed too. Throughput is measured in this process against the old first pass
(`screen_records`: length bounds and exact duplicates) as the baseline; each timing is the best of
`--repeat` runs, printed with the 1-minute load average when it started (the machine is shared).

    .venv/bin/python benchmarks/screens.py [--records 2000] [--seed 7] [--repeat 3]
"""

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path

from pipelines.steps.config import CurationConfig
from pipelines.steps.ingest.landing import ingest_landing
from pipelines.steps.integrity.curate import KEEP, curate_records, screen_records
from pipelines.steps.integrity.screens import (
    SCREENS,
    backdoor,
    injection,
    payload,
    quality,
    words,
)
from pipelines.steps.integrity.screens.dedup import score_near_duplicates
from pipelines.steps.records import Record
from pipelines.steps.synthetic.corpus import generate_corpus
from pipelines.steps.synthetic.poison import RATES, STYLES, poison_records, template_twin_groups

POISON_SCREENS = ("backdoor", "injection", "quality")


def evaluate(
    name: str,
    records: list[Record],
    poisoned: set[str],
    near_groups: tuple[tuple[str, ...], ...],
    exact_groups: tuple[tuple[str, ...], ...],
    twin_groups: tuple[tuple[str, ...], ...],
    cfg: CurationConfig,
) -> dict:
    """Recall and clean FPR per screen and combined for one data set."""
    result = curate_records(records, cfg)
    planted_dups = {i for g in near_groups + exact_groups for i in g}
    twins = {i for g in twin_groups for i in g}
    clean = {r.id for r in records} - poisoned - planted_dups - twins
    clean_with_twins = {r.id for r in records} - poisoned - planted_dups
    screens_of = {s.id: {r.screen for r in s.reasons} for s in result.screened}
    removed = {s.id for s in result.screened if s.decision != KEEP}
    row = {"set": name, "records": len(records), "poisoned": len(poisoned)}
    for screen in SCREENS:
        hit = {i for i, found in screens_of.items() if screen in found}
        row[f"{screen}_recall"] = len(hit & poisoned) / len(poisoned) if poisoned else None
        row[f"{screen}_fpr"] = len(hit & clean) / len(clean)
        if screen == "dedup":
            row["dedup_fpr_twins_clean"] = len(hit & clean_with_twins) / len(clean_with_twins)
    poison_hit = {i for i, found in screens_of.items() if found & set(POISON_SCREENS)}
    row["combined_recall"] = len(poison_hit & poisoned) / len(poisoned)
    row["combined_fpr"] = len(poison_hit & clean) / len(clean)
    row["all_recall"] = len(removed & poisoned) / len(poisoned)
    row["all_fpr"] = len(removed & clean) / len(clean)
    row["missed"] = sorted(poisoned - removed)
    row["near_dup_recall"] = _group_recall(near_groups, removed)
    row["exact_dup_recall"] = _group_recall(exact_groups, removed)
    row["twin_recall"] = _group_recall(twin_groups, removed)
    row["twins"] = len(twins)
    row["quarantine_rate"] = result.counts()["quarantined"] / len(records)
    return row


def _group_recall(groups: tuple[tuple[str, ...], ...], removed: set[str]) -> float:
    """Share of groups of which all but one member is removed."""
    if not groups:
        return float("nan")
    found = sum(1 for g in groups if sum(1 for i in g if i in removed) >= len(g) - 1)
    return found / len(groups)


def best_of(repeat: int, call) -> tuple[float, float, float]:
    """Fastest wall time, this process's CPU time and child processes' CPU time, in seconds.

    CPU times are printed too: on a shared machine wall time also measures the neighbours'
    load. With the near-duplicate screen in a child process, this process's CPU time is the
    stage's critical path on two otherwise idle cores.
    """
    wall, cpu, children = [], [], []
    for _ in range(repeat):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started, started_cpu = time.perf_counter(), time.process_time()
        call()
        wall.append(time.perf_counter() - started)
        cpu.append(time.process_time() - started_cpu)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        children.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    best = min(range(repeat), key=lambda i: wall[i])
    return wall[best], cpu[best], children[best]


def throughput(
    records: list[Record], cfg: CurationConfig, repeat: int
) -> dict[str, tuple[float, float, float, float]]:
    """Records per wall second and per CPU second of the old first pass, each screen alone,
    and the whole stage (in one process, and as configured: a second process from
    `curation.parallel_min_records` records on), each with the load average when it started."""
    n = len(records)
    one_process = cfg.model_copy(update={"parallel_min_records": 0})
    timings = {
        "baseline: screen_records (length + exact)": lambda: screen_records(records, cfg),
        "dedup (MinHash LSH + exact Jaccard)": lambda: score_near_duplicates(
            records,
            threshold=cfg.near_duplicate_threshold,
            num_perm=cfg.minhash_permutations,
            shingle_size=cfg.shingle_words,
        ),
        "backdoor (response clusters)": lambda: backdoor.score_backdoor(
            records,
            threshold=cfg.response_similarity,
            num_perm=cfg.minhash_permutations,
            min_cluster=cfg.min_trigger_cluster,
        ),
        "repeated payload (answer segments)": lambda: payload.score_repeated_payloads(
            records,
            opening_words=payload.OPENING_WORDS,
            min_records=payload.MIN_RECORDS,
            max_share=payload.MAX_SHARE,
        ),
        "injection": lambda: injection.score_injection(records),
        "quality": lambda: quality.score_quality(records),
        "whole stage, one process (ONION off)": lambda: curate_records(records, one_process),
        "whole stage, as configured (ONION off)": lambda: curate_records(records, cfg),
    }
    out = {}
    for label, call in timings.items():
        load = os.getloadavg()[0]
        # The token cache is cleared before every call: no screen gains from an earlier one.
        wall, cpu, children = best_of(repeat, lambda call=call: (words.cache_clear(), call()))
        out[label] = (n / wall, n / cpu, (cpu + children) / n * 1000, load)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    cfg = CurationConfig(onion=False)
    with tempfile.TemporaryDirectory() as tmp:
        truth = generate_corpus(Path(tmp), records=args.records, seed=args.seed)
        records = ingest_landing(Path(tmp), languages=["en", "zh"], max_record_chars=20_000)
    base = records.accepted
    rows = [
        evaluate(
            "bundled (tag + shell answer)",
            base,
            set(truth.poisoned_ids),
            truth.near_duplicate_groups,
            truth.exact_duplicate_groups,
            template_twin_groups(base, truth, exclude=frozenset(truth.poisoned_ids)),
            cfg,
        )
    ]
    for style in STYLES:
        for rate in RATES:
            poisoned = poison_records(base, truth, style=style, rate=rate)
            rows.append(
                evaluate(
                    f"{style} @ {rate:.1%}",
                    poisoned.records,
                    set(poisoned.poisoned_ids),
                    poisoned.near_duplicate_groups,
                    poisoned.exact_duplicate_groups,
                    poisoned.template_twin_groups,
                    cfg,
                )
            )
    print(f"records={args.records} seed={args.seed} (ingested: {len(base)})")
    print(
        f"curation: near_duplicate_threshold={cfg.near_duplicate_threshold} "
        f"shingle_words={cfg.shingle_words} minhash_permutations={cfg.minhash_permutations} "
        f"onion={cfg.onion}"
    )
    print(f"load average at start: {_load()}")
    header = (
        "| set | poisoned | backdoor R / FPR | injection R / FPR | quality R / FPR | "
        "dedup FPR | dedup FPR, twins as clean | combined R / FPR | all screens R / FPR | "
        "near-dup R | twin R (twins) | quarantined |"
    )
    print(header)
    print("|---|---:|---|---|---|---:|---:|---|---|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['set']} | {r['poisoned']} | "
            + " | ".join(f"{r[f'{s}_recall']:.3f} / {r[f'{s}_fpr']:.2%}" for s in POISON_SCREENS)
            + f" | {r['dedup_fpr']:.2%} | {r['dedup_fpr_twins_clean']:.2%}"
            f" | {r['combined_recall']:.3f} / {r['combined_fpr']:.2%}"
            f" | {r['all_recall']:.3f} / {r['all_fpr']:.2%} | {r['near_dup_recall']:.3f}"
            f" | {r['twin_recall']:.3f} ({r['twins']}) | {r['quarantine_rate']:.2%} |"
        )
    misses = {r["set"]: r["missed"] for r in rows if r["missed"]}
    print(f"missed poisoned records: {misses or 'none'}")
    print(f"exact-duplicate recall (bundled): {rows[0]['exact_dup_recall']:.3f}")
    rates = throughput(base, cfg, args.repeat)
    baseline = rates["baseline: screen_records (length + exact)"][0]
    print(f"\nthroughput on {len(base)} records, best of {args.repeat}, {os.cpu_count()} cores")
    print(
        "| step | records/s (wall) | records per CPU-second of this process | "
        "CPU-s per 1,000 records (all processes) | wall x baseline | load avg (1 min) |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for label, (wall, cpu, total, load) in rates.items():
        print(
            f"| {label} | {wall:,.0f} | {cpu:,.0f} | {total:.3f} | {wall / baseline:.2f} "
            f"| {load:.2f} |"
        )
    print(f"load average at end: {_load()}")


def _load() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg()) + " (1, 5, 15 min)"


if __name__ == "__main__":
    main()
