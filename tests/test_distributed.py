"""DP-LoRA in two gloo processes (CPU) against one: same privacy, one logical batch (#21.3), and
`training.processes: 2` through the pipeline's training asset and its resource."""

import math
import os
import signal
import threading
import time
from pathlib import Path

import dagster as dg
import pytest
import torch
from pydantic import ValidationError
from torch.multiprocessing import ProcessRaisedException
from transformers import AutoTokenizer

from assets.training import dp_lora_adapter
from pipelines.definitions import build_resources
from pipelines.steps.config import ConfigError, PipelineConfig, TrainingConfig, load_config
from pipelines.steps.records import Message, Record, frame_to_records, records_to_frame
from pipelines.steps.storage import read_parquet, write_parquet
from pipelines.steps.training.checkpoint import STEP_LEDGER, StepLedger
from pipelines.steps.training.distributed import (
    DistributedTrainingError,
    _failure,
    launch,
    resolve_backend,
    train_rank,
)
from pipelines.steps.training.dp_lora import IGNORE_INDEX, TrainingConfigError, load_adapter_model
from pipelines.steps.training.ledger import LEDGER_FILE, PrivacyLedger
from resources.storage import CorpusStorage
from resources.trainer import DPTrainer
from tests.tiny_model import make_tiny_model_dir, synthetic_sentences

CFG = dict(expected_batch_size=8, steps=4, target_delta=1e-3, max_grad_norm=1.0, seed=3)


