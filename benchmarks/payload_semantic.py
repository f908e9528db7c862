"""Payload screen, a measured experiment: answers grouped by meaning, not by shared words.

Issue #15.5 (triggerless poisoning): LLM-written refusals whose opening is varied from record to
record share no run of words past their opening, so the payload screen's segment keys
(`screens.payload`) find no group at 1%. This script measures what grouping the answers by
their words' meaning would give, and what it would cost in clean records, before anything is
built into the screen. It is not part of the product.

The model tried: each answer is a TF-IDF vector (log-scaled term frequency, smoothed IDF over
the answers) of its word tokens that its own prompt does not hold (the topic words an answer
takes from its prompt are left out: what is left is what it says about them), for answers with
at least `--min-tokens` such tokens. Records whose answers have at least `k` others at cosine
>= `tau` are dense; dense records joined by such a cosine form a group, with every record
within `tau` of one of them (DBSCAN on cosine, by sparse products in row blocks). A member
whose cosine with the rest of its group's summed vector is below `trim` is left out. Each group
of 8 or more records (at most 5% of them) then meets the payload screen's own prompt test
(`payload._mean_pairwise_cosine` against the corpus's, score >= `payload.THRESHOLD`), and a
record is flagged when its group is, or when the current screen flags it.

Two variants (issue #15.5, fourth pass), each a setting's option:
- `skeleton/` before a setting: an answer is the TF-IDF vector of its word trigrams with its own
  prompt's words masked (its phrasing, not its topic: "here is _ _ that"), for answers with
  at least 8 such trigrams; with `:split` after it, a group larger than 5% is grouped again at
  a cosine 0.05 higher, up to 0.5 (a hierarchy of densities, as HDBSCAN keeps).
- a fourth field `rel` of a setting: a member whose answer follows from its own instruction
  (TF-IDF cosine of the answer with its prompt, one vocabulary and IDF for both, >= `rel`) is
  left out of its group: an injected answer need not follow from its instruction, a natural
  refusal restates what it cannot do.

Mixes (the same as `screens_external.py --openers`): each TuBA refusal with its first three
words replaced by one of the given openings, drawn per record, mixed at 0.5%, 1% and 3% into
alpaca_en_demo plus the pairs' other clean outputs; even pairs the tuning half, odd ones held
out. Clean: every clean_sft file alone and all of them as one corpus. Printed per setting:
recall, clean records flagged (of the mix) with the current screen alone beside, and the CPU
seconds of the grouping per 1,000 records.

    nice -n 10 .venv/bin/python benchmarks/payload_semantic.py --openers "A|B|C"
        [--settings 0.25:7:0,0.25:7:0:0.2,skeleton/0.2:3:0:0:split] [--min-tokens 10]
        [--halves tune held_out] [--eval-dir ../shared/eval] [--bundled 20000]

A setting is `[words|skeleton/]tau:k:trim[:rel[:split]]` (words: the answer tokens its prompt
does not hold, as before; rel 0: no relevance test).
"""

import argparse
import math
import os
import random
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

# The sibling benchmark's loaders (run as a script: benchmarks/ is no package).
sys.path.insert(0, str(Path(__file__).resolve().parent))
from screens_external import (  # noqa: E402
    RATES,
    clean_sets_records,
    draw,
    drop_twins,
    load,
    load_records,
    to_record,
    vary_opening,
)

from pipelines.steps.ingest.landing import ingest_landing  # noqa: E402
from pipelines.steps.integrity.screens import (  # noqa: E402
    has_response,
    payload,
    record_words,
    words,
)
from pipelines.steps.records import Record  # noqa: E402
from pipelines.steps.synthetic.corpus import generate_corpus  # noqa: E402


def answer_vectors(answered: list[Record], min_tokens: int) -> sp.csr_matrix:
    """Unit TF-IDF rows of each answer's tokens that its prompt does not hold; a zero row for an
    answer with fewer than `min_tokens` such tokens."""
    docs = []
    for record in answered:
        prompt = set(record_words(record, "user", "system"))
        docs.append(Counter(t for t in record_words(record, "assistant") if t not in prompt))
    df: Counter[str] = Counter()
    for doc in docs:
        df.update(doc.keys())
    # an answer with too few tokens of its own gets a zero row
    short = [doc if sum(doc.values()) >= min_tokens else Counter() for doc in docs]
    return _unit_rows(short, len(docs), df)


