"""DP utility (issue #18, points 2, 3 and 5): the share of the non-private held-out gain that
DP-LoRA recovers, measured with the product's `train_dp_lora`, the planner's prediction beside.

The share is (base - DP) / (base - non-private): held-out losses (mean per-example loss over the
assistant tokens of the first 64 held-out records, as training measures it) of the untouched
base model, the DP adapter and a non-private adapter trained at the same compute (same split,
Poisson batches, batch size and steps: `noise_seed` 0 gives both runs the same batches).

Three parts, each a subcommand:

- `params`: point 3 and 2 at reduced compute: DP-LoRA at epsilon 8 with one parameterization
  changed at a time from the default profile (LoRA rank, FFA-LoRA, target modules, DP-SGD,
  fixed C 0.1 / 1, adaptive clipping), against one non-private control.
- `compute` (5a): the default profile's compute, `training.plan_minutes` of steps at a given
  cost per example (the plan's setting: batch, steps, rank, lr), the profile's
  parameterization, epsilon 8: target >= 40% of the gain.
- `sweep` (5b): N synthetic records (the bundled generator, English) x epsilon at reduced steps,
  one control per N, with `plan.predict_setting`'s share beside each (target: within +-25% of
  the measured share). `benchmarks/gpu/dp_utility_gpu.py` runs the same table at N = 50k,
  batch 1,024 on a CUDA machine.

Usage (from the repository root; SmolLM2-135M-Instruct from the local model store):
    .venv/bin/python benchmarks/dp_utility.py params --steps 40 --batch 8 --seq-len 32
    .venv/bin/python benchmarks/dp_utility.py compute --per-example-seconds 0.55
    # one side of 5a at a setting of its own (no plan: the profile's settings and --set):
    .venv/bin/python benchmarks/dp_utility.py compute --no-plan --skip control \
        --set expected_batch_size=8 --set steps=81 --set lora_r=4 --set lora_alpha=8 \
        --set max_grad_norm=0.1 --set learning_rate=0.01 [--noise-seed 1]
    .venv/bin/python benchmarks/dp_utility.py sweep --records 2000,10000,50000 --epsilons 1,4,8
"""

import argparse
import contextlib
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _training_bench import (  # noqa: E402
    REPO_ROOT,
    base_model_dir,
    corpus_records,
    device_name,
)

from pipelines.steps.config import TrainingConfig, load_config  # noqa: E402
from pipelines.steps.offline import enforce_offline  # noqa: E402
from pipelines.steps.records import Record  # noqa: E402
from pipelines.steps.training import dp_lora  # noqa: E402
from pipelines.steps.training import plan as planner  # noqa: E402
from pipelines.steps.training.dp_lora import TrainingResult, train_dp_lora  # noqa: E402

PARAM_VARIANTS = (
    ("profile: r 8, q/v, Adam, fixed C 1", {}),
    ("fixed C 0.1", {"max_grad_norm": 0.1}),
    ("adaptive C (start 1, quantile 0.5)", {"clip_bound": "adaptive"}),
    ("rank 4", {"lora_r": 4, "lora_alpha": 8}),
    ("rank 1", {"lora_r": 1, "lora_alpha": 2}),
    ("FFA-LoRA r 8 (A frozen)", {"lora_freeze_a": True}),
    ("FFA-LoRA r 1", {"lora_freeze_a": True, "lora_r": 1, "lora_alpha": 2}),
    ("q/k/v/o", {"target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"]}),
    ("DP-SGD lr 1.0", {"optimizer": "sgd", "learning_rate": 1.0}),
)


@dataclass(frozen=True)
class Row:
    """One DP run beside its control and the planner's prediction."""

    label: str
    n_records: int
    epsilon: float
    cfg: TrainingConfig
    dp: TrainingResult
    control: TrainingResult
    predicted: planner.Candidate
    seconds: float

    @property
    def share(self) -> float:
        base, best = self.dp.heldout_loss_before, self.control.heldout_loss_after
        return (base - self.dp.heldout_loss_after) / (base - best)


