"""One vocabulary for where the records went, shared by the demo summary, metadata and report.

    records in = ingestion quarantine + filtered + trained on

- **ingestion quarantine**: set aside before screening, with a reason code, never scrubbed or
  trained on: lines that could not be read as records (`raw/drops/<drop>/quarantine.parquet`)
  and records whose PII scan ran past its budget (`scan_timeout`).
- **filtered**: not trained on, with a reason: records screening dropped without review (exact
  and near copies, length bounds, duplicates across drops), the screening quarantine that no
  steward approved, and records erased on request (`erased`, filtered at ingestion).
- **screening quarantine**: records a screen flagged for a steward; the **steward decisions**
  split it into approved (trained on), rejected and awaiting review (both filtered).
- **trained on**: the curated corpus.

Apart from these, **canaries planted**: records the pipeline adds for the privacy audit when the
data brings no canary list (`audit.plant_canaries`, data source `sovtune:canaries`); trained on
beside the curated corpus, they are not records in, so the sum above reconciles without them.
"""

LABELS = {
    "records_in": "records in",
    "ingestion_quarantine": "ingestion quarantine",
    "filtered": "filtered",
    "dropped_by_screening": "dropped by screening",
    "screening_quarantine": "screening quarantine",
    "trained_on": "trained on",
    "canaries_planted": "canaries planted",
}


def record_counts(raw: dict, curated: dict) -> dict:
    """The counts of one corpus (a drop's, or the joined training corpus) in the vocabulary.

    Args:
        raw: The raw summary (`records_in`, `quarantined`, `quarantine_by_reason`), with the
            scrub's `scan_timeout` quarantine already included (as `training_corpus` joins it).
        curated: The curated summary (`records_in`, `kept`, `dropped`, `quarantined`,
            `steward`).

    Returns:
        `records_in`, `ingestion_quarantine` (+ `_by_reason`), `filtered`,
        `dropped_by_screening`, `screening_quarantine`, `steward` (approved, rejected,
        awaiting_review), `trained_on`, `canaries_planted` (0 unless the pipeline planted
        the audit's canaries), and `reconciles`: whether records in = ingestion
        quarantine + filtered + trained on.
    """
    steward = curated.get("steward", {})
    counts = {
        "records_in": raw["records_in"],
        "ingestion_quarantine": raw["quarantined"],
        "ingestion_quarantine_by_reason": dict(raw.get("quarantine_by_reason", {})),
        # records erased on request are filtered at ingestion (`raw["filtered"]`, reason erased)
        "filtered": curated["records_in"] - curated["kept"] + raw.get("filtered", 0),
        "dropped_by_screening": curated["dropped"],
        "screening_quarantine": curated["quarantined"],
        "steward": {
            "approved": steward.get("approved", 0),
            "rejected": steward.get("rejected", 0),
            "awaiting_review": steward.get("pending", 0),
        },
        "trained_on": curated["kept"],
        # the audit's own records, trained on apart from the records in (not in the sum)
        "canaries_planted": curated.get("canaries_planted", 0),
    }
    counts["reconciles"] = counts["records_in"] == (
        counts["ingestion_quarantine"] + counts["filtered"] + counts["trained_on"]
    )
    return counts
