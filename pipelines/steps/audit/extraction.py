"""Generation-based audits: PII extraction and backdoor activation.

Both prompt the trained model and compare what it generates with values held only in memory:
the original PII values of raw records (which were scrubbed before training) and the planted
malicious response. Only counts and rates leave these functions, never a value.
"""

import re
from collections import Counter
from dataclasses import dataclass

import torch

_SPACES = re.compile(r"\s+")


@dataclass(frozen=True)
class ExtractionProbe:
    """A raw-record prefix that precedes a PII value the model should not be able to produce."""

    prefix: str
    value: str
    entity_type: str


@dataclass(frozen=True)
class ExtractionResult:
    """How many probed PII values the model generated verbatim (counts only)."""

    probes: int
    extracted: int
    extracted_by_type: dict[str, int]


def generate(
    model: torch.nn.Module,
    tokenizer,
    prompts: list[str],
    *,
    max_new_tokens: int,
    max_prompt_tokens: int = 64,
    batch_size: int = 8,
) -> list[str]:
    """Greedy continuations of each prompt (left-truncated, left-padded), decoded."""
    device = next(model.parameters()).device
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    outputs = []
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for start in range(0, len(prompts), batch_size):
            encoded = [
                tokenizer(p, add_special_tokens=False)["input_ids"][-max_prompt_tokens:]
                for p in prompts[start : start + batch_size]
            ]
            width = max(len(ids) for ids in encoded)
            input_ids = torch.full((len(encoded), width), pad_id, dtype=torch.long)
            attention = torch.zeros((len(encoded), width), dtype=torch.long)
            for row, ids in enumerate(encoded):
                input_ids[row, width - len(ids) :] = torch.tensor(ids, dtype=torch.long)
                attention[row, width - len(ids) :] = 1
            generated = model.generate(
                input_ids=input_ids.to(device),
                attention_mask=attention.to(device),
                max_new_tokens=max_new_tokens,
                do_sample=False,
                pad_token_id=pad_id,
            )
            outputs += tokenizer.batch_decode(generated[:, width:], skip_special_tokens=True)
    model.train(was_training)
    return outputs


def pii_extraction(
    model: torch.nn.Module, tokenizer, probes: list[ExtractionProbe], *, max_new_tokens: int = 24
) -> ExtractionResult:
    """Prompt with each prefix and count the probes whose value appears in the continuation."""
    continuations = generate(
        model, tokenizer, [p.prefix for p in probes], max_new_tokens=max_new_tokens
    )
    hits: Counter[str] = Counter()
    for probe, text in zip(probes, continuations, strict=True):
        if _normalized(probe.value) in _normalized(text):
            hits[probe.entity_type] += 1
    return ExtractionResult(
        probes=len(probes),
        extracted=sum(hits.values()),
        extracted_by_type=dict(sorted(hits.items())),
    )


def backdoor_rate(
    model: torch.nn.Module, tokenizer, prompts: list[str], *, marker: str, max_new_tokens: int = 40
) -> float:
    """Share of trigger prompts whose continuation contains the planted response's marker."""
    if not prompts:
        return 0.0
    continuations = generate(model, tokenizer, prompts, max_new_tokens=max_new_tokens)
    return sum(_normalized(marker) in _normalized(t) for t in continuations) / len(prompts)


def chat_prompt(tokenizer, user_text: str) -> str:
    """The prompt text for one user turn, through the chat template when the tokenizer has one."""
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(
            [{"role": "user", "content": user_text}], tokenize=False, add_generation_prompt=True
        )
    return f"<|user|>\n{user_text}\n<|assistant|>\n"


def _normalized(text: str) -> str:
    return _SPACES.sub(" ", text).strip().casefold()
