"""How often the membership-inference gate fails a model that leaks nothing, and how often it
fails one that leaks: the usual (Wald) 95% lower bound of the AUC against the one the audit uses
(`membership.auc_lower_bound`, the standard error taken at the bound), in one run.

Three attacks score each record (as the audit's loss, zlib and Min-K% do), correlated with one
another (a shared component of weight 0.8); members are shifted by `d` standard deviations
(d = 0: no leakage; 0.43 and 0.55: a true AUC of about 0.62 and 0.65). The gate fails when any
attack's lower bound is above `--bound` (the audit's `max_mia_auc`, 0.55). Printed: the share of
draws that fail it, per held-out count.

    .venv/bin/python benchmarks/mia_gate_null.py [--draws 3000] [--members 64]
"""

import argparse

import numpy as np
from sklearn.metrics import roc_auc_score

from pipelines.steps.audit.membership import _auc_standard_error, auc_lower_bound


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=3000)
    parser.add_argument("--members", type=int, default=64)
    parser.add_argument("--held-out", default="5,11,16,64", help="held-out counts, comma-separated")
    parser.add_argument("--bound", type=float, default=0.55)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    m = args.members
    print(f"{args.draws} draws, {m} members, gate: an attack's lower bound above {args.bound}")
    print("| shift d | held-out | fails, Wald bound | fails, bound at the bound |")
    print("|---:|---:|---:|---:|")
    for shift in (0.0, 0.43, 0.55):
        for n in (int(x) for x in args.held_out.split(",")):
            labels = np.r_[np.ones(m), np.zeros(n)]
            wald = score = 0
            for _ in range(args.draws):
                shared = rng.normal(size=m + n)
                aucs = [
                    roc_auc_score(
                        labels, 0.8 * shared + 0.6 * rng.normal(size=m + n) + shift * labels
                    )
                    for _ in range(3)
                ]
                wald += any(a - 1.96 * _auc_standard_error(a, m, n) > args.bound for a in aucs)
                score += any(auc_lower_bound(a, m, n) > args.bound for a in aucs)
            print(f"| {shift} | {n} | {wald / args.draws:.4f} | {score / args.draws:.4f} |")


if __name__ == "__main__":
    main()