@dataclass
class StepClock:
    """The training steps' own cost, the model load and held-out passes left out: wall and
    process CPU seconds from the first step's forward pass to the last step's record.

    CPU seconds are the process's (every thread's), so CPU / cores is what the steps would
    take on idle cores when other processes share them (the wall then includes waiting).
    """

    wall: float = 0.0
    cpu: float = 0.0
    steps: int = 0
    _start: tuple[float, float] | None = field(default=None, repr=False)

    @contextlib.contextmanager
    def watching(self):
        """Time the steps of the `train_dp_lora` calls inside (wraps two of its helpers)."""
        forward_backward, record_step = dp_lora._forward_backward, dp_lora._record_step

        def timed_forward_backward(*args, **kwargs):
            if self._start is None:
                self._start = (time.perf_counter(), time.process_time())
            return forward_backward(*args, **kwargs)

        def timed_record_step(*args, **kwargs):
            record_step(*args, **kwargs)
            if self._start is not None:
                self.wall = time.perf_counter() - self._start[0]
                self.cpu = time.process_time() - self._start[1]
                self.steps += 1

        dp_lora._forward_backward, dp_lora._record_step = timed_forward_backward, timed_record_step
        try:
            yield self
        finally:
            dp_lora._forward_backward, dp_lora._record_step = forward_backward, record_step

    def describe(self) -> str:
        return (
            f"training steps alone: {self.steps} steps in {self.wall:.0f} s wall, "
            f"{self.cpu:.0f} s process CPU ({self.cpu / 2:.0f} s on 2 idle cores)"
        )


def synthetic_records(n: int, *, seed: int = 7) -> list[Record]:
    """The bundled generator's English records at about `n` records (generated in memory)."""
    from pipelines.steps.ingest.landing import ingest_landing
    from pipelines.steps.synthetic.corpus import generate_corpus

    with tempfile.TemporaryDirectory() as tmp:
        generate_corpus(Path(tmp), records=n, seed=seed)
        return ingest_landing(Path(tmp), languages=["en"], max_record_chars=20_000).accepted


def cache_encodings() -> None:
    """Encode each (records, window) once per process: the sweep trains several runs on one
    corpus, and `train_dp_lora` tokenizes its records every run (minutes at 50k records)."""
    encode = dp_lora.encode_records
    if getattr(encode, "cached", False):
        return
    memo: dict = {}

    def encode_records(tokenizer, records, *, max_seq_len):
        key = (tokenizer.name_or_path, tuple(r.id for r in records), max_seq_len)
        if key not in memo:
            memo[key] = encode(tokenizer, records, max_seq_len=max_seq_len)
        return memo[key]

    encode_records.cached = True
    dp_lora.encode_records = encode_records


def run_pair(
    records: list[Record],
    cfg: TrainingConfig,
    *,
    model_dir: Path,
    out: Path,
    device: str,
    control: TrainingResult | None = None,
    control_cfg: TrainingConfig | None = None,
) -> tuple[TrainingResult, TrainingResult, float]:
    """(DP result, control result, seconds of both): the control is trained unless given."""
    started = time.perf_counter()
    kwargs = dict(model_dir=model_dir, device=device, progress=False)
    dp = train_dp_lora(
        records, cfg=cfg, out_dir=out / "dp", epsilon_every=cfg.steps, private=True, **kwargs
    )
    if control is None:
        control = train_dp_lora(
            records,
            cfg=control_cfg or cfg,
            out_dir=out / "control",
            epsilon_every=cfg.steps,
            private=False,
            **kwargs,
        )
    return dp, control, time.perf_counter() - started


HEADER = (
    "setting | N | eps | B | T | r | d | sigma | noise/C run | C end | base | DP | non-private | "
    "measured share | predicted | pred - meas | s"
)


def format_row(row: Row) -> str:
    cfg, dp, p = row.cfg, row.dp, row.predicted
    error = p.expected_share - row.share
    return (
        f"{row.label} | {row.n_records:,} | {row.epsilon:g} | {cfg.expected_batch_size} | "
        f"{cfg.steps} | {cfg.lora_r} | {p.lora_params:,} | {dp.noise_multiplier:.3f} | "
        f"{p.run_noise_to_signal:.3f} | {dp.max_grad_norm_final:.3g} | "
        f"{dp.heldout_loss_before:.3f} | {dp.heldout_loss_after:.3f} | "
        f"{row.control.heldout_loss_after:.3f} | {row.share:.1%} | {p.expected_share:.1%} | "
        f"{error * 100:+.1f} pt ({error / row.share:+.0%}) | {row.seconds:.0f}"
    )


def predict(cfg: TrainingConfig, n_records: int, model_dir: Path) -> planner.Candidate:
    per_rank = planner.lora_params_per_rank(
        model_dir, list(cfg.target_modules), freeze_a=cfg.lora_freeze_a
    )
    return planner.predict_setting(n_records=n_records, cfg=cfg, lora_params_per_rank=per_rank)


