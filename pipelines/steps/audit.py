"""Canary exposure: how much a trained model memorized secrets planted in its training data.

After Carlini et al., "The Secret Sharer" (USENIX Security 2019). A canary is a prefix followed
by a random secret drawn from `alphabet^length`. The model scores every candidate secret by the
negative log-likelihood of its tokens given the prefix (plain text, no chat template); the
secret's rank among the candidates gives its exposure in bits:

    exposure = log2(candidates) - log2(rank)

where rank = 1 + the number of candidates with a strictly lower NLL than the secret. When the
whole space fits in `n_candidates` it is enumerated (candidates = |space|, the secret included).
Otherwise m = `n_candidates` distinct random non-secret candidates are scored and exposure is
estimated as log2((m + 1) / rank) (candidates = m + 1): the estimate is capped at log2(m + 1)
bits, so a bound on exposure can only fail if it is below that cap.

Results carry canary ids and numbers only, never a secret.
"""

import itertools
import math
from dataclasses import dataclass, field

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase


@dataclass(frozen=True)
class CanarySpec:
    """A planted canary (the secret is never repr'd or returned).

    Attributes:
        canary_id: Stable id of the canary.
        prefix: The text right before the secret.
        secret: The planted secret, `length` characters of `alphabet`.
        alphabet: The distinct characters secrets are drawn from.
        length: Number of characters of a secret.
        insertions: How many training records carried `prefix + secret`.
    """

    canary_id: str
    prefix: str
    secret: str = field(repr=False)
    alphabet: str
    length: int
    insertions: int

    def __post_init__(self) -> None:
        if not self.prefix:
            raise ValueError(f"canary {self.canary_id}: prefix must not be empty")
        if len(set(self.alphabet)) != len(self.alphabet) or len(self.alphabet) < 2:
            raise ValueError(f"canary {self.canary_id}: alphabet needs 2+ distinct characters")
        if len(self.secret) != self.length or not set(self.secret) <= set(self.alphabet):
            raise ValueError(
                f"canary {self.canary_id}: secret must be {self.length} characters of its alphabet"
            )


@dataclass(frozen=True)
class ExposureResult:
    """The exposure of one canary.

    Attributes:
        canary_id: Which canary.
        insertions: How many training records carried it.
        rank: 1 + number of candidates the model found strictly more likely than the secret.
        candidates: Sequences ranked, the secret included (|space|, or sampled + 1).
        exposure_bits: The exposure the gate judges: exact, log2(candidates) - log2(rank), when
            the space was enumerated; the skew-normal extrapolation when it was sampled.
        rank_exposure_bits: log2(candidates) - log2(rank) (capped at log2(candidates)).
        method: `enumeration` or `skewnorm` (Carlini et al., Section 4.2 / Appendix).
    """

    canary_id: str
    insertions: int
    rank: int
    candidates: int
    exposure_bits: float
    rank_exposure_bits: float = 0.0
    method: str = "enumeration"


def canary_exposure(
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    canaries: list[CanarySpec],
    *,
    n_candidates: int,
    seed: int,
    batch_size: int = 64,
) -> list[ExposureResult]:
    """Rank each canary's secret among candidates of the same format by model likelihood.

    Args:
        model: A causal LM returning `.logits` (put in eval mode for the duration).
        tokenizer: Its tokenizer.
        canaries: The planted canaries.
        n_candidates: Enumerate the space if it is at most this large, else sample this many
            distinct non-secret candidates.
        seed: Seed of the numpy generator that samples candidates (canaries in order).
        batch_size: Sequences per forward pass.

    Returns:
        One result per canary, in order, without the secrets.
    """
    rng = np.random.default_rng(seed)
    was_training = model.training
    model.eval()
    results = []
    try:
        for canary in canaries:
            space = len(canary.alphabet) ** canary.length
            if space <= n_candidates:
                others = [
                    "".join(chars)
                    for chars in itertools.product(canary.alphabet, repeat=canary.length)
                    if "".join(chars) != canary.secret
                ]
                candidates = space
            else:
                others = _sample_candidates(canary, n_candidates, rng)
                candidates = n_candidates + 1
            scores = continuation_nll(
                model, tokenizer, canary.prefix, [canary.secret, *others], batch_size=batch_size
            )
            rank = 1 + int((scores[1:] < scores[0]).sum())
            rank_bits = math.log2(candidates) - math.log2(rank)
            sampled = space > n_candidates
            results.append(
                ExposureResult(
                    canary_id=canary.canary_id,
                    insertions=canary.insertions,
                    rank=rank,
                    candidates=candidates,
                    exposure_bits=skewnorm_exposure(scores[0], scores[1:])
                    if sampled
                    else rank_bits,
                    rank_exposure_bits=rank_bits,
                    method="skewnorm" if sampled else "enumeration",
                )
            )
    finally:
        model.train(was_training)
    return results


