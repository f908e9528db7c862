"""Membership inference: can an attacker tell training records from held-out ones?

Three standard black-box attacks score each record; a higher score means "more likely a
member":

- loss: the negative mean token loss (Yeom et al., 2018);
- zlib: the negative ratio of the model's loss to the record's zlib-compressed length in bits
  per character, which discounts texts that are simply easy (Carlini et al., 2021);
- min-k%: the mean of the k% lowest token log-probabilities (Shi et al., 2024, k = 20%).

For each attack the result states the ROC AUC, the true-positive rate at 1% false positives,
and an empirical epsilon lower bound: for the thresholds of the ROC curve, with Clopper-Pearson
95% intervals on TPR and FPR, eps >= log((TPR_low - delta) / FPR_high) (Jagielski et al.,
2020). With a few hundred records the bound is weak by construction; it is reported beside the
accountant's epsilon, never instead of it.
"""

import math
import zlib
from dataclasses import dataclass

import numpy as np
import torch
from scipy import stats
from sklearn.metrics import roc_auc_score, roc_curve

from pipelines.steps.records import Record
from pipelines.steps.training.dp_lora import IGNORE_INDEX, encode_records

ATTACKS = ("loss", "zlib", "min_k")
MIN_K_SHARE = 0.2


@dataclass(frozen=True)
class AttackResult:
    """How well one attack separates members from non-members."""

    attack: str
    auc: float
    auc_low: float
    tpr_at_1pct_fpr: float
    epsilon_lower_bound: float
    roc_fpr: tuple[float, ...]
    roc_tpr: tuple[float, ...]


def record_scores(
    model: torch.nn.Module,
    tokenizer,
    records: list[Record],
    *,
    max_seq_len: int,
    batch_size: int = 16,
) -> dict[str, np.ndarray]:
    """Membership scores of each record under every attack (higher = more member-like)."""
    input_ids, attention_mask, labels = encode_records(tokenizer, records, max_seq_len=max_seq_len)
    device = next(model.parameters()).device
    mean_nll, min_k = [], []
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for start in range(0, len(records), batch_size):
            ids = input_ids[start : start + batch_size].to(device)
            logits = model(
                input_ids=ids, attention_mask=attention_mask[start : start + batch_size].to(device)
            ).logits[:, :-1]
            targets = labels[start : start + batch_size, 1:].to(device)
            log_probs = torch.log_softmax(logits.float(), dim=-1)
            token_lp = log_probs.gather(-1, targets.clamp(min=0)[..., None]).squeeze(-1)
            mask = targets != IGNORE_INDEX
            for row in range(len(ids)):
                lp = token_lp[row][mask[row]]
                if len(lp) == 0:
                    mean_nll.append(math.nan)
                    min_k.append(math.nan)
                    continue
                mean_nll.append(float(-lp.mean()))
                k = max(1, int(len(lp) * MIN_K_SHARE))
                min_k.append(float(torch.topk(lp, k, largest=False).values.mean()))
    model.train(was_training)
    nll = np.array(mean_nll)
    compressed = np.array(
        [8 * len(zlib.compress(r.text.encode("utf-8"))) / max(1, len(r.text)) for r in records]
    )
    return {"loss": -nll, "zlib": -nll / compressed, "min_k": np.array(min_k)}


def evaluate_attacks(
    member_scores: dict[str, np.ndarray],
    non_member_scores: dict[str, np.ndarray],
    *,
    delta: float,
) -> list[AttackResult]:
    """ROC AUC (with a 95% lower bound), TPR at 1% FPR and the epsilon lower bound per attack."""
    results = []
    for attack in ATTACKS:
        members = member_scores[attack][~np.isnan(member_scores[attack])]
        others = non_member_scores[attack][~np.isnan(non_member_scores[attack])]
        truth = np.r_[np.ones(len(members)), np.zeros(len(others))]
        scores = np.r_[members, others]
        auc = float(roc_auc_score(truth, scores))
        fpr, tpr, _ = roc_curve(truth, scores)
        results.append(
            AttackResult(
                attack=attack,
                auc=auc,
                auc_low=auc_lower_bound(auc, len(members), len(others)),
                tpr_at_1pct_fpr=float(np.interp(0.01, fpr, tpr)),
                epsilon_lower_bound=_epsilon_lower_bound(
                    fpr, tpr, n_pos=len(members), n_neg=len(others), delta=delta
                ),
                roc_fpr=tuple(float(x) for x in fpr),
                roc_tpr=tuple(float(x) for x in tpr),
            )
        )
    return results


def auc_lower_bound(auc: float, n_pos: int, n_neg: int, z: float = 1.96) -> float:
    """The 95% lower bound of an ROC AUC, with the standard error taken at the bound itself.

    The Wald bound `auc - z * se(auc)` takes the standard error at the observed AUC, which is
    smallest where the AUC is high: with few non-members, a chance AUC of 0.7 then looked like
    leakage (three attacks on 64 members and 5-16 held-out records whose scores do not depend on
    membership failed a 0.55 gate in 3-8% of draws; measured by simulation, docs/officer.md).
    This bound is the lowest AUC `a` the observed one is within `z` standard errors of, `se(a)`
    (Hanley-McNeil) taken at `a` (the test of "AUC <= a" inverted, as a score interval is):
    `auc - z * se(L) = L`, found by bisection. With 64 records a side it is within 0.01 of the
    Wald bound up to an AUC of 0.7; with few non-members and a high AUC it is lower (0.697 on
    64 and 11: 0.512 against 0.546), and the same simulation fails the gate in 1.4-2.7% of
    draws.
    """
    lo = max(0.0, auc - z * 0.5 / math.sqrt(max(1, min(n_pos, n_neg))))
    hi = auc
    if auc - z * _auc_standard_error(lo, n_pos, n_neg) - lo <= 0:
        return lo  # the standard error's upper bound (Birnbaum-Klose) already reaches `lo`
    for _ in range(60):
        mid = (lo + hi) / 2
        if auc - z * _auc_standard_error(mid, n_pos, n_neg) - mid > 0:
            lo = mid
        else:
            hi = mid
    return lo


def _auc_standard_error(auc: float, n_pos: int, n_neg: int) -> float:
    """Hanley & McNeil (1982) standard error of an ROC AUC."""
    q1, q2 = auc / (2 - auc), 2 * auc * auc / (1 + auc)
    variance = (
        auc * (1 - auc) + (n_pos - 1) * (q1 - auc * auc) + (n_neg - 1) * (q2 - auc * auc)
    ) / (n_pos * n_neg)
    return math.sqrt(max(variance, 0.0))


def _epsilon_lower_bound(
    fpr: np.ndarray, tpr: np.ndarray, *, n_pos: int, n_neg: int, delta: float
) -> float:
    best = 0.0
    for f, t in zip(fpr, tpr, strict=True):
        positives, negatives = round(t * n_pos), round(f * n_neg)
        tpr_low = stats.beta.ppf(0.025, positives, n_pos - positives + 1) if positives else 0.0
        fpr_high = (
            stats.beta.ppf(0.975, negatives + 1, n_neg - negatives) if negatives < n_neg else 1.0
        )
        if tpr_low - delta > 0 and fpr_high > 0:
            best = max(best, math.log((tpr_low - delta) / fpr_high))
    return best
