"""Checks on the joined training corpus: conservation over every drop, near copies across drops.

Both block training: per-drop checks cannot see a record that two drops share.
"""

import dagster as dg

from assets.training_corpus import training_corpus
from pipelines.steps.integrity.batches import read_packed
from pipelines.steps.integrity.curate import near_duplicate_rate
from pipelines.steps.release import gates
from resources import CorpusStorage, DataEngine


@dg.asset_check(asset=training_corpus, blocking=True)
def records_conserved_across_drops(training_corpus: dict) -> dg.AssetCheckResult:
    """Over all drops, records in = kept + filtered + quarantined (cross-drop removals are
    filtered), and so in every drop: no record vanishes between landing and training."""
    drops, raw, curated = (
        training_corpus["drops"],
        training_corpus["raw"],
        training_corpus["curated"],
    )
    total = gates.conservation(
        records_in=raw["records_in"],
        accepted=curated["kept"],
        quarantined=raw["quarantined"],
        filtered=curated["filtered"],
    )
    broken = [
        d["drop"] for d in drops if d["records_in"] != d["kept"] + d["filtered"] + d["quarantined"]
    ]
    return dg.AssetCheckResult(
        passed=total.passed and not broken,
        severity=dg.AssetCheckSeverity.ERROR,
        description=total.description
        + (
            f"; drops not conserved: {', '.join(broken)}"
            if broken
            else f" over {len(drops)} drop(s)"
        ),
        metadata={**total.metadata, "drops": len(drops), "drops_not_conserved": len(broken)},
    )


@dg.asset_check(asset=training_corpus, blocking=True)
def near_duplicate_rate_across_drops_bounded(
    training_corpus: dict, storage: CorpusStorage, execution: DataEngine
) -> dg.AssetCheckResult:
    """Near duplicates in the joined corpus (including copies that sit in different drops) stay
    under `curation.max_near_duplicate_rate`; exact copies across drops were already removed."""
    cfg = storage.curation
    # packed, read a batch at a time (#21.1): about the size of their text
    records = read_packed(training_corpus["path"], execution.stream_batch_records)
    rate = near_duplicate_rate(records, cfg)
    passed = rate <= cfg.max_near_duplicate_rate
    return dg.AssetCheckResult(
        passed=passed,
        severity=dg.AssetCheckSeverity.ERROR,
        description=f"near-duplicate rate across {len(training_corpus['drops'])} drop(s) "
        f"{rate:.4f} {'<=' if passed else '>'} bound {cfg.max_near_duplicate_rate}",
        metadata={"near_duplicate_rate": rate, "bound": cfg.max_near_duplicate_rate},
    )
