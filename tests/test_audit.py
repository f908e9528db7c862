"""Canary exposure (The Secret Sharer): ranking, exposure arithmetic, the prefix-tree scorer, the
10,000-candidate floor, and no secret leaks."""

import copy
import itertools
import math

import numpy as np
import pytest
import torch
from peft import LoraConfig, get_peft_model

from pipelines.steps.audit import canaries
from pipelines.steps.audit.canaries import (
    CanarySpec,
    ExposureResult,
    canary_exposure,
    continuation_nll,
    max_exposure,
    prefix_tree_nll,
)
from pipelines.steps.config import (
    MIN_AUDIT_CANDIDATES,
    ConfigError,
    PipelineConfig,
    load_config,
)
from pipelines.steps.training.modelstore import load_base_model
from tests.tiny_model import make_tiny_model_dir

PREFIX = "My pin is "
MEMORIZED = "7351"
LONG_PREFIX, LONG_MEMORIZED = "The code is ", "735190"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory):
    return load_base_model(make_tiny_model_dir(tmp_path_factory.mktemp("tiny") / "model"))


@pytest.fixture(scope="module")
def memorizer(tiny):
    """The tiny Llama trained on two canary sentences until it has learned them by heart."""
    base, tokenizer = tiny
    model = copy.deepcopy(base).train()
    texts = [PREFIX + MEMORIZED + ".", LONG_PREFIX + LONG_MEMORIZED + "."]
    batch = tokenizer(texts, add_special_tokens=False, padding=True, return_tensors="pt")
    labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-2)
    torch.manual_seed(0)
    for _ in range(60):
        optimizer.zero_grad()
        model(**batch, labels=labels).loss.backward()
        optimizer.step()
    return model.eval(), tokenizer


@pytest.fixture(scope="module")
def lora_tiny(tiny):
    """The tiny Llama under a PEFT LoRA adapter with non-zero weights, as the audit sees it."""
    base, tokenizer = tiny
    model = get_peft_model(
        copy.deepcopy(base),
        LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], lora_dropout=0.0),
    )
    torch.manual_seed(1)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(0.0, 0.2)
    return model.eval(), tokenizer


def canary(secret: str, *, canary_id: str = "c-1") -> CanarySpec:
    return CanarySpec(
        canary_id=canary_id,
        prefix=PREFIX,
        secret=secret,
        alphabet="0123456789",
        length=len(secret),
        insertions=4,
    )


def three_digit_space() -> list[str]:
    return ["".join(c) for c in itertools.product("0123456789", repeat=3)]


@pytest.mark.parametrize("which", ["tiny", "memorizer", "lora_tiny"])
def test_the_prefix_tree_scorer_gives_the_full_sequence_log_perplexities(which, request):
    model, tokenizer = request.getfixturevalue(which)
    # every 3-digit string, plus continuations of other lengths and ones whose first token merges
    # with the prefix's last (" 7" vs " " + "7"), so the tree has leaves at several depths
    continuations = [
        *three_digit_space()[::3],
        "12",
        "5",
        "7351",
        "code 77",
        " blue",
        "x9y",
        "0000000",
    ]
    tree = prefix_tree_nll(
        model, tokenizer, PREFIX, continuations, batch_size=37, block_size=257
    )  # small batches and blocks: many trees, partial batches
    naive = continuation_nll(model, tokenizer, PREFIX, continuations)
    assert tree.shape == naive.shape == (len(continuations),)
    np.testing.assert_allclose(tree, naive, rtol=0, atol=1e-4)
    assert np.all(naive > 0) and len(set(np.round(naive, 6))) > len(continuations) // 2


def test_when_the_model_memorized_the_secret_then_it_ranks_first_among_10000(memorizer):
    model, tokenizer = memorizer
    [result] = canary_exposure(
        model, tokenizer, [canary(MEMORIZED)], n_candidates=MIN_AUDIT_CANDIDATES, seed=0
    )
    # 10^4 candidates: the whole 4-digit space, enumerated, the secret on top
    assert (result.rank, result.candidates, result.method) == (1, 10_000, "enumeration")
    assert result.exposure_bits == pytest.approx(math.log2(10_000))