def sweep(
    *,
    sizes: list[int],
    epsilons: list[float],
    base: TrainingConfig,
    model_dir: Path,
    device: str,
    records_for=synthetic_records,
) -> list[Row]:
    """Part (b): for each N, one control and a DP run per epsilon; prints each row."""
    cache_encodings()
    rows = []
    print(HEADER, flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            records = records_for(n)
            control = None
            for epsilon in epsilons:
                cfg = base.model_copy(update={"target_epsilon": epsilon, "noise_seed": 0})
                dp, control, seconds = run_pair(
                    records,
                    cfg,
                    model_dir=model_dir,
                    out=Path(tmp) / f"{n}-{epsilon}",
                    device=device,
                    control=control,
                )
                row = Row(
                    f"sweep N {n:,}",
                    len(records),
                    epsilon,
                    cfg,
                    dp,
                    control,
                    predict(cfg, len(records), model_dir),
                    seconds,
                )
                rows.append(row)
                print(format_row(row), flush=True)
    return rows


def _params(args, model_dir: Path) -> None:
    records = corpus_records(args.data_root)
    base = load_config("default").training.model_copy(
        update={
            "expected_batch_size": args.batch,
            "steps": args.steps,
            "max_seq_len": args.seq_len,
            "noise_seed": 0,
            **_overrides(args),
        }
    )
    print(f"{len(records)} records; epsilon 8; every run batch {args.batch}, {args.steps} steps")
    print(HEADER, flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        control = None
        variants = [v for v in PARAM_VARIANTS if not args.only or v[0] in args.only.split(";")]
        for i, (label, change) in enumerate(variants):
            cfg = base.model_copy(update=change)
            TrainingConfig.model_validate(cfg.model_dump())  # the settings' own checks
            dp, control, seconds = run_pair(
                records,
                cfg,
                model_dir=model_dir,
                out=Path(tmp) / str(i),
                device=args.device,
                control=control,
                control_cfg=base,
            )
            row = Row(
                label,
                len(records),
                8.0,
                cfg,
                dp,
                control,
                predict(cfg, len(records), model_dir),
                seconds,
            )
            print(format_row(row), flush=True)


def _overrides(args) -> dict:
    """--lr and --accountant, when given."""
    out = {}
    if args.lr is not None:
        out["learning_rate"] = args.lr
    if args.accountant is not None:
        out["accountant"] = args.accountant
    return out


def _compute(args, model_dir: Path) -> None:
    records = corpus_records(args.data_root)
    profile = load_config("default").training
    cost = planner.StepCost(args.step_overhead_seconds, args.per_example_seconds, "given")
    per_rank = planner.lora_params_per_rank(
        model_dir, list(profile.target_modules), freeze_a=profile.lora_freeze_a
    )
    update: dict = {"noise_seed": args.noise_seed}
    if not args.no_plan:  # the plan's batch, steps, rank and lr (PRV: about a minute)
        made = planner.make_plan(
            n_records=len(records),
            cfg=profile,
            minutes=profile.plan_minutes,
            cost=cost,
            lora_params_per_rank=per_rank,
        )
        print(planner.format_plan(made), flush=True)
        update.update(made.training_update(profile))
    cfg = profile.model_copy(update={**update, **_settings(args.set)})
    control_cfg = cfg.model_copy(update=_settings(args.control_set))
    TrainingConfig.model_validate(cfg.model_dump())  # the settings' own checks
    changed = {k: getattr(cfg, k) for k in sorted({**update, **_settings(args.set)})}
    print(f"DP settings: {changed}; control: {_settings(args.control_set) or 'the same'}")
    if args.skip:
        _one_side(args.skip, records, cfg, control_cfg, model_dir=model_dir, device=args.device)
        return
    with tempfile.TemporaryDirectory() as tmp:
        dp, control, seconds = run_pair(
            records,
            cfg,
            model_dir=model_dir,
            out=Path(tmp),
            device=args.device,
            control_cfg=control_cfg,
        )
    row = Row(
        "compute (5a)",
        len(records),
        cfg.target_epsilon,
        cfg,
        dp,
        control,
        predict(cfg, len(records), model_dir),
        seconds,
    )
    print(HEADER)
    print(format_row(row))
    print(
        f"share of the non-private gain at epsilon {dp.epsilon:.3f}: {row.share:.1%} "
        f"(target >= 40%: {'met' if row.share >= 0.4 else 'missed'})"
    )


def _one_side(
    skip: str,
    records: list[Record],
    cfg: TrainingConfig,
    control_cfg: TrainingConfig,
    *,
    model_dir: Path,
    device: str,
) -> None:
    """compute --skip: train only the DP run or only the control (a grid of DP settings can
    share controls trained once per learning rate) and print its held-out losses."""
    private = skip == "control"
    run_cfg = cfg if private else control_cfg
    started = time.perf_counter()
    clock = StepClock()
    with tempfile.TemporaryDirectory() as tmp, clock.watching():
        result = train_dp_lora(
            records,
            cfg=run_cfg,
            out_dir=Path(tmp) / "adapter",  # published as a link: not the folder removed
            model_dir=model_dir,
            device=device,
            progress=False,
            epsilon_every=run_cfg.steps,
            private=private,
        )
    print(
        f"{'DP' if private else 'non-private control'}: batch {run_cfg.expected_batch_size}, "
        f"{run_cfg.steps} steps, rank {run_cfg.lora_r}, {'/'.join(run_cfg.target_modules)}, "
        f"lr {run_cfg.learning_rate:g}, C {run_cfg.max_grad_norm:g}, sigma "
        f"{result.noise_multiplier:.3f}, epsilon {result.epsilon:.3f}: held-out loss base "
        f"{result.heldout_loss_before:.3f} -> {result.heldout_loss_after:.3f} "
        f"({time.perf_counter() - started:.0f} s); {clock.describe()}",
        flush=True,
    )


def _settings(pairs: list[str]) -> dict:
    """`--set KEY=VALUE` pairs as training settings: VALUE parsed as YAML ([q_proj, v_proj])
    and typed as the setting is (1e-2, which YAML reads as a string, is the float 0.01)."""
    import yaml
    from pydantic import TypeAdapter, ValidationError

    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        field = TrainingConfig.model_fields.get(key)
        if not sep or field is None:
            raise SystemExit(f"--set {pair!r}: expected KEY=VALUE with KEY a training setting")
        try:
            out[key] = TypeAdapter(field.annotation).validate_python(yaml.safe_load(value))
        except ValidationError as error:
            raise SystemExit(f"--set {key}: {error.errors()[0]['msg']}") from None
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("part", choices=["params", "compute", "sweep"])
    parser.add_argument("--data-root", type=Path, default=REPO_ROOT / "var")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq-len", type=int, default=32)
    parser.add_argument("--only", default="", help="params: variant labels, ';'-separated")
    parser.add_argument("--per-example-seconds", type=float, default=0.55)
    parser.add_argument("--step-overhead-seconds", type=float, default=0.0)
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="compute: a training setting changed on top of the plan's (repeatable), e.g. "
        "max_grad_norm=0.1 learning_rate=0.01",
    )
    parser.add_argument(
        "--control-set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="compute: a setting of the non-private control only (e.g. its own learning_rate)",
    )
    parser.add_argument("--noise-seed", type=int, default=0, help="compute: sampling and noise")
    parser.add_argument(
        "--no-plan", action="store_true", help="compute: the profile's settings and --set only"
    )
    parser.add_argument(
        "--skip", choices=["dp", "control"], default=None, help="compute: train one side only"
    )
    parser.add_argument("--records", default="2000,10000,50000")
    parser.add_argument("--epsilons", default="1,4,8")
    parser.add_argument("--lr", type=float, default=None, help="default: the profile's")
    parser.add_argument("--accountant", default=None, choices=["prv", "rdp"])
    parser.add_argument(
        "--tiny", action="store_true", help="the tiny test Llama instead of SmolLM2 (CPU-cheap)"
    )
    args = parser.parse_args(argv)
    enforce_offline()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    if args.tiny:
        from tests.tiny_model import make_tiny_model_dir

        model_dir = make_tiny_model_dir(Path(tempfile.mkdtemp(prefix="tiny-llama-")))
        name = "the tiny test Llama (tests/tiny_model.py: 2 layers, hidden 64, random weights)"
    else:
        model_dir, name = base_model_dir(args.data_root), "SmolLM2-135M-Instruct"
    print(f"device: {device_name(args.device)}; model {name}", flush=True)
    if args.part == "params":
        _params(args, model_dir)
    elif args.part == "compute":
        _compute(args, model_dir)
    else:
        base = load_config("default").training.model_copy(
            update={
                "expected_batch_size": args.batch,
                "steps": args.steps,
                "max_seq_len": args.seq_len,
                **_overrides(args),
            }
        )
        sweep(
            sizes=[int(n) for n in args.records.split(",")],
            epsilons=[float(e) for e in args.epsilons.split(",")],
            base=base,
            model_dir=model_dir,
            device=args.device,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