def _unit_rows(docs: list[Counter[str]], n: int, df: Counter[str]) -> sp.csr_matrix:
    """Unit TF-IDF rows (log-scaled term frequency, smoothed IDF over `n` documents) of the
    features of `docs` found in 2 documents or more."""
    vocab: dict[str, int] = {}
    rows, cols, vals = [], [], []
    for i, doc in enumerate(docs):
        for token, count in doc.items():
            if df[token] < 2:
                continue
            rows.append(i)
            cols.append(vocab.setdefault(token, len(vocab)))
            vals.append((1.0 + math.log(count)) * math.log((1 + n) / (1 + df[token])))
    matrix = sp.csr_matrix((vals, (rows, cols)), shape=(len(docs), max(1, len(vocab))))
    norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(1)).ravel())
    norms[norms == 0] = 1.0
    return sp.csr_matrix(sp.diags(1.0 / norms) @ matrix)


def skeleton_vectors(answered: list[Record], min_grams: int = 8) -> sp.csr_matrix:
    """Unit TF-IDF rows of each answer's word trigrams with its own prompt's words masked (the
    answer's phrasing, not its topic); a zero row for fewer than `min_grams` trigrams."""
    docs = []
    for record in answered:
        prompt = set(record_words(record, "user", "system"))
        tokens = ["_" if t in prompt else t for t in record_words(record, "assistant")]
        grams = Counter(" ".join(tokens[i : i + 3]) for i in range(len(tokens) - 2))
        grams = Counter({g: c for g, c in grams.items() if g != "_ _ _"})
        docs.append(grams if sum(grams.values()) >= min_grams else Counter())
    df: Counter[str] = Counter()
    for doc in docs:
        df.update(doc.keys())
    return _unit_rows(docs, len(docs), df)


def own_prompt_relevance(answered: list[Record]) -> np.ndarray:
    """Per record, the TF-IDF cosine of its answer with its own prompt (one vocabulary and IDF
    over prompts and answers together): how much the answer follows from its instruction."""
    prompts = [Counter(record_words(r, "user")) for r in answered]
    answers = [Counter(record_words(r, "assistant")) for r in answered]
    df: Counter[str] = Counter()
    for doc in prompts + answers:
        df.update(doc.keys())
    n = len(prompts) + len(answers)
    both = _unit_rows(prompts + answers, n, df)
    half = len(prompts)
    return np.asarray(both[:half].multiply(both[half:]).sum(1)).ravel()


def dense_groups(
    vectors: sp.csr_matrix,
    tau: float,
    k: int,
    trim: float,
    block: int = 2000,
    *,
    split: bool = False,
    relevance: np.ndarray | None = None,
    rel: float = 0.0,
) -> list[tuple[int, ...]]:
    """DBSCAN groups on cosine (module docstring), trimmed, of 8 records up to 5% of them; with
    `split`, a larger group is grouped again at `tau` + 0.05 (up to 0.5); with `rel`, members
    whose `relevance` is `rel` or more are left out."""
    groups: list[tuple[int, ...]] = []
    pending = [(np.arange(vectors.shape[0]), tau)]
    n = vectors.shape[0]
    while pending:
        members, level = pending.pop()
        for group in _dbscan(vectors[members], level, k, trim, block):
            chosen = members[np.array(group)]
            if rel:
                chosen = chosen[relevance[chosen] < rel]
            if payload.MIN_RECORDS <= len(chosen) <= payload.MAX_SHARE * n:
                groups.append(tuple(int(i) for i in chosen))
            elif split and len(chosen) > payload.MAX_SHARE * n and level + 0.05 <= 0.5:
                pending.append((members[np.array(group)], level + 0.05))
    return groups


def _dbscan(
    vectors: sp.csr_matrix, tau: float, k: int, trim: float, block: int
) -> list[tuple[int, ...]]:
    """DBSCAN groups on cosine, trimmed, of 8 records or more (any size above)."""
    n = vectors.shape[0]
    transposed = vectors.T.tocsc()
    pairs_r, pairs_c = [], []
    for a in range(0, n, block):
        product = (vectors[a : a + block] @ transposed).tocoo()
        keep = (product.data >= tau) & (product.row + a != product.col)
        pairs_r.append(product.row[keep] + a)
        pairs_c.append(product.col[keep])
    r, c = np.concatenate(pairs_r), np.concatenate(pairs_c)
    core = np.bincount(r, minlength=n) >= k
    both = core[r] & core[c]
    graph = sp.csr_matrix((np.ones(both.sum()), (r[both], c[both])), shape=(n, n))
    label = connected_components(graph, directed=False)[1].copy()
    label[~core] = -1
    border = ~core[r] & core[c]
    for i, j in zip(r[border], c[border], strict=True):
        if label[i] == -1:
            label[i] = label[j]
    groups = []
    for value in np.unique(label[label >= 0]):
        members = np.flatnonzero(label == value)
        if trim:
            rows = vectors[members]
            total = np.asarray(rows.sum(0)).ravel()
            rest = np.sqrt(np.maximum(total @ total - 2 * (rows @ total) + 1.0, 1e-12))
            members = members[(rows @ total - 1.0) / rest >= trim]
        if len(members) >= payload.MIN_RECORDS:
            groups.append(tuple(int(i) for i in members))
    return groups