def _data(model_dir: Path, n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    encoded = tokenizer(
        synthetic_sentences(n, seed=5),
        padding="max_length",
        truncation=True,
        max_length=24,
        return_tensors="pt",
    )
    labels = encoded["input_ids"].masked_fill(encoded["attention_mask"] == 0, IGNORE_INDEX)
    return encoded["input_ids"], encoded["attention_mask"], labels


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_model_dir(tmp_path_factory.mktemp("tiny"))


def test_when_two_gloo_processes_train_then_privacy_and_batch_equal_one_process_and_ranks_agree(
    model_dir: Path,
) -> None:
    data = _data(model_dir, 64)
    cfg = TrainingConfig(**CFG)

    single = train_rank(model_dir, data, cfg)
    ranks = launch(model_dir, data, cfg, processes=2)

    first, second = ranks
    assert (first.rank, second.rank, first.world_size) == (0, 1, 2)
    # One run, one charge: the same sigma, q, steps and epsilon as one process (not twice it).
    for rank in ranks:
        assert rank.steps == single.steps == cfg.steps
        assert rank.noise_multiplier == single.noise_multiplier > 0
        assert rank.sample_rate == single.sample_rate == 1 / 8
        assert rank.expected_batch_size == single.expected_batch_size == cfg.expected_batch_size
        assert math.isclose(rank.epsilon, single.epsilon, rel_tol=1e-9)
    assert single.epsilon <= cfg.target_epsilon + 1e-6
    # The ranks drew disjoint shares of one Poisson batch: together about one logical batch a
    # step (8 expected; 4 steps x 8 = 32 over both ranks, far from 0 and from 64 per rank).
    assert 0 < first.records_seen + second.records_seen < 2 * 32 + 24
    # Both ranks applied the same (once-noised, averaged) update: identical adapters, trained.
    assert first.adapter.keys() == second.adapter.keys() == single.adapter.keys()
    for name, tensor in first.adapter.items():
        assert torch.equal(tensor, second.adapter[name]), name
    changed = [n for n, t in first.adapter.items() if "lora_B" in n and t.abs().sum() > 0]
    assert changed, "no LoRA B tensor moved from its zero initialization"


def test_when_user_level_units_are_asked_of_several_processes_then_the_setting_is_named(
    model_dir: Path,
) -> None:
    cfg = TrainingConfig(**{**CFG, "privacy_unit": "user"})
    with pytest.raises(TrainingConfigError, match="training.privacy_unit"):
        train_rank(model_dir, _data(model_dir, 64), cfg)


# The pipeline's path: `training.processes: 2` through the training asset and its resource.

TRAINER = dict(
    target_epsilon=8.0,
    target_delta=1e-3,
    accountant="rdp",
    expected_batch_size=16,  # 36 training records: q = 1/3
    steps=4,
    learning_rate=1e-2,
    max_seq_len=24,
    lora_r=2,
    lora_alpha=4,
    lifetime_epsilon=30.0,
    device="cpu",
)


def _corpus(tmp_path: Path) -> dict:
    records = [
        Record(
            id=f"rec-{i:04d}",
            source_file="dist.jsonl",
            source_line=i + 1,
            format="chat",
            messages=(Message("user", text), Message("assistant", "The answer is blue.")),
        )
        for i, text in enumerate(synthetic_sentences(40, seed=7))
    ]
    path = tmp_path / "corpus.parquet"
    write_parquet(records_to_frame(records), path)
    return {
        "path": str(path),
        "snapshot_sha256": "0" * 64,
        "drops": [{"drop": "dist"}],
        "curated": {"cross_drop_removed": 0},
    }


def _train_asset(root: Path, model_dir: Path, processes: int) -> dict:
    with dg.build_asset_context() as context:
        return dp_lora_adapter(
            context,
            training_corpus=_corpus(root),
            base_model={"path": str(model_dir)},
            storage=CorpusStorage(data_root=str(root / "data")),
            trainer=DPTrainer(**TRAINER, processes=processes),
        )


@pytest.fixture(scope="module")
def asset_runs(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[int, dict]:
    return {n: _train_asset(tmp_path_factory.mktemp(f"p{n}"), model_dir, n) for n in (1, 2)}


def test_when_the_training_asset_runs_two_processes_then_its_ledger_and_summary_match_one(
    asset_runs: dict[int, dict],
) -> None:
    one, two = asset_runs[1], asset_runs[2]
    # One run, one charge: the same mechanism and epsilon (history) as one process.
    for key in ("epsilon", "noise_multiplier", "sample_rate", "steps", "epsilons", "n_train"):
        assert two[key] == one[key], key
    assert two["sample_rate"] == 1 / 3 and two["epsilon"] <= TRAINER["target_epsilon"]
    (row,) = two["budget_ledger"]
    assert row["status"] == "spent" and row["epsilon"] == one["budget_ledger"][0]["epsilon"]
    assert (row["noise_multiplier"], row["sample_rate"], row["steps"]) == (
        one["noise_multiplier"],
        one["sample_rate"],
        one["steps"],
    )
    # The same published fields downstream (registry, audit, report) and the same guards.
    assert two.keys() == one.keys()
    assert two["train_ids"] == one["train_ids"] and two["heldout_ids"] == one["heldout_ids"]
    assert two["lora_tensors_with_clipped_gradient"] == two["lora_tensors_total"] > 0
    assert two["update_follows_gradient"] is not False
    assert two["lora_tensors_finite"] and two["base_weights_unchanged"]
    assert two["utility"].keys() == one["utility"].keys()
    assert two["adapter_sha256"] != one["adapter_sha256"]  # another (noised) model


def test_when_two_processes_trained_then_the_adapter_loads_and_its_checkpoint_is_retired(
    asset_runs: dict[int, dict], model_dir: Path
) -> None:
    two = asset_runs[2]
    adapter_dir = Path(two["adapter_dir"])  # <data root>/adapters/<run id>
    model, _ = load_adapter_model(model_dir, adapter_dir, expected_sha256=two["adapter_sha256"])
    checkpoints = adapter_dir.parent.parent / "checkpoints"
    assert [p.name for p in checkpoints.iterdir() if not p.name.startswith(".")] == []
    lora_b = [p for n, p in model.named_parameters() if "lora_B" in n]
    assert lora_b and all(p.abs().sum() > 0 for p in lora_b)  # trained, not left at zero


def test_when_a_training_process_is_killed_then_the_step_fails_and_the_rerun_resumes(
    model_dir: Path, tmp_path: Path
) -> None:
    trainer = DPTrainer(**{**TRAINER, "steps": 8}, checkpoint_every=2, processes=2)
    records = frame_to_records(read_parquet(_corpus(tmp_path)["path"]))
    run_key = trainer.run_key(records, model_dir=model_dir)
    step_ledger = tmp_path / "checkpoints" / run_key / STEP_LEDGER
    killed: list[int] = []

    def kill_a_rank() -> None:  # SIGKILL a training process once 3 steps are charged
        deadline = time.monotonic() + 120
        while not killed and time.monotonic() < deadline:
            if step_ledger.exists() and StepLedger(step_ledger).charged() >= 3:
                for pid in _spawned_children()[:1]:
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
            time.sleep(0.01)

    killer = threading.Thread(target=kill_a_rank)
    killer.start()
    try:
        with pytest.raises(DistributedTrainingError, match=r"rank \d died \((signal|no error)"):
            trainer.train(
                records, model_dir=model_dir, out_dir=tmp_path / "adapter", data_root=tmp_path
            )
    finally:
        killer.join()
    assert killed
    assert not (tmp_path / "adapter").exists()  # no adapter of a partial run
    (row,) = PrivacyLedger(tmp_path / LEDGER_FILE).rows()
    assert row["status"] == "reserved"  # not settled: the rerun resumes under the same key
    charged = StepLedger(step_ledger).charged()

    result, rows = trainer.train(
        records, model_dir=model_dir, out_dir=tmp_path / "adapter", data_root=tmp_path
    )
    # from rank 0's last checkpoint; every step charged before the crash stays charged
    assert result.resumed_from_step in (2, 4, 6) and result.resumed_from_step <= charged
    assert result.steps_repeated == charged - result.resumed_from_step
    assert result.steps == 8 and result.epsilon <= TRAINER["target_epsilon"]
    (row,) = rows  # one run, one charge
    assert row["status"] == "spent" and row["epsilon"] == result.epsilon
    assert (tmp_path / "adapter" / "adapter_model.safetensors").is_file()


def _spawned_children() -> list[int]:
    """The training processes of this test process (the fork server's children), newest
    first, once two of them run."""
    processes = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes()
        except (OSError, IndexError):
            continue
        processes[int(stat.parent.name)] = (int(fields[1]), int(fields[19]), cmdline)
    servers = {
        pid
        for pid, (ppid, _, cmdline) in processes.items()
        if ppid == os.getpid() and b"forkserver" in cmdline
    }
    children = sorted(
        ((started, pid) for pid, (ppid, started, _) in processes.items() if ppid in servers),
        reverse=True,
    )
    return [pid for _, pid in children] if len(children) >= 2 else []


def test_when_a_rank_raises_then_its_error_is_passed_on_with_its_type_and_rank() -> None:
    raised = ProcessRaisedException("traceback text", error_index=1, error_pid=4242)
    config_error = _failure(
        {("error", 1): ("TrainingConfigError", "training.target_delta = 0.1 ...")}, raised, 2
    )
    assert isinstance(config_error, TrainingConfigError)
    assert str(config_error).startswith("training.target_delta") and "rank 1 of 2" in str(
        config_error
    )
    other = _failure({("error", 1): ("KeyError", "'lora_A'")}, raised, 2)
    assert isinstance(other, DistributedTrainingError)
    assert "rank 1 failed (KeyError" in str(other) and "traceback" not in str(other)
    # rank 1 was killed (recorded nothing); rank 0 lost its peer: the cause is rank 1
    lost = ("RuntimeError", "[pair.cc:537] Read error: Connection reset by peer")
    cause = _failure({("error", 0): lost}, ProcessRaisedException("", 0, 1), 2)
    assert isinstance(cause, DistributedTrainingError)
    assert "rank 1 died (no error of its own" in str(cause)


# Settings: `training.processes` and `training.backend`.


def test_when_processes_is_not_a_positive_int_then_the_setting_is_named(tmp_path: Path) -> None:
    for bad in (0, -1, "two", 1.5):
        with pytest.raises(ValidationError, match="processes"):
            TrainingConfig(processes=bad)
    profile = tmp_path / "p.yaml"
    profile.write_text(f"data_root: {tmp_path}\ntraining:\n  processes: 0\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="training.processes"):
        load_config(str(profile))


def test_when_several_processes_meet_an_unsupported_setting_then_both_are_named() -> None:
    for name, value in (
        ("privacy_unit", "user"),
        ("clipping", "ghost"),
        ("clip_bound", "adaptive"),
    ):
        with pytest.raises(ValidationError, match=f"training.processes = 2 needs training.{name}"):
            TrainingConfig(processes=2, **{name: value})
    assert TrainingConfig(processes=1, privacy_unit="user").processes == 1


def test_the_backend_is_gloo_on_the_cpu_and_nccl_without_enough_gpus_is_refused() -> None:
    assert resolve_backend(TrainingConfig(processes=2), "cpu") == "gloo"
    assert resolve_backend(TrainingConfig(processes=2, backend="gloo"), "cuda") == "gloo"
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    too_many = TrainingConfig(processes=max(2, gpus + 1), backend="nccl")
    with pytest.raises(TrainingConfigError, match="training.processes .* training.backend"):
        resolve_backend(too_many, "cpu")
    with pytest.raises(TrainingConfigError, match="training.backend: gloo"):
        resolve_backend(TrainingConfig(processes=max(2, gpus + 1)), "cuda")


def test_when_nccl_cannot_run_then_the_trainer_refuses_before_reserving(
    model_dir: Path, tmp_path: Path
) -> None:
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    trainer = DPTrainer(**TRAINER, processes=max(2, gpus + 1), backend="nccl")
    records = frame_to_records(read_parquet(_corpus(tmp_path)["path"]))
    with pytest.raises(TrainingConfigError, match="training.processes"):
        trainer.train(records, model_dir=model_dir, out_dir=tmp_path / "a", data_root=tmp_path)
    assert PrivacyLedger(tmp_path / LEDGER_FILE).rows() == []


def test_the_profile_setting_reaches_the_trainer(tmp_path: Path) -> None:
    cfg = PipelineConfig(data_root=str(tmp_path), training=TrainingConfig(processes=2))
    trainer = build_resources(cfg)["trainer"]
    assert (trainer.processes, trainer.config.processes, trainer.config.backend) == (2, 2, "auto")


def test_every_training_setting_of_a_profile_reaches_the_trainer(tmp_path: Path) -> None:
    # DPTrainer ignores keywords it does not declare: a missing field drops a profile setting
    # silently (training.optimizer, lora_freeze_a and the adaptive bound's were dropped so)
    assert set(TrainingConfig.model_fields) - set(DPTrainer.model_fields) == {"utility"}
    training = TrainingConfig(optimizer="sgd", lora_freeze_a=True, clip_bound="adaptive")
    trainer = build_resources(PipelineConfig(data_root=str(tmp_path), training=training))["trainer"]
    assert trainer.config.model_dump() == training.model_dump()
