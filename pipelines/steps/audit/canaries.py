"""Canary exposure: how much a trained model memorized secrets planted in its training data.

After Carlini et al., "The Secret Sharer" (USENIX Security 2019). A canary is a prefix followed
by a random secret drawn from `alphabet^length`. The model scores every candidate secret by the
negative log-likelihood of its tokens given the prefix (plain text, no chat template); the
secret's rank among the candidates gives its exposure in bits:

    exposure = log2(candidates) - log2(rank)

where rank = 1 + the number of candidates with a strictly lower NLL than the secret. When the
whole space fits in `n_candidates` it is enumerated (candidates = |space|, the secret included)
and the rank is exact. Otherwise m = `n_candidates` distinct random non-secret candidates are
scored; the gate reads the skew-normal extrapolation of Carlini et al. (not capped), and the
sampled rank gives log2((m + 1) / rank), capped at log2(m + 1) bits.

Scoring 10,000+ candidates per canary is affordable on a CPU because the candidates share
almost everything: `prefix_tree_nll` runs the prefix once, keeps its KV cache, and walks a
prefix tree of the candidates' token sequences level by level, one new token per tree node
(with SmolLM2's one-token-per-digit tokenizer, a 4-digit space is 10 + 100 + 1,000 forward
positions instead of 10,000 full sequences). Every call is checked against the plain
full-sequence scorer (`continuation_nll`) on a few candidates, the secret included, and fails
closed when they disagree.

Results carry canary ids and numbers only, never a secret. Canaries come from the corpus's
ground truth or are planted by the pipeline (`planting`, which also defines `CanarySpec`).
"""

import itertools
import math
import time
from dataclasses import dataclass

import numpy as np
import torch
from transformers import DynamicCache, PreTrainedTokenizerBase

from pipelines.steps.audit.planting import CanarySpec

SELF_CHECK_CANDIDATES = 4
"""Candidates (the secret first) that every exposure run also scores with the full-sequence
scorer: the prefix-tree scores must agree with them within SELF_CHECK_ATOL nats."""
SELF_CHECK_ATOL = 1e-3
TREE_BATCH_BYTES = 512 * 2**20
"""Memory one prefix-tree forward pass may take (assembled KV cache, its copies, log-probs):
sets the nodes per pass when no batch size is given (SmolLM2-135M: about 400; a tiny test
model: thousands, so few passes)."""


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
        method: `enumeration` or `skewnorm` (Carlini et al., Section 4.2 / Appendix), or
            `rank (skew-normal fit failed)`.
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
    batch_size: int | None = None,
    seconds: dict[str, float] | None = None,
) -> list[ExposureResult]:
    """Rank each canary's secret among candidates of the same format by model likelihood.

    Args:
        model: A causal LM returning `.logits` (put in eval mode for the duration).
        tokenizer: Its tokenizer.
        canaries: The planted canaries.
        n_candidates: Enumerate the space if it is at most this large, else sample this many
            distinct non-secret candidates.
        seed: Seed of the numpy generator that samples candidates (canaries in order).
        batch_size: Prefix-tree nodes per forward pass (default: from TREE_BATCH_BYTES).
        seconds: When given, filled with the wall time of each canary, by canary id.

    Returns:
        One result per canary, in order, without the secrets.

    Raises:
        RuntimeError: The prefix-tree scores disagree with the full-sequence scorer.
    """
    rng = np.random.default_rng(seed)
    was_training = model.training
    model.eval()
    results = []
    try:
        for canary in canaries:
            started = time.perf_counter()
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
            sequences = [canary.secret, *others]
            scores = prefix_tree_nll(
                model, tokenizer, canary.prefix, sequences, batch_size=batch_size
            )
            _check_against_full_sequences(model, tokenizer, canary, sequences, scores)
            rank = 1 + int((scores[1:] < scores[0]).sum())
            rank_bits = math.log2(candidates) - math.log2(rank)
            exposure, method = rank_bits, "enumeration"
            if space > n_candidates:
                exposure, method = skewnorm_exposure(scores[0], scores[1:]), "skewnorm"
                if math.isnan(exposure):  # a failed fit is no measurement: fall back to the rank
                    exposure, method = rank_bits, "rank (skew-normal fit failed)"
            results.append(
                ExposureResult(
                    canary_id=canary.canary_id,
                    insertions=canary.insertions,
                    rank=rank,
                    candidates=candidates,
                    exposure_bits=exposure,
                    rank_exposure_bits=rank_bits,
                    method=method,
                )
            )
            if seconds is not None:
                seconds[canary.canary_id] = round(time.perf_counter() - started, 2)
    finally:
        model.train(was_training)
    return results