def test_when_the_model_never_saw_the_secret_then_its_exact_rank_is_the_naive_one(tiny):
    model, tokenizer = tiny
    space = three_digit_space()
    naive = continuation_nll(model, tokenizer, PREFIX, space)
    for secret in ("418", "902"):
        [result] = canary_exposure(model, tokenizer, [canary(secret)], n_candidates=1000, seed=0)
        expected_rank = 1 + int((naive < naive[space.index(secret)]).sum())
        assert (result.rank, result.candidates) == (expected_rank, 1000)
        assert result.exposure_bits == pytest.approx(math.log2(1000) - math.log2(expected_rank))
        assert 1 < result.rank < 1000  # an untrained model: somewhere in the middle


def test_when_the_space_is_large_then_exposure_is_extrapolated_from_sampled_candidates(memorizer):
    model, tokenizer = memorizer
    memorized = CanarySpec("c-6", LONG_PREFIX, LONG_MEMORIZED, "0123456789", 6, 16)
    [result] = canary_exposure(model, tokenizer, [memorized], n_candidates=2000, seed=3)
    assert (result.rank, result.candidates, result.method) == (1, 2001, "skewnorm")
    assert result.rank_exposure_bits == pytest.approx(math.log2(2001))  # capped: log2(m + 1)
    # the skew-normal extrapolation is not capped: a secret the model prefers scores higher
    assert result.exposure_bits > math.log2(2001)
    other = CanarySpec("c-7", LONG_PREFIX, "123456", "0123456789", 6, 1)
    again = canary_exposure(model, tokenizer, [other], n_candidates=300, seed=3)
    assert again == canary_exposure(model, tokenizer, [other], n_candidates=300, seed=3)
    assert again[0].rank > 1 and again[0].exposure_bits < result.exposure_bits


def test_when_the_prefix_tree_disagrees_with_full_sequences_then_the_audit_fails_closed(
    tiny, monkeypatch
):
    model, tokenizer = tiny
    real = canaries.prefix_tree_nll

    def off_by_a_little(*args, **kwargs):
        scores = real(*args, **kwargs)
        scores[0] -= 0.01  # the secret made to look more likely than it is
        return scores

    monkeypatch.setattr(canaries, "prefix_tree_nll", off_by_a_little)
    with pytest.raises(RuntimeError, match="canary c-1: prefix-tree scores differ"):
        canary_exposure(model, tokenizer, [canary("42")], n_candidates=100, seed=0)


def test_results_and_errors_carry_no_secret(tiny, monkeypatch):
    model, tokenizer = tiny
    spec = canary("4821")
    [result] = canary_exposure(model, tokenizer, [spec], n_candidates=20, seed=0)
    assert isinstance(result, ExposureResult)
    assert "4821" not in repr(result) and "4821" not in str(vars(result))
    assert "4821" not in repr(spec)
    monkeypatch.setattr(canaries, "SELF_CHECK_ATOL", -1.0)  # every comparison fails
    with pytest.raises(RuntimeError) as failure:
        canary_exposure(model, tokenizer, [spec], n_candidates=20, seed=0)
    assert "4821" not in str(failure.value)


def test_real_model_exposure_is_between_zero_and_the_cap(tiny):
    model, tokenizer = tiny
    seconds: dict[str, float] = {}
    results = canary_exposure(
        model,
        tokenizer,
        [canary("31"), canary("5090", canary_id="c-2")],
        n_candidates=30,
        seed=0,
        seconds=seconds,
    )
    assert set(seconds) == {"c-1", "c-2"} and all(s >= 0 for s in seconds.values())
    assert [r.candidates for r in results] == [31, 31]
    assert all(0 <= r.rank_exposure_bits <= math.log2(r.candidates) for r in results)
    assert max_exposure(results) == max(r.exposure_bits for r in results)