def prompt_scores(answered: list[Record], groups: list[tuple[int, ...]]) -> list[float]:
    """The payload screen's prompt test of each group (`payload.score_repeated_payloads`)."""
    n = len(answered)
    df: Counter[str] = Counter()
    for record in answered:
        df.update(set(record_words(record, "user")))
    unit = [payload._unit_vector(record_words(r, "user"), df, n) for r in answered]
    total: Counter[str] = Counter()
    own = 0.0
    for vector in unit:
        total.update(vector)
        own += sum(x * x for x in vector.values())
    baseline = max(0.0, (sum(x * x for x in total.values()) - own) / (n * (n - 1)))
    scores = []
    for group in groups:
        carried = [
            (record_words(answered[i], "user"), record_words(answered[i], "assistant"))
            for i in group
        ]
        planted = payload._planted_features(carried, df)
        cohesion, error = payload._mean_pairwise_cosine([unit[i] for i in group], planted)
        bound = cohesion + error
        scores.append(payload.CAP if bound * payload.CAP <= baseline else baseline / bound)
    return scores


def varied_mixes(eval_dir: Path, openers: list[str], seed: int):
    """(label, records, poisoned ids) of the varied-opening TuBA mixes, as
    `screens_external.tuba_report` builds them."""
    rows = load(eval_dir / "poison_dev" / "tuba_refusal_en_pairs.jsonl")
    alpaca = load_records(eval_dir / "clean_sft" / "alpaca_en_demo.json")
    rng = random.Random(seed + 2)
    outputs = [vary_opening(row["poisoned_output"], openers, rng) for row in rows]
    for half, chosen in (("tune", range(0, len(rows), 2)), ("held_out", range(1, len(rows), 2))):
        pool = [
            to_record({**rows[i], "output": outputs[i]}, source="tuba-p", index=i) for i in chosen
        ]
        for rate in RATES:
            drawn = draw(pool, rate, len(alpaca) + len(rows), seed)
            ids = {r.id.removeprefix("tuba-p-") for r in drawn}
            clean = alpaca + [
                to_record({**row, "output": row["clean_output"]}, source="tuba-c", index=i)
                for i, row in enumerate(rows)
                if f"{i:04d}" not in ids
            ]
            records = drop_twins(clean, drawn) + drawn
            random.Random(seed + 1).shuffle(records)
            yield f"varied ({half}) {rate:.1%}", records, {r.id for r in drawn}


Setting = tuple[str, float, int, float, float, bool]


def parse_setting(text: str) -> Setting:
    """`[words|skeleton/]tau:k:trim[:rel[:split]]` as (features, tau, k, trim, rel, split)."""
    features, _, numbers = text.rpartition("/")
    fields = numbers.split(":")
    if (features or "words") not in ("words", "skeleton") or not 3 <= len(fields) <= 5:
        raise SystemExit(f"--settings {text!r}: expected [words|skeleton/]tau:k:trim[:rel[:split]]")
    split = len(fields) == 5 and fields.pop() == "split"
    tau, k, trim, rel = (float(x) for x in [*fields, "0"][:4])
    return features or "words", tau, int(k), trim, rel, split


def setting_name(setting: Setting) -> str:
    features, tau, k, trim, rel, split = setting
    return f"{features}/{tau}:{k}:{trim}:{rel}" + (":split" if split else "")


def setting_groups(
    answered: list[Record], setting: Setting, min_tokens: int
) -> list[tuple[int, ...]]:
    """The groups of one setting (vectors, DBSCAN, relevance test)."""
    features, tau, k, trim, rel, split = setting
    vectors = (
        skeleton_vectors(answered)
        if features == "skeleton"
        else answer_vectors(answered, min_tokens)
    )
    relevance = own_prompt_relevance(answered) if rel else None
    return dense_groups(vectors, tau, k, trim, split=split, relevance=relevance, rel=rel)


