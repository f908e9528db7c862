"""Where every zone of the pipeline lives on disk."""

from pathlib import Path

import dagster as dg

from pipelines.steps.config import CurationConfig, IngestLimits
from pipelines.steps.storage import portable, to_stored


class CorpusStorage(dg.ConfigurableResource):
    """The on-disk zones under one data root, and the corpus's record limits.

    `languages` are the languages with a configured PII detector (others are quarantined);
    `max_record_chars` bounds ingestion; `min_chars`/`max_chars` bound the curated corpus.

    The raw zone (`landing/`, `raw/`) holds personal data and must stay on this machine;
    every zone after it holds scrubbed data, models, registry state and reports only.
    """

    data_root: str = "var"
    profile: str = "default"
    languages: list[str] = ["en"]
    max_record_chars: int = 20_000
    min_chars: int = 8
    max_chars: int = 8000
    curation_json: str = ""
    """The profile's whole `curation` section as JSON (screen thresholds, gate bounds); empty:
    the defaults with `min_chars`/`max_chars` above."""
    ingest_limits_json: str = ""
    """The profile's `ingest.limits` section as JSON (file and record size limits); empty: the
    defaults."""

    @property
    def ingest_limits(self) -> IngestLimits:
        """Per-file and per-record ingestion limits, validated like the profile."""
        if self.ingest_limits_json:
            return IngestLimits.model_validate_json(self.ingest_limits_json)
        return IngestLimits()

    @property
    def curation(self) -> CurationConfig:
        """The screens' and curated-corpus gates' settings, validated like the profile."""
        if self.curation_json:
            return CurationConfig.model_validate_json(self.curation_json)
        return CurationConfig(min_chars=self.min_chars, max_chars=self.max_chars)

    @property
    def root(self) -> Path:
        return Path(self.data_root).resolve()

    @property
    def landing(self) -> Path:
        return self.root / "landing"

    @property
    def raw(self) -> Path:
        return self.root / "raw"

    @property
    def ground_truth(self) -> Path:
        """The synthetic corpus's ground truth (PII spans, canaries): raw zone."""
        return self.raw / "ground_truth.json"

    @property
    def scrubbed(self) -> Path:
        return self.root / "scrubbed"

    @property
    def curated(self) -> Path:
        return self.root / "curated"

    @property
    def models(self) -> Path:
        return self.root / "models"

    @property
    def adapters(self) -> Path:
        return self.root / "adapters"

    @property
    def reports(self) -> Path:
        return self.root / "reports"

    @property
    def secrets(self) -> Path:
        return self.root / "secrets"

    def stored(self, path: str | Path) -> str:
        """A path as stored in metadata, summaries and tags: relative to the data root when it
        is under it (so the root can move), else as it is."""
        return to_stored(path, self.root)

    def portable(self, summary: dict) -> dict:
        """A summary with every path in it relative to the data root, for writing it down."""
        return portable(summary, self.root)

    def drop_dir(self, zone: Path, key: str) -> Path:
        """A drop's own folder in a zone (`raw/drops/<key>/`, ...): partitions never share files.

        Raises:
            ValueError: a key that could leave the zone (keys come from `drop_key`).
        """
        if not key or key.startswith(".") or "/" in key or "\\" in key:
            raise ValueError(f"data drop key {key!r} is not a safe folder name")
        return zone / "drops" / key