def test_when_the_skew_normal_fit_fails_then_the_exposure_is_the_rank_not_zero(tiny, monkeypatch):
    """A NaN fit once read as 0 bits (`max(0.0, nan)`): a gate passed on no measurement."""
    import scipy.stats

    model, tokenizer = tiny
    monkeypatch.setattr(scipy.stats.skewnorm, "fit", lambda data: (math.nan, math.nan, math.nan))
    assert math.isnan(canaries.skewnorm_exposure(1.0, np.array([2.0, 3.0, 4.0])))
    [result] = canary_exposure(model, tokenizer, [canary("482193")], n_candidates=30, seed=0)
    assert result.method == "rank (skew-normal fit failed)"
    assert result.exposure_bits == result.rank_exposure_bits


def test_when_there_are_no_results_then_max_exposure_fails_closed():
    with pytest.raises(ValueError, match="no canary"):
        max_exposure([])


@pytest.mark.parametrize(
    ("secret", "alphabet", "length"),
    [("12a", "0123456789", 3), ("123", "0123456789", 4), ("11", "11", 2)],
)
def test_when_a_canary_is_malformed_then_it_is_refused(secret: str, alphabet: str, length: int):
    with pytest.raises(ValueError, match="canary c"):
        CanarySpec("c", PREFIX, secret, alphabet, length, 1)


def test_when_the_secret_is_far_below_sampled_candidates_then_skewnorm_exposure_exceeds_the_cap():
    from pipelines.steps.audit.canaries import skewnorm_exposure

    rng = np.random.default_rng(0)
    candidates = rng.normal(30.0, 2.0, size=100)
    # a memorized secret: its NLL is ten standard deviations below every candidate's
    assert skewnorm_exposure(10.0, candidates) > math.log2(101) + 3
    # an unremarkable secret sits near the median: about one bit
    assert skewnorm_exposure(30.0, candidates) == pytest.approx(1.0, abs=0.5)


@pytest.mark.parametrize("profile", ["default", "quick"])
def test_the_bundled_profiles_rank_every_canary_among_at_least_10000_candidates(profile):
    assert load_config(profile).audit.candidates >= MIN_AUDIT_CANDIDATES == 10_000


def test_when_a_profile_asks_for_fewer_than_10000_candidates_then_it_is_refused(tmp_path):
    bad = tmp_path / "few.yaml"
    bad.write_text("profile: mine\naudit:\n  candidates: 9999\n")
    with pytest.raises(ConfigError, match=r"audit\.candidates: 9999 is below 10,000"):
        load_config(str(bad))
    assert PipelineConfig().audit.candidates == 10_000  # the default passes
    # only the test profile may use a small space (tiny models in unit tests)
    assert PipelineConfig.model_validate(
        {"profile": "test", "audit": {"candidates": 20}}
    ).audit.candidates == (20)


def test_audit_model_times_every_part_and_reports_no_secret(tiny):
    from pipelines.steps.audit.suite import AuditData, AuditSettings, audit_model
    from pipelines.steps.records import Message, Record
    from tests.tiny_model import synthetic_sentences

    model, tokenizer = tiny
    records = {
        f"r{i}": Record(
            f"r{i}",
            "a.jsonl",
            i + 1,
            "chat",
            (Message("user", "Status update please."), Message("assistant", text)),
        )
        for i, text in enumerate(synthetic_sentences(32, seed=5))
    }
    ids = sorted(records)
    data = AuditData(
        canaries=[canary("4821"), canary("660012", canary_id="c-2")],
        canary_records={"c-1": ["r0"], "c-2": ["r1"]},
        records=records,
        train_ids=ids[:16],
        heldout_ids=ids[16:],
    )
    settings = AuditSettings(candidates=300, mia_records=8, extraction_probes=0, backdoor_prompts=0)
    result = audit_model(model, tokenizer, data, settings)
    assert set(result["seconds"]) == {
        "exposure",
        "membership_inference",
        "pii_extraction",
        "backdoor",
        "exposure_by_canary",
    }
    assert set(result["seconds"]["exposure_by_canary"]) == {"c-1", "c-2"}
    assert [(r["canary_id"], r["method"], r["candidates"]) for r in result["canaries"]] == [
        ("c-1", "skewnorm", 301),
        ("c-2", "skewnorm", 301),
    ]
    assert [r["in_training"] for r in result["canaries"]] == [1, 1]
    assert "4821" not in repr(result) and "660012" not in repr(result)