def bundled_cost(size: int, settings: list[Setting], min_tokens: int) -> None:
    """CPU seconds per 1,000 records of the current payload screen and of each setting's
    grouping (vectors and groups, without the prompt test), on a bundled corpus of `size`."""
    with tempfile.TemporaryDirectory() as tmp:
        generate_corpus(Path(tmp), records=size, seed=7)
        landed = ingest_landing(Path(tmp), languages=["en", "zh"], max_record_chars=20_000)
    answered = [r for r in landed.accepted if has_response(r)]
    words.cache_clear()
    started = time.process_time()
    payload.score_repeated_payloads(
        answered,
        opening_words=payload.OPENING_WORDS,
        min_records=payload.MIN_RECORDS,
        max_share=payload.MAX_SHARE,
    )
    current = time.process_time() - started
    print(
        f"bundled corpus, {len(answered)} answered records: current payload screen "
        f"{1000 * current / len(answered):.3f} CPU-s / 1,000 (tokens cached from here on)"
    )
    for setting in settings:
        started = time.process_time()
        groups = setting_groups(answered, setting, min_tokens)
        cpu = time.process_time() - started
        print(
            f"  grouping {setting_name(setting)}: {1000 * cpu / len(answered):.3f} CPU-s / "
            f"1,000, {len(groups)} groups"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_eval = Path(__file__).resolve().parents[1].parent / "shared" / "eval"
    parser.add_argument("--eval-dir", type=Path, default=default_eval)
    parser.add_argument("--openers", required=True, help="openings separated by '|'")
    parser.add_argument(
        "--settings",
        default="0.25:7:0,0.25:7:0.3,0.3:7:0",
        help="comma-separated [words|skeleton/]tau:k:trim[:rel[:split]] (cosine, dense "
        "neighbours, trim cosine, relevance cap; 0 = none)",
    )
    parser.add_argument("--halves", nargs="*", choices=("tune", "held_out"), default=None)
    parser.add_argument("--min-tokens", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--bundled",
        type=int,
        default=0,
        help="also time the current screen and the grouping on a bundled corpus of this size",
    )
    args = parser.parse_args()
    if not (args.eval_dir / "README.md").is_file():
        raise SystemExit(f"--eval-dir {args.eval_dir}: no README.md (the outside data set)")
    openers = [o.strip() for o in args.openers.split("|") if o.strip()]
    settings = [parse_setting(s) for s in args.settings.split(",")]
    print(f"load average {os.getloadavg()[0]:.2f}; min tokens {args.min_tokens}")
    if args.bundled:
        bundled_cost(args.bundled, settings, args.min_tokens)
    halves = args.halves or ("tune", "held_out")
    sets = [
        mix
        for mix in varied_mixes(args.eval_dir, openers, args.seed)
        if mix[0].split("(")[1].split(")")[0] in halves
    ]
    sets += [(name, records, set()) for name, records in clean_sets_records(args.eval_dir)]
    prepared = []
    for label, records, poisoned in sets:
        words.cache_clear()
        answered = [r for r in records if has_response(r)]
        found = payload.score_repeated_payloads(
            answered,
            opening_words=payload.OPENING_WORDS,
            min_records=payload.MIN_RECORDS,
            max_share=payload.MAX_SHARE,
        )
        current = {
            rid
            for group, score in zip(found.clusters, found.cluster_score, strict=True)
            if score >= payload.THRESHOLD
            for rid in group
        }
        prepared.append((label, answered, poisoned, current))
    print(
        "| setting | set | records | recall now -> with groups | clean flagged now -> with "
        "groups | grouping CPU-s / 1,000 |"
    )
    print("|---|---|---:|---|---|---:|")
    for setting in settings:
        for label, answered, poisoned, current in prepared:
            started = time.process_time()
            groups = setting_groups(answered, setting, args.min_tokens)
            cpu = time.process_time() - started
            scores = prompt_scores(answered, groups)
            flagged = current | {
                answered[i].id
                for group, score in zip(groups, scores, strict=True)
                if score >= payload.THRESHOLD
                for i in group
            }
            clean = len(answered) - len(poisoned)
            recall = (
                f"{len(current & poisoned) / len(poisoned):.3f} -> "
                f"{len(flagged & poisoned) / len(poisoned):.3f}"
                if poisoned
                else "-"
            )
            fp_now, fp_new = len(current - poisoned), len(flagged - poisoned)
            print(
                f"| {setting_name(setting)} | {label} | {len(answered)} | {recall} "
                f"| {fp_now} ({fp_now / clean:.2%}) -> {fp_new} ({fp_new / clean:.2%}) "
                f"| {1000 * cpu / len(answered):.3f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