def skewnorm_exposure(secret_nll: float, candidate_nlls: np.ndarray) -> float:
    """Exposure extrapolated from a skew-normal fit of the candidates' NLL distribution.

    When the candidate space is too large to enumerate, Carlini et al. (The Secret Sharer) fit a
    skew-normal distribution to the NLLs of sampled candidates and read the secret's percentile
    off its CDF: exposure = -log2 P(NLL <= NLL(secret)). Unlike the sampled rank, this is not
    capped at log2(samples + 1), so a bound above that cap can still fail.
    """
    from scipy import stats

    params = stats.skewnorm.fit(np.asarray(candidate_nlls, dtype=np.float64))
    log_cdf = float(stats.skewnorm.logcdf(secret_nll, *params))
    return max(0.0, -log_cdf / math.log(2))


def max_exposure(results: list[ExposureResult]) -> float:
    """The largest exposure in bits.

    Raises:
        ValueError: No results: an audit without canaries proves nothing (fail closed).
    """
    if not results:
        raise ValueError("no canary exposure results: plant canaries before auditing")
    return max(r.exposure_bits for r in results)


def continuation_nll(
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    prefix: str,
    continuations: list[str],
    *,
    batch_size: int = 64,
) -> np.ndarray:
    """Summed negative log-likelihood of each continuation's tokens given `prefix`.

    `prefix + continuation` is tokenized as one text; the tokens scored are those after the
    longest common token prefix with the tokenized `prefix`, so a token that merges across the
    boundary is scored as part of the continuation.

    Returns:
        Float64 array, one NLL (nats) per continuation.

    Raises:
        ValueError: The prefix does not leave at least one context token.
    """
    prefix_ids = tokenizer(prefix, add_special_tokens=False)["input_ids"]
    encoded = tokenizer([prefix + c for c in continuations], add_special_tokens=False)
    sequences = encoded["input_ids"]
    starts = [_common_prefix_length(prefix_ids, ids) for ids in sequences]
    if min(starts) == 0:
        raise ValueError(f"prefix {prefix[:20]!r}... leaves no context token to condition on")
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    device = next(model.parameters()).device
    scores = np.empty(len(sequences), dtype=np.float64)
    with torch.no_grad():
        for first in range(0, len(sequences), batch_size):
            chunk = sequences[first : first + batch_size]
            width = max(len(ids) for ids in chunk)
            input_ids = torch.full((len(chunk), width), pad_id, dtype=torch.long)
            attention_mask = torch.zeros((len(chunk), width), dtype=torch.long)
            scored = torch.zeros((len(chunk), width - 1), dtype=torch.bool)
            for row, ids in enumerate(chunk):
                input_ids[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
                attention_mask[row, : len(ids)] = 1
                # Position j - 1 predicts token j; tokens from the start on are scored.
                scored[row, starts[first + row] - 1 : len(ids) - 1] = True
            logits = model(
                input_ids=input_ids.to(device), attention_mask=attention_mask.to(device)
            ).logits[:, :-1]
            log_probs = torch.log_softmax(logits.float(), dim=-1)
            token_log_probs = log_probs.gather(-1, input_ids[:, 1:, None].to(device)).squeeze(-1)
            nll = -(token_log_probs * scored.to(device)).sum(dim=1)
            scores[first : first + len(chunk)] = nll.double().cpu().numpy()
    return scores


def _sample_candidates(canary: CanarySpec, n: int, rng: np.random.Generator) -> list[str]:
    """n distinct random strings of the canary's format, none equal to the secret."""
    alphabet = np.array(list(canary.alphabet))
    seen: dict[str, None] = {}
    while len(seen) < n:
        draws = rng.integers(0, len(alphabet), size=(n, canary.length))
        for row in alphabet[draws]:
            candidate = "".join(row)
            if candidate != canary.secret:
                seen.setdefault(candidate)
    return list(seen)[:n]


def _common_prefix_length(a: list[int], b: list[int]) -> int:
    length = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        length += 1
    return length