def test_when_there_is_no_heldout_record_then_no_attack_runs_and_the_audit_fails_closed(tiny):
    from types import SimpleNamespace

    from assets.audit import _audit_metadata, audit_passed
    from pipelines.steps.audit.suite import AuditData, AuditSettings, audit_model
    from pipelines.steps.records import Message, Record

    model, tokenizer = tiny
    records = {
        f"r{i}": Record(f"r{i}", "a.jsonl", i + 1, "chat", (Message("user", f"Hello {i}."),))
        for i in range(8)
    }
    data = AuditData(
        canaries=[canary("4821")],
        canary_records={},
        records=records,
        train_ids=sorted(records),
        heldout_ids=[],
    )
    settings = AuditSettings(candidates=50, mia_records=8, extraction_probes=0, backdoor_prompts=0)
    result = audit_model(model, tokenizer, data, settings)
    assert result["membership_inference"] == []
    auditor = SimpleNamespace(max_exposure_bits=100.0, max_mia_auc=0.55)
    assert not audit_passed(result, auditor)  # nothing measured is not a pass
    metadata = _audit_metadata(result, [], {"epsilon": 1.0}, auditor)
    assert math.isnan(metadata["max_mia_auc"])
    measured = {**result, "membership_inference": [{"auc": 0.5, "auc_low": 0.4}]}
    assert audit_passed(measured, auditor)


def test_when_members_are_only_easier_then_the_calibrated_attack_sees_no_membership(tiny):
    """Members that are simply easier text than the non-members look like members to the plain
    attacks; scored against the base model (the adapter switched off), an adapter that learned
    nothing (LoRA's B at zero: the base model's outputs) shows no membership at all."""
    from pipelines.steps.audit.membership import record_scores
    from pipelines.steps.audit.suite import AuditData, AuditSettings, _membership_inference
    from pipelines.steps.records import Message, Record
    from tests.tiny_model import synthetic_sentences

    def records(texts, start):
        return [
            Record(f"r{start + i:02d}", "a.jsonl", i + 1, "chat", (Message("user", t),))
            for i, t in enumerate(texts)
        ]

    base, tokenizer = tiny
    groups = [
        records(synthetic_sentences(16, seed=9), 0),
        records([" ".join(["ok"] * (4 + i % 5)) + "." for i in range(16)], 16),
    ]
    # the members: whichever group the base model finds easier (lower loss)
    easy = [record_scores(base, tokenizer, g, max_seq_len=32)["loss"].mean() for g in groups]
    members, others = (groups[0], groups[1]) if easy[0] > easy[1] else (groups[1], groups[0])
    data = AuditData(
        canaries=[],
        canary_records={},
        records={r.id: r for r in members + others},
        train_ids=[r.id for r in members],
        heldout_ids=[r.id for r in others],
    )
    settings = AuditSettings(candidates=50, mia_records=16, extraction_probes=0, backdoor_prompts=0)

    plain = _membership_inference(base, tokenizer, data, settings)
    assert all(not row["calibrated"] for row in plain)
    assert max(row["auc_low"] for row in plain) > 0.55  # the gate would fail

    untrained = get_peft_model(
        copy.deepcopy(base),
        LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], lora_dropout=0.0),
    ).eval()
    rows = _membership_inference(untrained, tokenizer, data, settings)
    assert all(row["calibrated"] for row in rows)
    assert [row["auc_uncalibrated"] for row in rows] == [row["auc"] for row in plain]
    assert all(row["auc"] == 0.5 and row["auc_low"] < 0.5 for row in rows)
