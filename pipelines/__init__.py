"""Sovereign Tune: a Dagster code location for governed, differentially private fine-tuning."""