def skewnorm_exposure(secret_nll: float, candidate_nlls: np.ndarray) -> float:
    """Exposure extrapolated from a skew-normal fit of the candidates' NLL distribution.

    When the candidate space is too large to enumerate, Carlini et al. (The Secret Sharer) fit a
    skew-normal distribution to the NLLs of sampled candidates and read the secret's percentile
    off its CDF: exposure = -log2 P(NLL <= NLL(secret)). Unlike the sampled rank, this is not
    capped at log2(samples + 1), so a bound above that cap can still fail.

    Returns NaN when the fit fails (a NaN parameter): `max(0.0, nan)` would read as 0 bits, a
    gate passed on no measurement.
    """
    from scipy import stats

    params = stats.skewnorm.fit(np.asarray(candidate_nlls, dtype=np.float64))
    log_cdf = float(stats.skewnorm.logcdf(secret_nll, *params))
    if math.isnan(log_cdf):
        return math.nan
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


def prefix_tree_nll(
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    prefix: str,
    continuations: list[str],
    *,
    batch_size: int | None = None,
    block_size: int = 4096,
) -> np.ndarray:
    """`continuation_nll`'s numbers, computed once per distinct token prefix with KV-cache reuse.

    Tokenization and the tokens scored are exactly `continuation_nll`'s. The context shared by
    every sequence runs once; its KV cache is reused by a prefix tree of the remaining token
    sequences: each tree node (a distinct proper prefix of some sequence) is one forward
    position, fed its last token with the cached keys and values of its ancestors, and its
    log-probabilities score every child token. Sequences are sorted and cut into blocks of
    `block_size`, each with its own tree, so memory stays bounded (the KV of each node's own
    token is kept, about 46 KB per node for SmolLM2-135M).

    Args:
        model: A causal LM with a Hugging Face `DynamicCache` (Llama and most others),
            wrapped by PEFT or not, in eval mode.
        tokenizer: Its tokenizer.
        prefix: The text before every continuation.
        continuations: The texts to score.
        batch_size: Tree nodes per forward pass; default: as many as TREE_BATCH_BYTES holds.
        block_size: Sequences per prefix tree.

    Returns:
        Float64 array, one summed NLL (nats) per continuation.

    Raises:
        ValueError: The prefix leaves no context token, or a continuation adds no token.
        TypeError: The model's cache is not a `DynamicCache` of plain layers.
    """
    prefix_ids = tokenizer(prefix, add_special_tokens=False)["input_ids"]
    sequences = tokenizer([prefix + c for c in continuations], add_special_tokens=False)[
        "input_ids"
    ]
    starts = [_common_prefix_length(prefix_ids, ids) for ids in sequences]
    context = min(starts)
    if context == 0:
        raise ValueError(f"prefix {prefix[:20]!r}... leaves no context token to condition on")
    suffixes = [tuple(ids[context:]) for ids in sequences]
    if not all(suffixes):
        raise ValueError("a continuation adds no token after the prefix: nothing to score")
    device = next(model.parameters()).device
    scores = np.empty(len(suffixes), dtype=np.float64)
    with torch.no_grad():
        out = model(input_ids=torch.tensor([prefix_ids[:context]], device=device), use_cache=True)
        root_kv = _cache_layers(out.cache)
        root_log_probs = torch.log_softmax(out.logits[0, -1].float(), dim=-1)
        if batch_size is None:
            batch_size = _tree_batch_size(
                root_kv, root_log_probs, context + max(map(len, suffixes))
            )
        order = sorted(range(len(suffixes)), key=suffixes.__getitem__)
        for first in range(0, len(order), block_size):
            block = order[first : first + block_size]
            scores[block] = _score_tree(
                model,
                root_kv,
                root_log_probs,
                [suffixes[i] for i in block],
                [starts[i] - context for i in block],
                batch_size=batch_size,
            )
    return scores


