"""Stage 1, ingestion: landing files and data drops become raw records or quarantined ones, each
with a reason (landing), the language verdict that routes a record to its PII pack (language),
and the drop fingerprints that say when a drop changed (drops).
"""
