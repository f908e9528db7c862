"""The privacy auditor: measures what the trained model memorized."""

from pathlib import Path

import dagster as dg


class PrivacyAuditor(dg.ConfigurableResource):
    """Privacy-audit settings (see AuditConfig)."""

    candidates: int = 10000
    max_exposure_bits: float = 8.0
    canaries_file: str = "var/raw/ground_truth.json"
    plant_canaries: int = 6
    mia_records: int = 64
    max_mia_auc: float = 0.55
    extraction_probes: int = 32
    backdoor_prompts: int = 8
    controls: list[str] = []
    seed: int = 0

    @property
    def settings(self):
        """The attack sizes and seed as the Dagster-free audit suite takes them."""
        from pipelines.steps.audit.suite import AuditSettings

        return AuditSettings(
            candidates=self.candidates,
            mia_records=self.mia_records,
            extraction_probes=self.extraction_probes,
            backdoor_prompts=self.backdoor_prompts,
            seed=self.seed,
        )

    def ground_truth(self):
        """The planted canaries and backdoor, read from the raw zone (None if there is none)."""
        from pipelines.steps.synthetic.corpus import read_ground_truth

        path = Path(self.canaries_file)
        return read_ground_truth(path) if path.is_file() else None

    @staticmethod
    def canaries(truth) -> list:
        """The canaries of a ground truth as audit specs (empty without one)."""
        from pipelines.steps.audit.canaries import CanarySpec

        return [
            CanarySpec(
                canary_id=c.canary_id,
                prefix=c.prefix,
                secret=c.secret,
                alphabet=c.alphabet,
                length=c.length,
                insertions=c.insertions,
            )
            for c in (truth.canaries if truth else ())
        ]