def _score_tree(
    model: torch.nn.Module,
    root_kv: list[tuple[torch.Tensor, torch.Tensor]],
    root_log_probs: torch.Tensor,
    suffixes: list[tuple[int, ...]],
    skips: list[int],
    *,
    batch_size: int,
) -> np.ndarray:
    """Summed NLL of each suffix's tokens from index `skip` on, over one prefix tree."""
    # Node 0 is the root (the shared context); node n > 0 is a distinct proper prefix of a suffix.
    node_of: dict[tuple[int, ...], int] = {(): 0}
    token_of, parent_of, depth_of = [-1], [-1], [0]
    for suffix in suffixes:
        for j in range(1, len(suffix)):
            if suffix[:j] not in node_of:
                node_of[suffix[:j]] = len(token_of)
                token_of.append(suffix[j - 1])
                parent_of.append(node_of[suffix[: j - 1]])
                depth_of.append(j)
    # The (node, next token) edges each suffix's scored tokens follow.
    paths = [
        [(node_of[suffix[:j]], suffix[j]) for j in range(skip, len(suffix))]
        for suffix, skip in zip(suffixes, skips, strict=True)
    ]
    wanted: dict[int, set[int]] = {}
    for path in paths:
        for node, token in path:
            wanted.setdefault(node, set()).add(token)
    edge_log_prob: dict[tuple[int, int], float] = {
        (0, token): value
        for token, value in zip(
            sorted(wanted.get(0, ())),
            root_log_probs[sorted(wanted.get(0, ()))].tolist(),
            strict=True,
        )
    }
    n_nodes = len(token_of)
    layers = len(root_kv)
    _, heads, _, head_dim = root_kv[0][0].shape
    keys = root_kv[0][0].new_empty((layers, n_nodes, heads, head_dim))
    values = root_kv[0][1].new_empty((layers, n_nodes, heads, head_dim))
    ancestors: list[list[int]] = [[]] * n_nodes  # nodes at depths 1..d-1 above node n
    for node in range(1, n_nodes):
        parent = parent_of[node]
        ancestors[node] = [*ancestors[parent], parent] if parent else []
    by_depth: dict[int, list[int]] = {}
    for node in range(1, n_nodes):
        by_depth.setdefault(depth_of[node], []).append(node)
    device = root_log_probs.device
    for depth in sorted(by_depth):
        nodes = by_depth[depth]
        for first in range(0, len(nodes), batch_size):
            batch = nodes[first : first + batch_size]
            index = torch.tensor(batch, device=device)
            above = torch.tensor([ancestors[n] for n in batch], device=device, dtype=torch.long)
            past = []
            for layer, (root_k, root_v) in enumerate(root_kv):
                shape = (len(batch), *root_k.shape[1:])
                if depth > 1:
                    # (batch, depth - 1, heads, dim) -> (batch, heads, depth - 1, dim)
                    k = keys[layer][above].transpose(1, 2)
                    v = values[layer][above].transpose(1, 2)
                    past.append(
                        (
                            torch.cat([root_k.expand(shape), k], dim=2),
                            torch.cat([root_v.expand(shape), v], dim=2),
                        )
                    )
                else:
                    past.append(
                        (root_k.expand(shape).contiguous(), root_v.expand(shape).contiguous())
                    )
            out = model(
                input_ids=torch.tensor([[token_of[n]] for n in batch], device=device),
                cache=DynamicCache(ddp_cache_data=past),
                use_cache=True,
            )
            for layer, (k, v) in enumerate(_cache_layers(out.cache)):
                keys[layer, index] = k[:, :, -1]
                values[layer, index] = v[:, :, -1]
            log_probs = torch.log_softmax(out.logits[:, -1].float(), dim=-1)
            rows = [row for row, n in enumerate(batch) for _ in wanted.get(n, ())]
            edges = [(n, t) for n in batch for t in sorted(wanted.get(n, ()))]
            picked = log_probs[rows, [t for _, t in edges]].tolist() if edges else []
            edge_log_prob.update(zip(edges, picked, strict=True))
    return np.array(
        [-sum(edge_log_prob[edge] for edge in path) for path in paths], dtype=np.float64
    )


def _tree_batch_size(
    root_kv: list[tuple[torch.Tensor, torch.Tensor]], root_log_probs: torch.Tensor, positions: int
) -> int:
    """Nodes per pass that fit TREE_BATCH_BYTES: 3 copies of the KV cache, 2 of the log-probs."""
    kv_row = sum(k[0, :, :1].numel() + v[0, :, :1].numel() for k, v in root_kv) * positions
    row_bytes = (3 * kv_row + 2 * root_log_probs.numel()) * root_log_probs.element_size()
    return max(16, min(4096, TREE_BATCH_BYTES // row_bytes))


def _cache_layers(cache) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(keys, values) per layer, each (batch, kv heads, positions, head dim), of a DynamicCache."""
    if not isinstance(cache, DynamicCache) or any(
        getattr(layer, "is_sliding", True) or getattr(layer, "keys", None) is None
        for layer in cache.layers
    ):
        raise TypeError(
            f"the prefix-tree scorer needs a DynamicCache of full-attention layers, got "
            f"{type(cache).__name__}"
        )
    return [(layer.keys, layer.values) for layer in cache.layers]


def _check_against_full_sequences(
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    canary: CanarySpec,
    sequences: list[str],
    scores: np.ndarray,
) -> None:
    """Fail closed when the prefix-tree scores differ from full-sequence scores.

    The secret (index 0) and a few evenly spaced candidates are rescored the plain way.
    """
    picked = sorted(
        {0, *np.linspace(0, len(sequences) - 1, SELF_CHECK_CANDIDATES, dtype=int).tolist()}
    )
    reference = continuation_nll(
        model, tokenizer, canary.prefix, [sequences[i] for i in picked], batch_size=len(picked)
    )
    worst = float(np.max(np.abs(reference - scores[picked])))
    if not worst <= SELF_CHECK_ATOL:
        raise RuntimeError(
            f"canary {canary.canary_id}: prefix-tree scores differ from full-sequence scores by "
            f"{worst:.2e} nats (> {SELF_CHECK_ATOL}); refusing to report an exposure"
        )


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
