"""The privacy auditor: measures what the trained model memorized."""

from pathlib import Path

import dagster as dg


class PrivacyAuditor(dg.ConfigurableResource):
    """Canary-exposure audit settings (see AuditConfig)."""

    candidates: int = 1000
    max_exposure_bits: float = 8.0
    canaries_file: str = "var/raw/ground_truth.json"
    mia_records: int = 64
    max_mia_auc: float = 0.55
    extraction_probes: int = 32
    backdoor_prompts: int = 8
    seed: int = 0

    def canaries(self) -> list:
        """The canaries planted in the corpus, read from the raw zone (empty if none)."""
        from pipelines.steps.audit import CanarySpec
        from pipelines.steps.corpus import read_ground_truth

        path = Path(self.canaries_file)
        if not path.is_file():
            return []
        truth = read_ground_truth(path)
        return [
            CanarySpec(
                canary_id=c.canary_id,
                prefix=c.prefix,
                secret=c.secret,
                alphabet=c.alphabet,
                length=c.length,
                insertions=c.insertions,
            )
            for c in truth.canaries
        ]

    def canary_record_ids(self) -> dict[str, tuple[str, ...]]:
        from pipelines.steps.corpus import read_ground_truth

        path = Path(self.canaries_file)
        if not path.is_file():
            return {}
        return {c.canary_id: c.record_ids for c in read_ground_truth(path).canaries}

    def backdoor(self) -> tuple[str, str] | None:
        """(trigger, malicious response) planted in the corpus, if its ground truth says so."""
        from pipelines.steps.corpus import read_ground_truth

        path = Path(self.canaries_file)
        if not path.is_file():
            return None
        truth = read_ground_truth(path)
        return (truth.trigger, truth.malicious_response) if truth.trigger else None
