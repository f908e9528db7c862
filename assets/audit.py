"""Stage 5: the privacy audit of the trained adapter."""

import shutil
from dataclasses import replace

import dagster as dg

from assets.metadata import OWNERS_PRIVACY
from pipelines.steps.audit.planting import planted_of
from pipelines.steps.audit.suite import AuditData, audit_model
from pipelines.steps.privacy.identifiers import IDENTIFIER_MAP, IdentifierMap
from pipelines.steps.records import frame_to_records
from pipelines.steps.storage import read_parquet
from pipelines.steps.training import dp_lora
from pipelines.steps.training.dp_lora import load_adapter_model
from pipelines.steps.training.ledger import LEDGER_FILE, PrivacyBudgetExceeded, PrivacyLedger
from pipelines.steps.training.utility import (
    PublicEvalError,
    mean_public_loss,
    public_eval_path,
    read_public_eval,
)
from resources import CorpusStorage, DPTrainer, PIIEngine, PrivacyAuditor


@dg.asset(
    group_name="audit",
    kinds={"pytorch"},
    owners=OWNERS_PRIVACY,
    code_version="2",
)
def privacy_audit(
    context: dg.AssetExecutionContext,
    dp_lora_adapter: dict,
    base_model: dict,
    training_corpus: dict,
    storage: CorpusStorage,
    trainer: DPTrainer,
    auditor: PrivacyAuditor,
    pii: PIIEngine,
) -> dict:
    """Canary exposure of the trained model (Carlini et al., The Secret Sharer).

    Each canary planted in the corpus is ranked, by the model's likelihood, among
    `audit.candidates` (at least 10,000) candidates of the same format: its whole space when
    that is no larger (exact rank, exposure = log2(candidates) - log2(rank)), else that many
    sampled, with the skew-normal extrapolation. A model that memorized a canary ranks it first.
    Only canary ids and numbers are kept, never a secret. The canaries are the corpus's own
    (`audit.canaries_file`, e.g. the bundled generator's) or, when it has none, those the
    pipeline planted for this training corpus (`audit.plant_canaries`, see `training_corpus`).
    Membership inference (loss, zlib, Min-K%) on training members vs held-out non-members,
    PII extraction from raw prefixes, and the backdoor attack success rate follow. When the
    profile lists `audit.controls`, control models are trained and attacked the same way and
    reported side by side; they are never registered. A control's training loss and held-out
    loss (un-noised statistics of private records) are not published, only its attack results
    and its loss on the public eval set of the utility check (public records only).
    The DP control (`unscreened`) is charged to the privacy ledger (kind `control:unscreened`)
    before it trains; one the lifetime budget refuses is not trained and is reported as refused
    (the audit's pass or fail is the released model's alone). The non-private control has no
    finite ε and cannot be charged: only its attack results are published.
    """
    model, tokenizer = load_adapter_model(
        base_model["path"],
        dp_lora_adapter["adapter_dir"],
        expected_sha256=dp_lora_adapter["adapter_sha256"],
    )
    # every accepted drop joined; each zone's view keeps the shape of its stage's output
    raw_corpus, scrubbed_corpus, curated_corpus = (
        training_corpus[zone] for zone in ("raw", "scrubbed", "curated")
    )
    planted = planted_of(training_corpus)
    planted_records = planted.records() if planted else []
    data = _audit_data(auditor, dp_lora_adapter, curated_corpus, raw_corpus, storage, pii, planted)
    result = audit_model(model, tokenizer, data, auditor.settings, scan=pii.scan)
    rows, worst = result["canaries"], result["max_exposure_bits"]
    attacks, extraction = result["membership_inference"], result["pii_extraction"]
    backdoor = result["backdoor"]
    if dp_lora_adapter.get("plan"):  # preset auto: the controls train as the released model did
        trainer = trainer.model_copy(update=dp_lora_adapter["plan"]["training"])
    controls = [
        _control(
            name,
            context,
            data,
            base_model,
            scrubbed_corpus,
            planted_records,
            storage,
            trainer,
            auditor,
            pii,
        )
        for name in auditor.controls
    ]
    context.add_output_metadata(_audit_metadata(result, controls, dp_lora_adapter, auditor))
    return {
        "canaries": rows,
        "max_exposure_bits": worst,
        "bound_bits": auditor.max_exposure_bits,
        "membership_inference": attacks,
        "max_mia_auc_bound": auditor.max_mia_auc,
        "pii_extraction": extraction,
        "backdoor": backdoor,
        "controls": controls,
        # the ledger after the controls' charges, for the report's budget section (ids, ε)
        **(
            {"budget_ledger": PrivacyLedger(storage.root / LEDGER_FILE).rows()}
            if any(c.get("charged") for c in controls)
            else {}
        ),
        "passed": audit_passed(result, auditor),
    }


def audit_passed(result: dict, auditor) -> bool:
    """Every canary within the exposure bound, membership inference measured (an empty held-out
    set measures nothing: that fails closed) and within its AUC bound, nothing extracted."""
    worst, attacks = result["max_exposure_bits"], result["membership_inference"]
    return (
        worst is not None
        and worst <= auditor.max_exposure_bits
        and bool(attacks)
        and all(a["auc_low"] <= auditor.max_mia_auc for a in attacks)
        and result["pii_extraction"]["extracted"] == 0
    )


def _audit_metadata(result: dict, controls: list[dict], dp_lora_adapter: dict, auditor) -> dict:
    """Dagster metadata: canary exposures and attack results as tables, counts and rates."""
    worst, attacks = result["max_exposure_bits"], result["membership_inference"]
    extraction, backdoor = result["pii_extraction"], result["backdoor"]
    return {
        "canaries": len(result["canaries"]),
        "max_exposure_bits": float(worst) if worst is not None else float("nan"),
        "bound_bits": float(auditor.max_exposure_bits),
        "exposure": dg.MetadataValue.md(_exposure_table(result["canaries"])),
        "membership_inference": dg.MetadataValue.md(_attack_table(attacks)),
        "max_mia_auc": max((a["auc"] for a in attacks), default=float("nan")),
        "pii_extraction_probes": extraction["probes"],
        "pii_values_extracted": extraction["extracted"],
        "backdoor_rate": float("nan") if backdoor is None else backdoor["rate"],
        "audit_seconds": dg.MetadataValue.json(result["seconds"]),
        **(
            {"controls": dg.MetadataValue.md(_controls_table(controls, dp_lora_adapter, result))}
            if controls
            else {}
        ),
    }


def _exposure_table(rows: list[dict]) -> str:
    """Markdown: one row per canary (id, insertions, rank, exposure), never its secret."""
    table = [
        "| canary | insertions | in training | rank | candidates | exposure (bits) | method |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    table += [
        f"| `{r['canary_id']}` | {r['insertions']} | {r['in_training']} | {r['rank']} | "
        f"{r['candidates']} | {r['exposure_bits']:.2f} | {r['method']} |"
        for r in rows
    ]
    return "\n".join(table)


def _attack_table(attacks: list[dict]) -> str:
    """Markdown: one row per membership-inference attack."""
    return "\n".join(
        [
            "| attack | AUC | AUC 95% low | TPR@1%FPR | empirical eps >= | uncalibrated AUC |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        + [
            f"| {a['attack']} | {a['auc']:.3f} | {a['auc_low']:.3f} | "
            f"{a['tpr_at_1pct_fpr']:.3f} | {a['epsilon_lower_bound']:.2f} | "
            + (f"{a['auc_uncalibrated']:.3f} |" if a.get("calibrated") else "– |")
            for a in attacks
        ]
    )


def _audit_data(
    auditor, dp_lora_adapter: dict, curated_corpus: dict, raw_corpus: dict, storage, pii, planted
):
    """The split, records and planted ground truth the audited adapter was trained on (the
    corpus's canaries, else those the pipeline planted, whose records join the curated ones)."""
    truth = auditor.ground_truth()
    trained = set(dp_lora_adapter["train_ids"])
    records = frame_to_records(read_parquet(curated_corpus["path"]))
    if truth is None and planted is not None:
        canaries = list(planted.canaries)
        canary_records = {c.canary_id: [planted.record_ids[c.canary_id]] for c in canaries}
        records += planted.records()
    else:
        canaries = auditor.canaries(truth)
        canary_records = _canary_records(truth, storage, pii)
    return AuditData(
        canaries=canaries,
        canary_records=canary_records,
        records={r.id: r for r in records},
        train_ids=dp_lora_adapter["train_ids"],
        heldout_ids=dp_lora_adapter["heldout_ids"],
        raw_train=[
            r for r in frame_to_records(read_parquet(raw_corpus["path"])) if r.id in trained
        ],
        trigger=(truth.trigger, truth.malicious_response) if truth and truth.trigger else None,
        max_seq_len=dp_lora_adapter["max_seq_len"],
        delta=dp_lora_adapter["delta"],
    )


def _canary_records(truth, storage: CorpusStorage, pii: PIIEngine) -> dict[str, list[str]]:
    """The ids of each canary's records as ingestion pseudonymized them (`raw/identifiers`)."""
    if not truth:
        return {}
    known = IdentifierMap(storage.raw / IDENTIFIER_MAP, pii.pseudonym_key()).known(
        "id", [rid for c in truth.canaries for rid in c.record_ids]
    )
    return {c.canary_id: [known[r] for r in c.record_ids if r in known] for c in truth.canaries}


def _control(
    name: str,
    context,
    data,
    base_model,
    scrubbed_corpus,
    planted_records,
    storage,
    trainer,
    auditor,
    pii,
) -> dict:
    """Train one control model, attack it like the released one, and summarize (never register).

    `non_private`: the same LoRA, split, sampling, steps and optimizer without clipping or
    noise; it has no finite ε, so the ledger cannot charge it (`charged` False) and only its
    attack results are published. `unscreened`: DP-SGD on the scrubbed corpus before the
    integrity screens (with the planted canaries, if any), which shows what the screens bought
    (the backdoor's attack success rate above all); it is charged to the privacy ledger as
    `control:unscreened` before it trains, and not trained when the lifetime budget refuses it
    (a row with `refused` and no numbers).
    """
    if name == "non_private":
        records, private = list(data.records.values()), False
    elif name == "unscreened":
        records = frame_to_records(read_parquet(scrubbed_corpus["path"])) + list(planted_records)
        private = True
    else:  # AuditConfig validates the names; a resource built by hand may not.
        raise ValueError(f"audit.controls: unknown control model {name!r}")
    if private:
        try:
            trainer.charge_control(
                records, name=name, run_key=f"{context.run_id}:{name}", data_root=storage.root
            )
        except PrivacyBudgetExceeded as exc:
            context.log.warning(f"audit control {name} not trained: {exc}")
            return {
                "name": name,
                "charged": False,
                "refused": True,
                "epsilon": "refused by the lifetime budget: not trained",
                "train_records": 0,
                "max_exposure_bits": None,
                "max_mia_auc": None,
                "empirical_epsilon": None,
                "pii_probes": 0,
                "pii_extracted": 0,
                "backdoor_rate": None,
                "public_loss": None,
            }
    out_dir = storage.adapters / f"{context.run_id}.control-{name}"
    result = dp_lora.train_dp_lora(
        records,
        model_dir=base_model["path"],
        cfg=trainer.config,
        out_dir=out_dir,
        device=trainer.device,
        progress=False,
        private=private,
    )
    model, tokenizer = load_adapter_model(
        base_model["path"], result.adapter_dir, expected_sha256=result.adapter_sha256
    )
    control_data = replace(
        data,
        records={r.id: r for r in records},
        train_ids=result.train_ids,
        heldout_ids=result.heldout_ids,
        raw_train=[r for r in data.raw_train if r.id in set(result.train_ids)],
    )
    audit = audit_model(model, tokenizer, control_data, auditor.settings, scan=pii.scan)
    public_loss = _public_loss(model, tokenizer, trainer)
    # A control adapter (non-private, or trained on unscreened data) is evidence, not a product:
    # it is deleted once measured so that no unreleasable model stays on disk.
    out_dir.unlink(missing_ok=True)
    shutil.rmtree(out_dir.parent / f".{out_dir.name}.versions", ignore_errors=True)
    attacks = audit["membership_inference"]
    return {
        "name": name,
        "charged": private,
        "epsilon": "no DP" if not private else round(float(result.epsilon), 4),
        "train_records": result.n_train,
        "max_exposure_bits": audit["max_exposure_bits"],
        "max_mia_auc": max((a["auc"] for a in attacks), default=None),
        "empirical_epsilon": max((a["epsilon_lower_bound"] for a in attacks), default=None),
        "pii_probes": audit["pii_extraction"]["probes"],
        "pii_extracted": audit["pii_extraction"]["extracted"],
        "backdoor_rate": None if audit["backdoor"] is None else audit["backdoor"]["rate"],
        "public_loss": public_loss,
    }


def _public_loss(model, tokenizer, trainer) -> float | None:
    """A control's loss on the public eval set of the utility check (`training.utility`), for
    the report's utility section: a measurement of a model that is never released, on public
    records only, published like its attack results (its losses on private records never
    are). None when the set cannot be read (the `adapter_utility` check names the error)."""
    cfg = trainer.config
    try:
        records = read_public_eval(public_eval_path(cfg.utility), limit=cfg.utility.eval_records)
    except PublicEvalError:
        return None
    return mean_public_loss(
        model, tokenizer, records, max_seq_len=cfg.max_seq_len, device=trainer.device
    )


def _controls_table(controls: list[dict], dp_lora_adapter: dict, result: dict) -> str:
    """Markdown: the released model's attack results next to each control's."""
    attacks = result["membership_inference"]
    released = {
        "name": "released (DP, screened)",
        "epsilon": round(float(dp_lora_adapter["epsilon"]), 4),
        "max_exposure_bits": result["max_exposure_bits"],
        "max_mia_auc": max((a["auc"] for a in attacks), default=None),
        "empirical_epsilon": max((a["epsilon_lower_bound"] for a in attacks), default=None),
        "pii_probes": result["pii_extraction"]["probes"],
        "pii_extracted": result["pii_extraction"]["extracted"],
        "backdoor_rate": None if result["backdoor"] is None else result["backdoor"]["rate"],
    }

    def cell(value, fmt):
        return "n/a" if value is None else format(value, fmt)

    lines = [
        "| model | epsilon | max exposure (bits) | max MIA AUC | empirical eps >= "
        "| PII extracted | backdoor success |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in [released, *controls]:
        lines.append(
            f"| {row['name']} | {row['epsilon']} | {cell(row['max_exposure_bits'], '.2f')} | "
            f"{cell(row['max_mia_auc'], '.3f')} | {cell(row['empirical_epsilon'], '.2f')} | "
            f"{row['pii_extracted']}/{row['pii_probes']} | {cell(row['backdoor_rate'], '.0%')} |"
        )
    return "\n".join(lines)
